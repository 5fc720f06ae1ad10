package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/keys"
)

// Every run of 4 characters of these keys holds a letter beyond f, so
// that none can appear in a hexadecimal fingerprint or hash by chance.
const (
	opsPlatformKey = "sk-platform-Gx7WqhLv9TnJRbpYc3Mz"
	opsBellaKey    = "sk-bella-Zq9xW2vLp7TnJRbXYcKMdW"
	opsBrokeKey    = "sk-broke-Wq9xZ2vLp7TnJRbXYcKMnP"
	opsWrongKey    = "sk-wrong-Hq9xZ2vLp7TnJRbXYcKMzQ"
)

// operatorsApp starts a veil whose admin listener has a viewer (alice),
// an operator (bob) and an admin (carol), in front of a fake provider that
// knows the platform key and bella's own key and has one key out of quota.
// It returns the app, its admin client for a token, and what the
// operational and audit logs got.
func operatorsApp(t *testing.T) (a *App, as func(token string) admin.Client, logs, audit *observer.ObservedLogs, tokens map[string]string) {
	t.Helper()
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{opsPlatformKey, opsBellaKey}, NoQuotaKeys: []string{opsBrokeKey}})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	tokens = map[string]string{"alice": "veil-alice-Hx7WqhLv9TnJRbpYc3Mz", "bob": "veil-bob-Jq9xW2vLp7TnJRbXYcKMdW",
		"carol": "veil-carol-Kq9xZ2vLp7TnJRbXYcKMnP"}
	env := testEnv{"K": opsPlatformKey, "T": "veil-caller-test", "BELLA_KEY": opsBellaKey,
		"ALICE": tokens["alice"], "BOB": tokens["bob"], "CAROL": tokens["carol"]}
	yaml := `listen:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
limits:
  disable_probes: true
admin:
  tokens:
    - {name: alice, role: viewer, token: env://ALICE}
    - {name: bob, role: operator, token: env://BOB}
    - {name: carol, role: admin, token: env://CAROL}
providers:
  - {name: openai, type: openai, base_url: "` + up.URL() + `", api_key: env://K}
callers:
  - {name: app, token: env://T, suppliers: ["*"]}
suppliers:
  entries:
    - id: bella-photography
      mode: platform
      keys:
        openai: env://BELLA_KEY
usage:
  sinks: []
`
	logCore, logs := observer.New(zapcore.DebugLevel)
	auditCore, audit := observer.New(zapcore.DebugLevel)
	a, err := New(env.parse(t, yaml), Options{Log: zap.New(logCore), Audit: zap.New(auditCore), Version: "test",
		Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: env.lookup}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	as = func(token string) admin.Client { return admin.Client{Base: "http://" + a.AdminAddr(), Token: token} }
	return a, as, logs, audit, tokens
}

// call sends one admin call and returns the admin API's status and code
// (200 and "" for a 2xx answer).
func call(t *testing.T, c admin.Client, method, path string, body, out any) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := c.Call(ctx, method, path, body, out)
	var ae *admin.APIError
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.As(err, &ae):
		return ae.Status, ae.Code
	}
	t.Fatalf("%s %s: %v", method, path, err)
	return 0, ""
}

// logText is every entry of logs, message and fields, one a line.
func logText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintln(&b, e.Message, e.ContextMap())
	}
	return b.String()
}

