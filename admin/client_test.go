package admin_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wedsync/veil/admin"
)

// TestClientCall covers the admin client's answers: a document decoded, an
// error envelope turned into an APIError with its code, a bare error page,
// and the token and JSON body sent.
func TestClientCall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer adm-token" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"a valid admin token is required"}}`)
			return
		}
		switch r.URL.Path {
		case "/admin/migrations":
			b, _ := io.ReadAll(r.Body)
			if r.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(b), `"supplier":"bella"`) {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"id":"mig-1"}`)
		case "/admin/migrations/mig-1/rollback":
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":{"code":"migration_state","message":"it is ramping"}}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "upstream down\n")
		}
	}))
	defer srv.Close()
	c := admin.Client{Base: srv.URL, Token: "adm-token"}
	ctx := context.Background()

	var doc struct{ ID string }
	if err := c.Call(ctx, http.MethodPost, "/admin/migrations", map[string]string{"supplier": "bella"}, &doc); err != nil || doc.ID != "mig-1" {
		t.Fatalf("created: %v, %+v", err, doc)
	}
	cases := []struct {
		name, path, token string
		status            int
		code, message     string
	}{
		{"error envelope", "/admin/migrations/mig-1/rollback", "adm-token", 409, "migration_state", "it is ramping"},
		{"wrong token", "/admin/migrations", "other", 401, "unauthorized", "a valid admin token is required"},
		{"not JSON", "/admin/elsewhere", "adm-token", 502, "", "upstream down"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := admin.Client{Base: srv.URL, Token: tc.token}.Call(ctx, http.MethodPost, tc.path, nil, nil)
			var ae *admin.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an APIError", err)
			}
			if ae.Status != tc.status || ae.Code != tc.code || !strings.Contains(ae.Message, tc.message) {
				t.Errorf("got %+v", ae)
			}
		})
	}
	if err := (admin.Client{Base: "http://127.0.0.1:1"}).Call(ctx, http.MethodGet, "/admin/status", nil, nil); err == nil ||
		!strings.Contains(err.Error(), "admin listener") {
		t.Errorf("a dead listener: %v", err)
	}
}
