package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/keys"
)

func TestRoleAllows(t *testing.T) {
	tests := []struct {
		role, least admin.Role
		want        bool
	}{
		{admin.RoleViewer, admin.RoleViewer, true},
		{admin.RoleViewer, admin.RoleOperator, false},
		{admin.RoleViewer, admin.RoleAdmin, false},
		{admin.RoleOperator, admin.RoleViewer, true},
		{admin.RoleOperator, admin.RoleOperator, true},
		{admin.RoleOperator, admin.RoleAdmin, false},
		{admin.RoleAdmin, admin.RoleAdmin, true},
		{admin.RoleAdmin, admin.RoleViewer, true},
		{0, admin.RoleViewer, false},
		{admin.RoleAdmin, 0, false},
		{admin.Role(9), admin.RoleViewer, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v needs %v", tt.role, tt.least), func(t *testing.T) {
			if got := tt.role.Allows(tt.least); got != tt.want {
				t.Errorf("Allows = %v, want %v", got, tt.want)
			}
		})
	}
	for _, name := range []string{"viewer", "operator", "admin"} {
		r, err := admin.ParseRole(name)
		if err != nil || r.String() != name {
			t.Errorf("ParseRole(%q) = %v, %v", name, r, err)
		}
	}
	if _, err := admin.ParseRole("root"); err == nil {
		t.Error("ParseRole accepted root")
	}
}

