package app

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/wedsync/veil/compare"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/cache"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/store"
)

// The app's resources are what the admin handlers need.
var (
	_ admin.RuntimeLoader       = (*atomic.Pointer[generation.Runtime])(nil)
	_ admin.ProcessReporter     = (*App)(nil)
	_ admin.HealthSnapshotter   = (*health.Registry)(nil)
	_ admin.KeyRefresher        = (*keys.SupplierKeys)(nil)
	_ admin.UsageQuerier        = store.Store(nil)
	_ admin.CachePurger         = (*cache.Answers)(nil)
	_ admin.MigrationPlanner    = (*migrate.Manager)(nil)
	_ admin.MigrationReader     = (*migrate.Manager)(nil)
	_ admin.MigrationStarter    = (*migrate.Manager)(nil)
	_ admin.MigrationRollbacker = (*migrate.Manager)(nil)
	_ admin.MigrationValidator  = (*migrate.Manager)(nil)
	_ admin.MigrationRouter     = (*migrate.Manager)(nil)
	_ admin.ComparisonStarter   = (*compare.Comparisons)(nil)
	_ admin.ComparisonLister    = (*compare.Comparisons)(nil)
	_ admin.ComparisonReporter  = (*compare.Comparisons)(nil)
	_ admin.ComparisonStopper   = (*compare.Comparisons)(nil)
)

// adminEndpoints wires the /admin routes to the app's resources.
func (a *App) adminEndpoints() []admin.Endpoint {
	var supplierKeys admin.KeyRefresher // nil unless a supplier uses its own keys
	if a.keys != nil {
		supplierKeys = a.keys
	}
	var purger admin.CachePurger // nil when the cache is off
	if a.cache != nil {
		purger = a.cache
	}
	overrides := overrideStore{a.store, a.log}
	where := locator{&a.rt}
	m, c := a.migrations, a.compare
	// GETs are every viewer's; the operational POSTs an operator's; the
	// supplier overrides, which change who pays, an admin's
	// (docs/operations.md has the table).
	const op = admin.RoleOperator
	return []admin.Endpoint{
		{Method: http.MethodPost, Path: "/admin/migrations", Role: op, Handle: admin.PlanMigration(m, where)},
		{Method: http.MethodGet, Path: "/admin/migrations", Handle: admin.ListMigrations(m)},
		{Method: http.MethodGet, Path: "/admin/migrations/{}", Handle: admin.GetMigration(m)},
		{Method: http.MethodPost, Path: "/admin/migrations/{}/start", Role: op, Handle: admin.StartMigration(m)},
		{Method: http.MethodPost, Path: "/admin/migrations/{}/rollback", Role: op, Handle: admin.RollbackMigration(m)},
		{Method: http.MethodGet, Path: "/admin/migrations/{}/validate", Handle: admin.ValidateMigration(m)},
		{Method: http.MethodPost, Path: "/admin/comparisons", Role: op, Handle: admin.StartComparison(c, where, a.audit)},
		{Method: http.MethodGet, Path: "/admin/comparisons", Handle: admin.ListComparisons(c)},
		{Method: http.MethodGet, Path: "/admin/comparisons/{}", Handle: admin.ReportComparison(c)},
		{Method: http.MethodPost, Path: "/admin/comparisons/{}/stop", Role: op, Handle: admin.StopComparison(c, a.audit)},
		{Method: http.MethodGet, Path: "/admin/keys", Handle: admin.ListKeys(&a.rt, supplierKeys)},
		{Method: http.MethodPost, Path: "/admin/suppliers/{}/keys/refresh", Role: op, Handle: admin.RefreshKeys(supplierKeys)},
		{Method: http.MethodPost, Path: "/admin/keys/validate", Role: op, Handle: admin.ValidateKey(a, a.audit)},
		{Method: http.MethodGet, Path: "/admin/usage", Handle: admin.QueryUsage(a.store)},
		{Method: http.MethodGet, Path: "/admin/capacity", Handle: admin.Capacity(&a.rt, a.health, a.store)},
		{Method: http.MethodGet, Path: "/admin/explain", Handle: admin.ExplainWith(&a.rt, a.explainInputs(), m)},
		{Method: http.MethodGet, Path: "/admin/suppliers/{}", Handle: admin.GetSupplier(&a.rt, m)},
		{Method: http.MethodPut, Path: "/admin/suppliers/{}", Role: admin.RoleAdmin, Handle: admin.PutSupplier(&a.rt, overrides, a, m)},
		{Method: http.MethodDelete, Path: "/admin/suppliers/{}", Role: admin.RoleAdmin, Handle: admin.DeleteSupplier(&a.rt, overrides, a, m)},
		{Method: http.MethodPost, Path: "/admin/cache/purge", Role: op, Handle: admin.PurgeCache(purger, a.audit)},
	}
}

// buildOperators resolves the configured admin tokens (admin.token as the
// operator "admin", and admin.tokens) into the operators they name.
func (a *App) buildOperators() (*admin.Operators, error) {
	var tokens []admin.OperatorToken
	for _, t := range a.cfg.Admin.Operators() {
		role, err := admin.ParseRole(t.Role)
		if err != nil {
			return nil, fmt.Errorf("admin token %s: %w", t.Name, err)
		}
		secret, err := a.resolve(t.Token)
		if err != nil {
			return nil, fmt.Errorf("admin token %s: %w", t.Name, err)
		}
		tokens = append(tokens, admin.OperatorToken{Name: t.Name, Role: role, Token: secret})
	}
	return admin.NewOperators(tokens)
}
