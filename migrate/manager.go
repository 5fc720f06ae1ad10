package migrate

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/store"
)

// Store buckets and the lease.
const (
	bucketMigrations = "migrations"
	bucketClaims     = "migration-suppliers"
	bucketStats      = "migration-stats"
	// LeaseName is the lease whose holder drives migrations.
	LeaseName = "migrate"
)

// Defaults of Options.
const (
	DefaultInterval      = time.Second
	DefaultLeaseTTL      = 10 * time.Second
	DefaultProbeTimeout  = 10 * time.Second
	DefaultSwitchBackoff = time.Minute
)

// casTries bounds the read-modify-write loops on one document.
const casTries = 5

// exhaustedTimeout bounds one switch that Exhausted starts.
const exhaustedTimeout = 30 * time.Second

// ReasonQuotaExhausted is the reason of a switch that Exhausted makes: the
// supplier's platform quota ran out.
const ReasonQuotaExhausted = "quota_exhausted"

// Store is what a Manager keeps its state in: documents, the driver's
// lease and the usage aggregates cost estimates read.
type Store interface {
	store.Documents
	store.Leases
	store.Aggregates
}

// Pricer prices tokens, as usage.PriceTable does.
type Pricer interface {
	CostMicros(provider, model string, at time.Time, prompt, cached, completion int64) (int64, bool)
}

// Options configure a Manager.
type Options struct {
	// Store keeps migrations, claims and counts; required.
	Store Store
	// Probe checks a target's key live without spending tokens (GET
	// /v1/models); required. Plan, Start and Switch refuse a target whose
	// probe fails.
	Probe func(ctx context.Context, supplier string, to Target) ProbeResult
	// Prices prices cost estimates; nil estimates at recorded costs only.
	Prices Pricer
	// Serving says which provider and model would serve a supplier's
	// call for model (as its usage recorded it) in workflow on system to,
	// as routing plans it (Served with the policy in force); ok false when
	// none would. Nil prices the same model on to's provider, or on the
	// recorded one when to names none.
	Serving func(supplier, workflow, model string, to Target) (provider, served string, ok bool)
	// Current returns the system a supplier is on by its configuration
	// (its mode), for suppliers no completed migration moved. Nil means
	// PlanRequest.From must say.
	Current func(supplier string) Target
	// Season returns the wedding peak a plan's projection uses: its name
	// and whether a day is in it. Nil means March to October.
	Season func() (name string, peak func(time.Time) bool)
	// Holder is this replica's identity for the lease and its counts
	// document; the host name when empty. Replicas must differ.
	Holder string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Log is the operational log, Audit the audit trail; nil means none.
	Log, Audit *zap.Logger
	// Alert, when set, is told of failed gates, rollbacks, completions and
	// switches. It must not block.
	Alert func(kind, supplier, message string)
	// Deferral, when set, is told of every switch deferred because a
	// planned migration owns the supplier (DeferralDeferred) and of how
	// each ended (DeferralApplied, DeferralFulfilled, DeferralMoved,
	// DeferralRefused), once each. It must not block.
	Deferral func(outcome string)
	// Interval is how often Run steps; DefaultInterval when zero.
	Interval time.Duration
	// LeaseTTL is how long the driver's lease lasts without renewal: how
	// soon another replica takes over from one that died. Default
	// max(DefaultLeaseTTL, 3*Interval); it must exceed Interval.
	LeaseTTL time.Duration
	// Dwell is the dwell of default stages and of stages that give none;
	// DefaultDwell when zero.
	Dwell time.Duration
	// ProbeTimeout bounds one probe; DefaultProbeTimeout when zero.
	ProbeTimeout time.Duration
	// SwitchBackoff is how long Switch answers a failed probe from memory
	// before probing the same supplier again, so that a burst of requests
	// out of quota does not become a burst of probes;
	// DefaultSwitchBackoff when zero.
	SwitchBackoff time.Duration
}

// claim is a supplier's document in bucketClaims: its latest migration.
type claim struct {
	ID        string    `json:"id"`
	UpdatedAt time.Time `json:"updated_at"`

	version int64
}

// Manager plans, drives, rolls back and validates migrations, and routes
// the requests of suppliers being migrated. Its methods are safe for
// concurrent use.
type Manager struct {
	o  Options
	st Store

	table  atomic.Pointer[table]
	leader atomic.Bool

	stepMu  sync.Mutex // serializes Step
	buildMu sync.Mutex // serializes rebuild
	flushMu sync.Mutex // serializes flush, so an older snapshot never overwrites a newer one
	listMu  sync.Mutex // serializes Refresh, so an older listing never replaces a newer one

	mu     sync.Mutex // guards the fields below
	migs   map[string]*Migration
	claims map[string]claim
	live   map[string]*liveStats
	gen    uint64 // counts local writes, so a refresh never undoes one

	switchMu   sync.Mutex
	flights    map[string]*flight
	refused    map[string]refusal
	exhausting map[string]bool // suppliers Exhausted is switching, guarded by switchMu
	background sync.WaitGroup  // the switches Exhausted started

	lastErr string // the last Step error logged, guarded by stepMu
}

