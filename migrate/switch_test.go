package migrate

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
)

var clientKey = Target{Mode: billing.ModeClient}

// TestSwitch: scenario 1, a supplier out of platform quota moves to its own
// key at once, as a completed migration, audited and alerted; further
// calls return the same migration without probing again.
func TestSwitch(t *testing.T) {
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	mg, err := r.m.Switch(t.Context(), "capture-moments", clientKey, "quota_exhausted")
	if err != nil {
		t.Fatal(err)
	}
	if mg.Status != StatusCompleted || mg.Reason != "quota_exhausted" || mg.From.Mode != billing.ModePlatform || mg.To != clientKey ||
		len(mg.Stages) != 1 || mg.Stages[0].Share != 1 || !mg.FinishedAt.Equal(t0) || len(mg.Events) != 1 ||
		mg.Events[0].Kind != EventSwitched || mg.Estimate.BilledAfter != billing.PaidByClient {
		t.Fatalf("switch %+v", mg)
	}
	for spread := range uint64(100) {
		mode, id, _, ok := r.m.Route([]byte("capture-moments"), []byte("couple"), spread)
		if !ok || mode != billing.ClientKey || id != mg.ID {
			t.Fatalf("Route after the switch = %q, %q, %v", mode, id, ok)
		}
	}
	if alerts := r.alerts.all(); len(alerts) != 1 || !strings.HasPrefix(alerts[0], AlertSwitched+" capture-moments: ") ||
		!strings.Contains(alerts[0], "quota_exhausted") {
		t.Errorf("alerts %v", alerts)
	}
	lines := r.audit.FilterMessage("supplier switched").All()
	if len(lines) != 1 || lines[0].ContextMap()["why"] != "quota_exhausted" || lines[0].ContextMap()["migration"] != mg.ID {
		t.Errorf("audit %v", lines)
	}
	for range 2 {
		again, err := r.m.Switch(t.Context(), "capture-moments", clientKey, "quota_exhausted")
		if err != nil || again.ID != mg.ID {
			t.Errorf("second Switch = %v, %v; want %s", again, err, mg.ID)
		}
	}
	// From the store too, as another replica would find it.
	fresh := newRig(t, r.st, "pod-b", r.clock)
	if again, err := fresh.m.Switch(t.Context(), "capture-moments", clientKey, "quota_exhausted"); err != nil || again.ID != mg.ID {
		t.Errorf("Switch on another replica = %v, %v; want %s", again, err, mg.ID)
	}
	if _, ok := decide(fresh.m, "capture-moments"); !ok {
		t.Error("the other replica does not route by the switch it found")
	}
	if n := r.probe.calls.Load() + fresh.probe.calls.Load(); n != 1 {
		t.Errorf("%d probes, want 1", n)
	}
	if list, _ := r.m.List(t.Context()); len(list) != 1 {
		t.Errorf("%d migrations, want 1", len(list))
	}
	if len(r.alerts.all()) != 1 || len(fresh.alerts.all()) != 0 {
		t.Errorf("alerts %v and %v, want the first only", r.alerts.all(), fresh.alerts.all())
	}
	// Rolled back, the supplier is on its configuration again.
	if _, err := r.m.Rollback(t.Context(), mg.ID, "quota raised"); err != nil {
		t.Fatal(err)
	}
	if _, ok := decide(r.m, "capture-moments"); ok {
		t.Error("still routed after rolling the switch back")
	}
}

// TestSwitchConcurrent: many requests out of quota at once, on two replicas
// sharing Redis, make one migration.
func TestSwitchConcurrent(t *testing.T) {
	stores := openStores(t, "redis", 2)
	c := newClock()
	rigs := []*rig{newRig(t, stores[0], "pod-a", c), newRig(t, stores[1], "pod-b", c)}
	const callers = 16
	ids := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			mg, err := rigs[i%2].m.Switch(t.Context(), "capture-moments", clientKey, "quota_exhausted")
			if err != nil {
				t.Errorf("Switch: %v", err)
				return
			}
			ids[i] = mg.ID
		})
	}
	wg.Wait()
	if uniq := slices.Compact(slices.Sorted(slices.Values(ids))); len(uniq) != 1 {
		t.Errorf("switches returned %d migrations: %v", len(uniq), uniq)
	}
	list, err := rigs[0].m.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %d, %v; want 1 migration", len(list), err)
	}
	alerts := len(rigs[0].alerts.all()) + len(rigs[1].alerts.all())
	if alerts != 1 {
		t.Errorf("%d alerts, want 1", alerts)
	}
	for _, r := range rigs {
		if d, ok := decide(r.m, "capture-moments"); !ok || d.ID != list[0].ID || d.Mode != billing.ModeClient {
			t.Errorf("%s routes %+v, %v", r.m.Holder(), d, ok)
		}
		// Each replica probes at most once: concurrent calls share one.
		if n := r.probe.calls.Load(); n > 1 {
			t.Errorf("%s probed %d times", r.m.Holder(), n)
		}
	}
}

