package admin_test

import (
	"net/http"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/admin"
)

// TestConsoleMount: /console and the paths under /console/ go to the
// console, without the admin token; nothing else does.
func TestConsoleMount(t *testing.T) {
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Console-Path", r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	with := admin.New(admin.Options{Console: console})
	without := admin.New(admin.Options{})
	tests := []struct {
		name   string
		s      *admin.Server
		path   string
		status int
	}{
		{"root", with, "/console", http.StatusTeapot},
		{"page", with, "/console/providers", http.StatusTeapot},
		{"deep", with, "/console/migrations/mig-1/rollback", http.StatusTeapot},
		{"lookalike", with, "/consoles", http.StatusNotFound},
		{"admin stays guarded", with, "/admin/status", http.StatusForbidden},
		{"no console", without, "/console/providers", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(http.MethodGet)
			ctx.Request.SetRequestURI(tt.path)
			tt.s.Handle(&ctx)
			if got := ctx.Response.StatusCode(); got != tt.status {
				t.Fatalf("GET %s: status %d, want %d", tt.path, got, tt.status)
			}
			if tt.status == http.StatusTeapot && string(ctx.Response.Header.Peek("X-Console-Path")) != tt.path {
				t.Errorf("the console saw path %q", ctx.Response.Header.Peek("X-Console-Path"))
			}
		})
	}
}