// flight is a Switch in progress, which concurrent Switches of the same
// supplier wait for.
type flight struct {
	done chan struct{}
	mig  *Migration
	err  error
}

// refusal is a Switch refused by a failed probe, remembered for
// SwitchBackoff.
type refusal struct {
	to  Target
	at  time.Time
	err error
}

// New returns a Manager. It reads nothing yet: Refresh, or Run's first
// step, loads the migrations.
func New(o Options) (*Manager, error) {
	if o.Store == nil {
		return nil, errors.New("migrate: no store")
	}
	if o.Probe == nil {
		return nil, errors.New("migrate: no probe")
	}
	if o.Holder == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "veil"
		}
		o.Holder = h
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Audit == nil {
		o.Audit = zap.NewNop()
	}
	if o.Alert == nil {
		o.Alert = func(string, string, string) {}
	}
	if o.Deferral == nil {
		o.Deferral = func(string) {}
	}
	orDefault(&o.Interval, DefaultInterval)
	orDefault(&o.LeaseTTL, max(DefaultLeaseTTL, 3*o.Interval))
	orDefault(&o.Dwell, DefaultDwell)
	orDefault(&o.ProbeTimeout, DefaultProbeTimeout)
	orDefault(&o.SwitchBackoff, DefaultSwitchBackoff)
	switch {
	case o.Interval < 0:
		return nil, fmt.Errorf("migrate: negative interval %v", o.Interval)
	case o.LeaseTTL <= o.Interval:
		return nil, fmt.Errorf("migrate: lease ttl %v must exceed the interval %v", o.LeaseTTL, o.Interval)
	case o.Dwell < 0, o.ProbeTimeout < 0, o.SwitchBackoff < 0:
		return nil, errors.New("migrate: negative dwell, probe timeout or switch backoff")
	}
	m := &Manager{
		o: o, st: o.Store,
		migs:       make(map[string]*Migration),
		claims:     make(map[string]claim),
		live:       make(map[string]*liveStats),
		flights:    make(map[string]*flight),
		refused:    make(map[string]refusal),
		exhausting: make(map[string]bool),
	}
	m.table.Store(&table{})
	return m, nil
}

// Holder returns this replica's identity.
func (m *Manager) Holder() string { return m.o.Holder }

// Leader reports whether this replica held the driver's lease at its last
// step.
func (m *Manager) Leader() bool { return m.leader.Load() }

// PlanRequest asks for a plan.
type PlanRequest struct {
	Supplier string
	// To is the system to move to.
	To Target
	// From is the supplier's configured system, when Options.Current does
	// not know it. When a completed migration moved the supplier, its
	// target is the current system and From, if set, must match it.
	From Target
	// Stages is the ramp; empty means DefaultShares, each dwelling
	// Options.Dwell. Shares must rise and end at 1.
	Stages []Stage
	// Gates are the health gates; zero fields take the defaults.
	Gates Gates
	// Days is the usage history the estimate reads; DefaultDays when zero.
	Days int
	// Reason says why, for the audit trail.
	Reason string
}

