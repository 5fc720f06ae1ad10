package compare

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/store"
)

// cmpClock is a settable clock, safe for concurrent use.
type cmpClock struct{ ns atomic.Int64 }

func newCmpClock() *cmpClock {
	c := &cmpClock{}
	c.ns.Store(time.Date(2026, 6, 13, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *cmpClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *cmpClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// newCmpStore returns an in-memory store closed when the test ends.
func newCmpStore(t testing.TB) *store.Embedded {
	t.Helper()
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatalf("NewEmbedded: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newCmp returns comparisons of replica holder on st, with every supplier
// on platform.
func newCmp(st store.Documents, clock *cmpClock, holder string) *Comparisons {
	return New(Options{
		Store:   st,
		Now:     clock.Now,
		Holder:  holder,
		Current: func(string) billing.Mode { return billing.ModePlatform },
	})
}

func mustStart(t testing.TB, c *Comparisons, r Request) *Comparison {
	t.Helper()
	cmp, err := c.Start(context.Background(), r)
	if err != nil {
		t.Fatalf("Start(%+v): %v", r, err)
	}
	return cmp
}

// shadowCall is what the proxy does for a request of supplier that it
// shadows: Shadow chooses it and Begin counts the shadow call. It reports
// whether the call is made.
func shadowCall(c *Comparisons, supplier string, spread uint64) bool {
	id, _, ok := c.Shadow([]byte(supplier), spread)
	if !ok {
		return false
	}
	_, _, ok = c.Begin(id)
	return ok
}

func mustSync(t testing.TB, cs ...*Comparisons) {
	t.Helper()
	for _, c := range cs {
		if err := c.Sync(context.Background()); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	}
}

func TestSimilarity(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		want float64
	}{
		{"identical", "The venue seats 120 guests.", "The venue seats 120 guests.", 1},
		{"case, punctuation and order", "Seats 120 guests, the venue!", "the VENUE seats 120 guests", 1},
		{"disjoint", "golden hour portraits", "vegan menu options", 0},
		{"both empty", "", "", 1},
		{"both without words", "!!! ...", " - ", 1},
		{"one empty", "", "confetti", 0},
		{"one without words", "...", "confetti", 0},
		// a = {a:1, b:1}, b = {a:1, c:1}: 1 / (sqrt 2 * sqrt 2).
		{"half", "a b", "a c", 0.5},
		// a = {x:2}, b = {x:1, y:1}: 2 / (2 * sqrt 2).
		{"repeated term", "x x", "x y", 1 / math.Sqrt2},
		// {w:1, x:1, y:1, z:1} and {w:1, x:1, y:1}: 3 / (2 * sqrt 3).
		{"subset", "w x y z", "w x y", 3 / (2 * math.Sqrt(3))},
		{"unicode words", "Café crème brûlée", "café CRÈME brûlée", 1},
		{"digits are words", "table 12", "table 13", 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Similarity(tc.a, tc.b)
			if math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("Similarity(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if back := Similarity(tc.b, tc.a); back != got {
				t.Errorf("not symmetric: %v and %v", got, back)
			}
		})
	}
}

func TestCompareStartValidates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		current billing.Mode
		req     Request
		want    error
	}{
		{"no supplier", "platform", Request{Other: "client", Requests: 10}, ErrInvalid},
		{"unknown other", "platform", Request{Supplier: "s", Other: "shadow", Requests: 10}, ErrInvalid},
		{"other is current", "client", Request{Supplier: "s", Other: "client", Requests: 10}, ErrInvalid},
		{"no limit", "platform", Request{Supplier: "s", Other: "client"}, ErrInvalid},
		{"negative requests", "platform", Request{Supplier: "s", Other: "client", Requests: -1, Window: time.Hour}, ErrInvalid},
		{"negative window", "platform", Request{Supplier: "s", Other: "client", Requests: 5, Window: -time.Hour}, ErrInvalid},
		{"sample above one", "platform", Request{Supplier: "s", Other: "client", Requests: 5, Sample: 1.5}, ErrInvalid},
		{"negative sample", "platform", Request{Supplier: "s", Other: "client", Requests: 5, Sample: -0.1}, ErrInvalid},
		{"NaN sample", "platform", Request{Supplier: "s", Other: "client", Requests: 5, Sample: math.NaN()}, ErrInvalid},
		{"unknown billing", "platform", Request{Supplier: "s", Other: "client", Requests: 5, Billed: "shadow"}, ErrInvalid},
		{"requests only", "platform", Request{Supplier: "s", Other: "client", Requests: 5}, nil},
		{"window only", "client", Request{Supplier: "s", Other: "platform", Window: time.Hour}, nil},
		{"hybrid to client", "hybrid", Request{Supplier: "s", Other: "client", Window: time.Hour, Billed: "client"}, nil},
		{"no current mode", "", Request{Supplier: "s", Other: "platform", Window: time.Hour}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newCmpClock()
			c := New(Options{
				Store: newCmpStore(t), Now: clock.Now,
				Current: func(string) billing.Mode { return tc.current },
			})
			cmp, err := c.Start(context.Background(), tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start: %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			wantPrimary := tc.current
			if wantPrimary == "" {
				wantPrimary = "client"
			}
			if cmp.Primary != wantPrimary || cmp.Status != Running || !cmp.Started.Equal(clock.Now()) {
				t.Errorf("comparison %+v", cmp)
			}
			wantBilled := tc.req.Billed
			if wantBilled == "" {
				wantBilled = "platform"
			}
			if cmp.Sample != DefaultSample || cmp.Billed != wantBilled {
				t.Errorf("defaults: sample %v, billed %q", cmp.Sample, cmp.Billed)
			}
			if (tc.req.Window > 0) != !cmp.Ends.IsZero() || (tc.req.Window > 0 && !cmp.Ends.Equal(clock.Now().Add(tc.req.Window))) {
				t.Errorf("ends %v for window %v", cmp.Ends, tc.req.Window)
			}
		})
	}
}

func TestCompareOnePerSupplier(t *testing.T) {
	ctx := context.Background()
	clock := newCmpClock()
	st := newCmpStore(t)
	a, b := newCmp(st, clock, "a"), newCmp(st, clock, "b")
	first := mustStart(t, a, Request{Supplier: "bella", Other: "client", Requests: 50})
	if _, err := b.Start(ctx, Request{Supplier: "bella", Other: "client", Window: time.Hour}); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Start on another replica: %v, want ErrRunning", err)
	}
	mustStart(t, b, Request{Supplier: "other-supplier", Other: "client", Requests: 50})
	stopped, err := b.Stop(ctx, first.ID)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if stopped.Status != Stopped || stopped.Reason != "stopped" || !stopped.Ended.Equal(clock.Now()) {
		t.Errorf("stopped: %+v", stopped)
	}
	again, err := b.Stop(ctx, first.ID)
	if err != nil || again.Status != Stopped {
		t.Errorf("Stop again: %+v, %v", again, err)
	}
	second := mustStart(t, b, Request{Supplier: "bella", Other: "client", Window: time.Hour, Sample: 1})
	list, err := a.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("List: %d comparisons, %v", len(list), err)
	}
	if _, err := a.Get(ctx, "cmp_missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing comparison: %v", err)
	}
	if _, err := a.Get(ctx, "supplier/bella"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a supplier key: %v", err)
	}
	if _, err := a.Stop(ctx, "supplier/bella"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stop of a supplier key: %v", err)
	}
	// The replica that started the first one stops shadowing it at its next
	// pass, and follows the second.
	mustSync(t, a)
	if id, other, ok := a.Shadow([]byte("bella"), 1); !ok || id != second.ID || other != "client" {
		t.Errorf("Shadow after the restart: %q %q %v, want %s", id, other, ok, second.ID)
	}
	if provider, billed, ok := a.Begin(second.ID); !ok || billed != "platform" || provider != "" {
		t.Errorf("Begin: %q %q %v", provider, billed, ok)
	}
	if _, _, ok := a.Begin(first.ID); ok {
		t.Error("Begin takes a stopped comparison")
	}
}

