package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Outcomes of a deferred switch, given to Options.Deferral and kept in
// DeferredSwitch.Outcome once the migration that owned the supplier ended.
const (
	// DeferralDeferred is a switch that arrived while a planned migration
	// owned the supplier and now waits for it to end.
	DeferralDeferred = "deferred"
	// DeferralApplied is a deferred switch made once the migration ended
	// and left the supplier off the switch's target.
	DeferralApplied = "applied"
	// DeferralFulfilled is a deferred switch dropped because the
	// migration ended with the supplier on the switch's target already.
	DeferralFulfilled = "fulfilled"
	// DeferralMoved is a deferred switch handed on to a newer planned
	// migration that owned the supplier by the time the first one ended.
	DeferralMoved = "moved"
	// DeferralRefused is a deferred switch whose target key failed its
	// probe when it was to apply; the next request refused by the quota
	// asks again.
	DeferralRefused = "refused"
)

// EventDeferred is the history event of a switch deferred on a
// migration, and EventDeferralEnded the one of how it ended.
const (
	EventDeferred      = "switch_deferred"
	EventDeferralEnded = "deferred_switch_ended"
)

// ErrDeferred means a switch was not made because a planned migration
// owns the supplier: it is recorded on that migration and applies when
// the migration ends, if the supplier is not on the switch's target then.
var ErrDeferred = errors.New("switch deferred: a planned migration owns the supplier")

// DeferredSwitch is a switch (Switch, Exhausted: a tier's
// switch_to_client out of platform quota) that arrived while a planned or
// ramping migration owned the supplier. It neither completes, starts nor
// advances that migration; it waits on it and, once the migration ends
// (completed, rolled back or failed), applies if the supplier is not on To
// by then.
type DeferredSwitch struct {
	// To is the system the switch asked for, Reason why.
	To     Target `json:"to"`
	Reason string `json:"reason"`
	// At is when it was deferred.
	At time.Time `json:"at"`
	// Outcome is empty while it waits, then one of DeferralApplied,
	// DeferralFulfilled, DeferralMoved or DeferralRefused, at EndedAt.
	Outcome string    `json:"outcome,omitempty"`
	EndedAt time.Time `json:"ended_at,omitzero"`
	// Migration is the switch made (applied) or the migration it was
	// handed on to (moved).
	Migration string `json:"migration,omitempty"`
	// Error says why it was refused.
	Error string `json:"error,omitempty"`
}

// Pending reports whether the switch still waits for its migration.
func (d *DeferredSwitch) Pending() bool { return d != nil && d.Outcome == "" }

// DeferredSwitch returns the switch deferred on supplier's current
// migration, pending or how it ended, with that migration's ID, from
// memory; nil when there is none.
func (m *Manager) DeferredSwitch(supplier string) (string, *DeferredSwitch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.claims[supplier]
	if !ok {
		return "", nil
	}
	mg := m.migs[c.ID]
	if mg == nil || mg.Deferred == nil {
		return "", nil
	}
	d := *mg.Deferred
	return mg.ID, &d
}

// pendingOwner returns, from memory, supplier's claimed migration when it
// is active and already holds a pending deferred switch.
func (m *Manager) pendingOwner(supplier string) *Migration {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.claims[supplier]
	if !ok {
		return nil
	}
	mg := m.migs[c.ID]
	if mg == nil || !mg.Status.Active() || !mg.Deferred.Pending() {
		return nil
	}
	return mg
}

// deferredError is the error of a switch deferred on owner.
func deferredError(supplier string, owner *Migration) error {
	return fmt.Errorf("migrate: switch %s: %w: %s is %s towards %s", supplier, ErrDeferred, owner.ID, owner.Status, owner.To)
}