// Plan validates the target's key live (Probe), estimates the cost impact
// from the supplier's usage aggregates and the price table, and records a
// planned migration that changes nothing yet. It refuses a supplier that
// already has an active migration (ErrActive), a target the supplier is
// already on (ErrNoChange) and a target whose probe fails (ErrProbeFailed):
// no plan is recorded then.
func (m *Manager) Plan(ctx context.Context, req PlanRequest) (*Migration, error) {
	if req.Supplier == "" {
		return nil, fmt.Errorf("migrate: plan: %w: no supplier", ErrInvalid)
	}
	if err := req.To.validate("target"); err != nil {
		return nil, fmt.Errorf("migrate: plan %s: %w", req.Supplier, err)
	}
	stages, err := checkStages(req.Stages, m.o.Dwell)
	if err != nil {
		return nil, fmt.Errorf("migrate: plan %s: %w", req.Supplier, err)
	}
	gates, err := req.Gates.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("migrate: plan %s: %w", req.Supplier, err)
	}
	days := cmp.Or(req.Days, DefaultDays)
	if days < 1 || days > maxDays {
		return nil, fmt.Errorf("migrate: plan %s: %w: days %d not in [1, %d]", req.Supplier, ErrInvalid, req.Days, maxDays)
	}

	c, err := m.loadClaim(ctx, req.Supplier)
	if err != nil {
		return nil, err
	}
	cur, err := m.current(ctx, req.Supplier, c)
	if err != nil {
		return nil, err
	}
	if cur.active != nil {
		return nil, fmt.Errorf("migrate: plan %s: %w: %s is %s", req.Supplier, ErrActive, cur.active.ID, cur.active.Status)
	}
	from := cur.from
	if req.From.Mode != "" {
		if err := req.From.validate("source"); err != nil {
			return nil, fmt.Errorf("migrate: plan %s: %w", req.Supplier, err)
		}
		switch {
		case cur.base == "":
			from = req.From
		case !from.covers(req.From):
			return nil, fmt.Errorf("migrate: plan %s: %w: the supplier is on %s since %s, not %s",
				req.Supplier, ErrStale, from, cur.base, req.From)
		}
	}
	if from.Mode == "" {
		return nil, fmt.Errorf("migrate: plan %s: %w: its current system is unknown (set From)", req.Supplier, ErrInvalid)
	}
	if from == req.To {
		return nil, fmt.Errorf("migrate: plan %s: %w: already on %s", req.Supplier, ErrNoChange, from)
	}

	probe := m.probe(ctx, req.Supplier, req.To)
	if !probe.OK {
		m.audit(zapcore.WarnLevel, "migration plan refused: target key probe failed", nil,
			zap.String("supplier", req.Supplier), zap.Stringer("to", req.To), zap.Int("probe_status", probe.Status),
			zap.String("probe_error", probe.Error))
		return nil, fmt.Errorf("migrate: plan %s: %w: %s", req.Supplier, ErrProbeFailed, probeCause(probe))
	}
	now := m.o.Now()
	est, err := m.estimate(ctx, req.Supplier, from, req.To, days, now)
	if err != nil {
		return nil, err
	}
	mg := &Migration{
		Plan: Plan{Supplier: req.Supplier, From: from, To: req.To, Stages: stages, Gates: gates,
			Estimate: est, Probe: probe, Reason: req.Reason, Base: cur.base, CreatedAt: now},
		Status: StatusPlanned,
	}
	mg.event(now, EventPlanned, fmt.Sprintf("planned %s -> %s in %d stages", from, req.To, len(stages)))
	if err := m.create(ctx, mg, c); err != nil {
		return nil, err
	}
	m.audit(zapcore.InfoLevel, "migration planned", mg, zap.Float64("current_usd", est.CurrentUSD),
		zap.Float64("target_usd", est.TargetUSD), zap.Int("days", est.Days))
	m.rebuild(ctx)
	return mg.clone(), nil
}

// create writes a new migration under a fresh ID and claims its supplier
// from c. When the claim has moved meanwhile, the migration is deleted
// again and the error wraps ErrActive or ErrConflict.
func (m *Manager) create(ctx context.Context, mg *Migration, c claim) error {
	for tries := 0; ; tries++ {
		mg.ID = newID()
		ok, err := m.save(ctx, mg)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if tries == casTries {
			return fmt.Errorf("migrate: %w: no free migration id", ErrConflict)
		}
	}
	ok, err := m.saveClaim(ctx, mg.Supplier, c, mg.ID)
	if err == nil && ok {
		return nil
	}
	if derr := m.st.Delete(ctx, bucketMigrations, mg.ID); derr != nil {
		m.o.Log.Warn("migrate: leaving an unclaimed migration behind", zap.String("migration", mg.ID), zap.Error(derr))
	}
	m.forget(mg.ID)
	if err != nil {
		return err
	}
	if nc, lerr := m.loadClaim(ctx, mg.Supplier); lerr == nil && nc.ID != "" {
		if other, gerr := m.load(ctx, nc.ID); gerr == nil && other.Status.Active() {
			return fmt.Errorf("migrate: %s: %w: %s is %s", mg.Supplier, ErrActive, other.ID, other.Status)
		}
	}
	return fmt.Errorf("migrate: %s: %w", mg.Supplier, ErrConflict)
}

