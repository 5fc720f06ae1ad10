package migrate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
)

// inState returns a rig with a migration of "capture-moments" in status s.
func inState(t *testing.T, s Status) (*rig, *Migration) {
	t.Helper()
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	mg, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient})
	if err != nil {
		t.Fatal(err)
	}
	if s == StatusPlanned {
		return r, mg
	}
	mg, err = r.m.Start(t.Context(), mg.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Good outcomes through the stages.
	for range mg.Stages {
		if s == StatusRamping && r.get(t, mg.ID).Stage == 1 {
			break
		}
		if s == StatusFailed {
			feed(r.m, mg.ID, true, 20, 20, 100*time.Millisecond, 0)
			r.step(t)
			break
		}
		feed(r.m, mg.ID, true, 20, 0, 100*time.Millisecond, 0)
		feed(r.m, mg.ID, false, 20, 0, 100*time.Millisecond, 0)
		r.clock.Advance(DefaultDwell)
		r.step(t)
	}
	if s == StatusRolledBack {
		if mg, err = r.m.Rollback(t.Context(), mg.ID, "first"); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.get(t, mg.ID); got.Status != s {
		t.Fatalf("set up %s, got %s", s, got.Status)
	}
	r.alerts = &alertLog{}
	r.m.o.Alert = r.alerts.Alert
	return r, r.get(t, mg.ID)
}

// TestRollbackFromEachState: planned, ramping and completed migrations roll
// back at once, audited and alerted, with all traffic on the source; one
// that already rolled back or failed cannot.
func TestRollbackFromEachState(t *testing.T) {
	for _, tc := range []struct {
		from Status
		want error
	}{
		{StatusPlanned, nil},
		{StatusRamping, nil},
		{StatusCompleted, nil},
		{StatusRolledBack, ErrState},
		{StatusFailed, ErrState},
	} {
		t.Run(string(tc.from), func(t *testing.T) {
			r, mg := inState(t, tc.from)
			r.clock.Advance(time.Second)
			got, err := r.m.Rollback(t.Context(), mg.ID, "the couple's gallery looked off")
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Rollback = %v, want %v", err, tc.want)
				}
				if len(r.alerts.all()) != 0 {
					t.Errorf("alerts %v for a refused rollback", r.alerts.all())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != StatusRolledBack || !got.FinishedAt.Equal(r.clock.Now()) || got.Stage != mg.Stage {
				t.Errorf("after rollback: %s at stage %d, finished %v", got.Status, got.Stage, got.FinishedAt)
			}
			last := got.Events[len(got.Events)-1]
			if last.Kind != EventRolledBack || !strings.Contains(last.Message, "rolled back from "+string(tc.from)) ||
				!strings.Contains(last.Message, "the couple's gallery looked off") {
				t.Errorf("last event %+v", last)
			}
			// At once on this replica, without a step.
			for spread := range uint64(100) {
				if mode, id, _, ok := r.m.Route([]byte("capture-moments"), nil, spread); ok {
					t.Fatalf("after rollback Route = %q, %q; want the supplier's policy (platform)", mode, id)
				}
			}
			lines := r.audit.FilterMessage("migration rolled back").All()
			if len(lines) != 1 || lines[0].ContextMap()["from_status"] != string(tc.from) || lines[0].Level.String() != "warn" {
				t.Errorf("audit lines %v", lines)
			}
			alerts := r.alerts.all()
			if len(alerts) != 1 || !strings.HasPrefix(alerts[0], AlertRolledBack+" capture-moments: migration "+mg.ID) {
				t.Errorf("alerts %v", alerts)
			}
			// Steps do not revive it, and a new plan may follow.
			r.clock.Advance(time.Hour)
			r.step(t)
			if again := r.get(t, mg.ID); again.Status != StatusRolledBack {
				t.Errorf("status %s after a step", again.Status)
			}
			if _, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient}); err != nil {
				t.Errorf("Plan after the rollback: %v", err)
			}
		})
	}
}

// TestRollbackFollowedByOtherReplica: a replica that did not roll back
// follows at its next step.
func TestRollbackFollowedByOtherReplica(t *testing.T) {
	st := openStore(t, "embedded")
	c := newClock()
	a, b := newRig(t, st, "pod-a", c), newRig(t, st, "pod-b", c)
	mg := startMigration(t, a, "capture-moments", nil)
	b.step(t)
	if _, ok := decide(b.m, "capture-moments"); !ok {
		t.Fatal("b does not follow the ramp")
	}
	if _, err := a.m.Rollback(t.Context(), mg.ID, "requested"); err != nil {
		t.Fatal(err)
	}
	b.step(t)
	if _, ok := decide(b.m, "capture-moments"); ok {
		t.Error("b still routes a rolled-back migration after a step")
	}
}

// TestRollbackChain: rolling back a migration that started from a
// completed one returns the supplier to that one's target; the completed
// one can then be rolled back too, but not while a newer one is live.
func TestRollbackChain(t *testing.T) {
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	first, err := r.m.Switch(t.Context(), "capture-moments", toClient, "quota_exhausted")
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	back, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: Target{Mode: billing.ModePlatform}})
	if err != nil {
		t.Fatal(err)
	}
	if back.From != toClient || back.Base != first.ID {
		t.Fatalf("plan back: from %v base %q; want from the switch's target, base %s", back.From, back.Base, first.ID)
	}
	// While the plan is only planned, the switch still routes.
	if d, ok := decide(r.m, "capture-moments"); !ok || d.ID != first.ID || d.Mode != billing.ModeClient {
		t.Fatalf("planned: %+v, %v", d, ok)
	}
	if _, err := r.m.Start(t.Context(), back.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Rollback(t.Context(), first.ID, "requested"); !errors.Is(err, ErrStale) {
		t.Errorf("rolling back a superseded migration: %v, want ErrStale", err)
	}
	src, tgt := 0, 0
	for spread := range uint64(1000) {
		d, ok := r.m.Decide([]byte("capture-moments"), nil, spread)
		switch {
		case !ok || d.ID != back.ID:
			t.Fatalf("ramping back: %+v, %v", d, ok)
		case d.ToTarget && d.Mode == billing.ModePlatform:
			tgt++
		case !d.ToTarget && d.Mode == billing.ModeClient:
			src++
		default:
			t.Fatalf("decision %+v", d)
		}
	}
	if src == 0 || tgt == 0 {
		t.Fatalf("ramping back: %d on the source, %d on the target", src, tgt)
	}
	if _, err := r.m.Rollback(t.Context(), back.ID, "requested"); err != nil {
		t.Fatal(err)
	}
	if d, ok := decide(r.m, "capture-moments"); !ok || d.ID != first.ID || d.Mode != billing.ModeClient {
		t.Errorf("after rolling the way back back: %+v, %v; want the switch's client", d, ok)
	}
	if _, err := r.m.Rollback(t.Context(), first.ID, "requested"); err != nil {
		t.Errorf("rolling the switch back after the newer one ended: %v", err)
	}
	if _, ok := decide(r.m, "capture-moments"); ok {
		t.Error("still routed after both rolled back")
	}
	// The supplier is back on its configuration.
	again, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient})
	if err != nil || again.From.Mode != billing.ModePlatform || again.Base != "" {
		t.Errorf("plan after both: %+v, %v", again, err)
	}
}
