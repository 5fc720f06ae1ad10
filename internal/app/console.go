package app

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"sync/atomic"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/console"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
)

// The app's resources are what the console needs.
var (
	_ console.SupplierReader   = consoleSuppliers{}
	_ console.ComparisonReader = (*compare.Comparisons)(nil)
)

// buildConsole makes the console of the admin listener over the app's
// resources. Operators sign in with their admin tokens, under their names
// and roles; without any, no one can.
func (a *App) buildConsole(operators *admin.Operators) (*console.Server, error) {
	statusOf := admin.StatusOf(a, &a.rt, a.health)
	return console.New(console.Options{
		Authenticate: operatorAuthenticator(operators),
		Status: console.StatusFunc(func() admin.Status {
			st, _ := statusOf().(admin.Status)
			return st
		}),
		Suppliers:   consoleSuppliers{rt: &a.rt, keys: a.keys, health: a.health, migrations: a.migrations},
		Migrations:  a.migrations,
		Rollback:    a.migrations,
		Comparisons: a.compare,
		Usage:       a.store,
		Audit:       a.audit,
	})
}

// operatorAuthenticator signs an operator in by its admin token, under
// its name and role; nil when no operator is configured.
func operatorAuthenticator(operators *admin.Operators) func(string) (name, role string, ok bool) {
	if operators == nil || operators.Len() == 0 {
		return nil
	}
	return func(token string) (string, string, bool) {
		op, ok := operators.Lookup(token)
		if !ok {
			return "", "", false
		}
		return op.Name, op.Role.String(), true
	}
}

// consoleSuppliers answers the console's suppliers pages with the same
// handlers as /admin/suppliers/{id} and /admin/explain.
type consoleSuppliers struct {
	rt         *atomic.Pointer[generation.Runtime]
	keys       *keys.SupplierKeys // nil when no supplier uses its own keys
	health     *health.Registry
	migrations *migrate.Manager
}

// Suppliers lists the suppliers the config or an override names, and
// those whose keys are held.
func (s consoleSuppliers) Suppliers() []string {
	var ids []string
	for _, e := range s.rt.Load().Config.Suppliers.Entries {
		ids = append(ids, e.ID)
	}
	for _, k := range s.Keys() {
		ids = append(ids, k.Supplier)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Supplier returns a supplier's settings in force.
func (s consoleSuppliers) Supplier(id string) admin.SupplierSettings {
	_, doc := admin.GetSupplier(s.rt, s.migrations)(context.Background(), admin.Call{Param: id})
	st, _ := doc.(admin.SupplierSettings)
	return st
}

// Keys lists the suppliers' keys held, as fingerprints.
func (s consoleSuppliers) Keys() []keys.Status {
	if s.keys == nil {
		return nil
	}
	return s.keys.Snapshot()
}

// Explain plans a request of the supplier under the runtime in force.
func (s consoleSuppliers) Explain(ctx context.Context, supplier, workflow, model string) (admin.Explanation, error) {
	q := url.Values{"supplier": {supplier}}
	if workflow != "" {
		q.Set("workflow", workflow)
	}
	if model != "" {
		q.Set("model", model)
	}
	_, doc := admin.Explain(s.rt, s.health, s.migrations)(ctx, admin.Call{Query: q})
	if ex, ok := doc.(admin.Explanation); ok {
		return ex, nil
	}
	return admin.Explanation{}, errors.New("explain: " + errorText(doc))
}

// errorText is the message of an admin error document.
func errorText(doc any) string {
	if m, ok := doc.(map[string]any); ok {
		if e, ok := m["error"].(map[string]string); ok {
			return e["message"]
		}
	}
	return "no explanation"
}
