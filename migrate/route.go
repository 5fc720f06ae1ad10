package migrate

import (
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/internal/mix"
)

// decision is which system serves one request of a supplier with a
// migration.
type decision struct {
	// ID is the migration whose state decides: the ramping or completed
	// one, or, while a newer one is planned or after it rolled back, the
	// completed migration that put the supplier on its current system.
	ID string
	// Status, Stage and Share are that migration's.
	Status Status
	Stage  int
	Share  float64
	// Mode is the chosen system, platform or client, whose key source
	// serves the request (policy.Request.Source).
	Mode billing.Mode
	// Provider and KeyRef are the chosen system's, empty when it names
	// none.
	Provider string
	KeyRef   string
	// ToTarget is true when the migration's target serves the request; it
	// is the path to give Observe.
	ToTarget bool
}

// table is the immutable routing state the hot path reads through an
// atomic pointer; it is rebuilt on every change.
type table struct {
	suppliers map[string]*entry
	live      map[string]*liveStats
}

// entry is a supplier's routing.
type entry struct {
	// split is true while ramping: the target takes requests whose hash
	// is below threshold, or all of them when all is set.
	split     bool
	all       bool
	threshold uint64
	source    decision
	target    decision
}

// shareThreshold returns the hash threshold below which a request goes to
// the target, for share in [0, 1).
func shareThreshold(share float64) uint64 {
	if share <= 0 {
		return 0
	}
	return uint64(share*(1<<53)) << 11
}

// decide returns the decision for a request of supplier, and false when
// the supplier has no migration that routes it; see Route.
func (m *Manager) decide(supplier, user []byte, spread uint64) (decision, bool) {
	t := m.table.Load()
	if t == nil {
		return decision{}, false
	}
	e := t.suppliers[string(supplier)]
	if e == nil {
		return decision{}, false
	}
	if !e.split || e.all {
		return e.target, true
	}
	var h uint64
	if len(user) > 0 {
		h = userHash(supplier, user)
	} else {
		h = mix.Mix64(spread + mix.Gamma)
	}
	if h < e.threshold {
		return e.target, true
	}
	return e.source, true
}

// Route returns the key source that serves a request of supplier, the
// migration that decides it and whether that is the migration's target
// (the path to give Observe), or ok false when the supplier has no
// migration routing it (its policy decides). While a migration ramps, the
// target serves a request with probability the stage's share: decided by
// a hash of supplier and user when user (the request's "user" field) is
// not empty, so that one conversation stays on one system, and by spread
// (any per-request number, such as a counter or a random value)
// otherwise. Because a request goes to the target when its hash is below
// the share, a user on the target at 10% is still on it at 50%. A
// completed migration always says target; a planned one, or one rolled
// back or failed, routes nothing of its own: the completed migration it
// was planned from, if any, routes instead. It takes no lock and does not
// allocate.
func (m *Manager) Route(supplier, user []byte, spread uint64) (source billing.KeySource, id string, toTarget, ok bool) {
	d, ok := m.decide(supplier, user, spread)
	if !ok {
		return "", "", false, false
	}
	return d.Mode.First(), d.ID, d.ToTarget, true
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// userHash hashes supplier and user (FNV-1a with a separator, then
// mixed), for conversations that stay on one path.
func userHash(supplier, user []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range supplier {
		h = (h ^ uint64(c)) * fnvPrime
	}
	h = (h ^ 0xff) * fnvPrime // 0xff is never in UTF-8: "ab"+"c" differs from "a"+"bc"
	for _, c := range user {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return mix.Mix64(h + mix.Gamma)
}

// decisionOf returns the decision for t on behalf of migration mg.
func decisionOf(mg *Migration, t Target, toTarget bool) decision {
	return decision{ID: mg.ID, Status: mg.Status, Stage: mg.Stage, Share: mg.Share(),
		Mode: t.Mode, Provider: t.Provider, KeyRef: t.KeyRef, ToTarget: toTarget}
}

// routeOf returns the routing of a supplier whose claim names mg, or nil
// when the supplier's policy decides. migs holds every known migration.
func routeOf(mg *Migration, migs map[string]*Migration) *entry {
	switch mg.Status {
	case StatusRamping:
		share := mg.Stages[mg.Stage].Share
		return &entry{split: true, all: share >= 1, threshold: shareThreshold(share),
			source: decisionOf(mg, mg.From, false), target: decisionOf(mg, mg.To, true)}
	case StatusCompleted:
		d := decisionOf(mg, mg.To, true)
		return &entry{source: d, target: d}
	}
	// Planned, rolled back or failed: the supplier stays on, or returns to,
	// what it was on before mg. That is its policy's choice, unless a
	// completed migration (mg's base) had moved it.
	base := migs[mg.Base]
	if mg.Base == "" || base == nil || base.Status != StatusCompleted {
		return nil
	}
	d := decisionOf(base, base.To, true)
	return &entry{source: d, target: d}
}