// Start moves a planned migration to its first stage, after probing its
// target again. It refuses one that is not planned (ErrState), a supplier
// with another active migration (ErrActive), a plan made against a system
// the supplier has since left (ErrStale) and a failed probe
// (ErrProbeFailed).
func (m *Manager) Start(ctx context.Context, id string) (*Migration, error) {
	mg, err := m.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if mg.Status != StatusPlanned {
		return nil, fmt.Errorf("migrate: start %s: %w: it is %s", id, ErrState, mg.Status)
	}
	c, err := m.loadClaim(ctx, mg.Supplier)
	if err != nil {
		return nil, err
	}
	if c.ID != id {
		// The plan lost its claim (a crash between writing it and
		// claiming): claim the supplier again if nothing moved it since.
		cur, err := m.current(ctx, mg.Supplier, c)
		if err != nil {
			return nil, err
		}
		if cur.active != nil {
			return nil, fmt.Errorf("migrate: start %s: %w: %s is %s", id, ErrActive, cur.active.ID, cur.active.Status)
		}
		if cur.base != mg.Base {
			return nil, fmt.Errorf("migrate: start %s: %w: the supplier moved since the plan; plan again", id, ErrStale)
		}
	} else if mg.Base != "" {
		if base, err := m.load(ctx, mg.Base); err != nil || base.Status != StatusCompleted {
			return nil, fmt.Errorf("migrate: start %s: %w: %s, which put the supplier on %s, is no longer completed; plan again",
				id, ErrStale, mg.Base, mg.From)
		}
	}
	probe := m.probe(ctx, mg.Supplier, mg.To)
	if !probe.OK {
		m.audit(zapcore.WarnLevel, "migration start refused: target key probe failed", mg,
			zap.Int("probe_status", probe.Status), zap.String("probe_error", probe.Error))
		return nil, fmt.Errorf("migrate: start %s: %w: %s", id, ErrProbeFailed, probeCause(probe))
	}
	if c.ID != id {
		ok, err := m.saveClaim(ctx, mg.Supplier, c, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("migrate: start %s: %w", id, ErrConflict)
		}
	}
	now := m.o.Now()
	mg.Probe = probe
	mg.Status, mg.Stage, mg.StageStarted = StatusRamping, 0, now
	mg.event(now, EventStarted, "started: "+stageText(mg))
	ok, err := m.save(ctx, mg)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("migrate: start %s: %w: it changed meanwhile", id, ErrConflict)
	}
	m.audit(zapcore.InfoLevel, "migration started", mg, zap.Float64("share", mg.Share()))
	m.rebuild(ctx)
	return mg.clone(), nil
}

// Rollback sends all of a migration's traffic back to its source at once:
// from planned (a cancelled plan), ramping or completed. A completed
// migration can be rolled back while it is its supplier's latest, or the
// newer one ended and returned the supplier to it; otherwise the newer one
// superseded it (ErrStale). One already rolled back or failed gives
// ErrState. It is audited and alerted; other replicas follow within one
// Interval.
func (m *Manager) Rollback(ctx context.Context, id, reason string) (*Migration, error) {
	if reason == "" {
		reason = "requested"
	}
	for tries := 0; ; tries++ {
		mg, err := m.load(ctx, id)
		if err != nil {
			return nil, err
		}
		from := mg.Status
		switch from {
		case StatusRolledBack, StatusFailed:
			return nil, fmt.Errorf("migrate: rollback %s: %w: it is already %s", id, ErrState, from)
		case StatusCompleted:
			c, err := m.loadClaim(ctx, mg.Supplier)
			if err != nil {
				return nil, err
			}
			if c.ID != id {
				// A newer migration took over, unless it ended and returned
				// the supplier to this one's target.
				newer, err := m.load(ctx, c.ID)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return nil, err
				}
				if newer == nil || newer.Status.Active() || newer.Status == StatusCompleted || newer.Base != id {
					return nil, fmt.Errorf("migrate: rollback %s: %w: %s superseded it", id, ErrStale, c.ID)
				}
			}
		}
		now := m.o.Now()
		msg := fmt.Sprintf("rolled back from %s at stage %d of %d: all traffic on %s: %s",
			from, mg.Stage+1, len(mg.Stages), mg.From, reason)
		mg.Status, mg.FinishedAt = StatusRolledBack, now
		mg.event(now, EventRolledBack, msg)
		ok, err := m.save(ctx, mg)
		if err != nil {
			return nil, err
		}
		if !ok {
			if tries == casTries {
				return nil, fmt.Errorf("migrate: rollback %s: %w", id, ErrConflict)
			}
			continue
		}
		m.audit(zapcore.WarnLevel, "migration rolled back", mg, zap.String("from_status", string(from)), zap.String("why", reason))
		m.o.Alert(AlertRolledBack, mg.Supplier, fmt.Sprintf("migration %s of %s %s", id, mg.Supplier, msg))
		m.rebuild(ctx)
		return mg.clone(), nil
	}
}

// Get returns a migration, read from the store, or an error wrapping
// ErrNotFound.
func (m *Manager) Get(ctx context.Context, id string) (*Migration, error) {
	return m.load(ctx, id)
}