func TestShadowSampling(t *testing.T) {
	const n = 200_000
	for _, sample := range []float64{0.05, 0.2, 0.5, 1} {
		for _, spreads := range []struct {
			name string
			f    func(i uint64) uint64
		}{
			{"counter times odd constant", func(i uint64) uint64 { return i * 0x9E3779B97F4A7C15 }},
			{"plain counter", func(i uint64) uint64 { return i }},
		} {
			t.Run(fmt.Sprintf("%v/%s", sample, spreads.name), func(t *testing.T) {
				clock := newCmpClock()
				c := newCmp(newCmpStore(t), clock, "a")
				cmp := mustStart(t, c, Request{Supplier: "bella", Other: "client", Window: time.Hour, Sample: sample})
				hits := 0
				for i := range uint64(n) {
					id, other, ok := c.Shadow([]byte("bella"), spreads.f(i))
					if ok {
						hits++
						if id != cmp.ID || other != "client" {
							t.Fatalf("Shadow = %q, %q", id, other)
						}
					}
				}
				// Five standard deviations of a binomial share.
				tol := 5 * math.Sqrt(sample*(1-sample)/n)
				if got := float64(hits) / n; math.Abs(got-sample) > tol+1e-9 {
					t.Errorf("shadowed %.4f of requests, want %v ± %.4f", got, sample, tol)
				}
				if _, _, ok := c.Shadow([]byte("someone-else"), 7); ok {
					t.Error("another supplier's request shadowed")
				}
				// The same spread always gets the same answer.
				_, _, first := c.Shadow([]byte("bella"), 12345)
				for range 10 {
					if _, _, ok := c.Shadow([]byte("bella"), 12345); ok != first {
						t.Fatal("the choice of one spread changed")
					}
				}
			})
		}
	}
}

