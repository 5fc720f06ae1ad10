package migrate

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
)

// TestRampPassingGates ramps a supplier 10% -> 50% -> 100% -> completed
// with good outcomes on both paths, on every store: no stage advances
// before its dwell or without its sample, and each advances once both are
// there.
func TestRampPassingGates(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			r := newRig(t, openStore(t, kind), "pod-a", nil)
			mg := startMigration(t, r, "capture-moments", nil)
			if mg.Status != StatusRamping || mg.Stage != 0 || !mg.StageStarted.Equal(t0) {
				t.Fatalf("after Start: %s at stage %d since %v", mg.Status, mg.Stage, mg.StageStarted)
			}
			for stage, share := range DefaultShares {
				d, ok := decide(r.m, "capture-moments")
				if !ok || d.Status != StatusRamping || d.Stage != stage || d.Share != share {
					t.Fatalf("stage %d: decision %+v, %v; want ramping at share %v", stage, d, ok, share)
				}
				// The dwell is not over: good outcomes alone do not advance.
				feed(r.m, mg.ID, true, 25, 0, 120*time.Millisecond, 0.001)
				if share < 1 {
					feed(r.m, mg.ID, false, 25, 0, 110*time.Millisecond, 0.001)
				}
				r.clock.Advance(DefaultDwell - time.Second)
				r.step(t)
				if got := r.get(t, mg.ID); got.Stage != stage || got.Status != StatusRamping {
					t.Fatalf("stage %d before its dwell: %s at stage %d", stage, got.Status, got.Stage)
				}
				r.clock.Advance(time.Second)
				r.step(t)
				got := r.get(t, mg.ID)
				if share < 1 {
					if got.Status != StatusRamping || got.Stage != stage+1 || !got.StageStarted.Equal(r.clock.Now()) {
						t.Fatalf("stage %d after its dwell: %s at stage %d since %v", stage, got.Status, got.Stage, got.StageStarted)
					}
				} else if got.Status != StatusCompleted || !got.FinishedAt.Equal(r.clock.Now()) {
					t.Fatalf("last stage after its dwell: %s", got.Status)
				}
			}
			for spread := range uint64(200) {
				mode, id, _, ok := r.m.Route([]byte("capture-moments"), nil, spread)
				if !ok || mode != billing.ClientKey || id != mg.ID {
					t.Fatalf("completed: Route = %q, %q, %v; want client, %s", mode, id, ok, mg.ID)
				}
			}
			final := r.get(t, mg.ID)
			var kinds []string
			for _, e := range final.Events {
				kinds = append(kinds, e.Kind)
			}
			want := []string{EventPlanned, EventStarted, EventAdvanced, EventAdvanced, EventCompleted}
			if !slices.Equal(kinds, want) {
				t.Errorf("events %v, want %v", kinds, want)
			}
			if got := r.alerts.kinds(); !slices.Equal(got, []string{AlertCompleted}) {
				t.Errorf("alerts %v, want one %s", got, AlertCompleted)
			}
			if n := r.countAudit("migration advanced"); n != 2 {
				t.Errorf("%d audit lines for advances, want 2: %v", n, r.auditLines())
			}
			if n := r.countAudit("migration completed"); n != 1 {
				t.Errorf("%d audit lines for completion, want 1", n)
			}
		})
	}
}

// TestRampWaitsForSample: a stage whose dwell is over advances only once
// each path has the minimum sample.
func TestRampWaitsForSample(t *testing.T) {
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	mg := startMigration(t, r, "capture-moments", nil)
	r.clock.Advance(time.Hour)
	feed(r.m, mg.ID, true, DefaultMinSample-1, 0, 100*time.Millisecond, 0)
	feed(r.m, mg.ID, false, DefaultMinSample, 0, 100*time.Millisecond, 0)
	r.step(t)
	if got := r.get(t, mg.ID); got.Stage != 0 {
		t.Fatalf("advanced with %d target requests, below the sample", DefaultMinSample-1)
	}
	feed(r.m, mg.ID, true, 1, 0, 100*time.Millisecond, 0)
	r.step(t)
	if got := r.get(t, mg.ID); got.Stage != 1 {
		t.Fatalf("stage %d with the sample and the dwell over, want 1", got.Stage)
	}
	// Counts of stage 0 do not count for stage 1.
	r.clock.Advance(time.Hour)
	r.step(t)
	if got := r.get(t, mg.ID); got.Stage != 1 {
		t.Fatalf("stage 1 advanced on stage 0's counts")
	}
}

