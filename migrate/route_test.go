package migrate

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/policy"
)

// rampAt returns a rig with a migration of "capture-moments" ramping at a
// stage with share.
func rampAt(t testing.TB, share float64) (*rig, *Migration) {
	t.Helper()
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	stages := []Stage{{Share: share}}
	if share < 1 {
		stages = append(stages, Stage{Share: 1})
	}
	return r, startMigration(t, r, "capture-moments", stages)
}

// TestRouteShare: without user, the share of requests on the target is
// the stage's, over many spreads, counters or not.
func TestRouteShare(t *testing.T) {
	const n = 200_000
	for _, share := range []float64{0.01, 0.10, 0.50, 0.90, 1} {
		t.Run(strconv.FormatFloat(share, 'g', -1, 64), func(t *testing.T) {
			r, mg := rampAt(t, share)
			supplier := []byte("capture-moments")
			target := 0
			for spread := range uint64(n) {
				mode, id, _, ok := r.m.Route(supplier, nil, spread)
				if !ok || id != mg.ID {
					t.Fatalf("Route = %q, %q, %v", mode, id, ok)
				}
				if mode == billing.ClientKey {
					target++
				}
			}
			got := float64(target) / n
			// Five standard deviations of a binomial share.
			tol := 5 * math.Sqrt(share*(1-share)/n)
			if math.Abs(got-share) > tol {
				t.Errorf("target share %.4f over %d spreads, want %.2f ± %.4f", got, n, share, tol)
			}
		})
	}
}

// TestRouteStablePerUser: a user stays on one system whatever the spread,
// users split by the share, and a user on the target at 10% is still on
// it at 50%.
func TestRouteStablePerUser(t *testing.T) {
	r, _ := rampAt(t, 0.10)
	supplier := []byte("capture-moments")
	const users = 20_000
	atTen := make([]bool, users)
	onTarget := 0
	for u := range users {
		user := []byte("couple-" + strconv.Itoa(u))
		first, _ := r.m.Decide(supplier, user, 0)
		for spread := range uint64(20) {
			d, ok := r.m.Decide(supplier, user, spread*7919+1)
			if !ok || d.ToTarget != first.ToTarget {
				t.Fatalf("user %s moved between systems with the spread", user)
			}
		}
		atTen[u] = first.ToTarget
		if first.ToTarget {
			onTarget++
			if first.Mode != billing.ModeClient || first.Provider != "openai" || first.KeyRef != toClient.KeyRef {
				t.Fatalf("target decision %+v", first)
			}
		} else if first.Mode != billing.ModePlatform {
			t.Fatalf("source decision %+v", first)
		}
	}
	if got := float64(onTarget) / users; math.Abs(got-0.10) > 0.015 {
		t.Errorf("users on the target: %.3f, want 0.10", got)
	}
	// Another supplier's same users hash elsewhere.
	if a, b := userHash([]byte("capture-moments"), []byte("x")), userHash([]byte("capture-momentsx"), nil); a == b {
		t.Error("supplier and user are not separated in the hash")
	}

	// The same supplier at 50%, in a migration of its own.
	r2, _ := rampAt(t, 0.50)
	for u := range users {
		user := []byte("couple-" + strconv.Itoa(u))
		d, _ := r2.m.Decide(supplier, user, 0)
		if atTen[u] && !d.ToTarget {
			t.Fatalf("user %s on the target at 10%% is back on the source at 50%%", user)
		}
	}
}

// TestRouteNoMigration: suppliers without a migration are left to policy.
func TestRouteNoMigration(t *testing.T) {
	r, _ := rampAt(t, 0.5)
	if mode, id, _, ok := r.m.Route([]byte("bella-photography"), []byte("u"), 3); ok || mode != "" || id != "" {
		t.Errorf("Route of a supplier without a migration = %q, %q, %v", mode, id, ok)
	}
}

