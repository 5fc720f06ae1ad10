package migrate

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
)

// deferrals counts the outcomes given to Options.Deferral.
type deferrals struct {
	mu  sync.Mutex
	got []string
}

func (d *deferrals) record(outcome string) {
	d.mu.Lock()
	d.got = append(d.got, outcome)
	d.mu.Unlock()
}

func (d *deferrals) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

// deferralRig is a rig whose deferral outcomes are recorded.
func deferralRig(t *testing.T) (*rig, *deferrals) {
	t.Helper()
	d := &deferrals{}
	return newRig(t, openStore(t, "embedded"), "pod-a", nil, func(o *Options) { o.Deferral = d.record }), d
}

// exhaust reports capture-moments out of platform quota n times, as the
// proxy does for every request its tier refuses, and waits for the
// background switches.
func exhaust(r *rig, n int) {
	for range n {
		r.m.Exhausted("capture-moments", "openai")
		r.m.background.Wait()
	}
}

// passStage feeds a stage enough healthy requests on both paths and lets
// its dwell pass.
func passStage(r *rig, id string) {
	feed(r.m, id, true, DefaultMinSample, 0, 10*time.Millisecond, 0)
	feed(r.m, id, false, DefaultMinSample, 0, 10*time.Millisecond, 0)
	r.clock.Advance(DefaultDwell)
}