func TestShadowRequestsCap(t *testing.T) {
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d replicas", replicas), func(t *testing.T) {
			const requests = 200
			clock := newCmpClock()
			st := newCmpStore(t)
			cs := make([]*Comparisons, replicas)
			for i := range cs {
				cs[i] = newCmp(st, clock, fmt.Sprintf("r%d", i))
			}
			cmp := mustStart(t, cs[0], Request{Supplier: "bella", Other: "client", Requests: requests, Sample: 1})
			var shadowed atomic.Int64
			for round := 0; round < 200; round++ {
				var wg sync.WaitGroup
				for g := range 8 {
					wg.Go(func() {
						for i := range 40 {
							if shadowCall(cs[(g+i)%replicas], "bella", uint64(i)) {
								shadowed.Add(1)
							}
						}
					})
				}
				wg.Go(func() { // a pass while requests come in
					if err := cs[round%replicas].Sync(context.Background()); err != nil {
						t.Errorf("Sync: %v", err)
					}
				})
				wg.Wait()
				mustSync(t, cs...)
				if got, _ := cs[0].Get(context.Background(), cmp.ID); got.Status != Running {
					break
				}
			}
			if got := shadowed.Load(); got != requests {
				t.Fatalf("%d requests shadowed, want %d", got, requests)
			}
			for _, c := range cs {
				got, err := c.Get(context.Background(), cmp.ID)
				if err != nil || got.Status != Done || got.Reason != "requests" || got.Shadowed != requests {
					t.Errorf("after the count: %+v, %v", got, err)
				}
				if _, _, ok := c.Shadow([]byte("bella"), 1); ok {
					t.Error("shadowed after the count was used up")
				}
			}
		})
	}
}

// TestShadowCountsOnlyShadowCalls: of twelve requests chosen, the caller
// shadows two (the others were already on the other system); the
// comparison counts two shadowed, not twelve, and a capped one keeps the
// rest of its count for later requests.
func TestShadowCountsOnlyShadowCalls(t *testing.T) {
	for _, capped := range []bool{false, true} {
		t.Run(fmt.Sprintf("capped %v", capped), func(t *testing.T) {
			ctx := context.Background()
			clock := newCmpClock()
			c := newCmp(newCmpStore(t), clock, "a")
			req := Request{Supplier: "bella", Other: "client", Window: time.Hour, Sample: 1}
			if capped {
				req.Requests = 12
			}
			cmp := mustStart(t, c, req)
			for i := range 12 {
				id, _, ok := c.Shadow([]byte("bella"), uint64(i))
				if !ok {
					t.Fatalf("request %d not chosen", i)
				}
				if i%6 != 0 {
					continue // already on the other system: no shadow call
				}
				if _, _, ok := c.Begin(id); !ok {
					t.Fatalf("request %d: Begin refused", i)
				}
				c.Record(id, Pair{Primary: billing.Outcome{Status: 200, Text: "yes"}, Shadow: billing.Outcome{Status: 200, Text: "yes"}})
			}
			mustSync(t, c)
			got, err := c.Get(ctx, cmp.ID)
			if err != nil || got.Shadowed != 2 || got.Recorded != 2 || got.Status != Running {
				t.Fatalf("after 12 chosen and 2 shadowed: %+v, %v", got, err)
			}
			if capped {
				for i := range 10 {
					mustSync(t, c)
					if !shadowCall(c, "bella", uint64(i)) {
						t.Fatalf("shadow call %d of the 10 left refused", i)
					}
				}
				mustSync(t, c)
				if got, _ := c.Get(ctx, cmp.ID); got.Shadowed != 12 || got.Status != Done {
					t.Errorf("after the count: %+v", got)
				}
				if _, _, ok := c.Begin(cmp.ID); ok {
					t.Error("Begin beyond the count")
				}
			}
		})
	}
}

