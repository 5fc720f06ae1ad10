package usage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/store"
)

// hangingAggregates applies the calls of a store until the limit-th,
// which it applies too and then hangs in, as a process killed after the
// store applied a delta and before the spool's cursor moved: the batch
// is neither finished nor acknowledged. Once released, every call fails.
type hangingAggregates struct {
	store.Aggregates
	limit int

	mu      sync.Mutex
	calls   int
	hung    chan struct{} // closed when the limit-th call is applied
	release chan struct{}
}

func newHangingAggregates(st store.Aggregates, limit int) *hangingAggregates {
	return &hangingAggregates{Aggregates: st, limit: limit, hung: make(chan struct{}), release: make(chan struct{})}
}

// call runs apply unless the store was released, and hangs after the
// limit-th call.
func (h *hangingAggregates) call(apply func() error) error {
	select {
	case <-h.release:
		return store.ErrClosed
	default:
	}
	h.mu.Lock()
	h.calls++
	n := h.calls
	h.mu.Unlock()
	if n > h.limit {
		<-h.release
		return store.ErrClosed
	}
	err := apply()
	if n == h.limit {
		close(h.hung)
		<-h.release
		return store.ErrClosed
	}
	return err
}

func (h *hangingAggregates) AddUsage(ctx context.Context, id string, d store.Usage) error {
	return h.call(func() error { return h.Aggregates.AddUsage(ctx, id, d) })
}

func (h *hangingAggregates) AddUsageSeq(ctx context.Context, id string, d store.Usage, seq store.UsageSeq) (uint64, error) {
	var w uint64
	err := h.call(func() error {
		var err error
		w, err = h.Aggregates.AddUsageSeq(ctx, id, d, seq)
		return err
	})
	return w, err
}

// replayRecords returns n records of two aggregates (two suppliers, so
// that their deltas alternate) of one day.
func replayRecords(n int) []*Record {
	rs := recs(n)
	for i, r := range rs {
		r.Supplier = fmt.Sprintf("sup-%d", i%2)
		r.TS = time.Date(2026, 6, 13, 10, 0, i, 0, time.UTC)
	}
	return rs
}

// TestStoreSinkReplayCountsOnce: veil is killed after the store applied
// some deltas of a batch and before the spool's cursor moved past it.
// The next process replays the batch's records in batches of another
// size: each record is in the aggregates once, whatever the batching.
func TestStoreSinkReplayCountsOnce(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T) store.Aggregates
	}{
		{"embedded", func(t *testing.T) store.Aggregates { return newEmbedded(t) }},
		{"embedded on disk", func(t *testing.T) store.Aggregates {
			st, err := store.NewEmbedded(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}},
		{"redis", func(t *testing.T) store.Aggregates {
			srv := redistest.Start(t)
			st, err := store.NewRedis(store.RedisOptions{Addr: srv.Addr})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}},
	}
	for _, s := range stores {
		for _, c := range []struct{ before, after, hangAt int }{
			{before: 4, after: 3, hangAt: 3},
			{before: 4, after: 6, hangAt: 3},
			{before: 3, after: 7, hangAt: 5},
			{before: 6, after: 1, hangAt: 3},
			{before: 1, after: 10, hangAt: 6},
		} {
			t.Run(fmt.Sprintf("%s/batches of %d then %d", s.name, c.before, c.after), func(t *testing.T) {
				st := s.open(t)
				checkReplayOnce(t, st, c.before, c.after, c.hangAt)
			})
		}
	}
}

// checkReplayOnce emits records in batches of before through a store
// that hangs at its hangAt-th call (applied), kills the emitter there,
// replays in batches of after, and checks each record counted once.
func checkReplayOnce(t *testing.T, st store.Aggregates, before, after, hangAt int) {
	t.Helper()
	const n = 12
	dir := t.TempDir()
	all := replayRecords(n)
	day := all[0].TS

	sp := openSpool(t, dir, 0)
	h := newHangingAggregates(st, hangAt)
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
	})
	e := NewEmitter(fast(Options{Spool: sp, BatchSize: before, FlushInterval: time.Millisecond}), NewStoreSink(h))
	for _, r := range all {
		e.Emit(r)
	}
	select {
	case <-h.hung:
	case <-time.After(guard):
		t.Fatal("the store was never called as often as it should hang at")
	}
	// kill -9: nothing more is written or acknowledged.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v", err)
	}
	_ = sp.Close()
	close(h.release)
	e.wait()
	applied, _ := totalRequests(t, st, day)
	if applied == 0 || applied >= n {
		t.Fatalf("%d records applied before the kill, want some but not all", applied)
	}

	sp = openSpool(t, dir, 0)
	e = NewEmitter(fast(Options{Spool: sp, BatchSize: after, FlushInterval: time.Millisecond}), NewStoreSink(st))
	closeEmitter(t, e)

	var wantPrompt int64
	for _, r := range all {
		wantPrompt += r.PromptTokens
	}
	requests, prompt := totalRequests(t, st, day)
	if requests != n || prompt != wantPrompt {
		t.Errorf("aggregates count %d requests and %d prompt tokens after the replay (%d requests before it); want %d and %d",
			requests, prompt, applied, n, wantPrompt)
	}
}

