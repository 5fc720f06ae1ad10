package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// releaseTimeout bounds the lease release and last flush when Run ends.
const releaseTimeout = 2 * time.Second

// Run steps every Interval until ctx ends, then writes its counts one last
// time, gives the lease up, so that another replica drives at once, and
// waits for the switches Exhausted started. Every replica runs it; only
// the lease holder drives. Errors are logged (once each until they change)
// and retried at the next step.
func (m *Manager) Run(ctx context.Context) {
	tick := time.NewTicker(m.o.Interval)
	defer tick.Stop()
	for {
		m.logStep(m.Step(ctx))
		select {
		case <-ctx.Done():
			m.stop(context.WithoutCancel(ctx))
			m.background.Wait()
			return
		case <-tick.C:
		}
	}
}

// stop writes the last counts and releases the lease.
func (m *Manager) stop(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	m.stepMu.Lock()
	defer m.stepMu.Unlock()
	if err := m.flush(ctx, m.o.Now()); err != nil {
		m.o.Log.Warn("migrate: writing the last counts", zap.Error(err))
	}
	// Released whatever this replica last saw: a step cut short by the
	// ending context may have held the lease without knowing it.
	m.leader.Store(false)
	if err := m.st.ReleaseLease(ctx, LeaseName, m.o.Holder); err != nil {
		m.o.Log.Warn("migrate: releasing the lease", zap.Error(err))
	}
}

// logStep logs a step's error when it differs from the last one, and the
// recovery.
func (m *Manager) logStep(err error) {
	m.stepMu.Lock()
	defer m.stepMu.Unlock()
	switch {
	case err == nil && m.lastErr != "":
		m.o.Log.Info("migrate: steps succeed again")
		m.lastErr = ""
	case err != nil && err.Error() != m.lastErr && !errors.Is(err, context.Canceled):
		m.o.Log.Warn("migrate: step failed", zap.Error(err))
		m.lastErr = err.Error()
	}
}

