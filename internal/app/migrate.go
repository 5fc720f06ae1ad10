package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/provider"
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
	m, err := migrate.New(migrate.Options{Store: a.store, Probe: a.probeTarget, Prices: a.prices, Current: a.currentTarget,
		Holder: a.holder, Log: a.log, Audit: a.audit, Alert: a.alerts.Migration})
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

// currentTarget is the system a supplier pays with now, on the provider
// its calls go to first.
func (a *App) currentTarget(supplier string) migrate.Target {
	t := migrate.Target{Mode: a.currentSystem(supplier)}
	if p := a.providerFor(""); p != nil {
		t.Provider = p.Name()
	}
	return t
}

// providerFor is the named provider, or the default one.
func (a *App) providerFor(name string) *provider.Provider {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, p := range a.providers {
		if p.Name() == name {
			return p
		}
	}
	if name == "" {
		return a.policy.DefaultProvider()
	}
	return nil
}

// probeTarget validates the key a migration would move a supplier to, live
// and without spending tokens: GET /v1/models with it.
func (a *App) probeTarget(ctx context.Context, supplier string, to migrate.Target) migrate.ProbeResult {
	r := migrate.ProbeResult{At: time.Now()}
	p := a.providerFor(to.Provider)
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

// PlanBody is the body of POST /admin/migrations.
type PlanBody struct {
	Supplier string `json:"supplier"`
	To       struct {
		Mode     billing.Mode `json:"mode"`
		Provider string       `json:"provider"`
		KeyRef   string       `json:"key_ref"`
	} `json:"to"`
	Stages []struct {
		Share float64 `json:"share"`
		Dwell string  `json:"dwell"`
	} `json:"stages"`
	Gates  migrate.Gates `json:"gates"`
	Days   int           `json:"days"`
	Reason string        `json:"reason"`
}

func (a *App) adminPlanMigration(ctx context.Context, c admin.Call) (int, any) {
	var b PlanBody
	if err := json.Unmarshal(c.Body, &b); err != nil {
		return adminError(http.StatusBadRequest, "invalid_json", "the body must be a JSON object: "+err.Error())
	}
	req := migrate.PlanRequest{Supplier: b.Supplier, To: migrate.Target{Mode: b.To.Mode, Provider: b.To.Provider, KeyRef: b.To.KeyRef},
		Gates: b.Gates, Days: b.Days, Reason: b.Reason}
	if req.To.Mode == "" && req.Supplier != "" {
		req.To.Mode = billing.ModeClient
		if a.currentSystem(req.Supplier) == billing.ModeClient {
			req.To.Mode = billing.ModePlatform
		}
	}
	if req.To.Provider == "" && req.Supplier != "" {
		req.To.Provider = a.currentTarget(req.Supplier).Provider // the same provider, the other key
	}
	for _, st := range b.Stages {
		d, err := time.ParseDuration(st.Dwell)
		if err != nil && st.Dwell != "" {
			return adminError(http.StatusBadRequest, "invalid_dwell", "dwell must be a duration such as 10m: "+err.Error())
		}
		req.Stages = append(req.Stages, migrate.Stage{Share: st.Share, Dwell: d})
	}
	m, err := a.migrations.Plan(ctx, req)
	if err != nil {
		return migrationError(err)
	}
	return http.StatusCreated, m
}

func (a *App) adminListMigrations(ctx context.Context, _ admin.Call) (int, any) {
	l, err := a.migrations.List(ctx)
	if err != nil {
		return migrationError(err)
	}
	return http.StatusOK, l
}

func (a *App) adminGetMigration(ctx context.Context, c admin.Call) (int, any) {
	m, err := a.migrations.Get(ctx, c.Param)
	if err != nil {
		return migrationError(err)
	}
	return http.StatusOK, m
}

func (a *App) adminStartMigration(ctx context.Context, c admin.Call) (int, any) {
	m, err := a.migrations.Start(ctx, c.Param)
	if err != nil {
		return migrationError(err)
	}
	return http.StatusOK, m
}

func (a *App) adminRollbackMigration(ctx context.Context, c admin.Call) (int, any) {
	var b struct {
		Reason string `json:"reason"`
	}
	if len(c.Body) > 0 {
		if err := json.Unmarshal(c.Body, &b); err != nil {
			return adminError(http.StatusBadRequest, "invalid_json", "the body must be a JSON object: "+err.Error())
		}
	}
	if b.Reason == "" {
		b.Reason = "rolled back through the admin API"
	}
	m, err := a.migrations.Rollback(ctx, c.Param, b.Reason)
	if err != nil {
		return migrationError(err)
	}
	return http.StatusOK, m
}

func (a *App) adminValidateMigration(ctx context.Context, c admin.Call) (int, any) {
	v, err := a.migrations.Validate(ctx, c.Param)
	if err != nil {
		return migrationError(err)
	}
	return http.StatusOK, v
}

// migrationError maps a migration error to its status.
func migrationError(err error) (int, any) {
	switch {
	case errors.Is(err, migrate.ErrNotFound):
		return adminError(http.StatusNotFound, "migration_not_found", err.Error())
	case errors.Is(err, migrate.ErrInvalid), errors.Is(err, migrate.ErrProbeFailed):
		return adminError(http.StatusBadRequest, "invalid_migration", err.Error())
	case errors.Is(err, migrate.ErrActive), errors.Is(err, migrate.ErrState), errors.Is(err, migrate.ErrConflict),
		errors.Is(err, migrate.ErrNoChange), errors.Is(err, migrate.ErrStale):
		return adminError(http.StatusConflict, "migration_conflict", err.Error())
	}
	return adminError(http.StatusServiceUnavailable, "store_unavailable", err.Error())
}

// migrationEndpoints are the admin endpoints of migrations and comparisons.
func (a *App) migrationEndpoints() []admin.Endpoint {
	return []admin.Endpoint{
		{Method: http.MethodPost, Path: "/admin/migrations", Handle: a.adminPlanMigration},
		{Method: http.MethodGet, Path: "/admin/migrations", Handle: a.adminListMigrations},
		{Method: http.MethodGet, Path: "/admin/migrations/{}", Handle: a.adminGetMigration},
		{Method: http.MethodPost, Path: "/admin/migrations/{}/start", Handle: a.adminStartMigration},
		{Method: http.MethodPost, Path: "/admin/migrations/{}/rollback", Handle: a.adminRollbackMigration},
		{Method: http.MethodGet, Path: "/admin/migrations/{}/validate", Handle: a.adminValidateMigration},
		{Method: http.MethodPost, Path: "/admin/comparisons", Handle: a.adminStartComparison},
		{Method: http.MethodGet, Path: "/admin/comparisons", Handle: a.adminListComparisons},
		{Method: http.MethodGet, Path: "/admin/comparisons/{}", Handle: a.adminCompareReport},
		{Method: http.MethodPost, Path: "/admin/comparisons/{}/stop", Handle: a.adminStopComparison},
	}
}