// TestSwitchProbeFails: a refused key is not switched to, and the refusal
// is remembered for SwitchBackoff before probing again.
func TestSwitchProbeFails(t *testing.T) {
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	r.probe.fail.Store(true)
	for range 3 {
		if _, err := r.m.Switch(t.Context(), "capture-moments", clientKey, "quota_exhausted"); !errors.Is(err, ErrProbeFailed) {
			t.Fatalf("Switch with a refused key: %v", err)
		}
	}
	if n := r.probe.calls.Load(); n != 1 {
		t.Errorf("%d probes within the backoff, want 1", n)
	}
	if _, ok := decide(r.m, "capture-moments"); ok || len(r.alerts.all()) != 0 {
		t.Errorf("a refused switch routes or alerts: %v", r.alerts.all())
	}
	r.probe.fail.Store(false)
	r.clock.Advance(DefaultSwitchBackoff)
	if _, err := r.m.Switch(t.Context(), "capture-moments", clientKey, "quota_exhausted"); err != nil {
		t.Fatalf("Switch after the backoff with a good key: %v", err)
	}
}

// TestSwitchWithMigrations: a planned or ramping migration owns its
// supplier, whatever its target: a switch is deferred on it and changes
// nothing else; a supplier already on the target is refused.
func TestSwitchWithMigrations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start bool
		to    Target
	}{
		{"planned", false, clientKey},
		{"ramping", true, clientKey},
		{"ramping elsewhere", true, Target{Mode: billing.ModeClient, Provider: "azure"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
			mg, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient})
			if err != nil {
				t.Fatal(err)
			}
			if tc.start {
				if mg, err = r.m.Start(t.Context(), mg.ID); err != nil {
					t.Fatal(err)
				}
			}
			r.clock.Advance(time.Minute)
			for range 3 {
				if got, err := r.m.Switch(t.Context(), "capture-moments", tc.to, "quota_exhausted"); !errors.Is(err, ErrDeferred) || got != nil {
					t.Fatalf("Switch with a %s migration = %+v, %v; want ErrDeferred", tc.name, got, err)
				}
			}
			got := r.get(t, mg.ID)
			if got.Status != mg.Status || got.Stage != mg.Stage || !got.StageStarted.Equal(mg.StageStarted) ||
				got.Deferred == nil || !got.Deferred.Pending() || got.Deferred.To != tc.to || !got.Deferred.At.Equal(r.clock.Now()) {
				t.Errorf("migration after the switch %+v, deferred %+v", got, got.Deferred)
			}
			if got.Events[len(got.Events)-1].Kind != EventDeferred || r.countAudit("switch deferred: a planned migration owns the supplier") != 1 {
				t.Errorf("events %+v, audit %v", got.Events, r.auditLines())
			}
			if id, d := r.m.DeferredSwitch("capture-moments"); id != mg.ID || !d.Pending() {
				t.Errorf("DeferredSwitch = %s, %+v", id, d)
			}
			if list, _ := r.m.List(t.Context()); len(list) != 1 {
				t.Errorf("%d migrations, want the plan alone", len(list))
			}
			if n := r.probe.calls.Load(); n != int64(1+btoi(tc.start)) {
				t.Errorf("%d probes: a deferred switch probes nothing", n)
			}
		})
	}
	t.Run("already there", func(t *testing.T) {
		r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
		if _, err := r.m.Switch(t.Context(), "capture-moments", Target{Mode: billing.ModePlatform}, "x"); !errors.Is(err, ErrNoChange) {
			t.Errorf("Switch to the configured system: %v, want ErrNoChange", err)
		}
		if _, err := r.m.Switch(t.Context(), "capture-moments", Target{Mode: "hybrid"}, "x"); !errors.Is(err, ErrInvalid) {
			t.Errorf("Switch to hybrid: %v, want ErrInvalid", err)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestExhausted: a supplier reported out of platform quota is switched to
// its own key on that provider in the background, once however often it
// is reported.
func TestExhausted(t *testing.T) {
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	for range 5 {
		r.m.Exhausted("capture-moments", "openai")
	}
	r.m.background.Wait()
	list, err := r.m.List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v; want one migration", list, err)
	}
	mg := list[0]
	if mg.Status != StatusCompleted || mg.Reason != ReasonQuotaExhausted || mg.To.Mode != billing.ModeClient || mg.To.Provider != "openai" {
		t.Errorf("migration %+v", mg)
	}
	source, id, toTarget, ok := r.m.Route([]byte("capture-moments"), nil, 1)
	if !ok || source != billing.ClientKey || id != mg.ID || !toTarget {
		t.Errorf("Route = %q, %q, %v, %v; want client, %s, true, true", source, id, toTarget, ok, mg.ID)
	}
	if n := r.probe.calls.Load(); n != 1 {
		t.Errorf("%d probes, want 1", n)
	}
}
