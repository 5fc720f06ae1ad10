package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/forecast"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
)

// holderName is this replica's name in leases: the host and a random
// suffix, so that two processes on one host differ.
func holderName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// buildMigrations makes the migration manager over the store, with live
// key probes, the price table and the supplier's current system.
func (a *App) buildMigrations() error {
	where := locator{&a.rt}
	m, err := migrate.New(migrate.Options{Store: a.store, Probe: a.probeTarget, Prices: where, Current: where.CurrentTarget,
		Serving: where.Serving, Season: a.planSeason,
		Holder: a.holder, Log: a.log, Audit: a.audit, Alert: a.alerts.Migration,
		Deferral: a.metrics.SwitchDeferral})
	if err != nil {
		return err
	}
	a.migrations = m
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Store.Timeout*4)
	defer cancel()
	if err := m.Refresh(ctx); err != nil {
		a.log.Warn("migrations not loaded at start; they are followed once the store answers", zap.Error(err))
	}
	return nil
}

// runMigrations drives migrations and comparisons until the app stops.
func (a *App) runMigrations() {
	ctx, cancel := context.WithCancel(context.Background())
	a.stopMigrations = cancel
	a.migrating.Add(2)
	go func() { defer a.migrating.Done(); a.migrations.Run(ctx) }()
	go func() { defer a.migrating.Done(); a.compare.Run(ctx) }()
}

// locator says where a supplier's calls go under the runtime in force.
type locator struct {
	rt *atomic.Pointer[generation.Runtime]
}

var (
	_ admin.TargetLocator = locator{}
	_ admin.SystemLocator = locator{}
	_ migrate.Pricer      = locator{}
)

// CurrentSystem is the system a supplier pays with now: platform or
// client (a hybrid supplier's own key comes first).
func (l locator) CurrentSystem(supplier string) billing.Mode {
	if l.rt.Load().Policy.Mode([]byte(supplier)) == billing.ModePlatform {
		return billing.ModePlatform
	}
	return billing.ModeClient
}

// CurrentTarget is the system a supplier pays with now, on the provider
// its calls go to first.
func (l locator) CurrentTarget(supplier string) migrate.Target {
	t := migrate.Target{Mode: l.CurrentSystem(supplier)}
	if p := l.rt.Load().Provider(""); p != nil {
		t.Provider = p.Name()
	}
	return t
}

// CostMicros prices tokens with the price table in force, so that a plan
// made after a reload uses the prices it loaded.
func (l locator) CostMicros(provider, model string, at time.Time, prompt, cached, completion int64) (int64, bool) {
	p := l.rt.Load().Prices
	if p == nil {
		return 0, false
	}
	return p.CostMicros(provider, model, at, prompt, cached, completion)
}

// Serving is the provider and model that would serve a supplier's call
// for model in workflow on system to, planned by the policy in force as
// the proxy plans a request a migration sends to its target.
func (l locator) Serving(supplier, workflow, model string, to migrate.Target) (string, string, bool) {
	return migrate.Served(l.rt.Load().Policy, supplier, workflow, model, to)
}

// probeTarget validates the key a migration would move a supplier to, live
// and without spending tokens: GET /v1/models with it.
func (a *App) probeTarget(ctx context.Context, supplier string, to migrate.Target) migrate.ProbeResult {
	r := migrate.ProbeResult{At: time.Now()}
	p := a.rt.Load().Provider(to.Provider)
	if p == nil {
		r.Error = "provider " + to.Provider + " is not configured"
		return r
	}
	var key *keys.Key
	switch to.Mode {
	case billing.ModePlatform:
		if p.Platform() == nil {
			r.Error = "provider " + p.Name() + " has no platform key"
			return r
		}
		key = p.Platform().Next(time.Now())
	default:
		if a.keys == nil {
			r.Error = "no supplier keys are configured (Vault or supplier key references)"
			return r
		}
		k, err := a.keys.Get(ctx, supplier, p.Name())
		if err != nil {
			r.Error = err.Error()
			return r
		}
		key = k
	}
	r.Fingerprint = key.Fingerprint()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	status, err := p.ProbeKey(key, deadline)
	r.Latency, r.Status = time.Since(r.At), status
	switch {
	case err != nil:
		r.Error = err.Error()
	case status != http.StatusOK:
		r.Error = "the provider answered " + http.StatusText(status)
	default:
		r.OK = true
	}
	return r
}

// planSeason is the wedding peak a migration plan projects with: the
// config's season named peak (as a comparison's projection uses), else
// March to October.
func (a *App) planSeason() (string, func(time.Time) bool) {
	if s, ok := a.rt.Load().Config.PeakSeason(); ok {
		return fmt.Sprintf("%s, %s to %s", s.Name, s.From, s.To), s.Active
	}
	return "March to October", forecast.PeakMarchToOctober
}