// deferOn records a switch to to on mg, the supplier's active migration,
// unless one is recorded already. It reports false when mg changed
// meanwhile.
func (m *Manager) deferOn(ctx context.Context, mg *Migration, to Target, reason string, now time.Time) (bool, error) {
	if mg.Deferred.Pending() {
		return true, nil
	}
	mg.Deferred = &DeferredSwitch{To: to, Reason: reason, At: now}
	mg.event(now, EventDeferred, fmt.Sprintf("switch to %s deferred (%s): this migration owns the supplier; "+
		"it applies if the supplier is not on %s when this migration ends", to, reason, to))
	ok, err := m.save(ctx, mg)
	if err != nil || !ok {
		return ok, err
	}
	m.audit(zapcore.WarnLevel, "switch deferred: a planned migration owns the supplier", mg,
		zap.Stringer("switch_to", to), zap.String("why", reason))
	m.o.Deferral(DeferralDeferred)
	return true, nil
}

// settleDeferred resolves the switches deferred on migrations that have
// ended; the lease holder calls it at every step.
func (m *Manager) settleDeferred(ctx context.Context, now time.Time) error {
	var ended []*Migration
	m.mu.Lock()
	for _, mg := range m.migs {
		if mg.Status.Final() && mg.Deferred.Pending() {
			ended = append(ended, mg.clone())
		}
	}
	m.mu.Unlock()
	var errs []error
	for _, mg := range ended {
		if err := m.settle(ctx, mg, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// settle resolves the switch deferred on mg, which has ended: nothing to
// do when the supplier is on its target already, handed on when a newer
// migration owns the supplier, else switched now (probed as always).
func (m *Manager) settle(ctx context.Context, mg *Migration, now time.Time) error {
	d := *mg.Deferred
	c, err := m.loadClaim(ctx, mg.Supplier)
	if err != nil {
		return err
	}
	cur, err := m.current(ctx, mg.Supplier, c)
	if err != nil {
		return err
	}
	var end DeferredSwitch
	switch {
	case cur.active == nil && cur.from.covers(d.To):
		end = DeferredSwitch{Outcome: DeferralFulfilled, Migration: cur.base}
	default:
		sw, err := m.Switch(ctx, mg.Supplier, d.To, d.Reason)
		switch {
		case err == nil:
			end = DeferredSwitch{Outcome: DeferralApplied, Migration: sw.ID}
		case errors.Is(err, ErrDeferred):
			owner := cur.active
			if owner == nil {
				return err // the supplier changed meanwhile: settle at the next step
			}
			end = DeferredSwitch{Outcome: DeferralMoved, Migration: owner.ID}
		case errors.Is(err, ErrNoChange):
			end = DeferredSwitch{Outcome: DeferralFulfilled}
		case errors.Is(err, ErrProbeFailed):
			end = DeferredSwitch{Outcome: DeferralRefused, Error: err.Error()}
		default:
			return err
		}
	}
	return m.endDeferral(ctx, mg.ID, end, now)
}

// endDeferral writes how the switch deferred on migration id ended.
func (m *Manager) endDeferral(ctx context.Context, id string, end DeferredSwitch, now time.Time) error {
	for range casTries {
		mg, err := m.load(ctx, id)
		if err != nil {
			return err
		}
		if !mg.Deferred.Pending() {
			return nil
		}
		d := mg.Deferred
		d.Outcome, d.EndedAt, d.Migration, d.Error = end.Outcome, now, end.Migration, end.Error
		msg := fmt.Sprintf("deferred switch to %s %s", d.To, end.Outcome)
		switch end.Outcome {
		case DeferralApplied:
			msg += " as " + end.Migration + ": this migration ended with the supplier on " + mg.From.String()
		case DeferralMoved:
			msg += " to " + end.Migration + ", which owns the supplier now"
		case DeferralFulfilled:
			msg += ": the supplier is on it already"
		case DeferralRefused:
			msg += ": " + end.Error
		}
		mg.event(now, EventDeferralEnded, msg)
		ok, err := m.save(ctx, mg)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		m.audit(zapcore.InfoLevel, "deferred switch "+end.Outcome, mg, zap.Stringer("switch_to", d.To),
			zap.String("switch_migration", end.Migration), zap.String("error", end.Error))
		m.o.Deferral(end.Outcome)
		return nil
	}
	return fmt.Errorf("migrate: ending the switch deferred on %s: %w", id, ErrConflict)
}
