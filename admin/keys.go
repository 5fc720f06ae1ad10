package admin

import (
	"context"
	"net/http"

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

// KeyLister lists the suppliers' keys held, as fingerprints; *keys.SupplierKeys
// is one.
type KeyLister interface {
	Snapshot() []keys.Status
}

// KeyRefresher fetches a supplier's keys again; *keys.SupplierKeys is one.
type KeyRefresher interface {
	KeyLister
	Refresh(ctx context.Context, supplier string) error
}

// ListKeys answers GET /admin/keys: the platform keys of the runtime in
// force and the suppliers' keys held by sk (nil when no supplier uses its
// own keys).
func ListKeys(rt RuntimeLoader, sk KeyLister) HandlerFunc {
	return func(context.Context, Call) (int, any) {
		st := KeysStatus{Platform: []PlatformKeys{}, Suppliers: []keys.Status{}}
		for _, p := range rt.Load().Providers {
			pk := PlatformKeys{Provider: p.Name(), Fingerprints: []string{}}
			if pool := p.Platform(); pool != nil {
				pk.Fingerprints = pool.Fingerprints()
			}
			st.Platform = append(st.Platform, pk)
		}
		if sk != nil {
			st.Suppliers = append(st.Suppliers, sk.Snapshot()...)
		}
		return http.StatusOK, st
	}
}

// RefreshKeys answers POST /admin/suppliers/{id}/keys/refresh; sk nil
// means no supplier uses its own keys.
func RefreshKeys(sk KeyRefresher) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		supplier := c.Param
		if sk == nil {
			return fail(http.StatusNotFound, "no_supplier_keys", "no supplier uses its own keys in this configuration")
		}
		err := sk.Refresh(ctx, supplier)
		held := []keys.Status{}
		for _, s := range sk.Snapshot() {
			if s.Supplier == supplier {
				held = append(held, s)
			}
		}
		out := map[string]any{"supplier": supplier, "keys": held}
		if err != nil {
			out["error"] = err.Error()
			return http.StatusBadGateway, out
		}
		return http.StatusOK, out
	}
}