func TestShadowStaleClaimWrittenOff(t *testing.T) {
	const requests = 100
	clock := newCmpClock()
	st := newCmpStore(t)
	a, b := newCmp(st, clock, "a"), newCmp(st, clock, "b")
	cmp := mustStart(t, a, Request{Supplier: "bella", Other: "client", Requests: requests, Sample: 1})
	total := 0
	shadow := func(c *Comparisons, n int) {
		for i := range n {
			if shadowCall(c, "bella", uint64(i)) {
				total++
			}
		}
	}
	shadow(a, 5)
	mustSync(t, a)
	shadow(a, 1) // then a goes away, holding the rest of its claim
	for range 50 {
		mustSync(t, b)
		shadow(b, 50)
	}
	got, _ := b.Get(context.Background(), cmp.ID)
	if total != 81 || got.Status != Running {
		t.Fatalf("%d shadowed while a held its claim, comparison %+v", total, got)
	}
	// Once a's claim is stale it counts as spent: b may not take it, as a
	// may have used some of it, so the comparison ends short of its count.
	clock.Advance(StaleAfter + time.Second)
	mustSync(t, b)
	shadow(b, 50)
	got, _ = b.Get(context.Background(), cmp.ID)
	if total != 81 || got.Status != Done || got.Reason != "requests" || got.Shadowed != 80 {
		t.Errorf("%d shadowed, comparison %+v", total, got)
	}
}

func TestShadowIdleClaimGivenBack(t *testing.T) {
	const requests = 100
	clock := newCmpClock()
	st := newCmpStore(t)
	// a starts the comparison and holds the first claim, but the
	// supplier's traffic goes to b.
	a, b := newCmp(st, clock, "a"), newCmp(st, clock, "b")
	cmp := mustStart(t, a, Request{Supplier: "bella", Other: "client", Requests: requests, Sample: 1})
	total := 0
	pass := func() {
		mustSync(t, a, b)
		for i := range 20 {
			if shadowCall(b, "bella", uint64(i)) {
				total++
			}
		}
		clock.Advance(5 * time.Second)
	}
	for range 10 {
		pass()
	}
	if total == 0 || total >= requests {
		t.Fatalf("%d shadowed while a held its claim", total)
	}
	for range 20 { // a minute and more
		pass()
	}
	mustSync(t, a, b)
	got, _ := a.Get(context.Background(), cmp.ID)
	if total != requests || got.Status != Done || got.Shadowed != requests {
		t.Errorf("%d shadowed, comparison %+v", total, got)
	}
}

func TestCompareWindow(t *testing.T) {
	ctx := context.Background()
	clock := newCmpClock()
	st := newCmpStore(t)
	c := newCmp(st, clock, "a")
	cmp := mustStart(t, c, Request{Supplier: "bella", Other: "client", Window: time.Hour, Sample: 1})
	start := clock.Now()
	if !shadowCall(c, "bella", 1) {
		t.Fatal("not shadowed at the start")
	}
	clock.Advance(time.Hour - time.Nanosecond)
	if !shadowCall(c, "bella", 2) {
		t.Fatal("not shadowed just before the end")
	}
	clock.Advance(time.Nanosecond)
	if _, _, ok := c.Shadow([]byte("bella"), 3); ok {
		t.Fatal("shadowed at the end of the window, before any pass")
	}
	got, _ := c.Get(ctx, cmp.ID)
	if got.Status != Done || got.Reason != "window" || got.Shadowed != 2 {
		t.Errorf("Get at the end, before a pass: %+v", got)
	}
	clock.Advance(time.Minute)
	mustSync(t, c)
	got, _ = c.Get(ctx, cmp.ID)
	if got.Status != Done || got.Reason != "window" || !got.Ended.Equal(start.Add(time.Hour)) || got.Shadowed != 2 {
		t.Errorf("after a pass: %+v", got)
	}
	// Late answers are still recorded, then flushed.
	c.Record(cmp.ID, Pair{Primary: billing.Outcome{Status: 200, Text: "a"}, Shadow: billing.Outcome{Status: 200, Text: "a"}})
	mustSync(t, c)
	if g, _ := newCmp(st, clock, "b").Get(ctx, cmp.ID); g.Recorded != 1 {
		t.Errorf("late answer not flushed: %+v", g)
	}
	// The supplier may be compared again.
	mustStart(t, c, Request{Supplier: "bella", Other: "client", Window: time.Hour})
	// Long after the end, the replica forgets the comparison.
	clock.Advance(RecordGrace + time.Minute)
	mustSync(t, c)
	c.Record(cmp.ID, Pair{Primary: billing.Outcome{Status: 200}, Shadow: billing.Outcome{Status: 200}})
	mustSync(t, c)
	if g, _ := c.Get(ctx, cmp.ID); g.Recorded != 1 {
		t.Errorf("answer after the grace recorded: %+v", g)
	}
}