// TestFailingGateRollsBack: a gate that fails with its minimum sample ends
// the migration as failed at once, before the dwell, traffic back on the
// source, with an audit line and an alert; below the sample nothing
// happens.
func TestFailingGateRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name          string
		n, failures   int
		targetLatency time.Duration
		wantFail      string // in the event's message; empty: still ramping
	}{
		{"error rate above the gate", 20, 2, 100 * time.Millisecond, "target error rate 10.0% (2 of 20) above the 5.0% gate"},
		{"error rate at the gate", 20, 1, 100 * time.Millisecond, ""},
		{"errors below the sample", 19, 19, 100 * time.Millisecond, ""},
		{"p95 above the ratio", 20, 0, 400 * time.Millisecond, "target p95 400ms is 4.00x the source's 100ms, above the 1.50x gate"},
		{"p95 within the ratio", 20, 0, 140 * time.Millisecond, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
			mg := startMigration(t, r, "capture-moments", nil)
			feed(r.m, mg.ID, false, 40, 0, 100*time.Millisecond, 0)
			feed(r.m, mg.ID, true, tc.n, tc.failures, tc.targetLatency, 0)
			r.clock.Advance(time.Minute) // well within the dwell
			r.step(t)
			got := r.get(t, mg.ID)
			if tc.wantFail == "" {
				if got.Status != StatusRamping || len(r.alerts.all()) != 0 {
					t.Fatalf("status %s, alerts %v; want still ramping", got.Status, r.alerts.all())
				}
				return
			}
			if got.Status != StatusFailed || !got.FinishedAt.Equal(r.clock.Now()) {
				t.Fatalf("status %s, want failed", got.Status)
			}
			last := got.Events[len(got.Events)-1]
			if last.Kind != EventFailed || !strings.Contains(last.Message, tc.wantFail) {
				t.Errorf("last event %+v, want failed with %q", last, tc.wantFail)
			}
			if _, ok := decide(r.m, "capture-moments"); ok {
				t.Error("a failed migration still routes the supplier; want its policy (the source) to")
			}
			alerts := r.alerts.all()
			if len(alerts) != 1 || !strings.HasPrefix(alerts[0], AlertFailed+" capture-moments: ") || !strings.Contains(alerts[0], tc.wantFail) {
				t.Errorf("alerts %v, want one %s naming the gate", alerts, AlertFailed)
			}
			lines := r.audit.FilterMessage("migration failed a gate; traffic back on the source").All()
			if len(lines) != 1 || lines[0].ContextMap()["migration"] != mg.ID || lines[0].ContextMap()["gate"] != tc.wantFail {
				t.Errorf("audit lines %v, want one naming the migration and gate", lines)
			}
			// Observe no longer counts for it, and further steps change nothing.
			feed(r.m, mg.ID, true, 50, 0, time.Millisecond, 0)
			r.clock.Advance(time.Hour)
			r.step(t)
			if again := r.get(t, mg.ID); again.Status != StatusFailed || len(again.Events) != len(got.Events) {
				t.Errorf("a failed migration moved: %s, %d events", again.Status, len(again.Events))
			}
		})
	}
}