// List returns every migration, read from the store, the newest first.
func (m *Manager) List(ctx context.Context) ([]*Migration, error) {
	migs, err := m.listMigrations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Migration, 0, len(migs))
	for _, mg := range migs {
		out = append(out, mg)
	}
	slices.SortFunc(out, func(a, b *Migration) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Switch moves supplier to the target at once, as a completed migration
// with the reason given (such as "quota_exhausted"), after probing the
// target; scenario 1. It is idempotent: while the supplier's migration is
// completed on a system that covers to (the same mode, and the provider
// and key reference where to names them), it returns that one. A planned
// or ramping migration owns its supplier: the switch neither completes,
// starts nor advances it, whatever its target, but is recorded on it as
// deferred (DeferredSwitch, audited, Options.Deferral) and applies when it
// ends with the supplier elsewhere than to; the error wraps ErrDeferred.
// It refuses a supplier already on the target by its configuration
// (ErrNoChange) and a failed probe (ErrProbeFailed), which it remembers for
// Options.SwitchBackoff. Concurrent calls for one supplier share one
// attempt. It is audited and alerted. It does I/O: call it off the request
// path.
func (m *Manager) Switch(ctx context.Context, supplier string, to Target, reason string) (*Migration, error) {
	if supplier == "" {
		return nil, fmt.Errorf("migrate: switch: %w: no supplier", ErrInvalid)
	}
	if err := to.validate("target"); err != nil {
		return nil, fmt.Errorf("migrate: switch %s: %w", supplier, err)
	}
	if mg := m.switched(supplier, to); mg != nil {
		return mg, nil
	}
	if owner := m.pendingOwner(supplier); owner != nil {
		return nil, deferredError(supplier, owner)
	}
	m.switchMu.Lock()
	if f := m.flights[supplier]; f != nil {
		m.switchMu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("migrate: switch %s: %w", supplier, ctx.Err())
		}
		if f.err == nil && f.mig.To.covers(to) {
			return f.mig.clone(), nil
		}
		return m.Switch(ctx, supplier, to, reason)
	}
	if r, ok := m.refused[supplier]; ok && r.to == to && m.o.Now().Sub(r.at) < m.o.SwitchBackoff {
		m.switchMu.Unlock()
		return nil, r.err
	}
	f := &flight{done: make(chan struct{})}
	m.flights[supplier] = f
	m.switchMu.Unlock()

	f.mig, f.err = m.doSwitch(ctx, supplier, to, reason)

	m.switchMu.Lock()
	delete(m.flights, supplier)
	if errors.Is(f.err, ErrProbeFailed) {
		m.refused[supplier] = refusal{to: to, at: m.o.Now(), err: f.err}
	} else {
		delete(m.refused, supplier)
	}
	m.switchMu.Unlock()
	close(f.done)
	if f.err != nil {
		return nil, f.err
	}
	return f.mig.clone(), nil
}

// Exhausted moves a supplier whose platform quota ran out on provider to
// its own key there for good (Switch with reason quota_exhausted), in the
// background and once at a time per supplier; it never waits. Run waits
// for the switches under way when it ends.
func (m *Manager) Exhausted(supplier, provider string) {
	m.switchMu.Lock()
	if m.exhausting[supplier] {
		m.switchMu.Unlock()
		return
	}
	m.exhausting[supplier] = true
	m.background.Add(1)
	m.switchMu.Unlock()
	go func() {
		defer m.background.Done()
		defer func() {
			m.switchMu.Lock()
			delete(m.exhausting, supplier)
			m.switchMu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), exhaustedTimeout)
		defer cancel()
		mg, err := m.Switch(ctx, supplier, Target{Mode: billing.ModeClient, Provider: provider}, ReasonQuotaExhausted)
		if errors.Is(err, ErrDeferred) {
			m.o.Log.Debug("supplier's switch to its own key waits for its planned migration", zap.String("supplier", supplier),
				zap.Error(err))
			return
		}
		if err != nil && !errors.Is(err, ErrNoChange) {
			m.o.Log.Warn("supplier not switched to its own key", zap.String("supplier", supplier), zap.Error(err))
			return
		}
		if mg != nil {
			m.o.Log.Info("supplier switched to its own key for good", zap.String("supplier", supplier),
				zap.String("migration", mg.ID))
		}
	}()
}

// switched returns, from memory, the supplier's migration when it already
// completed on a system covering to.
func (m *Manager) switched(supplier string, to Target) *Migration {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.claims[supplier]
	if !ok {
		return nil
	}
	mg := m.migs[c.ID]
	if mg == nil || !mg.To.covers(to) || mg.Status != StatusCompleted {
		return nil
	}
	return mg.clone()
}

