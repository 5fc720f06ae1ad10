package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/veil/internal/jwkstest"
)

// TestClusterIdentityCallers: apps authenticate with their Kubernetes
// projected service-account token, checked against the cluster's keys
// (found by OpenID Connect discovery over TLS with the cluster's CA, fetched
// with the pod's own token), and with an OIDC provider's tokens; when the
// cluster rotates its signing key, the next token with the new key is
// accepted and the retired key's tokens are refused.
func TestClusterIdentityCallers(t *testing.T) {
	cluster := jwkstest.NewTLS(t, "RS256")
	cluster.RequireToken("pod-sa-token")
	oidc := jwkstest.New(t, "ES256")
	podToken := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(podToken, []byte("pod-sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := start(t, setup{extra: fmt.Sprintf(`jwt:
  issuers:
    - issuer: %s
      audience: veil
      ca_file: %s
      token_file: %s
      unknown_key_interval: 1ms
      kubernetes:
        service_accounts:
          weddings/photo-tagger: [bella-photography]
          weddings/planner: ["*"]
    - issuer: %s
      jwks_url: %s
      audience: veil
`, cluster.URL, cluster.CAFile, podToken, oidc.URL, oidc.JWKSURL)})

	now := time.Now()
	saToken := func(ns, name string) string {
		return cluster.Sign(t, jwt.MapClaims{"iss": cluster.URL, "aud": []string{"veil"}, "sub": "system:serviceaccount:" + ns + ":" + name,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"kubernetes.io": map[string]any{"namespace": ns, "serviceaccount": map[string]any{"name": name, "uid": "7d1e"}}})
	}
	call := func(token, supplier string) int {
		t.Helper()
		suiteSecrets.Store(token, true)
		resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"Authorization": "Bearer " + token, "X-Supplier-ID": supplier})
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	tagger := saToken("weddings", "photo-tagger")
	cases := []struct {
		name, token, supplier string
		status                int
	}{
		{"service account, its only supplier implied", tagger, "", 200},
		{"service account, another supplier", tagger, "rose-venue", 403},
		{"service account for every supplier", saToken("weddings", "planner"), "rose-venue", 200},
		{"service account not configured", saToken("weddings", "intruder"), "bella-photography", 403},
		{"OIDC token with its supplier claim", oidc.Sign(t, jwt.MapClaims{"iss": oidc.URL, "aud": "veil", "sub": "venue-app",
			"supplier_id": "rose-venue", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}), "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := call(tc.token, tc.supplier); got != tc.status {
				t.Errorf("status %d, want %d", got, tc.status)
			}
		})
	}

	old := cluster.SigningKey()
	cluster.Rotate(t, "ES256")
	cluster.Retire(old)
	if got := call(saToken("weddings", "photo-tagger"), ""); got != 200 {
		t.Errorf("a token of the cluster's new key: status %d, want 200", got)
	}
	if got := call(tagger, ""); got != 401 {
		t.Errorf("a token of the retired key: status %d, want 401", got)
	}
	logs := h.logs.String() + h.audit.String()
	for _, secret := range []string{"pod-sa-token", tagger} {
		if strings.Contains(logs, secret) {
			t.Error("a token reached the logs")
		}
	}
}
