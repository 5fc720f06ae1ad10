package app

import (
	"context"
	"net/http"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/keys"
)

// KeysStatus is the document of GET /admin/keys: fingerprints, never keys.
type KeysStatus struct {
	Platform  []PlatformKeys `json:"platform"`
	Suppliers []keys.Status  `json:"suppliers"`
}

// PlatformKeys lists one provider's platform key fingerprints.
type PlatformKeys struct {
	Provider     string   `json:"provider"`
	Fingerprints []string `json:"fingerprints"`
}

func (a *App) adminEndpoints() []admin.Endpoint {
	return []admin.Endpoint{
		{Method: http.MethodGet, Path: "/admin/keys", Handle: a.adminKeys},
		{Method: http.MethodPost, Path: "/admin/suppliers/{}/keys/refresh", Handle: a.adminRefreshKeys},
	}
}

func (a *App) adminKeys(context.Context, string, []byte) (int, any) {
	st := KeysStatus{Platform: []PlatformKeys{}, Suppliers: []keys.Status{}}
	for _, p := range a.providers {
		pk := PlatformKeys{Provider: p.Name(), Fingerprints: []string{}}
		if pool := p.Platform(); pool != nil {
			pk.Fingerprints = pool.Fingerprints()
		}
		st.Platform = append(st.Platform, pk)
	}
	if a.keys != nil {
		st.Suppliers = append(st.Suppliers, a.keys.Snapshot()...)
	}
	return http.StatusOK, st
}

func (a *App) adminRefreshKeys(ctx context.Context, supplier string, _ []byte) (int, any) {
	if a.keys == nil {
		return http.StatusNotFound, map[string]any{"error": map[string]string{"code": "no_supplier_keys",
			"message": "no supplier uses its own keys in this configuration"}}
	}
	err := a.keys.Refresh(ctx, supplier)
	out := map[string]any{"supplier": supplier, "keys": a.supplierKeys(supplier)}
	if err != nil {
		out["error"] = err.Error()
		return http.StatusBadGateway, out
	}
	return http.StatusOK, out
}

func (a *App) supplierKeys(supplier string) []keys.Status {
	out := []keys.Status{}
	for _, s := range a.keys.Snapshot() {
		if s.Supplier == supplier {
			out = append(out, s)
		}
	}
	return out
}
