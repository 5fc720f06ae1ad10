package usage

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/store"
)

// newEmbedded returns an in-memory store closed at the end of the test.
func newEmbedded(t *testing.T) *store.Embedded {
	t.Helper()
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// totalRequests sums the requests of every aggregate of a day.
func totalRequests(t *testing.T, st store.Aggregates, day time.Time) (requests, prompt int64) {
	t.Helper()
	rows, err := st.QueryUsage(context.Background(), store.UsageQuery{From: day, To: day})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		requests += r.Requests
		prompt += r.PromptTokens
	}
	return requests, prompt
}

func TestStoreSinkAggregates(t *testing.T) {
	st := newEmbedded(t)
	day := time.Date(2026, 6, 20, 15, 0, 0, 0, time.UTC)
	cost := 0.25
	rec := func(supplier, model string, prompt int64) *Record {
		return &Record{TS: day, Supplier: supplier, Provider: "openai", Model: model, KeySource: "platform",
			PromptTokens: prompt, CompletionTokens: 10, TotalTokens: prompt + 10, CostUSD: &cost}
	}
	s := NewStoreSink(st)
	if err := s.Write([]*Record{rec("bella", "gpt-4o-mini", 5), rec("bella", "gpt-4o-mini", 7), rec("rose", "gpt-4o", 1)}); err != nil {
		t.Fatal(err)
	}
	rows, err := st.QueryUsage(context.Background(), store.UsageQuery{Supplier: "bella", From: day, To: day})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 2 || rows[0].PromptTokens != 12 || rows[0].CompletionTokens != 20 || rows[0].CostMicros != 500000 {
		t.Errorf("rows %+v", rows)
	}
}

// TestStoreSinkBilledAndWorkflow: the sink keeps apart who pays and the
// workflow: shadow calls on a supplier's key that the platform pays for
// are not the supplier's spend.
func TestStoreSinkBilledAndWorkflow(t *testing.T) {
	st := newEmbedded(t)
	day := time.Date(2026, 6, 20, 15, 0, 0, 0, time.UTC)
	rec := func(billed billing.Payer, workflow string) *Record {
		r := &Record{TS: day, Supplier: "bella", Provider: "openai", Model: "gpt-4o-mini", KeySource: billing.ClientKey,
			Billed: billed, Workflow: workflow, PromptTokens: 10, TotalTokens: 10}
		r.SetCost(3)
		return r
	}
	batch := []*Record{rec(billing.PaidByClient, "photography"), rec(billing.PaidByPlatform, "photography"),
		rec(billing.PaidByPlatform, "photography"), rec(billing.PaidByClient, "venue"), rec(billing.PaidByClient, "")}
	if err := NewStoreSink(st).Write(batch); err != nil {
		t.Fatal(err)
	}
	rows, err := st.QueryUsage(context.Background(), store.UsageQuery{From: day, To: day})
	if err != nil {
		t.Fatal(err)
	}
	type dims struct{ billed, workflow string }
	got := map[dims]int64{}
	for _, r := range rows {
		if r.KeySource != "client" {
			t.Errorf("row %+v: key source %q, want client", r, r.KeySource)
		}
		got[dims{r.Billed, r.Workflow}] += r.Requests
	}
	want := map[dims]int64{{"client", "photography"}: 1, {"platform", "photography"}: 2, {"client", "venue"}: 1, {"client", ""}: 1}
	if len(rows) != len(want) || !maps.Equal(got, want) {
		t.Errorf("aggregates %v, want %v", got, want)
	}
}

// flakyAggregates wraps a store. fail decides, per call (from 1), whether
// the call is applied and what error it returns, as a timeout whose
// command reached the store (applied, error) or did not (not applied,
// error) would.
type flakyAggregates struct {
	store.Aggregates
	fail func(call int, id string) (apply bool, err error)

	mu    sync.Mutex
	calls int
	ids   map[string]int // calls per id
}

func (f *flakyAggregates) AddUsage(ctx context.Context, id string, d store.Usage) error {
	f.mu.Lock()
	f.calls++
	call := f.calls
	if f.ids == nil {
		f.ids = map[string]int{}
	}
	f.ids[id]++
	f.mu.Unlock()
	apply, err := true, error(nil)
	if f.fail != nil {
		apply, err = f.fail(call, id)
	}
	if apply {
		if aerr := f.Aggregates.AddUsage(ctx, id, d); aerr != nil {
			return aerr
		}
	}
	return err
}