// markAnswers records how the store answered each AddUsageSeq.
type markAnswers struct {
	store.Aggregates

	mu      sync.Mutex
	answers []string // applied, skipped or straddled
}

func (m *markAnswers) AddUsageSeq(ctx context.Context, id string, d store.Usage, seq store.UsageSeq) (uint64, error) {
	w, err := m.Aggregates.AddUsageSeq(ctx, id, d, seq)
	if err == nil {
		answer := "straddled"
		switch {
		case w < seq.First:
			answer = "applied"
		case w >= seq.Last:
			answer = "skipped"
		}
		m.mu.Lock()
		m.answers = append(m.answers, answer)
		m.mu.Unlock()
	}
	return w, err
}

func (m *markAnswers) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.answers
	m.answers = nil
	return a
}

// TestStoreSinkSplitsAtTheMark writes batches of spooled records as a
// replay would: records applied before are skipped, and a delta that
// straddles the mark is sent again with only the records above it.
func TestStoreSinkSplitsAtTheMark(t *testing.T) {
	st := newEmbedded(t)
	m := &markAnswers{Aggregates: st}
	k := testStoreSink(m, guard)
	all := replayRecords(12)
	for i, r := range all {
		r.SpoolSeq, r.spoolSource = uint64(i+1), "spool-test"
	}
	day := all[0].TS
	for _, step := range []struct {
		name     string
		batch    []*Record
		want     []string // per delta, in the order of their first records
		requests int64    // in the aggregates after the batch
	}{
		{"first batch", all[:4], []string{"applied", "applied"}, 4},
		{"replayed as part of a larger one", all[:7], []string{"straddled", "applied", "straddled", "applied"}, 7},
		{"replayed whole", all[2:7], []string{"skipped", "skipped"}, 7},
		{"the rest", all[7:], []string{"applied", "applied"}, 12},
	} {
		if err := k.Write(step.batch); err != nil {
			t.Fatalf("%s: Write: %v", step.name, err)
		}
		if got := m.take(); !slices.Equal(got, step.want) {
			t.Errorf("%s: the store answered %v, want %v", step.name, got, step.want)
		}
		if requests, _ := totalRequests(t, st, day); requests != step.requests {
			t.Errorf("%s: %d requests in the aggregates, want %d", step.name, requests, step.requests)
		}
	}
	var wantPrompt int64
	for _, r := range all {
		wantPrompt += r.PromptTokens
	}
	if _, prompt := totalRequests(t, st, day); prompt != wantPrompt {
		t.Errorf("%d prompt tokens in the aggregates, want %d", prompt, wantPrompt)
	}
}

// TestEmitQueuesInSpoolOrder: records emitted from many goroutines reach
// a sink in the order of their spool sequence numbers, which the store
// sink's marks rely on.
func TestEmitQueuesInSpoolOrder(t *testing.T) {
	sp := openSpool(t, t.TempDir(), 0)
	sink := &testSink{name: "s"}
	e := NewEmitter(fast(Options{Spool: sp, BatchSize: 7, QueueSize: 10000}), sink)
	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				e.Emit(rec(g*each + i))
			}
		})
	}
	wg.Wait()
	closeEmitter(t, e)
	got := sink.written()
	if len(got) != goroutines*each {
		t.Fatalf("%d records written, want %d", len(got), goroutines*each)
	}
	for i := 1; i < len(got); i++ {
		if got[i].SpoolSeq <= got[i-1].SpoolSeq {
			t.Fatalf("record %d has sequence number %d after %d", i, got[i].SpoolSeq, got[i-1].SpoolSeq)
		}
	}
}