func TestCompareEndedWhileNoReplicaRan(t *testing.T) {
	ctx := context.Background()
	clock := newCmpClock()
	st := newCmpStore(t)
	cmp := mustStart(t, newCmp(st, clock, "a"), Request{Supplier: "bella", Other: "client", Window: time.Hour})
	clock.Advance(3 * time.Hour) // every replica was down meanwhile
	b := newCmp(st, clock, "b")
	mustSync(t, b)
	value, _, err := st.Get(ctx, Bucket, cmp.ID)
	if err != nil || !strings.Contains(string(value), `"status":"done"`) {
		t.Errorf("stored comparison not marked done: %s, %v", value, err)
	}
	got, _ := b.Get(ctx, cmp.ID)
	if got.Status != Done || got.Reason != "window" || !got.Ended.Equal(cmp.Ends) {
		t.Errorf("comparison %+v", got)
	}
	if _, _, ok := b.Shadow([]byte("bella"), 1); ok {
		t.Error("an ended comparison shadows")
	}
}

// cmpPairs returns n pairs of outcomes, i from 1 to n: primary latency i
// ms, TTFT i/10 ms, 800 prompt and i completion tokens at $0.002, the
// same text on both sides; shadow the same at 1 ms more and $0.0015.
// edit changes them.
func cmpPairs(n int, edit func(i int, p, s *billing.Outcome)) [][2]billing.Outcome {
	out := make([][2]billing.Outcome, 0, n)
	for i := 1; i <= n; i++ {
		text := fmt.Sprintf("Congratulations on your wedding, booking %d is confirmed", i)
		p := billing.Outcome{Status: 200, Latency: time.Duration(i) * time.Millisecond, TTFT: time.Duration(i) * 100 * time.Microsecond,
			PromptTokens: 800, CompletionTokens: int64(i), CostUSD: 0.002, Text: text}
		s := p
		s.Latency += time.Millisecond
		s.CostUSD = 0.0015
		if edit != nil {
			edit(i, &p, &s)
		}
		out = append(out, [2]billing.Outcome{p, s})
	}
	return out
}

// sideCore is s without its histogram, to compare.
func sideCore(s Side) Side {
	s.LatencyHistogram = nil
	return s
}

// simCore is s without its histogram, to compare.
func simCore(s SimilarityStats) SimilarityStats {
	s.Histogram = nil
	return s
}