// waitCalls waits until AddUsage was called n times.
func (f *flakyAggregates) waitCalls(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		f.mu.Lock()
		calls := f.calls
		f.mu.Unlock()
		if calls >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %d calls", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// testStoreSink returns a store sink over s with short retries.
func testStoreSink(s store.Aggregates, budget time.Duration) *storeSink {
	return &storeSink{s: s, budget: budget, attemptTimeout: time.Second, minBackoff: time.Millisecond, maxBackoff: 5 * time.Millisecond}
}

var errTimeout = errors.New("store: redis add usage: i/o timeout")

// A delta whose first attempts reached the store but whose answers were
// lost is retried with the same id and counted once.
func TestStoreSinkRetryCountsOnce(t *testing.T) {
	st := newEmbedded(t)
	f := &flakyAggregates{Aggregates: st, fail: func(call int, _ string) (bool, error) {
		if call <= 3 {
			return true, errTimeout // applied, answer lost
		}
		return true, nil
	}}
	batch := recs(20)
	for i, r := range batch {
		r.Model = []string{"gpt-4o", "gpt-4o-mini"}[i%2]
	}
	if err := testStoreSink(f, time.Minute).Write(batch); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if req, _ := totalRequests(t, st, batch[0].TS); req != 20 {
		t.Errorf("aggregates count %d requests, want 20", req)
	}
	if f.calls != 5 || len(f.ids) != 2 {
		t.Errorf("%d calls for %d ids, want 5 for 2", f.calls, len(f.ids))
	}
}

// Each Write gives its deltas new ids: a batch written again (a later
// batch with the same records would be a bug elsewhere) counts again,
// while ids never repeat across batches.
func TestStoreSinkIDs(t *testing.T) {
	st := newEmbedded(t)
	f := &flakyAggregates{Aggregates: st}
	s := testStoreSink(f, time.Minute)
	for range 3 {
		if err := s.Write(recs(4)); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.ids) != 3 {
		t.Errorf("ids %v, want 3 distinct", f.ids)
	}
	for id := range f.ids {
		if len(id) > store.MaxUsageIDLen || !strings.HasSuffix(id, ".0") {
			t.Errorf("id %q: want a batch id and the delta's index, at most %d bytes", id, store.MaxUsageIDLen)
		}
	}
}

// What the store never applies is dropped, exactly: by records, for the
// deltas that failed, and not for those applied.
func TestStoreSinkCountsWhatIsNotApplied(t *testing.T) {
	day := time.Date(2025, 6, 14, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		fail func(call int, id string) (bool, error)
		// invalid makes the records of model "bad" invalid for the store.
		invalid bool
		budget  time.Duration
		want    int64 // requests in the aggregates
	}{
		{"store down for the whole budget", func(int, string) (bool, error) { return false, store.ErrUnavailable }, false, 50 * time.Millisecond, 0},
		{"one delta invalid", nil, true, time.Minute, 20},
		{"second delta times out for good", func(_ int, id string) (bool, error) {
			if strings.HasSuffix(id, ".1") {
				return false, errTimeout
			}
			return true, nil
		}, false, 50 * time.Millisecond, 20},
		{"store closed", func(int, string) (bool, error) { return false, store.ErrClosed }, false, time.Minute, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newEmbedded(t)
			f := &flakyAggregates{Aggregates: st, fail: tc.fail}
			obs := newCountObserver()
			em := NewEmitter(Options{BatchSize: 40, FlushInterval: time.Millisecond, Observer: obs}, testStoreSink(f, tc.budget))
			batch := recs(40)
			for i, r := range batch {
				if i%2 == 1 {
					r.Model = "gpt-4o"
					if tc.invalid {
						r.Model = "bad|model"
					}
				}
			}
			batch = append(batch, &Record{TS: day, Model: "no supplier"})
			for _, r := range batch {
				em.Emit(r)
			}
			if err := em.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, _ := totalRequests(t, st, day)
			if got != tc.want {
				t.Errorf("aggregates count %d requests, want %d", got, tc.want)
			}
			if d := obs.get("aggregates/dropped"); int64(d) != 40-got {
				t.Errorf("dropped %d, want %d: aggregates + dropped must equal the records", d, 40-got)
			}
			if d := obs.get("aggregates/delivered"); int64(d) != got+1 {
				t.Errorf("delivered %d, want %d", d, got+1)
			}
			if r := obs.get("aggregates/retried"); r != 0 {
				t.Errorf("the emitter retried %d writes, want none: the sink retries its deltas itself", r)
			}
		})
	}
}

// Close ends the retries of a store that does not answer: the close is not
// held up, and the records not applied count as dropped.
func TestStoreSinkCloseWhileRetrying(t *testing.T) {
	st := newEmbedded(t)
	f := &flakyAggregates{Aggregates: st, fail: func(int, string) (bool, error) {
		return false, store.ErrUnavailable
	}}
	obs := newCountObserver()
	s := &storeSink{s: f, budget: StoreRetryBudget, attemptTimeout: time.Second, minBackoff: time.Millisecond, maxBackoff: 10 * time.Millisecond}
	em := NewEmitter(Options{BatchSize: 10, FlushInterval: time.Millisecond, Observer: obs}, s)
	for _, r := range recs(10) {
		em.Emit(r)
	}
	f.waitCalls(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		t.Fatalf("Close = %v, want the retries ended and the sink closed", err)
	}
	if d := obs.get("aggregates/dropped"); d != 10 {
		t.Errorf("dropped %d, want 10", d)
	}
}
