package migrate

import (
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/internal/mix"
	"github.com/wedsync/veil/policy"
)

// Decision is which system serves one request of a supplier that a
// migration routes, and why: the migration deciding and where it stands.
// It is what Decide returns and what Apply turns into a policy request,
// for the proxy and for the admin explanation alike.
type Decision struct {
	// ID is the migration whose state decides: the ramping or completed
	// one, or, while a newer one is planned or after it rolled back, the
	// completed migration that put the supplier on its current system.
	ID string `json:"migration"`
	// Status, Stage and Share are that migration's; Stages is how many
	// stages it has and Reason why it was made, such as quota_exhausted
	// for a switch out of platform quota.
	Status Status  `json:"status"`
	Stage  int     `json:"stage"`
	Stages int     `json:"stages"`
	Share  float64 `json:"share"`
	Reason string  `json:"reason,omitempty"`
	// Mode is the chosen system, platform or client, whose key source
	// serves the request (policy.Request.Source).
	Mode billing.Mode `json:"mode"`
	// Provider and KeyRef are the chosen system's, empty when it names
	// none.
	Provider string `json:"provider,omitempty"`
	KeyRef   string `json:"key_ref,omitempty"`
	// ToTarget is true when the migration's target serves the request; it
	// is the path to give Observe.
	ToTarget bool `json:"to_target"`
}

// Switched reports whether the deciding migration is a switch out of
// platform quota (Exhausted) rather than a planned migration.
func (d Decision) Switched() bool { return d.Reason == ReasonQuotaExhausted }

// Apply sets the key sources of req, a request of the supplier d was
// decided for, as the proxy plans it: every attempt on d's system and, for
// a request sent to the migration's target, the source's key after them
// (so that a broken target costs no request) and the target's provider
// first for the models it lists or maps.
func (d Decision) Apply(req *policy.Request) {
	req.Source = d.Mode.First()
	if !d.ToTarget {
		return
	}
	req.Fallback = billing.PlatformKey
	if req.Source == billing.PlatformKey {
		req.Fallback = billing.ClientKey
	}
	req.Provider = d.Provider
}

// Routing is how a supplier's migration splits its requests: Share of
// them, by the hash Decide describes, go to Target, the rest to Source.
// Outside a ramp Share is 1 and Source equals Target.
type Routing struct {
	Share  float64  `json:"share"`
	Source Decision `json:"source"`
	Target Decision `json:"target"`
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
	source    Decision
	target    Decision
}

// shareThreshold returns the hash threshold below which a request goes to
// the target, for share in [0, 1).
func shareThreshold(share float64) uint64 {
	if share <= 0 {
		return 0
	}
	return uint64(share*(1<<53)) << 11
}

// Decide returns the decision for a request of supplier, and false when
// the supplier has no migration that routes it (its policy decides); see
// Route for how a ramp splits requests. It takes no lock and does not
// allocate.
func (m *Manager) Decide(supplier, user []byte, spread uint64) (Decision, bool) {
	t := m.table.Load()
	if t == nil {
		return Decision{}, false
	}
	e := t.suppliers[string(supplier)]
	if e == nil {
		return Decision{}, false
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
	d, ok := m.Decide(supplier, user, spread)
	if !ok {
		return "", "", false, false
	}
	return d.Mode.First(), d.ID, d.ToTarget, true
}

// Routing returns how supplier's migration splits its requests, from the
// same table Decide reads, and false when no migration routes the
// supplier.
func (m *Manager) Routing(supplier string) (Routing, bool) {
	t := m.table.Load()
	if t == nil {
		return Routing{}, false
	}
	e := t.suppliers[supplier]
	if e == nil {
		return Routing{}, false
	}
	r := Routing{Share: 1, Source: e.source, Target: e.target}
	if e.split && !e.all {
		r.Share = e.target.Share
	}
	return r, true
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
func decisionOf(mg *Migration, t Target, toTarget bool) Decision {
	return Decision{ID: mg.ID, Status: mg.Status, Stage: mg.Stage, Stages: len(mg.Stages), Share: mg.Share(),
		Reason: mg.Reason, Mode: t.Mode, Provider: t.Provider, KeyRef: t.KeyRef, ToTarget: toTarget}
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
