package health

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/store"
)

func TestHeadroomLeft(t *testing.T) {
	t0 := time.Date(2026, 6, 13, 14, 30, 0, 0, time.UTC)
	tests := []struct {
		name  string
		l     RateLimits
		after time.Duration
		want  float64
		known bool
	}{
		{"nothing said", NoRateLimits, 0, 1, false},
		{"requests", RateLimits{LimitRequests: 100, RemainingRequests: 25, LimitTokens: -1, RemainingTokens: -1, ResetRequests: -1, ResetTokens: -1}, 0, 0.25, true},
		{"the tighter limit", RateLimits{LimitRequests: 100, RemainingRequests: 80, LimitTokens: 1000, RemainingTokens: 100, ResetRequests: -1, ResetTokens: -1}, 0, 0.1, true},
		{"refilled halfway to the reset", RateLimits{LimitRequests: 100, RemainingRequests: 20, LimitTokens: -1, RemainingTokens: -1,
			ResetRequests: 10 * time.Second, ResetTokens: -1}, 5 * time.Second, 0.6, true},
		{"whole after the reset", RateLimits{LimitRequests: 100, RemainingRequests: 0, LimitTokens: -1, RemainingTokens: -1,
			ResetRequests: 10 * time.Second, ResetTokens: -1}, 11 * time.Second, 1, true},
		{"no reset: counts a minute", RateLimits{LimitRequests: 100, RemainingRequests: 10, LimitTokens: -1, RemainingTokens: -1, ResetRequests: -1, ResetTokens: -1},
			59 * time.Second, 0.1, true},
		{"no reset: unknown after a minute", RateLimits{LimitRequests: 100, RemainingRequests: 10, LimitTokens: -1, RemainingTokens: -1, ResetRequests: -1, ResetTokens: -1},
			61 * time.Second, 1, false},
		{"no limit, nothing left", RateLimits{LimitRequests: -1, RemainingRequests: 0, LimitTokens: -1, RemainingTokens: -1, ResetRequests: -1, ResetTokens: -1}, 0, 0, true},
		{"no limit, some left", RateLimits{LimitRequests: -1, RemainingRequests: 3, LimitTokens: -1, RemainingTokens: -1, ResetRequests: -1, ResetTokens: -1}, 0, 1, true},
		{"more left than the limit", RateLimits{LimitRequests: 10, RemainingRequests: 12, LimitTokens: -1, RemainingTokens: -1, ResetRequests: -1, ResetTokens: -1}, 0, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := noObservation
			if tc.l.said() {
				o = observe(tc.l, t0)
			}
			got, known := o.left(t0.Add(tc.after).UnixNano())
			if math.Abs(got-tc.want) > 1e-9 || known != tc.known {
				t.Errorf("left = %v, %v; want %v, %v", got, known, tc.want, tc.known)
			}
		})
	}
}

func TestRegistryLoad(t *testing.T) {
	r := NewRegistry("openai", "azure")
	now := time.Now()
	if left, cooling, lat := r.Load("openai", now); left != 1 || cooling || lat != 0 {
		t.Fatalf("a fresh target: %v %v %v", left, cooling, lat)
	}
	o := r.Target("openai")
	o.Record(200, 300*time.Millisecond, now)
	o.ReportRateLimits(RateLimits{LimitRequests: 200, RemainingRequests: 50, LimitTokens: -1, RemainingTokens: -1, ResetRequests: -1, ResetTokens: -1}, now)
	o.ReportRateLimits(NoRateLimits, now) // says nothing: the last observation stays
	o.RateLimited(now.Add(10 * time.Second))
	o.RateLimited(now.Add(5 * time.Second)) // a shorter cooldown does not cut a longer one
	left, cooling, lat := r.Load("openai", now)
	if left != 0.25 || !cooling || lat != 300*time.Millisecond {
		t.Errorf("Load = %v %v %v, want 0.25 true 300ms", left, cooling, lat)
	}
	if _, cooling, _ := r.Load("openai", now.Add(11*time.Second)); cooling {
		t.Error("still cooling down after the 429's time")
	}
	if left, cooling, _ := r.Load("unknown", now); left != 1 || cooling {
		t.Errorf("an unknown provider: %v %v", left, cooling)
	}
	snap := r.Snapshot()
	if snap[1].Target != "openai" || snap[1].Headroom == nil || *snap[1].Headroom != 0.25 || snap[1].RateLimitedUntil == nil ||
		*snap[1].RemainingRequests != 50 {
		t.Errorf("snapshot %+v", snap[1])
	}
	if snap[0].Headroom != nil || snap[0].RateLimitedUntil != nil {
		t.Errorf("azure said nothing: %+v", snap[0])
	}
}