// TestHotPathAllocs: Route, Decide and Observe allocate nothing.
func TestHotPathAllocs(t *testing.T) {
	r, mg := rampAt(t, 0.5)
	supplier, other, user := []byte("capture-moments"), []byte("bella-photography"), []byte("couple-42")
	var spread uint64
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"route by spread", func() { spread++; _, _, _, _ = r.m.Route(supplier, nil, spread) }},
		{"route by user", func() { _, _, _, _ = r.m.Route(supplier, user, spread) }},
		{"route without a migration", func() { _, _, _, _ = r.m.Route(other, user, spread) }},
		{"decide", func() { _, _ = r.m.Decide(supplier, user, spread) }},
		{"decide and apply", func() {
			var req policy.Request
			if d, ok := r.m.Decide(supplier, nil, spread); ok {
				d.Apply(&req)
			}
		}},
		{"observe", func() { r.m.Observe(mg.ID, true, 200, 120*time.Millisecond, 0.0012) }},
		{"observe unknown", func() { r.m.Observe("mig-00000000", false, 500, time.Second, 0) }},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, n)
		}
	}
}

func BenchmarkRoute(b *testing.B) {
	r, _ := rampAt(b, 0.5)
	supplier, user := []byte("capture-moments"), []byte("couple-42")
	b.Run("spread", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var spread uint64
			for pb.Next() {
				spread++
				_, _, _, _ = r.m.Route(supplier, nil, spread)
			}
		})
	})
	b.Run("user", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _, _, _ = r.m.Route(supplier, user, 0)
			}
		})
	})
	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		other := []byte("bella-photography")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _, _, _ = r.m.Route(other, user, 0)
			}
		})
	})
}

func BenchmarkObserve(b *testing.B) {
	r, mg := rampAt(b, 0.5)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.m.Observe(mg.ID, true, 200, 120*time.Millisecond, 0.0012)
		}
	})
}

// TestDecisionApply: a decision sets the key sources a request is planned
// with; the target's provider and the source's key as fallback only for a
// request sent to the target.
func TestDecisionApply(t *testing.T) {
	tests := []struct {
		name       string
		d          Decision
		source, fb billing.KeySource
		provider   string
	}{
		{"to a client target", Decision{Mode: billing.ModeClient, Provider: "anthropic", ToTarget: true},
			billing.ClientKey, billing.PlatformKey, "anthropic"},
		{"to a platform target", Decision{Mode: billing.ModePlatform, Provider: "openai", ToTarget: true},
			billing.PlatformKey, billing.ClientKey, "openai"},
		{"on the source", Decision{Mode: billing.ModePlatform, Provider: "openai"}, billing.PlatformKey, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req policy.Request
			tc.d.Apply(&req)
			if req.Source != tc.source || req.Fallback != tc.fb || req.Provider != tc.provider {
				t.Errorf("request with source %q, fallback %q, provider %q; want %q, %q, %q",
					req.Source, req.Fallback, req.Provider, tc.source, tc.fb, tc.provider)
			}
		})
	}
}

// TestRouting: Routing reports the split Decide makes: the stage's share,
// both paths with the migration's place, and one path outside a ramp.
func TestRouting(t *testing.T) {
	r, mg := rampAt(t, 0.5)
	rt, ok := r.m.Routing("capture-moments")
	if !ok || rt.Share != 0.5 || rt.Target.ID != mg.ID || !rt.Target.ToTarget || rt.Target.Mode != billing.ModeClient ||
		rt.Source.ToTarget || rt.Source.Mode != billing.ModePlatform || rt.Target.Stage != 0 || rt.Target.Stages != 2 ||
		rt.Target.Reason != "supplier request" || rt.Target.Status != StatusRamping {
		t.Errorf("Routing while ramping = %+v, %v", rt, ok)
	}
	if _, ok := r.m.Routing("bella-photography"); ok {
		t.Error("Routing of a supplier without a migration")
	}
	r.clock.Advance(DefaultDwell)
	feed(r.m, mg.ID, true, DefaultMinSample, 0, time.Millisecond, 0)
	feed(r.m, mg.ID, false, DefaultMinSample, 0, time.Millisecond, 0)
	r.step(t) // to 100%
	r.clock.Advance(DefaultDwell)
	feed(r.m, mg.ID, true, DefaultMinSample, 0, time.Millisecond, 0)
	r.step(t) // completed
	rt, ok = r.m.Routing("capture-moments")
	if !ok || rt.Share != 1 || rt.Source != rt.Target || rt.Target.Status != StatusCompleted || rt.Target.Stage != 1 {
		t.Errorf("Routing once completed = %+v, %v", rt, ok)
	}
}