// TestOperatorRoles: on a running veil, a viewer cannot roll a migration
// back (403 forbidden_role) and an operator can; an operator cannot
// change who pays (a supplier override is an admin's); a wrong token is
// 401; and the audit log names who did or was refused what.
func TestOperatorRoles(t *testing.T) {
	_, as, _, audit, tokens := operatorsApp(t)
	alice, bob, carol := as(tokens["alice"]), as(tokens["bob"]), as(tokens["carol"])

	var m struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if code, c := call(t, bob, http.MethodPost, "/admin/migrations", map[string]any{"supplier": "bella-photography", "reason": "own key"}, &m); code != http.StatusOK {
		t.Fatalf("bob's plan: %d %s", code, c)
	}
	rollback := "/admin/migrations/" + m.ID + "/rollback"
	steps := []struct {
		name         string
		client       admin.Client
		method, path string
		body         any
		wantStatus   int
		wantCode     string
	}{
		{"a viewer lists migrations", alice, http.MethodGet, "/admin/migrations", nil, 200, ""},
		{"a viewer cannot roll back", alice, http.MethodPost, rollback, struct{}{}, 403, "forbidden_role"},
		{"a wrong token cannot roll back", as("veil-mallory-Zq9xW2vLp7TnJRbXYc"), http.MethodPost, rollback, struct{}{}, 401, "invalid_admin_token"},
		{"an operator rolls back", bob, http.MethodPost, rollback, struct{}{}, 200, ""},
		{"an operator cannot change who pays", bob, http.MethodPut, "/admin/suppliers/bella-photography", map[string]string{"mode": "client"}, 403, "forbidden_role"},
		{"an admin changes who pays", carol, http.MethodPut, "/admin/suppliers/bella-photography", map[string]string{"mode": "client"}, 200, ""},
		{"a viewer cannot purge the cache", alice, http.MethodPost, "/admin/cache/purge", struct{}{}, 403, "forbidden_role"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if code, c := call(t, st.client, st.method, st.path, st.body, nil); code != st.wantStatus || c != st.wantCode {
				t.Fatalf("%s %s: %d %s, want %d %s", st.method, st.path, code, c, st.wantStatus, st.wantCode)
			}
		})
	}
	var got struct {
		Status string `json:"status"`
		Events []struct {
			Message string `json:"message"`
		} `json:"events"`
	}
	call(t, alice, http.MethodGet, "/admin/migrations/"+m.ID, nil, &got)
	if got.Status != "rolled_back" || !strings.Contains(fmt.Sprint(got.Events), "by bob") {
		t.Errorf("migration %+v, want rolled back by bob", got)
	}

	text := logText(audit)
	for name, tok := range tokens {
		if strings.Contains(text, tok) {
			t.Errorf("the audit log holds %s's token", name)
		}
	}
	want := []struct{ msg, operator, role string }{
		{"admin action", "bob", "operator"},       // the plan and the rollback
		{"admin call refused", "alice", "viewer"}, // the rollback and the purge
		{"admin call refused", "bob", "operator"}, // the override
		{"admin action", "carol", "admin"},        // the override
	}
	for _, w := range want {
		found := false
		for _, e := range audit.FilterMessage(w.msg).All() {
			f := e.ContextMap()
			found = found || f["operator"] == w.operator && f["role"] == w.role && f["remote"] == "127.0.0.1"
		}
		if !found {
			t.Errorf("no %q line for %s (%s) with the remote address:\n%s", w.msg, w.operator, w.role, text)
		}
	}
	if audit.FilterMessage("admin authentication failed").Len() != 1 {
		t.Errorf("want one authentication failure:\n%s", text)
	}
}

// TestAdminValidateKey: POST /admin/keys/validate tells a valid key from a
// wrong one and from one out of quota, for an operator and not a viewer,
// and the key shows in no answer and no log line: only its fingerprint.
func TestAdminValidateKey(t *testing.T) {
	_, as, logs, audit, tokens := operatorsApp(t)
	bob := as(tokens["bob"])
	tests := []struct {
		key         string
		wantVerdict admin.Verdict
		wantStatus  int
	}{
		{opsBellaKey, admin.VerdictValid, 200},
		{opsWrongKey, admin.VerdictRejected, 401},
		{opsBrokeKey, admin.VerdictNoQuota, 429},
		{"  " + opsBellaKey + "\n", admin.VerdictValid, 200},
	}
	var answers strings.Builder
	for _, tt := range tests {
		t.Run(string(tt.wantVerdict), func(t *testing.T) {
			var v map[string]any
			if code, c := call(t, bob, http.MethodPost, "/admin/keys/validate", admin.KeyValidateBody{Provider: "openai", Key: tt.key}, &v); code != 200 {
				t.Fatalf("%d %s", code, c)
			}
			fmt.Fprintln(&answers, v)
			if v["verdict"] != string(tt.wantVerdict) || v["status"] != float64(tt.wantStatus) ||
				v["fingerprint"] != keys.Fingerprint(strings.TrimSpace(tt.key)) || v["provider"] != "openai" {
				t.Errorf("answer %v, want %s (%d) with the key's fingerprint", v, tt.wantVerdict, tt.wantStatus)
			}
		})
	}
	refusals := []struct {
		name     string
		client   admin.Client
		body     any
		wantCode string
	}{
		{"a viewer may not", as(tokens["alice"]), admin.KeyValidateBody{Provider: "openai", Key: opsBellaKey}, "forbidden_role"},
		{"empty key", bob, admin.KeyValidateBody{Provider: "openai", Key: " \n"}, "empty_key"},
		{"unknown provider", bob, admin.KeyValidateBody{Provider: "mistral", Key: opsBellaKey}, "unknown_provider"},
		{"not JSON", bob, "provider=openai&key=" + opsBellaKey, "invalid_json"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := r.client.Call(ctx, http.MethodPost, "/admin/keys/validate", r.body, nil)
			var ae *admin.APIError
			if !errors.As(err, &ae) || ae.Code != r.wantCode {
				t.Fatalf("error %v, want %s", err, r.wantCode)
			}
			fmt.Fprintln(&answers, err)
		})
	}

	lines := audit.FilterMessage("key validated").All()
	if len(lines) != len(tests) || lines[0].ContextMap()["operator"] != "bob" || lines[0].ContextMap()["fingerprint"] != keys.Fingerprint(opsBellaKey) {
		t.Errorf("key validated lines %v, want one per check naming bob and the fingerprint", lines)
	}
	all := answers.String() + logText(logs) + logText(audit)
	for _, key := range []string{opsBellaKey, opsWrongKey, opsBrokeKey} {
		checkNoFragment(t, "an answer or log line", all, key)
	}
}