func TestCompareReport(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pairs  [][2]billing.Outcome
		want   string
		reason string // a reason contains it
		check  func(t *testing.T, r Report)
	}{
		{
			name: "cheaper and as good: migrate", pairs: cmpPairs(100, nil), want: Migrate, reason: "25.0% less",
			check: func(t *testing.T, r Report) {
				want := Side{System: "platform", PaidBy: "platform", Requests: 100, LatencyP50: 50 * time.Millisecond,
					LatencyP95: 95 * time.Millisecond, TTFTP50: 5 * time.Millisecond, MeanPromptTokens: 800, MeanCompletionTokens: 50.5,
					CostMicros: 200_000, CostPer1KMicros: 2_000_000, CostUSD: 0.2, CostPer1K: 2}
				if got := sideCore(r.Primary); !reflect.DeepEqual(got, want) {
					t.Errorf("primary\n got %+v\nwant %+v", got, want)
				}
				want = Side{System: "client", PaidBy: "client", Requests: 100, LatencyP50: 51 * time.Millisecond,
					LatencyP95: 96 * time.Millisecond, TTFTP50: 5 * time.Millisecond, MeanPromptTokens: 800, MeanCompletionTokens: 50.5,
					CostMicros: 150_000, CostPer1KMicros: 1_500_000, CostUSD: 0.15, CostPer1K: 1.5}
				if got := sideCore(r.Shadow); !reflect.DeepEqual(got, want) {
					t.Errorf("shadow\n got %+v\nwant %+v", got, want)
				}
				// Latencies 1..100 ms and 2..101 ms: 49 and 48 under 50 ms.
				if h := r.Primary.LatencyHistogram; h[0] != (LatencyBucket{0, 50, 49}) || h[1] != (LatencyBucket{50, 100, 50}) ||
					h[2] != (LatencyBucket{100, 250, 1}) || h[len(h)-1] != (LatencyBucket{FromMS: 60000}) {
					t.Errorf("primary latency histogram %+v", h)
				}
				if h := r.Shadow.LatencyHistogram; h[0].Count != 48 || h[1].Count != 50 || h[2].Count != 2 {
					t.Errorf("shadow latency histogram %+v", h)
				}
				if want := (SimilarityStats{Pairs: 100, Method: Lexical, Mean: 1, P10: 1, Similar: 1, Threshold: SimilarThreshold}); !reflect.DeepEqual(simCore(r.Similarity), want) {
					t.Errorf("similarity %+v, want %+v", r.Similarity, want)
				}
				if h := r.Similarity.Histogram; len(h) != SimilarityBins || h[9] != (SimilarityBin{0.9, 1, 100}) || h[0] != (SimilarityBin{0, 0.1, 0}) {
					t.Errorf("similarity histogram %+v", h)
				}
			},
		},
		{
			name: "dearer within the margin: migrate", want: Migrate, reason: "within the 5.0% margin",
			pairs: cmpPairs(100, func(i int, p, s *billing.Outcome) { s.CostUSD = 0.00204 }),
			check: func(t *testing.T, r Report) {
				if r.Shadow.CostPer1K != 2.04 || r.Shadow.CostUSD != 0.204 {
					t.Errorf("shadow cost %v, per 1,000 %v", r.Shadow.CostUSD, r.Shadow.CostPer1K)
				}
			},
		},
		{
			name: "a worst decile, similar on the whole: migrate", want: Migrate, reason: "similarity (lexical) is 0.90",
			pairs: cmpPairs(100, func(i int, p, s *billing.Outcome) {
				if i%10 == 0 {
					s.Text = "Sorry, I cannot help with that."
				}
			}),
			check: func(t *testing.T, r Report) {
				if want := (SimilarityStats{Pairs: 100, Method: Lexical, Mean: 0.9, P10: 0, Similar: 0.9, Threshold: SimilarThreshold}); !reflect.DeepEqual(simCore(r.Similarity), want) {
					t.Errorf("similarity %+v, want %+v", r.Similarity, want)
				}
			},
		},
		{
			name: "too few pairs: collect more data", pairs: cmpPairs(MinPairs-1, nil), want: CollectMore, reason: "Only 29 pairs",
			check: func(t *testing.T, r Report) {
				if r.Primary.Requests != 29 || r.Primary.LatencyP50 != 15*time.Millisecond || r.Primary.LatencyP95 != 28*time.Millisecond {
					t.Errorf("primary %+v", r.Primary)
				}
			},
		},
		{
			name: "more errors: stay", want: Stay, reason: "failed 10.0% of requests against 0.0% on platform",
			pairs: cmpPairs(100, func(i int, p, s *billing.Outcome) {
				if i%10 == 0 {
					*s = billing.Outcome{Status: 503, Latency: time.Second, Err: "upstream_unavailable"}
				}
			}),
			check: func(t *testing.T, r Report) {
				s := r.Shadow
				// 90 answers: latencies i+1 ms for i not a multiple of ten;
				// the 45th is 50 ms, the 86th 96 ms.
				if s.Requests != 100 || s.Errors != 10 || s.ErrorRate != 0.1 || s.LatencyP50 != 50*time.Millisecond || s.LatencyP95 != 96*time.Millisecond {
					t.Errorf("shadow %+v", s)
				}
				// Tokens over the 90 answers: completion 1..100 without the tens.
				if s.MeanPromptTokens != 800 || s.MeanCompletionTokens != 4500.0/90 {
					t.Errorf("shadow tokens %v %v", s.MeanPromptTokens, s.MeanCompletionTokens)
				}
				if r.Similarity.Pairs != 90 || r.Similarity.Mean != 1 {
					t.Errorf("similarity %+v", r.Similarity)
				}
			},
		},
		{
			name: "slower: stay", want: Stay, reason: "2.00 times platform's 95ms",
			pairs: cmpPairs(100, func(i int, p, s *billing.Outcome) { s.Latency = 2 * p.Latency }),
			check: func(t *testing.T, r Report) {
				if r.Shadow.LatencyP95 != 190*time.Millisecond || r.Shadow.LatencyP50 != 100*time.Millisecond {
					t.Errorf("shadow %+v", r.Shadow)
				}
			},
		},
		{
			name: "different answers: stay", want: Stay, reason: "similarity (lexical) is 0.50, below 0.80",
			pairs: cmpPairs(100, func(i int, p, s *billing.Outcome) {
				if i%2 == 0 {
					s.Text = "Sorry, I cannot help with that."
				}
			}),
			check: func(t *testing.T, r Report) {
				if want := (SimilarityStats{Pairs: 100, Method: Lexical, Mean: 0.5, P10: 0, Similar: 0.5, Threshold: SimilarThreshold}); !reflect.DeepEqual(simCore(r.Similarity), want) {
					t.Errorf("similarity %+v, want %+v", r.Similarity, want)
				}
			},
		},
		{
			name: "dearer: stay", want: Stay, reason: "25.0% more, beyond the 5.0% margin",
			pairs: cmpPairs(100, func(i int, p, s *billing.Outcome) { s.CostUSD = 0.0025 }),
			check: func(t *testing.T, r Report) {
				if r.Shadow.CostPer1K != 2.5 || r.Primary.CostPer1K != 2 {
					t.Errorf("cost per 1,000: %v against %v", r.Shadow.CostPer1K, r.Primary.CostPer1K)
				}
			},
		},
		{
			name: "too few pairs to compare: collect more data", want: CollectMore, reason: "Only 20 pairs had two answers",
			pairs: cmpPairs(40, func(i int, p, s *billing.Outcome) {
				if i%2 == 0 { // both fail: the error rates are equal
					*p = billing.Outcome{Status: 500, Err: "upstream_error"}
					*s = billing.Outcome{Status: 500, Err: "upstream_error"}
				}
			}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newCmpClock()
			c := newCmp(newCmpStore(t), clock, "a")
			cmp := mustStart(t, c, Request{Supplier: "bella", Other: "client", Window: 24 * time.Hour})
			for _, p := range tc.pairs {
				c.Record(cmp.ID, Pair{Primary: p[0], Shadow: p[1]})
			}
			r, err := c.Report(context.Background(), cmp.ID)
			if err != nil {
				t.Fatalf("Report: %v", err)
			}
			if r.Recommendation != tc.want {
				t.Errorf("recommendation %q, want %q; reasons %q", r.Recommendation, tc.want, r.Reasons)
			}
			if !strings.Contains(strings.Join(r.Reasons, "\n"), tc.reason) {
				t.Errorf("no reason with %q in %q", tc.reason, r.Reasons)
			}
			if r.Comparison.Recorded != int64(len(tc.pairs)) {
				t.Errorf("recorded %d, want %d", r.Comparison.Recorded, len(tc.pairs))
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			text := r.Text()
			if !strings.Contains(text, "Recommendation: "+tc.want+"\n") {
				t.Errorf("text without the recommendation:\n%s", text)
			}
		})
	}
}