func (m *Manager) doSwitch(ctx context.Context, supplier string, to Target, reason string) (*Migration, error) {
	if reason == "" {
		reason = "switch"
	}
	for tries := 0; ; tries++ {
		if tries == casTries {
			return nil, fmt.Errorf("migrate: switch %s: %w", supplier, ErrConflict)
		}
		c, err := m.loadClaim(ctx, supplier)
		if err != nil {
			return nil, err
		}
		cur, err := m.current(ctx, supplier, c)
		if err != nil {
			return nil, err
		}
		now := m.o.Now()
		if mg := cur.active; mg != nil {
			// A planned migration owns the supplier: the switch waits for
			// it to end, and never completes or advances it.
			ok, err := m.deferOn(ctx, mg, to, reason, now)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			return nil, deferredError(supplier, mg)
		}
		if cur.routing != nil && cur.routing.To.covers(to) {
			return m.known(ctx, cur.routing), nil
		}
		if cur.from.covers(to) {
			return nil, fmt.Errorf("migrate: switch %s: %w: already on %s", supplier, ErrNoChange, cur.from)
		}
		if cur.from.Mode == "" {
			// The configuration is unknown: the switch still records where
			// the supplier goes; rolling it back hands it to its policy.
			cur.from = Target{Mode: otherMode(to.Mode)}
		}
		probe := m.probe(ctx, supplier, to)
		if !probe.OK {
			m.audit(zapcore.WarnLevel, "migration switch refused: target key probe failed", nil,
				zap.String("supplier", supplier), zap.Stringer("to", to), zap.String("reason", reason),
				zap.Int("probe_status", probe.Status), zap.String("probe_error", probe.Error))
			return nil, fmt.Errorf("migrate: switch %s: %w: %s", supplier, ErrProbeFailed, probeCause(probe))
		}
		msg := fmt.Sprintf("switched at once: all traffic on %s: %s", to, reason)
		mg := &Migration{
			Plan: Plan{Supplier: supplier, From: cur.from, To: to, Stages: []Stage{{Share: 1}},
				Probe: probe, Reason: reason, Base: cur.base, CreatedAt: now,
				Estimate: CostEstimate{BilledNow: cur.from.Mode.Payer(), BilledAfter: to.Mode.Payer()}},
			Status: StatusCompleted, StageStarted: now, FinishedAt: now,
		}
		if g, err := (Gates{}).withDefaults(); err == nil {
			mg.Gates = g
		}
		mg.event(now, EventSwitched, msg)
		err = m.create(ctx, mg, c)
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrActive) {
			continue // decide again on what the other writer left
		}
		if err != nil {
			return nil, err
		}
		m.switchDone(ctx, mg, msg, reason)
		return mg, nil
	}
}

// known returns mg, found in the store by an idempotent Switch, after
// refreshing this replica's view so that it routes by mg at once (another
// replica may have written it).
func (m *Manager) known(ctx context.Context, mg *Migration) *Migration {
	if err := m.Refresh(ctx); err != nil {
		m.o.Log.Warn("migrate: refreshing after a switch", zap.Error(err))
	}
	return mg
}

// switchDone audits and alerts a switch and routes by it.
func (m *Manager) switchDone(ctx context.Context, mg *Migration, msg, reason string) {
	m.audit(zapcore.WarnLevel, "supplier switched", mg, zap.String("why", reason))
	m.o.Alert(AlertSwitched, mg.Supplier, fmt.Sprintf("migration %s of %s %s", mg.ID, mg.Supplier, msg))
	m.rebuild(ctx)
}

// otherMode returns the mode that is not mode.
func otherMode(mode billing.Mode) billing.Mode {
	if mode == billing.ModeClient {
		return billing.ModePlatform
	}
	return billing.ModeClient
}

// currentState is where a supplier stands, from its claim.
type currentState struct {
	// active is its planned or ramping migration, if any.
	active *Migration
	// routing is the completed migration it is on, if any.
	routing *Migration
	// from is the system it is on, base the completed migration that put
	// it there ("" when its configuration did).
	from Target
	base string
}

// current works out where a supplier stands from its claim c.
func (m *Manager) current(ctx context.Context, supplier string, c claim) (currentState, error) {
	var cur currentState
	configured := func() Target {
		if m.o.Current != nil {
			return m.o.Current(supplier)
		}
		return Target{}
	}
	if c.ID == "" {
		cur.from = configured()
		return cur, nil
	}
	mg, err := m.load(ctx, c.ID)
	if errors.Is(err, ErrNotFound) {
		cur.from = configured()
		return cur, nil
	}
	if err != nil {
		return cur, err
	}
	switch {
	case mg.Status.Active():
		cur.active = mg
		cur.from, cur.base = mg.From, mg.Base
	case mg.Status == StatusCompleted:
		cur.routing = mg
		cur.from, cur.base = mg.To, mg.ID
	default: // rolled back or failed: back on its source
		cur.from, cur.base = mg.From, mg.Base
		if base, err := m.load(ctx, mg.Base); mg.Base == "" || err != nil || base.Status != StatusCompleted {
			cur.base = ""
			if t := configured(); t.Mode != "" {
				cur.from = t
			}
		} else {
			cur.routing = base
		}
	}
	return cur, nil
}

