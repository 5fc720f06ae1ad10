package usage

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/store"
)

// countingAggregates counts the AddUsage calls that failed.
type countingAggregates struct {
	store.Aggregates
	failed atomic.Int64
}

func (c *countingAggregates) AddUsage(ctx context.Context, id string, d store.Usage) error {
	err := c.Aggregates.AddUsage(ctx, id, d)
	if err != nil {
		c.failed.Add(1)
	}
	return err
}

// A real Redis stalls (SIGSTOP, then SIGCONT) in the middle of a stream of
// records. Attempts that timed out during the stall reach the server and
// run when it resumes, and their deltas are retried meanwhile: each is
// still applied once. The stalls are shorter than the retry budget, so
// every record is in the aggregates; in any case the aggregates plus the
// records counted as dropped equal the records.
func TestStoreSinkRedisStall(t *testing.T) {
	for _, stall := range []time.Duration{500 * time.Millisecond, time.Second, 3 * time.Second, 10 * time.Second} {
		t.Run(stall.String(), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			st, err := store.NewRedis(store.RedisOptions{Addr: srv.Addr, Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			agg := &countingAggregates{Aggregates: st}
			obs := newCountObserver()
			em := NewEmitter(Options{BatchSize: 20, FlushInterval: 20 * time.Millisecond, Observer: obs}, NewStoreSink(agg))

			// Records every 5ms: half a second before the stall, through
			// it, and half a second after.
			const every = 5 * time.Millisecond
			n := int((stall + time.Second) / every)
			pauseAt, resumeAt := int(500*time.Millisecond/every), int((500*time.Millisecond+stall)/every)
			day := time.Date(2026, 6, 13, 0, 0, 0, 0, time.UTC)
			var wantPrompt int64
			tick := time.NewTicker(every)
			for i := range n {
				switch i {
				case pauseAt:
					srv.Pause()
				case resumeAt:
					srv.Resume()
				}
				r := rec(i)
				r.TS = day.Add(time.Duration(i) * time.Second)
				r.Supplier = fmt.Sprintf("supplier-%d", i%3)
				r.Model = []string{"gpt-4o", "gpt-4o-mini"}[i%2]
				wantPrompt += r.PromptTokens
				em.Emit(r)
				<-tick.C
			}
			tick.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), StoreRetryBudget+guard)
			defer cancel()
			if err := em.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}

			requests, prompt := totalRequests(t, st, day)
			dropped := obs.get("aggregates/dropped")
			t.Logf("%d records: %d in the aggregates, %d dropped; %d attempts failed", n, requests, dropped, agg.failed.Load())
			if requests+int64(dropped) != int64(n) {
				t.Errorf("aggregates count %d requests and %d records were dropped, for %d records", requests, dropped, n)
			}
			if dropped != 0 || requests != int64(n) || prompt != wantPrompt {
				t.Errorf("aggregates %d requests, %d prompt tokens; want %d and %d: a stall shorter than the retry budget loses nothing",
					requests, prompt, n, wantPrompt)
			}
			if agg.failed.Load() == 0 {
				t.Error("no attempt failed: the stall missed the stream")
			}
		})
	}
}