func TestCompareReportText(t *testing.T) {
	clock := newCmpClock()
	c := newCmp(newCmpStore(t), clock, "a")
	cmp := mustStart(t, c, Request{Supplier: "bella", Other: "client", Requests: 500, Window: 24 * time.Hour, Provider: "azure"})
	for _, p := range cmpPairs(100, nil) {
		c.Record(cmp.ID, Pair{Primary: p[0], Shadow: p[1]})
	}
	r, err := c.Report(context.Background(), cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	text := r.Text()
	for _, want := range []string{
		"Comparison " + cmp.ID + " for bella: platform (primary) against client (shadow), running\n",
		"window 24h0m0s, 0 of 500 requests shadowed, 20.0% of requests sampled, shadow billed to platform, shadow provider azure\n",
		"latency p95                                95ms                 96ms\n",
		"cost per 1,000 requests                 $2.0000              $1.5000\n",
		"Answer similarity over 100 pairs (lexical): mean 1.00, p10 1.00, 100.0% at or above 0.80\n",
		"Recommendation: migrate\nSample: 100 pairs recorded, 100 compared",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text without %q:\n%s", want, text)
		}
	}
	var width int
	for _, line := range strings.Split(text, "\n") {
		for _, row := range []string{"requests ", "errors ", "latency p50 ", "time to first token p50 ", "mean prompt tokens ", "total cost "} {
			if strings.HasPrefix(line, row) {
				if width == 0 {
					width = len(line)
				} else if len(line) != width {
					t.Errorf("row %q is %d wide, not %d", line, len(line), width)
				}
			}
		}
	}
}

