package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/proxy"
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
	m, err := migrate.New(migrate.Options{Store: a.store, Probe: a.probeTarget, Prices: a.rt.Load().Prices, Current: locator{&a.rt}.CurrentTarget,
		Holder: a.holder, Log: a.log, Audit: a.audit, Alert: a.migrationAlert})
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
)

// CurrentSystem is the system a supplier pays with now: platform or
// client (a hybrid supplier's own key comes first).
func (l locator) CurrentSystem(supplier string) string {
	if l.rt.Load().Policy.Mode([]byte(supplier)) == policy.SourcePlatform {
		return policy.SourcePlatform
	}
	return policy.SourceClient
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
	case migrate.ModePlatform:
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

// migrationAlert sends a migration's event where operators watch alerts.
func (a *App) migrationAlert(kind, supplier, message string) {
	a.alerts.Notify(health.Alert{Source: health.SourceMigration, Target: kind, Supplier: supplier, Cause: message,
		At: time.Now()})
}

// migrations adapts the manager to the proxy.
type migrations struct {
	a        *App
	mu       sync.Mutex
	switches map[string]bool
}

var _ proxy.Migrations = (*migrations)(nil)

func (m *migrations) Route(supplier, user []byte, spread uint64) (string, string, bool, bool) {
	d, ok := m.a.migrations.Decide(supplier, user, spread)
	if !ok {
		return "", "", false, false
	}
	return d.Mode, d.ID, d.ToTarget, true
}

func (m *migrations) Observe(id string, toTarget bool, status int, latency time.Duration, costUSD float64) {
	m.a.migrations.Observe(id, toTarget, status, latency, costUSD)
}

// Exhausted moves a supplier whose platform quota ran out to its own key
// (scenario 1), in the background and once at a time per supplier.
func (m *migrations) Exhausted(supplier, providerName string) {
	m.mu.Lock()
	if m.switches[supplier] {
		m.mu.Unlock()
		return
	}
	m.switches[supplier] = true
	m.mu.Unlock()
	m.a.migrating.Add(1)
	go func() {
		defer m.a.migrating.Done()
		defer func() {
			m.mu.Lock()
			delete(m.switches, supplier)
			m.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		mig, err := m.a.migrations.Switch(ctx, supplier, migrate.Target{Mode: migrate.ModeClient, Provider: providerName},
			"quota_exhausted")
		if err != nil && !errors.Is(err, migrate.ErrNoChange) {
			m.a.log.Warn("supplier not switched to its own key", zap.String("supplier", supplier), zap.Error(err))
			return
		}
		if mig != nil {
			m.a.log.Info("supplier switched to its own key for good", zap.String("supplier", supplier),
				zap.String("migration", mig.ID))
		}
	}()
}
