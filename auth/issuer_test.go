package auth_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/auth/jwks"
	"github.com/wedsync/veil/internal/jwkstest"
)

// issuerClaims returns valid claims of iss for the real clock (a key
// set's issuer signs with real keys, checked at the real time).
func issuerClaims(iss string, mods ...func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"iss": iss, "aud": "veil", "sub": "planner-app", "supplier_id": "acme-photo",
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
	for _, m := range mods {
		m(c)
	}
	return c
}

// keySet returns a fetched key set of iss.
func keySet(t *testing.T, iss *jwkstest.Issuer, minRefresh time.Duration) *jwks.Set {
	t.Helper()
	s, err := jwks.New(jwks.Options{Issuer: iss.URL, MinRefresh: minRefresh})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIssuerTokens(t *testing.T) {
	rsa := jwkstest.New(t, "RS256")
	ec := jwkstest.New(t, "ES256")
	ed := jwkstest.New(t, "EdDSA")
	opts := &auth.JWTOptions{HS256Keys: testJWTOptions().HS256Keys, Issuer: testIssuer, Audience: testAudience}
	for _, iss := range []*jwkstest.Issuer{rsa, ec, ed} {
		opts.Issuers = append(opts.Issuers, auth.IssuerOptions{Issuer: iss.URL, Audience: "veil", Keys: keySet(t, iss, time.Hour)})
	}
	a, err := auth.New(auth.Options{Callers: testCallers(), JWT: opts})
	if err != nil {
		t.Fatal(err)
	}
	stranger := jwkstest.New(t, "RS256")
	tests := []struct {
		name  string
		token string
		want  want
	}{
		{"RS256", rsa.Sign(t, issuerClaims(rsa.URL)), ok("planner-app", "acme-photo")},
		{"ES256", ec.Sign(t, issuerClaims(ec.URL)), ok("planner-app", "acme-photo")},
		{"EdDSA", ed.Sign(t, issuerClaims(ed.URL)), ok("planner-app", "acme-photo")},
		{"static keys still verify their issuer", signHS(hsKey1, issuerClaims(testIssuer, set("aud", testAudience))), ok("planner-app", "acme-photo")},
		{"another audience", rsa.Sign(t, issuerClaims(rsa.URL, set("aud", "billing-api"))), refused(401, auth.CodeInvalidToken)},
		{"signed by another issuer's key", stranger.Sign(t, issuerClaims(rsa.URL)), refused(401, auth.CodeInvalidToken)},
		{"an unknown issuer", stranger.Sign(t, issuerClaims(stranger.URL)), refused(401, auth.CodeInvalidToken)},
		{"an issuer's iss with a static HS256 key", signHS(hsKey1, issuerClaims(rsa.URL)), refused(401, auth.CodeInvalidToken)},
		{"expired", ec.Sign(t, issuerClaims(ec.URL, set("exp", time.Now().Add(-time.Hour).Unix()))), refused(401, auth.CodeTokenExpired)},
		{"no supplier claim", ed.Sign(t, issuerClaims(ed.URL, unset("supplier_id"))), refused(401, auth.CodeInvalidToken)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, f := a.Authenticate([]byte("Bearer "+tt.token), nil, "10.0.0.1")
			check(t, id, f, tt.want)
		})
	}
}

func TestIssuerKeyRotation(t *testing.T) {
	iss := jwkstest.New(t, "RS256")
	set := keySet(t, iss, time.Millisecond)
	a, err := auth.New(auth.Options{JWT: &auth.JWTOptions{Issuers: []auth.IssuerOptions{{Issuer: iss.URL, Audience: "veil", Keys: set}}}})
	if err != nil {
		t.Fatal(err)
	}
	authn := func(token string) *auth.Failure {
		_, f := a.Authenticate([]byte("Bearer "+token), nil, "10.0.0.1")
		return f
	}
	old := iss.Sign(t, issuerClaims(iss.URL))
	if f := authn(old); f != nil {
		t.Fatalf("token of the first key: %v", f)
	}
	// The issuer rotates to a new key and retires the old one; veil has
	// not refreshed yet, and learns the new key from the first token
	// that names it, once MinRefresh has passed since the last fetch.
	time.Sleep(10 * time.Millisecond)
	oldKid := iss.SigningKey()
	iss.Rotate(t, "ES256")
	iss.Retire(oldKid)
	fetches := iss.Fetches()
	if f := authn(iss.Sign(t, issuerClaims(iss.URL))); f != nil {
		t.Fatalf("token of the rotated key: %v", f)
	}
	if n := iss.Fetches() - fetches; n != 1 {
		t.Errorf("%d fetches to learn the rotated key, want 1", n)
	}
	if f := authn(old); f == nil || f.Code != auth.CodeInvalidToken {
		t.Errorf("token of the retired key: %v, want invalid_token", f)
	}
}