// Step runs one round of the driver loop at the injected clock: it
// refreshes this replica's view from the store (so that it routes by the
// current stages), writes its counts, takes or renews the lease and, if
// it holds it, drives every ramping migration: a gate that fails with its
// minimum sample ends the migration as failed, traffic back on the source,
// audited and alerted; a stage whose dwell is over and whose gates pass on
// the minimum sample advances, and the last one completes. It then settles
// the switches deferred on migrations that have ended (see
// DeferredSwitch). Run calls it every Interval; tests call it with a fake
// clock.
func (m *Manager) Step(ctx context.Context) error {
	m.stepMu.Lock()
	defer m.stepMu.Unlock()
	now := m.o.Now()
	var errs []error
	if err := m.Refresh(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := m.flush(ctx, now); err != nil {
		errs = append(errs, err)
	}
	leader, err := m.st.AcquireLease(ctx, LeaseName, m.o.Holder, m.o.LeaseTTL, now)
	if err != nil {
		errs = append(errs, fmt.Errorf("migrate: lease: %w", err))
	}
	if m.leader.Swap(leader) != leader {
		m.o.Log.Info("migrate: driver lease changed", zap.Bool("held", leader), zap.String("holder", m.o.Holder))
	}
	if leader {
		if err := m.drive(ctx, now); err != nil {
			errs = append(errs, err)
		}
		if err := m.settleDeferred(ctx, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// drive evaluates every ramping migration and applies what the gates
// decide.
func (m *Manager) drive(ctx context.Context, now time.Time) error {
	var ramping []*Migration
	m.mu.Lock()
	for _, mg := range m.migs {
		if mg.Status == StatusRamping {
			ramping = append(ramping, mg.clone())
		}
	}
	m.mu.Unlock()
	if len(ramping) == 0 {
		return nil
	}
	sums, err := m.sumStats(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	changed := false
	for _, mg := range ramping {
		v := evaluate(mg, sums[mg.ID], now)
		if v.kind == verdictWait {
			continue
		}
		ok, err := m.apply(ctx, mg, v, now)
		if err != nil {
			errs = append(errs, err)
		}
		changed = changed || ok
	}
	if changed {
		m.rebuild(ctx)
	}
	return errors.Join(errs...)
}

// apply writes a gate's verdict, if the migration is still where the
// verdict found it.
func (m *Manager) apply(ctx context.Context, seen *Migration, v verdict, now time.Time) (bool, error) {
	mg, err := m.load(ctx, seen.ID)
	if err != nil {
		return false, err
	}
	if mg.Status != StatusRamping || mg.Stage != seen.Stage {
		return false, nil // changed meanwhile: decide again at the next step
	}
	switch v.kind {
	case verdictFail:
		mg.Status, mg.FinishedAt = StatusFailed, now
		mg.event(now, EventFailed, fmt.Sprintf("gate failed at %s: %s; all traffic back on %s", stageText(mg), v.why, mg.From))
	case verdictAdvance:
		done := stageText(mg)
		mg.Stage++
		mg.StageStarted = now
		mg.event(now, EventAdvanced, fmt.Sprintf("%s; gates passed at %s: %s", stageText(mg), done, v.why))
	case verdictComplete:
		mg.Status, mg.FinishedAt = StatusCompleted, now
		mg.event(now, EventCompleted, fmt.Sprintf("completed: all traffic on %s; gates passed: %s", mg.To, v.why))
	}
	ok, err := m.save(ctx, mg)
	if err != nil || !ok {
		return false, err
	}
	switch v.kind {
	case verdictFail:
		m.audit(zapcore.WarnLevel, "migration failed a gate; traffic back on the source", mg, zap.String("gate", v.why))
		m.o.Alert(AlertFailed, mg.Supplier, fmt.Sprintf("migration %s of %s failed a gate: %s; all traffic back on %s",
			mg.ID, mg.Supplier, v.why, mg.From))
	case verdictAdvance:
		m.audit(zapcore.InfoLevel, "migration advanced", mg, zap.Float64("share", mg.Share()), zap.String("gates", v.why))
	case verdictComplete:
		m.audit(zapcore.InfoLevel, "migration completed", mg, zap.String("gates", v.why))
		m.o.Alert(AlertCompleted, mg.Supplier, fmt.Sprintf("migration %s of %s completed: all traffic on %s",
			mg.ID, mg.Supplier, mg.To))
	}
	return true, nil
}

// verdict kinds.
const (
	verdictWait = iota
	verdictAdvance
	verdictComplete
	verdictFail
)

// verdict is what the gates decide for a ramping migration.
type verdict struct {
	kind int
	why  string
}

// gateCheck is the outcome of the gates on one stage's counts.
type gateCheck struct {
	// failed says why a gate failed; empty when none did.
	failed string
	// passed says why they passed; empty unless both paths (or the
	// target and a baseline, at 100%) have the minimum sample.
	passed string
	// waiting says what is missing before the gates can pass.
	waiting string
}

// checkGates applies the gates to a target path and the source path it is
// compared with. baseline is true when src comes from earlier stages
// (the target serves everything now), which may lack a sample: the
// latency gate is then skipped rather than waited for.
func checkGates(g Gates, tgt, src PathCounts, baseline bool) gateCheck {
	need := int64(g.MinSample)
	var c gateCheck
	if tgt.Requests < need {
		c.waiting = fmt.Sprintf("%d of %d target requests", tgt.Requests, need)
		return c
	}
	rate := tgt.ErrorRate()
	if rate > g.MaxErrorRate {
		c.failed = fmt.Sprintf("target error rate %.1f%% (%d of %d) above the %.1f%% gate",
			rate*100, tgt.Errors, tgt.Requests, g.MaxErrorRate*100)
		return c
	}
	errText := fmt.Sprintf("target errors %.1f%% of %d", rate*100, tgt.Requests)
	if src.Requests < need {
		if baseline {
			c.passed = errText + "; latency gate skipped: no source sample"
			return c
		}
		c.waiting = fmt.Sprintf("%d of %d source requests", src.Requests, need)
		return c
	}
	tp, sp := tgt.Quantile(0.95), src.Quantile(0.95)
	ratio := p95Ratio(tp, sp)
	if ratio > g.MaxP95Ratio {
		c.failed = fmt.Sprintf("target p95 %gms is %.2fx the source's %gms, above the %.2fx gate", tp, ratio, sp, g.MaxP95Ratio)
		return c
	}
	c.passed = fmt.Sprintf("%s, p95 %gms %.2fx the source's %gms", errText, tp, ratio, sp)
	return c
}

// p95Ratio divides two p95 latencies, each at least 1ms so that a source
// faster than the histogram's resolution does not divide by zero.
func p95Ratio(target, source float64) float64 {
	return max(target, 1) / max(source, 1)
}

// evaluate decides what to do with a ramping migration from the counts of
// its stages, summed over replicas.
func evaluate(mg *Migration, sums []StageCounts, now time.Time) verdict {
	i := mg.Stage
	stage := mg.Stages[i]
	var cur StageCounts
	if i < len(sums) {
		cur = sums[i]
	}
	src, baseline := cur.Source, false
	if stage.Share >= 1 {
		// The source serves nothing now: compare with what it served in
		// the earlier stages.
		src, baseline = PathCounts{}, true
		for j := 0; j < i && j < len(sums); j++ {
			src.add(sums[j].Source)
		}
	}
	c := checkGates(mg.Gates, cur.Target, src, baseline)
	switch {
	case c.failed != "":
		return verdict{verdictFail, c.failed}
	case c.passed == "", now.Sub(mg.StageStarted) < stage.Dwell:
		return verdict{kind: verdictWait}
	case i == len(mg.Stages)-1:
		return verdict{verdictComplete, c.passed}
	}
	return verdict{verdictAdvance, c.passed}
}