// TestGateRule: a tier's quota switch during a three-stage ramp never
// advances a stage without its gates, nor completes the ramp: it is
// deferred on the migration (history, audit, metric), and the ramp moves
// only when its dwell is over and its gates pass. Once the ramp ends, the
// deferred switch applies when the supplier is not on its own key, and is
// dropped when it is.
func TestGateRule(t *testing.T) {
	t.Run("rolled back: the switch applies", func(t *testing.T) {
		r, d := deferralRig(t)
		other := startMigration(t, r, "bella-photography", nil)
		mg := startMigration(t, r, "capture-moments", nil) // 10%, 50%, 100%
		exhaust(r, 5)
		// Steps, with the dwell over many times but no sample: stage 1.
		for range 4 {
			r.clock.Advance(DefaultDwell)
			r.step(t)
			exhaust(r, 2)
		}
		if got := r.get(t, mg.ID); got.Status != StatusRamping || got.Stage != 0 || !got.Deferred.Pending() {
			t.Fatalf("after quota switches without a sample: %s at stage %d, deferred %+v", got.Status, got.Stage, got.Deferred)
		}
		if rt, _ := r.m.Routing("capture-moments"); rt.Share != 0.10 {
			t.Errorf("share %v after quota switches, want 0.10", rt.Share)
		}
		// The gates pass: stage 2, by the gates.
		passStage(r, mg.ID)
		r.step(t)
		got := r.get(t, mg.ID)
		if got.Status != StatusRamping || got.Stage != 1 {
			t.Fatalf("after the gates passed: %s at stage %d", got.Status, got.Stage)
		}
		stage := 0
		for _, ev := range got.Events {
			switch ev.Kind {
			case EventAdvanced:
				stage++
				if !strings.Contains(ev.Message, "gates passed") {
					t.Errorf("advanced without gates: %s", ev.Message)
				}
			case EventCompleted, EventSwitched:
				t.Errorf("event %s: %s", ev.Kind, ev.Message)
			}
		}
		if stage != 1 {
			t.Errorf("%d advances, want 1: %+v", stage, got.Events)
		}
		if o := r.get(t, other.ID); o.Stage != 0 || o.Deferred != nil {
			t.Errorf("another supplier's ramp was touched: stage %d, deferred %+v", o.Stage, o.Deferred)
		}
		if got := d.all(); !slices.Equal(got, []string{DeferralDeferred}) {
			t.Errorf("deferral outcomes %v, want one deferral", got)
		}

		// Rolled back: the supplier is on platform keys, still out of
		// quota by its tier, so the switch applies at the next step.
		if _, err := r.m.Rollback(t.Context(), mg.ID, "not now"); err != nil {
			t.Fatal(err)
		}
		r.step(t)
		got = r.get(t, mg.ID)
		if got.Deferred.Outcome != DeferralApplied || got.Deferred.Migration == "" || got.Events[len(got.Events)-1].Kind != EventDeferralEnded {
			t.Fatalf("deferred switch %+v, events %+v", got.Deferred, got.Events)
		}
		sw := r.get(t, got.Deferred.Migration)
		if sw.Status != StatusCompleted || sw.Reason != ReasonQuotaExhausted || sw.To != (Target{Mode: billing.ModeClient, Provider: "openai"}) ||
			sw.Base != "" {
			t.Errorf("switch %+v", sw)
		}
		if dec, ok := decide(r.m, "capture-moments"); !ok || dec.ID != sw.ID || dec.Mode != billing.ModeClient || !dec.Switched() {
			t.Errorf("routes %+v, %v; want the switch", dec, ok)
		}
		r.step(t) // settled once
		if got := d.all(); !slices.Equal(got, []string{DeferralDeferred, DeferralApplied}) {
			t.Errorf("deferral outcomes %v", got)
		}
		if r.countAudit("deferred switch applied") != 1 || r.countAudit("supplier switched") != 1 {
			t.Errorf("audit %v", r.auditLines())
		}
	})

	t.Run("completed by its gates: the switch is fulfilled", func(t *testing.T) {
		r, d := deferralRig(t)
		mg := startMigration(t, r, "capture-moments", nil)
		exhaust(r, 3)
		for stage := range 3 {
			passStage(r, mg.ID)
			r.step(t)
			if got := r.get(t, mg.ID); stage < 2 && (got.Status != StatusRamping || got.Stage != stage+1) {
				t.Fatalf("stage %d: %s at %d", stage+1, got.Status, got.Stage)
			}
		}
		got := r.get(t, mg.ID)
		if got.Status != StatusCompleted || got.Deferred.Outcome != DeferralFulfilled {
			t.Fatalf("%s, deferred %+v", got.Status, got.Deferred)
		}
		if list, _ := r.m.List(t.Context()); len(list) != 1 {
			t.Errorf("%d migrations: a fulfilled switch makes none", len(list))
		}
		if got := d.all(); !slices.Equal(got, []string{DeferralDeferred, DeferralFulfilled}) {
			t.Errorf("deferral outcomes %v", got)
		}
	})

	t.Run("a plan cancelled: the switch applies", func(t *testing.T) {
		r, _ := deferralRig(t)
		mg, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient})
		if err != nil {
			t.Fatal(err)
		}
		exhaust(r, 3)
		r.step(t)
		if got := r.get(t, mg.ID); got.Status != StatusPlanned || !got.Deferred.Pending() {
			t.Fatalf("plan after quota switches: %s, deferred %+v", got.Status, got.Deferred)
		}
		if _, ok := decide(r.m, "capture-moments"); ok {
			t.Error("a plan with a deferred switch routes the supplier")
		}
		if _, err := r.m.Rollback(t.Context(), mg.ID, "cancelled"); err != nil {
			t.Fatal(err)
		}
		r.step(t)
		if got := r.get(t, mg.ID); got.Deferred.Outcome != DeferralApplied {
			t.Errorf("deferred %+v", got.Deferred)
		}
	})

	t.Run("a newer plan owns the supplier: the switch moves to it", func(t *testing.T) {
		r, d := deferralRig(t)
		mg := startMigration(t, r, "capture-moments", nil)
		exhaust(r, 1)
		if _, err := r.m.Rollback(t.Context(), mg.ID, "another key"); err != nil {
			t.Fatal(err)
		}
		next, err := r.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: Target{Mode: billing.ModeClient, Provider: "azure"}})
		if err != nil {
			t.Fatal(err)
		}
		r.step(t)
		if got := r.get(t, mg.ID); got.Deferred.Outcome != DeferralMoved || got.Deferred.Migration != next.ID {
			t.Errorf("deferred %+v, want moved to %s", got.Deferred, next.ID)
		}
		if got := r.get(t, next.ID); got.Status != StatusPlanned || !got.Deferred.Pending() {
			t.Errorf("newer plan %s, deferred %+v", got.Status, got.Deferred)
		}
		if got := d.all(); !slices.Equal(got, []string{DeferralDeferred, DeferralDeferred, DeferralMoved}) {
			t.Errorf("deferral outcomes %v", got)
		}
	})

	t.Run("the key refused when it would apply", func(t *testing.T) {
		r, _ := deferralRig(t)
		mg := startMigration(t, r, "capture-moments", nil)
		exhaust(r, 1)
		if _, err := r.m.Rollback(t.Context(), mg.ID, "key revoked"); err != nil {
			t.Fatal(err)
		}
		r.probe.fail.Store(true)
		r.step(t)
		if got := r.get(t, mg.ID); got.Deferred.Outcome != DeferralRefused || got.Deferred.Error == "" {
			t.Errorf("deferred %+v", got.Deferred)
		}
		if _, ok := decide(r.m, "capture-moments"); ok {
			t.Error("a refused deferred switch routes the supplier")
		}
	})
}
