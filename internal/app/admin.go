package app

import (
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
	return []admin.Endpoint{
		{Method: http.MethodPost, Path: "/admin/migrations", Handle: admin.PlanMigration(m, where)},
		{Method: http.MethodGet, Path: "/admin/migrations", Handle: admin.ListMigrations(m)},
		{Method: http.MethodGet, Path: "/admin/migrations/{}", Handle: admin.GetMigration(m)},
		{Method: http.MethodPost, Path: "/admin/migrations/{}/start", Handle: admin.StartMigration(m)},
		{Method: http.MethodPost, Path: "/admin/migrations/{}/rollback", Handle: admin.RollbackMigration(m)},
		{Method: http.MethodGet, Path: "/admin/migrations/{}/validate", Handle: admin.ValidateMigration(m)},
		{Method: http.MethodPost, Path: "/admin/comparisons", Handle: admin.StartComparison(c, where, a.audit)},
		{Method: http.MethodGet, Path: "/admin/comparisons", Handle: admin.ListComparisons(c)},
		{Method: http.MethodGet, Path: "/admin/comparisons/{}", Handle: admin.ReportComparison(c)},
		{Method: http.MethodPost, Path: "/admin/comparisons/{}/stop", Handle: admin.StopComparison(c, a.audit)},
		{Method: http.MethodGet, Path: "/admin/keys", Handle: admin.ListKeys(&a.rt, supplierKeys)},
		{Method: http.MethodPost, Path: "/admin/suppliers/{}/keys/refresh", Handle: admin.RefreshKeys(supplierKeys)},
		{Method: http.MethodGet, Path: "/admin/usage", Handle: admin.QueryUsage(a.store)},
		{Method: http.MethodGet, Path: "/admin/explain", Handle: admin.Explain(&a.rt, a.health)},
		{Method: http.MethodGet, Path: "/admin/suppliers/{}", Handle: admin.GetSupplier(&a.rt)},
		{Method: http.MethodPut, Path: "/admin/suppliers/{}", Handle: admin.PutSupplier(&a.rt, overrides, a)},
		{Method: http.MethodDelete, Path: "/admin/suppliers/{}", Handle: admin.DeleteSupplier(&a.rt, overrides, a)},
		{Method: http.MethodPost, Path: "/admin/cache/purge", Handle: admin.PurgeCache(purger, a.audit)},
	}
}
