package usage

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wedsync/veil/billing"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// guard bounds every wait: it only fails a test that would hang, it never
// decides an outcome.
const guard = 30 * time.Second

// notifier lets tests wait for a condition on shared state without
// polling: every change broadcasts.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// locked runs f under the lock and then wakes the waiters.
func (n *notifier) locked(f func()) {
	n.mu.Lock()
	f()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

// read runs f under the lock.
func (n *notifier) read(f func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f()
}

// waitUntil blocks until cond, checked under the lock, holds.
func (n *notifier) waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		if cond() {
			n.mu.Unlock()
			return
		}
		if n.ch == nil {
			n.ch = make(chan struct{})
		}
		ch := n.ch
		n.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

func rec(i int) *Record {
	cost := float64(i) / 1000
	return &Record{
		TS:               time.Date(2025, 6, 14, 15, 4, 5, i, time.UTC),
		RequestID:        fmt.Sprintf("req-%06d", i),
		Supplier:         "sup-florist",
		Caller:           "svc-quotes",
		Endpoint:         "/v1/chat/completions",
		RequestedModel:   "gpt-4o-mini",
		Model:            "gpt-4o-mini",
		Provider:         "openai",
		KeySource:        "platform",
		Billed:           billing.PaidByPlatform,
		Status:           200,
		PromptTokens:     int64(100 + i),
		CompletionTokens: 20,
		TotalTokens:      int64(120 + i),
		CostUSD:          &cost,
		LatencyMS:        12.5,
		Cache:            CacheMiss,
		Attempts:         []Attempt{{Provider: "openai", KeySource: "platform", Status: 200, LatencyMS: 11}},
	}
}

func recs(n int) []*Record {
	rs := make([]*Record, n)
	for i := range rs {
		rs[i] = rec(i)
	}
	return rs
}

// ids returns the request IDs of rs.
func ids(rs []*Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.RequestID
	}
	return out
}

// checkOnce fails unless got holds every ID of want exactly once and nothing
// else.
func checkOnce(t *testing.T, got []string, want []*Record) {
	t.Helper()
	count := make(map[string]int, len(got))
	for _, id := range got {
		count[id]++
	}
	for _, r := range want {
		if c := count[r.RequestID]; c != 1 {
			t.Errorf("record %s seen %d times, want 1", r.RequestID, c)
		}
		delete(count, r.RequestID)
	}
	if len(count) > 0 {
		t.Errorf("%d unexpected records", len(count))
	}
}

// checkSubset fails unless every ID of got is one of want's, at most once.
func checkSubset(t *testing.T, got []string, want []*Record) {
	t.Helper()
	known := make(map[string]bool, len(want))
	for _, r := range want {
		known[r.RequestID] = true
	}
	seen := make(map[string]bool, len(got))
	for _, id := range got {
		if !known[id] {
			t.Errorf("unexpected record %s", id)
		}
		if seen[id] {
			t.Errorf("record %s seen twice", id)
		}
		seen[id] = true
	}
}

var errWrite = errors.New("sink unavailable")

// testSink records what it is given. write, if set, decides each Write's
// result from its call number (from 1); it may block.
type testSink struct {
	name  string
	write func(call int, batch []*Record) error

	n       notifier
	calls   int
	got     []*Record
	batches []int
	closes  int
}

func (s *testSink) Name() string { return s.name }

func (s *testSink) Write(batch []*Record) error {
	var call int
	s.n.locked(func() {
		s.calls++
		call = s.calls
	})
	var err error
	if s.write != nil {
		err = s.write(call, batch)
	}
	if err == nil {
		s.n.locked(func() {
			s.got = append(s.got, batch...)
			s.batches = append(s.batches, len(batch))
		})
	}
	return err
}

func (s *testSink) Close() error {
	s.n.locked(func() { s.closes++ })
	return nil
}

func (s *testSink) written() []*Record {
	var out []*Record
	s.n.read(func() { out = slices.Clone(s.got) })
	return out
}

// overflowSink is a testSink that is an Overflower.
type overflowSink struct {
	testSink
	over []*Record
}

func (s *overflowSink) Overflow(r *Record) {
	s.n.locked(func() { s.over = append(s.over, r) })
}

func (s *overflowSink) overflowed() []*Record {
	var out []*Record
	s.n.read(func() { out = slices.Clone(s.over) })
	return out
}

var (
	_ Sink       = (*testSink)(nil)
	_ Overflower = (*overflowSink)(nil)
	_ Observer   = (*countObserver)(nil)
)

// countObserver counts by sink and outcome.
type countObserver struct {
	n      notifier
	counts map[string]int // "sink/outcome"
	depths int
}

func newCountObserver() *countObserver {
	return &countObserver{counts: make(map[string]int)}
}

func (o *countObserver) add(sink, outcome string, n int) {
	o.n.locked(func() { o.counts[sink+"/"+outcome] += n })
}

func (o *countObserver) QueueDepth(string, int)       { o.n.locked(func() { o.depths++ }) }
func (o *countObserver) Delivered(sink string, n int) { o.add(sink, "delivered", n) }
func (o *countObserver) Retried(sink string)          { o.add(sink, "retried", 1) }
func (o *countObserver) Spilled(sink string, n int)   { o.add(sink, "spilled", n) }
func (o *countObserver) Dropped(sink string, n int)   { o.add(sink, "dropped", n) }

func (o *countObserver) get(key string) int {
	var n int
	o.n.read(func() { n = o.counts[key] })
	return n
}