func TestIssuerKeysUnavailable(t *testing.T) {
	s, err := jwks.New(jwks.Options{JWKSURL: "http://127.0.0.1:1/keys", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	iss := jwkstest.New(t, "EdDSA")
	a, err := auth.New(auth.Options{JWT: &auth.JWTOptions{Issuers: []auth.IssuerOptions{{Issuer: iss.URL, Audience: "veil", Keys: s}}}})
	if err != nil {
		t.Fatal(err)
	}
	id, f := a.Authenticate([]byte("Bearer "+iss.Sign(t, issuerClaims(iss.URL))), nil, "10.0.0.1")
	check(t, id, f, refused(http.StatusServiceUnavailable, auth.CodeIssuerKeysUnavailable))
}

func TestKubernetesServiceAccounts(t *testing.T) {
	cluster := jwkstest.New(t, "RS256")
	a, err := auth.New(auth.Options{JWT: &auth.JWTOptions{Issuers: []auth.IssuerOptions{{
		Issuer: cluster.URL, Audience: "veil", Keys: keySet(t, cluster, time.Hour),
		ServiceAccounts: map[string][]string{
			"weddings/photo-tagger": {"acme-photo"},
			"weddings/planner":      {"rose.venue", "acme-photo"},
			"platform/billing":      {"*"},
		},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	sa := func(ns, name string) string {
		return cluster.Sign(t, issuerClaims(cluster.URL, unset("supplier_id"), set("sub", "system:serviceaccount:"+ns+":"+name),
			set("kubernetes.io", map[string]any{"namespace": ns, "serviceaccount": map[string]any{"name": name, "uid": "3f1c"}})))
	}
	tests := []struct {
		name     string
		token    string
		supplier string
		want     want
	}{
		{"one supplier, no header", sa("weddings", "photo-tagger"), "", ok("weddings/photo-tagger", "acme-photo")},
		{"one supplier, its header", sa("weddings", "photo-tagger"), "acme-photo", ok("weddings/photo-tagger", "acme-photo")},
		{"one supplier, another header", sa("weddings", "photo-tagger"), "rose.venue", refused(403, auth.CodeSupplierNotAllowed)},
		{"several suppliers, header", sa("weddings", "planner"), "rose.venue", ok("weddings/planner", "rose.venue")},
		{"several suppliers, no header", sa("weddings", "planner"), "", refused(400, auth.CodeSupplierRequired)},
		{"every supplier", sa("platform", "billing"), "zeta_caterer", ok("platform/billing", "zeta_caterer")},
		{"an account not listed", sa("weddings", "intruder"), "acme-photo", refused(403, auth.CodeSupplierNotAllowed)},
		{"same name, another namespace", sa("other", "photo-tagger"), "acme-photo", refused(403, auth.CodeSupplierNotAllowed)},
		{"a token for another audience", cluster.Sign(t, issuerClaims(cluster.URL, set("aud", "https://kubernetes.default.svc"),
			set("sub", "system:serviceaccount:weddings:photo-tagger"))), "", refused(401, auth.CodeInvalidToken)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var supplier []byte
			if tt.supplier != "" {
				supplier = []byte(tt.supplier)
			}
			id, f := a.Authenticate([]byte("Bearer "+tt.token), supplier, "10.0.0.1")
			check(t, id, f, tt.want)
		})
	}
}

func TestIssuerOptionsChecked(t *testing.T) {
	iss := jwkstest.New(t, "RS256")
	ks := keySet(t, iss, time.Hour)
	tests := []struct {
		name string
		is   auth.IssuerOptions
	}{
		{"no audience", auth.IssuerOptions{Issuer: iss.URL, Keys: ks}},
		{"no keys", auth.IssuerOptions{Issuer: iss.URL, Audience: "veil"}},
		{"no issuer", auth.IssuerOptions{Audience: "veil", Keys: ks}},
		{"bad service account", auth.IssuerOptions{Issuer: iss.URL, Audience: "veil", Keys: ks,
			ServiceAccounts: map[string][]string{"photo-tagger": {"acme-photo"}}}},
		{"service account without suppliers", auth.IssuerOptions{Issuer: iss.URL, Audience: "veil", Keys: ks,
			ServiceAccounts: map[string][]string{"ns/photo-tagger": {}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := auth.New(auth.Options{JWT: &auth.JWTOptions{Issuers: []auth.IssuerOptions{tt.is}}}); err == nil {
				t.Error("accepted")
			}
		})
	}
}
