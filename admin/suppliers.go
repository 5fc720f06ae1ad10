package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/generation"
)

// SupplierSettings is the document of GET /admin/suppliers/{id}: the
// supplier's settings in force and the mode its requests are served with
// now, and why (a migration or a quota switch can differ from the
// configured mode).
type SupplierSettings struct {
	ID string `json:"id"`
	// EffectiveMode is the mode the requests are served with now, and why.
	EffectiveMode
	Tier                  string               `json:"tier,omitempty"`
	PreferredProvider     string               `json:"preferred_provider,omitempty"`
	AllowPlatformFallback bool                 `json:"allow_platform_fallback"`
	Override              *generation.Override `json:"override,omitempty"`
}

// OverrideWriter keeps supplier overrides where every replica reads them.
type OverrideWriter interface {
	// PutOverride stores a supplier's override, replacing its last one.
	PutOverride(ctx context.Context, supplier string, o generation.Override) error
	// DeleteOverride drops a supplier's override; none is no error.
	DeleteOverride(ctx context.Context, supplier string) error
}

// OverrideApplier rebuilds the runtime when the stored overrides differ
// from the ones in force.
type OverrideApplier interface {
	ApplyOverrides(ctx context.Context) error
}

// GetSupplier answers GET /admin/suppliers/{id}: the supplier's settings
// in force, its override, if any, and the mode its requests are served
// with now and why, from m, the migrations' routing table.
func GetSupplier(rt RuntimeLoader, m MigrationRouter) HandlerFunc {
	return func(_ context.Context, c Call) (int, any) {
		return http.StatusOK, supplierSettings(rt.Load(), m, c.Param)
	}
}

func supplierSettings(r *generation.Runtime, m MigrationRouter, id string) SupplierSettings {
	cfg := r.Config
	st := SupplierSettings{ID: id, Tier: cfg.Suppliers.DefaultTier}
	st.EffectiveMode, _, _ = effectiveMode(r, m, id, nil)
	if e, ok := cfg.Supplier(id); ok {
		st.PreferredProvider, st.AllowPlatformFallback = e.PreferredProvider, e.AllowPlatformFallback
		if e.Tier != "" {
			st.Tier = e.Tier
		}
	}
	if o, ok := r.Overrides[id]; ok {
		st.Override = &o
	}
	return st
}

// PutSupplier answers PUT /admin/suppliers/{id}: the override in the body
// is checked against the config, stored and applied.
func PutSupplier(rt RuntimeLoader, w OverrideWriter, ap OverrideApplier, m MigrationRouter) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		if !config.IsSupplierID(c.Param) {
			return fail(http.StatusBadRequest, "invalid_supplier_id", "not a supplier ID")
		}
		var o generation.Override
		dec := json.NewDecoder(bytes.NewReader(c.Body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return fail(http.StatusBadRequest, "invalid_override", "the body must be a JSON object with mode, tier, preferred_provider or allow_platform_fallback: "+err.Error())
		}
		// Check the override against the config before storing it.
		r := rt.Load()
		ov := make(map[string]generation.Override, len(r.Overrides)+1)
		for k, v := range r.Overrides {
			ov[k] = v
		}
		ov[c.Param] = o
		if err := generation.WithOverrides(r.Base, ov).Validate(); err != nil {
			return fail(http.StatusBadRequest, "invalid_override", err.Error())
		}
		if err := w.PutOverride(ctx, c.Param, o); err != nil {
			return fail(http.StatusBadGateway, "store_unavailable", err.Error())
		}
		if err := ap.ApplyOverrides(ctx); err != nil {
			return fail(http.StatusBadGateway, "not_applied", err.Error())
		}
		return http.StatusOK, supplierSettings(rt.Load(), m, c.Param)
	}
}

// DeleteSupplier answers DELETE /admin/suppliers/{id}: the supplier's
// override is dropped and the config's settings apply again.
func DeleteSupplier(rt RuntimeLoader, w OverrideWriter, ap OverrideApplier, m MigrationRouter) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		if err := w.DeleteOverride(ctx, c.Param); err != nil {
			return fail(http.StatusBadGateway, "store_unavailable", err.Error())
		}
		if err := ap.ApplyOverrides(ctx); err != nil {
			return fail(http.StatusBadGateway, "not_applied", fmt.Sprint(err))
		}
		return http.StatusOK, supplierSettings(rt.Load(), m, c.Param)
	}
}