func TestNewOperators(t *testing.T) {
	secret := keys.NewSecret
	tests := []struct {
		name    string
		tokens  []admin.OperatorToken
		wantErr string
	}{
		{name: "three operators", tokens: []admin.OperatorToken{
			{Name: "alice", Role: admin.RoleViewer, Token: secret("tok-alice")},
			{Name: "bob", Role: admin.RoleOperator, Token: secret("tok-bob")},
		}},
		{name: "no name", tokens: []admin.OperatorToken{{Role: admin.RoleViewer, Token: secret("t")}}, wantErr: "no name"},
		{name: "name twice", tokens: []admin.OperatorToken{
			{Name: "alice", Role: admin.RoleViewer, Token: secret("t1")},
			{Name: "alice", Role: admin.RoleAdmin, Token: secret("t2")},
		}, wantErr: "used twice"},
		{name: "unknown role", tokens: []admin.OperatorToken{{Name: "alice", Role: 7, Token: secret("t")}}, wantErr: "not a role"},
		{name: "empty token", tokens: []admin.OperatorToken{{Name: "alice", Role: admin.RoleViewer}}, wantErr: "empty"},
		{name: "shared token", tokens: []admin.OperatorToken{
			{Name: "alice", Role: admin.RoleViewer, Token: secret("same")},
			{Name: "bob", Role: admin.RoleAdmin, Token: secret("same")},
		}, wantErr: `the same token as "alice"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, err := admin.NewOperators(tt.tokens)
			if tt.wantErr == "" {
				if err != nil || ops.Len() != len(tt.tokens) {
					t.Fatalf("NewOperators = %d operators, %v", ops.Len(), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewOperators error %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}

func TestOperatorsLookup(t *testing.T) {
	ops, err := admin.NewOperators([]admin.OperatorToken{
		{Name: "alice", Role: admin.RoleViewer, Token: keys.NewSecret("tok-alice-0123456789")},
		{Name: "bob", Role: admin.RoleOperator, Token: keys.NewSecret("tok-bob-0123456789")},
		{Name: "carol", Role: admin.RoleAdmin, Token: keys.NewSecret("tok-carol-0123456789")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		token string
		want  admin.Operator
		ok    bool
	}{
		{"tok-alice-0123456789", admin.Operator{Name: "alice", Role: admin.RoleViewer}, true},
		{"tok-bob-0123456789", admin.Operator{Name: "bob", Role: admin.RoleOperator}, true},
		{"tok-carol-0123456789", admin.Operator{Name: "carol", Role: admin.RoleAdmin}, true},
		{"tok-carol-012345678", admin.Operator{}, false},
		{"", admin.Operator{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			got, ok := ops.Lookup(tt.token)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Lookup = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	var none *admin.Operators
	if _, ok := none.Lookup("tok-alice-0123456789"); ok {
		t.Error("a nil Operators knew a token")
	}
}

// adminServer serves an admin.Server built from o on a loopback port and
// returns its base URL.
func adminServer(t *testing.T, o admin.Options) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: admin.New(o).Handle}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); wg.Wait() })
	return "http://" + ln.Addr().String()
}

// TestServerRoles: each token's operator may call what its role allows
// and is refused the rest with 403 forbidden_role; a wrong token is 401;
// the handler learns who called; every action and refusal is an audit
// line that names the operator and never holds a token.
func TestServerRoles(t *testing.T) {
	tokens := map[string]string{"alice": "tok-alice-viewer-0123456789", "bob": "tok-bob-operator-0123456789", "carol": "tok-carol-admin-0123456789"}
	ops, err := admin.NewOperators([]admin.OperatorToken{
		{Name: "alice", Role: admin.RoleViewer, Token: keys.NewSecret(tokens["alice"])},
		{Name: "bob", Role: admin.RoleOperator, Token: keys.NewSecret(tokens["bob"])},
		{Name: "carol", Role: admin.RoleAdmin, Token: keys.NewSecret(tokens["carol"])},
	})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	var mu sync.Mutex
	var called []admin.Operator
	handle := func(_ context.Context, c admin.Call) (int, any) {
		mu.Lock()
		called = append(called, c.Operator)
		mu.Unlock()
		return http.StatusOK, map[string]string{"param": c.Param}
	}
	base := adminServer(t, admin.Options{Operators: ops, Log: zap.New(core), Status: func() any { return map[string]string{} },
		Endpoints: []admin.Endpoint{
			{Method: http.MethodGet, Path: "/admin/migrations", Handle: handle},
			{Method: http.MethodPost, Path: "/admin/migrations/{}/rollback", Role: admin.RoleOperator, Handle: handle},
			{Method: http.MethodPut, Path: "/admin/suppliers/{}", Handle: handle},
		}})

	tests := []struct {
		name, token, method, path string
		wantStatus                int
		wantCode                  string
		wantMsg                   string
	}{
		{"viewer reads", tokens["alice"], http.MethodGet, "/admin/migrations", 200, "", ""},
		{"viewer reads the status", tokens["alice"], http.MethodGet, "/admin/status", 200, "", ""},
		{"viewer cannot roll back", tokens["alice"], http.MethodPost, "/admin/migrations/mig-1/rollback", 403, "forbidden_role",
			"needs the operator role; alice has the viewer role"},
		{"operator rolls back", tokens["bob"], http.MethodPost, "/admin/migrations/mig-1/rollback", 200, "", ""},
		{"operator cannot override by default", tokens["bob"], http.MethodPut, "/admin/suppliers/bella", 403, "forbidden_role",
			"needs the admin role"},
		{"admin overrides", tokens["carol"], http.MethodPut, "/admin/suppliers/bella", 200, "", ""},
		{"wrong token", "tok-mallory-0123456789", http.MethodPost, "/admin/migrations/mig-1/rollback", 401, "invalid_admin_token", ""},
		{"no token", "", http.MethodGet, "/admin/migrations", 401, "invalid_admin_token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.method != http.MethodGet {
				body = struct{}{}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := admin.Client{Base: base, Token: tt.token}.Call(ctx, tt.method, tt.path, body, nil)
			if tt.wantStatus == 200 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ae *admin.APIError
			if !errors.As(err, &ae) || ae.Status != tt.wantStatus || ae.Code != tt.wantCode || !strings.Contains(ae.Message, tt.wantMsg) {
				t.Fatalf("error %v, want %d %s with %q", err, tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
		})
	}

	mu.Lock()
	got := fmt.Sprint(called)
	mu.Unlock()
	if want := "[{alice viewer} {bob operator} {carol admin}]"; got != want {
		t.Errorf("handlers saw operators %s, want %s", got, want)
	}
	fields := func(e observer.LoggedEntry) map[string]any { return e.ContextMap() }
	var actions, refusals, failures []map[string]any
	for _, e := range logs.All() {
		for _, tok := range tokens {
			if strings.Contains(fmt.Sprint(e.Message, fields(e)), tok) {
				t.Errorf("audit line %q %v holds a token", e.Message, fields(e))
			}
		}
		switch e.Message {
		case "admin action":
			actions = append(actions, fields(e))
		case "admin call refused":
			refusals = append(refusals, fields(e))
		case "admin authentication failed":
			failures = append(failures, fields(e))
		}
	}
	if len(actions) != 2 || actions[0]["operator"] != "bob" || actions[0]["role"] != "operator" || actions[1]["operator"] != "carol" ||
		actions[0]["remote"] != "127.0.0.1" || actions[0]["path"] != "/admin/migrations/mig-1/rollback" {
		t.Errorf("action lines %v, want bob's rollback and carol's override", actions)
	}
	if len(refusals) != 2 || refusals[0]["operator"] != "alice" || refusals[0]["role"] != "viewer" || refusals[0]["needs"] != "operator" ||
		refusals[1]["operator"] != "bob" || refusals[1]["needs"] != "admin" {
		t.Errorf("refusal lines %v, want alice's and bob's", refusals)
	}
	if len(failures) != 2 || failures[0]["reason"] != "wrong token" || failures[0]["remote"] != "127.0.0.1" {
		t.Errorf("authentication failure lines %v, want a wrong and a missing token", failures)
	}
}

// TestServerLegacyToken: the single admin token is the operator "admin",
// who may do everything; without any token /admin is off.
func TestServerLegacyToken(t *testing.T) {
	var who admin.Operator
	eps := []admin.Endpoint{{Method: http.MethodPut, Path: "/admin/suppliers/{}", Handle: func(_ context.Context, c admin.Call) (int, any) {
		who = c.Operator
		return http.StatusOK, struct{}{}
	}}}
	base := adminServer(t, admin.Options{Token: keys.NewSecret("legacy-admin-token-0123"), Endpoints: eps})
	ctx := context.Background()
	if err := (admin.Client{Base: base, Token: "legacy-admin-token-0123"}).Call(ctx, http.MethodPut, "/admin/suppliers/bella", struct{}{}, nil); err != nil {
		t.Fatal(err)
	}
	if who != (admin.Operator{Name: admin.LegacyOperator, Role: admin.RoleAdmin}) {
		t.Errorf("operator %+v, want admin with the admin role", who)
	}
	off := adminServer(t, admin.Options{Endpoints: eps})
	var ae *admin.APIError
	err := admin.Client{Base: off, Token: "legacy-admin-token-0123"}.Call(ctx, http.MethodPut, "/admin/suppliers/bella", struct{}{}, nil)
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != "admin_disabled" {
		t.Fatalf("error %v, want 403 admin_disabled", err)
	}
}
