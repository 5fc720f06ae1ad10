package admin

import (
	"fmt"
	"math"
	"strconv"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/migrate"
)

// Mode sources: what decides the key source of a supplier's requests.
const (
	// SourceConfig is the supplier's mode in the config file (or the
	// config's default mode).
	SourceConfig = "config"
	// SourceOverride is a run-time override (PUT /admin/suppliers/{id}).
	SourceOverride = "override"
	// SourceMigration is a migration, ramping or completed.
	SourceMigration = "migration"
	// SourceQuotaSwitch is a switch out of platform quota (a tier's
	// switch_to_client), recorded as a completed migration.
	SourceQuotaSwitch = "quota switch"
)

// MigrationRouter says how migrations route suppliers' requests, from the
// table the proxy routes by; *migrate.Manager is one.
type MigrationRouter interface {
	// Decide is the decision the proxy takes for a request.
	Decide(supplier, user []byte, spread uint64) (migrate.Decision, bool)
	// Routing is how the supplier's migration splits its requests.
	Routing(supplier string) (migrate.Routing, bool)
	// DeferredSwitch is the switch deferred on the supplier's migration.
	DeferredSwitch(supplier string) (string, *migrate.DeferredSwitch)
}

var _ MigrationRouter = (*migrate.Manager)(nil)

// EffectiveMode is the mode a supplier's requests are served with now,
// and why: the one routing uses, not only the config's. Explanation and
// SupplierSettings embed it, so both documents say it in the same fields.
type EffectiveMode struct {
	// Mode is the mode the requests are served with: a migration's system
	// when one routes the supplier (the target's while it ramps, unless a
	// user's requests stay on the source), else ConfiguredMode.
	Mode billing.Mode `json:"mode"`
	// ModeSource says what decides Mode: "config", "override",
	// "migration (mig-…, stage 2 of 3, 50%)" or "quota switch (mig-…)".
	ModeSource string `json:"mode_source"`
	// ConfiguredMode is the supplier's mode by its configuration and any
	// run-time override, which applies again once no migration routes it;
	// ConfiguredSource is "config" or "override".
	ConfiguredMode   billing.Mode `json:"configured_mode"`
	ConfiguredSource string       `json:"configured_mode_source"`
	// Migration is the migration that routes the supplier, if any.
	Migration *MigrationRoute `json:"migration,omitempty"`
	// DeferredSwitch is a quota switch deferred on the supplier's
	// migration (pending, or how it ended), if any.
	DeferredSwitch *DeferredSwitchView `json:"deferred_switch,omitempty"`
}

// MigrationRoute is how a migration routes a supplier's requests.
type MigrationRoute struct {
	// ID, Status, Stage (an index), Stages, Reason are the migration's;
	// Share is the fraction of requests its target serves now.
	ID     string         `json:"id"`
	Status migrate.Status `json:"status"`
	Stage  int            `json:"stage"`
	Stages int            `json:"stages"`
	Share  float64        `json:"share"`
	Reason string         `json:"reason,omitempty"`
	// From and To are the systems the requests split between (the same
	// outside a ramp).
	From migrate.Target `json:"from"`
	To   migrate.Target `json:"to"`
	// Path is the side the explained request takes, "target" or
	// "source"; DecidedBy says how: "migration" (all requests go there),
	// "user" (the conversation's hash, from ?user=) or "share" (each
	// request without a user by chance, Share of them to the target).
	Path      string `json:"path"`
	DecidedBy string `json:"decided_by"`
}

// DeferredSwitchView is a deferred quota switch and the migration it
// waits on.
type DeferredSwitchView struct {
	// Waits is the migration the switch was deferred on.
	Waits string `json:"waits_on"`
	migrate.DeferredSwitch
}

// effectiveMode works out the mode a request of supplier (with user, its
// "user" field, when known) is served with, from the runtime in force and
// the migrations' routing table, and the decision that routes it (nil
// when the supplier's policy does); routing is the supplier's split, when
// a migration routes it.
func effectiveMode(r *generation.Runtime, m MigrationRouter, supplier string, user []byte) (EffectiveMode, *migrate.Decision, *migrate.Routing) {
	em := EffectiveMode{ConfiguredMode: r.Policy.Mode([]byte(supplier)), ConfiguredSource: SourceConfig}
	if o, ok := r.Overrides[supplier]; ok && o.Mode != nil {
		em.ConfiguredSource = SourceOverride
	}
	em.Mode, em.ModeSource = em.ConfiguredMode, em.ConfiguredSource
	if m == nil {
		return em, nil, nil
	}
	if id, d := m.DeferredSwitch(supplier); d != nil {
		em.DeferredSwitch = &DeferredSwitchView{Waits: id, DeferredSwitch: *d}
	}
	routing, ok := m.Routing(supplier)
	if !ok {
		return em, nil, nil
	}
	d, decidedBy := routing.Target, "migration"
	if routing.Share < 1 {
		decidedBy = "share"
		if len(user) > 0 {
			decidedBy = "user"
			if got, ok := m.Decide([]byte(supplier), user, 0); ok {
				d = got
			}
		}
	}
	path := "target"
	if !d.ToTarget {
		path = "source"
	}
	t := routing.Target
	em.Mode, em.ModeSource = d.Mode, modeSource(t)
	em.Migration = &MigrationRoute{ID: t.ID, Status: t.Status, Stage: t.Stage, Stages: t.Stages, Share: routing.Share, Reason: t.Reason,
		From: target(routing.Source), To: target(t), Path: path, DecidedBy: decidedBy}
	return em, &d, &routing
}

// modeSource describes the migration decision d as a mode source.
func modeSource(d migrate.Decision) string {
	if d.Switched() {
		return fmt.Sprintf("%s (%s)", SourceQuotaSwitch, d.ID)
	}
	if d.Status == migrate.StatusRamping {
		return fmt.Sprintf("%s (%s, stage %d of %d, %s%%)", SourceMigration, d.ID, d.Stage+1, d.Stages,
			strconv.FormatFloat(math.Round(d.Share*1e4)/100, 'f', -1, 64))
	}
	return fmt.Sprintf("%s (%s, %s)", SourceMigration, d.ID, d.Status)
}

// target is the system of a decision.
func target(d migrate.Decision) migrate.Target {
	return migrate.Target{Mode: d.Mode, Provider: d.Provider, KeyRef: d.KeyRef}
}
