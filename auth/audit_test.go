package auth_test

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/auth"
)

func TestAuditLog(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(core)
	pub, _ := testEdKey()
	main := newAuth(t, auth.Options{Callers: testCallers(), JWT: testJWTOptions(), Audit: logger})
	edOnly := newAuth(t, auth.Options{JWT: &auth.JWTOptions{Ed25519Keys: []ed25519.PublicKey{pub}}, Audit: logger})
	const remote = "203.0.113.9:41000"

	withKid := sign(jwt.SigningMethodHS256, []byte(hsKey1), claims(set("supplier_id", "rose.venue")), "kid", "hs-2026-06")
	tests := []struct {
		name     string
		auth     *auth.Authenticator // nil: main
		token    string              // sent as "Bearer <token>"; "" sends no header
		supplier string
		fields   map[string]string // expected fields; "-" means absent
	}{
		{"missing token", nil, "", "acme-photo",
			map[string]string{"code": auth.CodeMissingCallerToken, "caller": "-", "supplier": "acme-photo"}},
		{"unknown static token", nil, "tok-unknown", "acme-photo",
			map[string]string{"code": auth.CodeInvalidCallerToken, "reason": "unknown static token", "caller": "-", "supplier": "acme-photo"}},
		{"supplier required", nil, "tok-chat", "",
			map[string]string{"code": auth.CodeSupplierRequired, "caller": "chat-ui", "supplier": "-"}},
		{"malformed supplier not logged", nil, "tok-chat", "acme photo\n",
			map[string]string{"code": auth.CodeInvalidSupplierID, "caller": "chat-ui", "supplier": "-"}},
		{"not allowed", nil, "tok-chat", "zeta_caterer",
			map[string]string{"code": auth.CodeSupplierNotAllowed, "reason": "supplier outside caller scope", "caller": "chat-ui", "supplier": "zeta_caterer"}},
		{"forged jwt", nil, signHS("an-attacker-key-0123456789abcdef-xx", claims()), "",
			map[string]string{"code": auth.CodeInvalidToken, "reason": "signature invalid", "caller": "-", "alg": "HS256", "iss": testIssuer}},
		{"alg none", nil, sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims()), "",
			map[string]string{"code": auth.CodeInvalidToken, "reason": "algorithm not accepted", "caller": "-", "alg": "none"}},
		{"alg confusion", edOnly, sign(jwt.SigningMethodHS256, []byte(pub), claims()), "",
			map[string]string{"code": auth.CodeInvalidToken, "reason": "algorithm not accepted", "caller": "-"}},
		{"alg confusion both configured", nil, sign(jwt.SigningMethodHS256, []byte(pub), claims()), "",
			map[string]string{"code": auth.CodeInvalidToken, "reason": "signature invalid", "caller": "-"}},
		{"expired", nil, signHS(hsKey1, claims(set("iat", at(-2*time.Hour)), set("exp", at(-time.Hour)))), "",
			map[string]string{"code": auth.CodeTokenExpired, "caller": "svc:planner", "supplier": "acme-photo", "iss": testIssuer}},
		{"wrong issuer", nil, signHS(hsKey1, claims(set("iss", "https://evil.test"))), "",
			map[string]string{"code": auth.CodeInvalidToken, "reason": "issuer not accepted", "iss": "https://evil.test"}},
		{"missing exp", nil, signHS(hsKey1, claims(unset("exp"))), "",
			map[string]string{"code": auth.CodeInvalidToken, "reason": "missing exp claim"}},
		{"max ttl", nil, signHS(hsKey1, claims(set("exp", at(48*time.Hour)))), "",
			map[string]string{"code": auth.CodeInvalidToken, "reason": "token lifetime exceeds max TTL", "caller": "svc:planner"}},
		{"missing supplier claim", nil, signHS(hsKey1, claims(unset("supplier_id"))), "acme-photo",
			map[string]string{"code": auth.CodeInvalidToken, "reason": "missing supplier claim", "caller": "svc:planner", "supplier": "acme-photo"}},
		{"mismatch with kid", nil, withKid, "acme-photo",
			map[string]string{"code": auth.CodeSupplierMismatch, "caller": "svc:planner", "supplier": "acme-photo", "kid": "hs-2026-06"}},
		{"hostile kid sanitised", nil, sign(jwt.SigningMethodHS256, []byte("x-attacker-0123456789abcdef-0123456"), claims(), "kid", "k\n\"injected\""), "",
			map[string]string{"code": auth.CodeInvalidToken, "kid": "k__injected_"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.auth
			if a == nil {
				a = main
			}
			var header []byte
			if tt.token != "" {
				header = []byte("Bearer " + tt.token)
			}
			logs.TakeAll()
			_, f := a.Authenticate(header, []byte(tt.supplier), remote)
			if f == nil {
				t.Fatal("Authenticate succeeded, want a failure")
			}
			entries := logs.TakeAll()
			if len(entries) != 1 {
				t.Fatalf("%d audit lines, want 1", len(entries))
			}
			e := entries[0]
			if e.Message != "caller authentication failed" || e.Level != zapcore.WarnLevel {
				t.Errorf("entry = %v %q", e.Level, e.Message)
			}
			m := e.ContextMap()
			want := map[string]string{"remote": remote, "code": f.Code}
			for k, v := range tt.fields {
				want[k] = v
			}
			for k, v := range want {
				got, present := m[k]
				switch {
				case v == "-" && present:
					t.Errorf("field %s = %v, want it absent", k, got)
				case v != "-" && fmt.Sprint(got) != v:
					t.Errorf("field %s = %v, want %q", k, got, v)
				}
			}
			if r, _ := m["reason"].(string); r == "" {
				t.Error("no reason field")
			}
			if s, _ := m["status"].(int64); int(s) != f.Status {
				t.Errorf("status field = %v, want %d", m["status"], f.Status)
			}
			assertNoSecrets(t, e, tt.token)
		})
	}

	t.Run("success writes nothing", func(t *testing.T) {
		logs.TakeAll()
		for _, h := range []string{"Bearer tok-chat", "Bearer " + signHS(hsKey1, claims()), "Bearer " + signEd(claims())} {
			if _, f := main.Authenticate([]byte(h), []byte("acme-photo"), remote); f != nil {
				t.Fatal(f)
			}
		}
		if n := logs.Len(); n != 0 {
			t.Fatalf("%d audit lines for successful requests, want 0", n)
		}
	})
}

// assertNoSecrets fails if the token, its signature or a configured key
// appears anywhere in the entry.
func assertNoSecrets(t *testing.T, e observer.LoggedEntry, token string) {
	t.Helper()
	secrets := []string{hsKey1, hsKey2, "tok-billing", "tok-chat", "tok-batch"}
	if token != "" {
		secrets = append(secrets, token)
		if i := strings.LastIndexByte(token, '.'); i >= 0 && len(token)-i > 8 {
			secrets = append(secrets, token[i+1:])
		}
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	buf, err := enc.EncodeEntry(e.Entry, e.Context)
	if err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	for _, s := range secrets {
		if strings.Contains(line, s) {
			t.Errorf("audit line %s contains a credential", line)
		}
	}
}