func TestComparePersistence(t *testing.T) {
	ctx := context.Background()
	clock := newCmpClock()
	st := newCmpStore(t)
	a := newCmp(st, clock, "a")
	cmp := mustStart(t, a, Request{Supplier: "bella", Other: "client", Requests: 1000, Sample: 1})
	for i := range 40 {
		if !shadowCall(a, "bella", uint64(i)) {
			t.Fatalf("request %d not shadowed", i)
		}
	}
	pairs := cmpPairs(40, nil)
	for _, p := range pairs[:30] {
		a.Record(cmp.ID, Pair{Primary: p[0], Shadow: p[1]})
	}
	b := newCmp(st, clock, "b")
	if got, _ := b.Get(ctx, cmp.ID); got.Recorded != 0 || got.Shadowed != 0 {
		t.Errorf("another replica sees unflushed figures: %+v", got)
	}
	if got, _ := a.Get(ctx, cmp.ID); got.Recorded != 30 || got.Shadowed != 40 {
		t.Errorf("the recording replica does not see its own figures: %+v", got)
	}
	mustSync(t, a)
	want, err := a.Report(ctx, cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Report(ctx, cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report on another replica\n got %+v\nwant %+v", got, want)
	}
	if got.Comparison.Recorded != 30 || got.Comparison.Shadowed != 40 || got.Primary.CostUSD != 0.06 {
		t.Errorf("flushed figures: %+v", got)
	}
	// The other replica follows the running comparison after its pass.
	if _, _, ok := b.Shadow([]byte("bella"), 1); ok {
		t.Error("shadowed before the replica's first pass")
	}
	mustSync(t, b)
	// Its first sampled request asks for part of the request count, which
	// its next pass claims.
	if _, _, ok := b.Shadow([]byte("bella"), 1); ok {
		t.Error("shadowed before the replica claimed part of the count")
	}
	mustSync(t, b)
	if id, _, ok := b.Shadow([]byte("bella"), 1); !ok || id != cmp.ID {
		t.Error("not chosen after the replica's passes")
	}
	if _, _, ok := b.Begin(cmp.ID); !ok {
		t.Error("not shadowed after the replica's passes")
	}
	for _, p := range pairs[30:] {
		b.Record(cmp.ID, Pair{Primary: p[0], Shadow: p[1]})
	}
	mustSync(t, b)
	// A restarted replica a carries on from what it flushed.
	a2 := newCmp(st, clock, "a")
	mustSync(t, a2)
	if !shadowCall(a2, "bella", 2) {
		t.Error("restarted replica does not shadow")
	}
	a2.Record(cmp.ID, Pair{Primary: pairs[0][0], Shadow: pairs[0][1]})
	mustSync(t, a2)
	r, err := newCmp(st, clock, "c").Report(ctx, cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Comparison.Recorded != 41 || r.Comparison.Shadowed != 42 || r.Primary.Requests != 41 || r.Similarity.Pairs != 41 {
		t.Errorf("after a restart: %+v", r)
	}
	// Stopped on one replica, the others stop at their next pass.
	if _, err := b.Stop(ctx, cmp.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := b.Shadow([]byte("bella"), 3); ok {
		t.Error("the stopping replica still shadows")
	}
	mustSync(t, a2)
	if _, _, ok := a2.Shadow([]byte("bella"), 3); ok {
		t.Error("another replica shadows after its pass")
	}
}

func TestCompareRunFlushesOnShutdown(t *testing.T) {
	clock := newCmpClock()
	st := newCmpStore(t)
	a := New(Options{Store: st, Now: clock.Now, Holder: "a", Interval: time.Hour})
	cmp := mustStart(t, a, Request{Supplier: "bella", Other: "client", Window: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	a.Record(cmp.ID, Pair{Primary: billing.Outcome{Status: 200, Text: "yes"}, Shadow: billing.Outcome{Status: 200, Text: "yes"}})
	cancel()
	<-done
	if got, _ := newCmp(st, clock, "b").Get(context.Background(), cmp.ID); got.Recorded != 1 {
		t.Errorf("not flushed on shutdown: %+v", got)
	}
}

func TestShadowAllocs(t *testing.T) {
	clock := newCmpClock()
	c := newCmp(newCmpStore(t), clock, "a")
	mustStart(t, c, Request{Supplier: "capped", Other: "client", Requests: 1 << 30, Window: time.Hour, Sample: 1})
	mustStart(t, c, Request{Supplier: "sampled", Other: "client", Window: time.Hour})
	for _, supplier := range []string{"capped", "sampled", "not-compared"} {
		s := []byte(supplier)
		var i uint64
		if n := testing.AllocsPerRun(1000, func() { i++; c.Shadow(s, i) }); n != 0 {
			t.Errorf("Shadow(%s) allocates %v times", supplier, n)
		}
	}
}

func BenchmarkShadow(b *testing.B) {
	clock := newCmpClock()
	c := newCmp(newCmpStore(b), clock, "a")
	mustStart(b, c, Request{Supplier: "bella", Other: "client", Window: time.Hour})
	for _, supplier := range []string{"bella", "not-compared"} {
		b.Run(supplier, func(b *testing.B) {
			s := []byte(supplier)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var i uint64
				for pb.Next() {
					i++
					c.Shadow(s, i*0x9E3779B97F4A7C15)
				}
			})
		})
	}
}