// TestRestartResumes: a new Manager on the same data directory resumes a
// migration at its stage, with its stage start and its counts, and
// finishes it.
func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	open := func() Store {
		t.Helper()
		e, err := openEmbeddedDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	st := open()
	r := newRig(t, st, "pod-a", c)
	mg := startMigration(t, r, "capture-moments", nil)
	feed(r.m, mg.ID, true, 25, 0, 100*time.Millisecond, 0)
	feed(r.m, mg.ID, false, 25, 0, 100*time.Millisecond, 0)
	c.Advance(DefaultDwell)
	r.step(t) // -> stage 1
	stageStart := c.Now()
	feed(r.m, mg.ID, true, 12, 0, 100*time.Millisecond, 0)
	feed(r.m, mg.ID, false, 12, 0, 100*time.Millisecond, 0)
	c.Advance(time.Minute)
	r.step(t) // writes the counts
	if err := st.(interface{ Close() error }).Close(); err != nil {
		t.Fatal(err)
	}

	st2 := open()
	t.Cleanup(func() { _ = st2.(interface{ Close() error }).Close() })
	r2 := newRig(t, st2, "pod-a", c)
	if _, ok := decide(r2.m, "capture-moments"); ok {
		t.Fatal("routes before loading anything")
	}
	if err := r2.m.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	d, ok := decide(r2.m, "capture-moments")
	if !ok || d.ID != mg.ID || d.Stage != 1 || d.Share != 0.5 {
		t.Fatalf("after restart: %+v, %v; want %s at stage 1 (50%%)", d, ok, mg.ID)
	}
	got := r2.get(t, mg.ID)
	if got.Status != StatusRamping || !got.StageStarted.Equal(stageStart) {
		t.Fatalf("after restart: %s since %v, want ramping since %v", got.Status, got.StageStarted, stageStart)
	}
	// 12 + 8 = the sample of 20 per path: the counts from before the
	// restart count.
	feed(r2.m, mg.ID, true, 8, 0, 100*time.Millisecond, 0)
	feed(r2.m, mg.ID, false, 8, 0, 100*time.Millisecond, 0)
	c.Advance(DefaultDwell - time.Minute - time.Second)
	r2.step(t)
	if got := r2.get(t, mg.ID); got.Stage != 1 {
		t.Fatalf("advanced before the dwell counted from the stage's start: stage %d", got.Stage)
	}
	c.Advance(time.Second)
	r2.step(t)
	if got := r2.get(t, mg.ID); got.Stage != 2 {
		t.Fatalf("stage %d, want 2 with the sample summed across the restart", got.Stage)
	}
	v, err := r2.m.Validate(t.Context(), mg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Target.Requests != 45 || v.Source.Requests != 45 {
		t.Errorf("validation counts %d target, %d source; want 45 each", v.Target.Requests, v.Source.Requests)
	}
	feed(r2.m, mg.ID, true, 20, 0, 100*time.Millisecond, 0)
	c.Advance(DefaultDwell)
	r2.step(t)
	if got := r2.get(t, mg.ID); got.Status != StatusCompleted {
		t.Fatalf("status %s, want completed", got.Status)
	}
}

// TestTwoInstancesShareRedis: two Managers on one Redis agree on the stage,
// only the lease holder drives, both replicas' counts add up, and the
// other takes over when the holder stops.
func TestTwoInstancesShareRedis(t *testing.T) {
	stores := openStores(t, "redis", 2)
	c := newClock()
	// The fake clock jumps a stage's dwell at once, where a real replica
	// renews its lease every second: the lease outlasts the jumps.
	long := func(o *Options) { o.LeaseTTL = time.Hour }
	a := newRig(t, stores[0], "pod-a", c, long)
	b := newRig(t, stores[1], "pod-b", c, long)
	mg, err := a.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.m.Plan(t.Context(), PlanRequest{Supplier: "capture-moments", To: toClient}); !errors.Is(err, ErrActive) {
		t.Fatalf("second plan on the other replica: %v, want ErrActive", err)
	}
	if _, err := b.m.Start(t.Context(), mg.ID); err != nil { // any replica may start it
		t.Fatal(err)
	}
	a.step(t)
	b.step(t)
	if !a.m.Leader() || b.m.Leader() {
		t.Fatalf("leaders: a %v, b %v; want only a", a.m.Leader(), b.m.Leader())
	}
	agree := func(stage int) {
		t.Helper()
		for _, r := range []*rig{a, b} {
			d, ok := decide(r.m, "capture-moments")
			if !ok || d.ID != mg.ID || d.Stage != stage {
				t.Fatalf("%s: %+v, %v; want %s at stage %d", r.m.Holder(), d, ok, mg.ID, stage)
			}
		}
	}
	agree(0)
	for stage := range 2 {
		// Half the sample on each replica: only their sum passes the gate.
		for _, r := range []*rig{a, b} {
			feed(r.m, mg.ID, true, DefaultMinSample/2, 0, 100*time.Millisecond, 0)
			feed(r.m, mg.ID, false, DefaultMinSample/2, 0, 100*time.Millisecond, 0)
		}
		c.Advance(DefaultDwell)
		b.step(t) // writes b's counts; b does not drive
		if got := b.get(t, mg.ID); got.Stage != stage {
			t.Fatalf("the follower drove: stage %d", got.Stage)
		}
		a.step(t) // a renews its lease first and drives
		b.step(t) // b follows
		agree(stage + 1)
	}
	if a.countAudit("migration advanced") != 2 || b.countAudit("migration advanced") != 0 {
		t.Errorf("advances audited by a %d, by b %d; want 2 and 0",
			a.countAudit("migration advanced"), b.countAudit("migration advanced"))
	}
	v, err := b.m.Validate(t.Context(), mg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Target.Requests != 2*DefaultMinSample || v.Source.Requests != 2*DefaultMinSample {
		t.Errorf("validation sums %d target, %d source; want %d each", v.Target.Requests, v.Source.Requests, 2*DefaultMinSample)
	}

	// a stops stepping; once its lease expires b takes over and finishes.
	feed(b.m, mg.ID, true, DefaultMinSample, 0, 100*time.Millisecond, 0)
	c.Advance(time.Hour + time.Second)
	b.step(t)
	if !b.m.Leader() {
		t.Fatal("b did not take the lease over after a's expired")
	}
	if got := b.get(t, mg.ID); got.Status != StatusCompleted {
		t.Fatalf("status %s after b took over, want completed", got.Status)
	}
	a.step(t)
	if a.m.Leader() {
		t.Error("a holds the lease again while b's is live")
	}
	agreeDone := func(r *rig) {
		if d, ok := decide(r.m, "capture-moments"); !ok || d.Status != StatusCompleted || d.Mode != billing.ModeClient {
			t.Errorf("%s: %+v, %v; want completed on client", r.m.Holder(), d, ok)
		}
	}
	agreeDone(a)
	agreeDone(b)
}

// TestRunStopsAndReleases: Run steps until its context ends, then gives
// the lease up so that another replica drives at once.
func TestRunStopsAndReleases(t *testing.T) {
	st := openStore(t, "embedded")
	c := newClock()
	a := newRig(t, st, "pod-a", c, func(o *Options) { o.Interval = time.Millisecond; o.LeaseTTL = time.Hour })
	b := newRig(t, st, "pod-b", c)
	mg := startMigration(t, a, "capture-moments", nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { a.m.Run(ctx); close(done) }()
	feed(a.m, mg.ID, true, 3, 0, time.Millisecond, 0)
	deadline := time.After(30 * time.Second) // a guard only
	for {
		v, err := b.m.Validate(t.Context(), mg.ID)
		if err != nil {
			t.Fatal(err)
		}
		if v.Target.Requests == 3 {
			break // Run wrote a's counts
		}
		select {
		case <-deadline:
			t.Fatal("Run never wrote the counts")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	<-done
	if a.m.Leader() {
		t.Error("still leader after Run ended")
	}
	b.step(t)
	if !b.m.Leader() {
		t.Error("the lease was not released: b could not take it")
	}
}
