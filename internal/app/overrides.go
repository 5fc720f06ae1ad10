package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/store"
)

// overridesBucket is the store bucket of supplier overrides.
const overridesBucket = "suppliers"

// Override is a supplier's settings changed at run time through the admin
// API, kept in the store so every replica applies them. Unset fields keep
// the config's value.
type Override struct {
	Mode                  *billing.Mode `json:"mode,omitempty"`
	Tier                  *string       `json:"tier,omitempty"`
	PreferredProvider     *string       `json:"preferred_provider,omitempty"`
	AllowPlatformFallback *bool         `json:"allow_platform_fallback,omitempty"`
}

// SupplierSettings is the document of GET /admin/suppliers/{id}.
type SupplierSettings struct {
	ID                    string       `json:"id"`
	Mode                  billing.Mode `json:"mode"`
	Tier                  string       `json:"tier,omitempty"`
	PreferredProvider     string       `json:"preferred_provider,omitempty"`
	AllowPlatformFallback bool         `json:"allow_platform_fallback"`
	Override              *Override    `json:"override,omitempty"`
}

// withOverrides returns base with the overrides applied to its supplier
// entries (adding entries for suppliers the config does not list).
func withOverrides(base *config.Config, ov map[string]Override) *config.Config {
	if len(ov) == 0 {
		return base
	}
	c := *base
	c.Suppliers.Entries = append([]config.Supplier(nil), base.Suppliers.Entries...)
	for id, o := range ov {
		i := -1
		for j := range c.Suppliers.Entries {
			if c.Suppliers.Entries[j].ID == id {
				i = j
			}
		}
		if i < 0 {
			c.Suppliers.Entries = append(c.Suppliers.Entries, config.Supplier{ID: id, Mode: c.Suppliers.DefaultMode})
			i = len(c.Suppliers.Entries) - 1
		}
		e := &c.Suppliers.Entries[i]
		if o.Mode != nil {
			e.Mode = *o.Mode
		}
		if o.Tier != nil {
			e.Tier = *o.Tier
		}
		if o.PreferredProvider != nil {
			e.PreferredProvider = *o.PreferredProvider
		}
		if o.AllowPlatformFallback != nil {
			e.AllowPlatformFallback = *o.AllowPlatformFallback
		}
	}
	return &c
}

// loadOverrides reads every override from the store.
func (a *App) loadOverrides(ctx context.Context) (map[string]Override, error) {
	docs, err := a.store.List(ctx, overridesBucket)
	if err != nil {
		return nil, err
	}
	ov := make(map[string]Override, len(docs))
	for _, d := range docs {
		var o Override
		if err := json.Unmarshal(d.Value, &o); err != nil {
			a.log.Warn("ignoring a supplier override that does not decode", zap.String("supplier", d.Key), zap.Error(err))
			continue
		}
		ov[d.Key] = o
	}
	return ov, nil
}

// applyOverrides recompiles the runtime when the stored overrides differ
// from the ones in force.
func (a *App) applyOverrides(ctx context.Context) error {
	ov, err := a.loadOverrides(ctx)
	if err != nil {
		return err
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	a.mu.RLock()
	same := reflect.DeepEqual(ov, a.overrides) || (len(ov) == 0 && len(a.overrides) == 0)
	a.mu.RUnlock()
	if same {
		return nil
	}
	if err := a.compile(a.base, ov); err != nil {
		return err
	}
	a.audit.Info("supplier overrides applied", zap.Int("suppliers", len(ov)))
	return nil
}

// watchOverrides follows the store's overrides, so that a change made on
// another replica applies here too.
func (a *App) watchOverrides(stop <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := a.applyOverrides(ctx); err != nil {
				a.log.Warn("supplier overrides not applied", zap.Error(err))
			}
			cancel()
		}
	}
}

func (a *App) adminGetSupplier(_ context.Context, c admin.Call) (int, any) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	st := SupplierSettings{ID: c.Param, Mode: a.cfg.Suppliers.DefaultMode, Tier: a.cfg.Suppliers.DefaultTier}
	if e, ok := a.cfg.Supplier(c.Param); ok {
		st.Mode, st.PreferredProvider, st.AllowPlatformFallback = e.Mode, e.PreferredProvider, e.AllowPlatformFallback
		if e.Tier != "" {
			st.Tier = e.Tier
		}
	}
	if o, ok := a.overrides[c.Param]; ok {
		st.Override = &o
	}
	return http.StatusOK, st
}

func (a *App) adminPutSupplier(ctx context.Context, c admin.Call) (int, any) {
	if !config.IsSupplierID(c.Param) {
		return http.StatusBadRequest, adminErr("invalid_supplier_id", "not a supplier ID")
	}
	var o Override
	dec := json.NewDecoder(bytes.NewReader(c.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return http.StatusBadRequest, adminErr("invalid_override", "the body must be a JSON object with mode, tier, preferred_provider or allow_platform_fallback: "+err.Error())
	}
	// Check the override against the config before storing it.
	a.mu.RLock()
	ov := make(map[string]Override, len(a.overrides)+1)
	for k, v := range a.overrides {
		ov[k] = v
	}
	base := a.base
	a.mu.RUnlock()
	ov[c.Param] = o
	if err := withOverrides(base, ov).Validate(); err != nil {
		return http.StatusBadRequest, adminErr("invalid_override", err.Error())
	}
	b, _ := json.Marshal(o)
	if _, err := a.store.Put(ctx, overridesBucket, c.Param, b); err != nil {
		return http.StatusBadGateway, adminErr("store_unavailable", err.Error())
	}
	if err := a.applyOverrides(ctx); err != nil {
		return http.StatusBadGateway, adminErr("not_applied", err.Error())
	}
	return a.adminGetSupplier(ctx, c)
}

func (a *App) adminDeleteSupplier(ctx context.Context, c admin.Call) (int, any) {
	if err := a.store.Delete(ctx, overridesBucket, c.Param); err != nil && !errors.Is(err, store.ErrNotFound) {
		return http.StatusBadGateway, adminErr("store_unavailable", err.Error())
	}
	if err := a.applyOverrides(ctx); err != nil {
		return http.StatusBadGateway, adminErr("not_applied", fmt.Sprint(err))
	}
	return a.adminGetSupplier(ctx, c)
}