// probe runs Options.Probe within ProbeTimeout and stamps its time.
func (m *Manager) probe(ctx context.Context, supplier string, to Target) ProbeResult {
	ctx, cancel := context.WithTimeout(ctx, m.o.ProbeTimeout)
	defer cancel()
	r := m.o.Probe(ctx, supplier, to)
	if r.At.IsZero() {
		r.At = m.o.Now()
	}
	return r
}

func probeCause(r ProbeResult) string {
	switch {
	case r.Error != "" && r.Status != 0:
		return fmt.Sprintf("status %d: %s", r.Status, r.Error)
	case r.Error != "":
		return r.Error
	case r.Status != 0:
		return fmt.Sprintf("status %d", r.Status)
	}
	return "the key was not accepted"
}

// stageText describes a migration's current stage.
func stageText(mg *Migration) string {
	return fmt.Sprintf("stage %d of %d: %g%% on %s", mg.Stage+1, len(mg.Stages), mg.Stages[mg.Stage].Share*100, mg.To)
}

// newID returns "mig-" and 8 random hex digits.
func newID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "mig-" + hex.EncodeToString(b[:])
}

// audit writes one line to the audit trail and the operational log.
func (m *Manager) audit(level zapcore.Level, msg string, mg *Migration, fields ...zap.Field) {
	if mg != nil {
		fields = append([]zap.Field{zap.String("migration", mg.ID), zap.String("supplier", mg.Supplier),
			zap.Stringer("from", mg.From), zap.Stringer("to", mg.To), zap.String("status", string(mg.Status)),
			zap.Int("stage", mg.Stage+1), zap.Int("stages", len(mg.Stages)), zap.String("reason", mg.Reason)}, fields...)
	}
	fields = append(fields, zap.String("holder", m.o.Holder))
	m.o.Log.Log(level, msg, fields...)
	m.o.Audit.Log(level, msg, fields...)
}

// load reads a migration from the store.
func (m *Manager) load(ctx context.Context, id string) (*Migration, error) {
	if id == "" {
		return nil, fmt.Errorf("migrate: %w: empty id", ErrNotFound)
	}
	data, v, err := m.st.Get(ctx, bucketMigrations, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("migrate: %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: reading %s: %w", id, err)
	}
	return decodeMigration(id, data, v)
}

func decodeMigration(key string, data []byte, version int64) (*Migration, error) {
	mg := new(Migration)
	if err := json.Unmarshal(data, mg); err != nil {
		return nil, fmt.Errorf("migrate: decoding %s: %w", key, err)
	}
	if err := mg.check(); err != nil {
		return nil, fmt.Errorf("migrate: decoding %s: %w", key, err)
	}
	mg.version = version
	return mg, nil
}

// save writes mg if the stored document still has mg's version (absent
// when 0), and remembers it. It reports false when another write came
// first.
func (m *Manager) save(ctx context.Context, mg *Migration) (bool, error) {
	data, err := json.Marshal(mg)
	if err != nil {
		return false, fmt.Errorf("migrate: encoding %s: %w", mg.ID, err)
	}
	v, ok, err := m.st.CompareAndSwap(ctx, bucketMigrations, mg.ID, mg.version, data)
	if err != nil {
		return false, fmt.Errorf("migrate: writing %s: %w", mg.ID, err)
	}
	if !ok {
		return false, nil
	}
	mg.version = v
	m.mu.Lock()
	if old := m.migs[mg.ID]; old == nil || old.version < v {
		m.migs[mg.ID] = mg.clone()
	}
	m.gen++
	m.mu.Unlock()
	return true, nil
}

// forget drops a deleted migration from memory.
func (m *Manager) forget(id string) {
	m.mu.Lock()
	delete(m.migs, id)
	m.gen++
	m.mu.Unlock()
}

// loadClaim reads a supplier's claim; a missing one is the zero claim.
func (m *Manager) loadClaim(ctx context.Context, supplier string) (claim, error) {
	data, v, err := m.st.Get(ctx, bucketClaims, supplier)
	if errors.Is(err, store.ErrNotFound) {
		return claim{}, nil
	}
	if err != nil {
		return claim{}, fmt.Errorf("migrate: reading the claim of %s: %w", supplier, err)
	}
	var c claim
	if err := json.Unmarshal(data, &c); err != nil {
		return claim{}, fmt.Errorf("migrate: decoding the claim of %s: %w", supplier, err)
	}
	c.version = v
	return c, nil
}