// TestLoadAllocs: recording rate limits and reading the load are on the
// request path and allocate nothing, however many accounts the pool has.
func TestLoadAllocs(t *testing.T) {
	r := NewRegistry("openai")
	now := time.Now()
	shared := observe(RateLimits{LimitRequests: 500, RemainingRequests: 100, LimitTokens: -1, RemainingTokens: -1, ResetRequests: time.Minute,
		ResetTokens: -1}, now)
	shared.acct = OrgAccount([]byte("org-elsewhere"))
	r.shared.Store(&sharedView{byProvider: map[string]sharedEntry{"openai": {accounts: []observation{shared}}}})
	tg := r.Target("openai")
	l := RateLimits{LimitRequests: 100, RemainingRequests: 10, LimitTokens: 1000, RemainingTokens: 900, ResetRequests: time.Second, ResetTokens: -1}
	orgs := [][]byte{[]byte("org-a"), []byte("org-b"), []byte("org-c")}
	i := 0
	if a := testing.AllocsPerRun(100, func() {
		tg.ReportAccountRateLimits(OrgAccount(orgs[i%len(orgs)]), l, now)
		i++
		tg.ReportRateLimits(l, now)
		tg.RateLimited(now)
		_, _, _ = r.Load("openai", now)
	}); a != 0 {
		t.Errorf("%.1f allocations", a)
	}
}

// TestLimitCellConsistent: a reader never sees half of one observation and
// half of another, however many write at once.
func TestLimitCellConsistent(t *testing.T) {
	var c limitCell
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := int64(1); !stop.Load(); i++ {
				v := i*10 + int64(w)
				c.store(observation{at: v, limReq: v, remReq: v, limTok: v, remTok: v, resetReq: v, resetT: v})
			}
		})
	}
	for range 20000 {
		o, seq := c.load()
		if seq == 0 {
			continue
		}
		if o.limReq != o.at || o.remReq != o.at || o.limTok != o.at || o.remTok != o.at || o.resetReq != o.at || o.resetT != o.at {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("torn observation %+v", o)
		}
	}
	stop.Store(true)
	wg.Wait()
}

// countingHeadrooms counts publishes.
type countingHeadrooms struct {
	store.Headrooms
	publishes atomic.Int64
	fail      atomic.Bool
}

func (c *countingHeadrooms) PublishHeadroom(ctx context.Context, hs []store.Headroom, now time.Time) error {
	c.publishes.Add(1)
	if c.fail.Load() {
		return store.ErrUnavailable
	}
	return c.Headrooms.PublishHeadroom(ctx, hs, now)
}

// TestSharing: what one replica sees of a provider reaches another through
// the store, embedded or Redis, and only what changed is published.
func TestSharing(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (store.Headrooms, store.Headrooms)
	}{
		{"embedded", func(t *testing.T) (store.Headrooms, store.Headrooms) {
			e, err := store.NewEmbedded("")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close() })
			return e, e
		}},
		{"redis", func(t *testing.T) (store.Headrooms, store.Headrooms) {
			srv := redistest.Start(t)
			var out [2]store.Headrooms
			for i := range out {
				r, err := store.NewRedis(store.RedisOptions{Addr: srv.Addr})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = r.Close() })
				out[i] = r
			}
			return out[0], out[1]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sa, sb := tc.open(t)
			counted := &countingHeadrooms{Headrooms: sa}
			now := time.Now().Truncate(time.Millisecond)
			clock := func() time.Time { return now }
			a, b := NewRegistry("openai", "azure"), NewRegistry("openai", "azure")
			shareA := &Sharing{Registry: a, Store: counted, Now: clock}
			shareB := &Sharing{Registry: b, Store: sb, Now: clock}
			ctx := t.Context()

			a.Target("openai").ReportRateLimits(RateLimits{LimitRequests: 100, RemainingRequests: 5, LimitTokens: -1, RemainingTokens: -1,
				ResetRequests: time.Minute, ResetTokens: -1}, now)
			a.Target("azure").RateLimited(now.Add(30 * time.Second))
			for _, s := range []*Sharing{shareA, shareB} {
				if err := s.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if left, cooling, _ := b.Load("openai", now); left != 0.05 || cooling {
				t.Errorf("replica b sees openai at %v (cooling %v), want 0.05 as a saw it", left, cooling)
			}
			if _, cooling, _ := b.Load("azure", now); !cooling {
				t.Error("replica b does not see azure's 429")
			}
			if err := shareA.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if n := counted.publishes.Load(); n != 1 {
				t.Errorf("%d publishes for one change", n)
			}
			// b's own, newer observation wins over the shared one.
			b.Target("openai").ReportRateLimits(RateLimits{LimitRequests: 100, RemainingRequests: 90, LimitTokens: -1, RemainingTokens: -1,
				ResetRequests: time.Minute, ResetTokens: -1}, now.Add(time.Millisecond))
			if left, _, _ := b.Load("openai", now.Add(time.Millisecond)); left < 0.9 {
				t.Errorf("b's newer observation: %v", left)
			}
			// A failed publish is published again in the next round.
			a.Target("openai").ReportRateLimits(RateLimits{LimitRequests: 100, RemainingRequests: 1, LimitTokens: -1, RemainingTokens: -1,
				ResetRequests: time.Minute, ResetTokens: -1}, now.Add(2*time.Millisecond))
			counted.fail.Store(true)
			if err := shareA.Sync(ctx); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("a failing store: %v", err)
			}
			counted.fail.Store(false)
			for _, s := range []*Sharing{shareA, shareB} {
				if err := s.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if left, _, _ := b.Load("openai", now.Add(2*time.Millisecond)); left > 0.02 {
				t.Errorf("the republished observation did not arrive: %v", left)
			}
		})
	}
}