// saveClaim points supplier's claim at id if it is still old. It reports
// false when another write came first.
func (m *Manager) saveClaim(ctx context.Context, supplier string, old claim, id string) (bool, error) {
	c := claim{ID: id, UpdatedAt: m.o.Now()}
	data, err := json.Marshal(c)
	if err != nil {
		return false, fmt.Errorf("migrate: encoding the claim of %s: %w", supplier, err)
	}
	v, ok, err := m.st.CompareAndSwap(ctx, bucketClaims, supplier, old.version, data)
	if err != nil {
		return false, fmt.Errorf("migrate: writing the claim of %s: %w", supplier, err)
	}
	if !ok {
		return false, nil
	}
	c.version = v
	m.mu.Lock()
	if prev, had := m.claims[supplier]; !had || prev.version < v {
		m.claims[supplier] = c
	}
	m.gen++
	m.mu.Unlock()
	return true, nil
}

// listMigrations reads every migration from the store; unreadable
// documents are logged and left out.
func (m *Manager) listMigrations(ctx context.Context) (map[string]*Migration, error) {
	docs, err := m.st.List(ctx, bucketMigrations)
	if err != nil {
		return nil, fmt.Errorf("migrate: listing migrations: %w", err)
	}
	migs := make(map[string]*Migration, len(docs))
	for _, d := range docs {
		mg, err := decodeMigration(d.Key, d.Value, d.Version)
		if err != nil {
			m.o.Log.Warn("migrate: ignoring an unreadable migration", zap.String("key", d.Key), zap.Error(err))
			continue
		}
		migs[mg.ID] = mg
	}
	return migs, nil
}

// Refresh reloads the migrations and claims from the store and rebuilds
// the routing, so that this replica follows changes other replicas made.
// Step calls it; call it once at startup to route before the first step.
func (m *Manager) Refresh(ctx context.Context) error {
	m.listMu.Lock()
	defer m.listMu.Unlock()
	m.mu.Lock()
	gen := m.gen
	m.mu.Unlock()
	migs, err := m.listMigrations(ctx)
	if err != nil {
		return err
	}
	docs, err := m.st.List(ctx, bucketClaims)
	if err != nil {
		return fmt.Errorf("migrate: listing claims: %w", err)
	}
	claims := make(map[string]claim, len(docs))
	for _, d := range docs {
		var c claim
		if err := json.Unmarshal(d.Value, &c); err != nil {
			m.o.Log.Warn("migrate: ignoring an unreadable claim", zap.String("supplier", d.Key), zap.Error(err))
			continue
		}
		c.version = d.Version
		claims[d.Key] = c
	}
	m.mu.Lock()
	// A local write since the lists began is newer than what they saw:
	// keep it, and take the store's state at the next refresh.
	if m.gen == gen {
		m.migs, m.claims = migs, claims
	}
	m.mu.Unlock()
	m.rebuild(ctx)
	return nil
}

// rebuild makes counters for ramping migrations (resuming this replica's
// stored counts), points them at the current stages, and swaps in a new
// routing table.
func (m *Manager) rebuild(ctx context.Context) {
	m.buildMu.Lock()
	defer m.buildMu.Unlock()

	type need struct {
		id     string
		stages int
	}
	var missing []need
	m.mu.Lock()
	for _, mg := range m.migs {
		if mg.Status == StatusRamping && m.live[mg.ID] == nil {
			missing = append(missing, need{mg.ID, len(mg.Stages)})
		}
	}
	m.mu.Unlock()
	fresh := make(map[string]*liveStats, len(missing))
	for _, n := range missing {
		doc, err := m.loadOwnStats(ctx, n.id)
		if err != nil {
			// Counting without the stored counts would overwrite them:
			// wait for the next rebuild.
			m.o.Log.Warn("migrate: not counting yet", zap.String("migration", n.id), zap.Error(err))
			continue
		}
		s := newLiveStats(n.id, n.stages)
		s.seed(doc)
		s.flushed = s.total()
		fresh[n.id] = s
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for id, s := range fresh {
		if m.live[id] == nil {
			m.live[id] = s
		}
	}
	t := &table{suppliers: make(map[string]*entry, len(m.claims)), live: make(map[string]*liveStats)}
	for id, s := range m.live {
		mg := m.migs[id]
		if mg == nil || mg.Status != StatusRamping || len(mg.Stages) != len(s.stages) {
			s.retired = true
			continue
		}
		s.retired = false
		s.cur.Store(int32(mg.Stage))
		t.live[id] = s
	}
	for supplier, c := range m.claims {
		mg := m.migs[c.ID]
		if mg == nil || mg.Supplier != supplier {
			continue
		}
		if e := routeOf(mg, m.migs); e != nil {
			t.suppliers[supplier] = e
		}
	}
	m.table.Store(t)
}
