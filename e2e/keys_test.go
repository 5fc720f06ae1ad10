package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// lastAuth is the Authorization the upstream saw last.
func (h *harness) lastAuth() string {
	h.t.Helper()
	v := h.lastUpstream().Header.Values("Authorization")
	if len(v) != 1 {
		h.t.Fatalf("upstream saw %d Authorization headers", len(v))
	}
	return v[0]
}

// TestSupplierKeys: a client-mode supplier's request carries its own key
// upstream, a platform-mode supplier's the platform key; headers and the
// access line say which.
func TestSupplierKeys(t *testing.T) {
	bellaKey := secret("sk-bella-own-")
	h := start(t, setup{
		fake: fakeopenai.Options{Keys: []string{bellaKey}},
		env:  map[string]string{"BELLA_KEY": bellaKey},
		extra: `suppliers:
  entries:
    - id: bella-photography
      mode: client
      keys:
        openai: env://BELLA_KEY
    - id: rose-venue
      mode: platform
`})
	ctx := ctxT(t)
	resp, err := h.clientFor("bella-photography").CreateChatCompletion(ctx, weddingChat)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.lastAuth(); got != "Bearer "+bellaKey {
		t.Error("bella's request did not carry bella's key")
	}
	if resp.Header().Get("X-Veil-Key-Source") != "client" {
		t.Errorf("key source %q", resp.Header().Get("X-Veil-Key-Source"))
	}
	resp, err = h.clientFor("rose-venue").CreateChatCompletion(ctx, weddingChat)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.lastAuth(); got != "Bearer "+h.platformKey {
		t.Error("rose's request did not carry the platform key")
	}
	if resp.Header().Get("X-Veil-Key-Source") != "platform" {
		t.Errorf("key source %q", resp.Header().Get("X-Veil-Key-Source"))
	}
	if !strings.Contains(h.logs.String(), `"supplier":"bella-photography","key_source":"client"`) {
		t.Error("the access line does not name the supplier and key source")
	}
}

// TestCallerScope: a caller scoped to one supplier asking for another gets
// 403 and nothing goes upstream; a missing supplier is a 400.
func TestCallerScope(t *testing.T) {
	scoped := secret("veil-scoped-")
	h := start(t, setup{
		env: map[string]string{"SCOPED_TOKEN": scoped},
		callers: `  - name: bella-app
    token: env://SCOPED_TOKEN
    suppliers: [bella-photography]
`})
	before := len(h.up.Requests())
	cases := []struct {
		name, supplier string
		status         int
		code           string
	}{
		{"own supplier", "bella-photography", 200, ""},
		{"other supplier", "rose-venue", 403, "supplier_not_allowed"},
		{"no supplier", "", 400, "supplier_required"},
		{"malformed supplier", "rose venue/../x", 400, "invalid_supplier_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{
				"Authorization": "Bearer " + scoped, "X-Supplier-ID": tc.supplier})
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.code != "" {
				if e := readEnvelope(t, resp); *e.Error.Code != tc.code {
					t.Errorf("code %q", *e.Error.Code)
				}
			}
		})
	}
	if got := len(h.up.Requests()) - before; got != 1 {
		t.Errorf("the upstream saw %d requests, want only the allowed one", got)
	}
	if !strings.Contains(h.logs.String(), `"caller authentication failed"`) {
		t.Error("refusals were not audited")
	}
}

// TestSignedSupplierTokens: JWTs (HS256 and EdDSA) carry the supplier; a
// forged or expired one is refused, a header that disagrees is refused.
func TestSignedSupplierTokens(t *testing.T) {
	hsKey := secret("jwt-hs256-shared-secret-0123456789-")
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	h := start(t, setup{
		env: map[string]string{"JWT_HS": hsKey, "JWT_ED": base64.StdEncoding.EncodeToString(pub)},
		extra: `jwt:
  hs256_keys: [env://JWT_HS]
  ed25519_public_keys: [env://JWT_ED]
  issuer: wedsync
`})
	now := time.Now()
	claims := func(supplier string, exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"iss": "wedsync", "sub": "planner-app", "supplier_id": supplier, "iat": now.Unix(), "exp": exp.Unix()}
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name, token, header string
		status              int
	}{
		{"hs256", sign(jwt.SigningMethodHS256, []byte(hsKey), claims("bella-photography", now.Add(time.Hour))), "", 200},
		{"eddsa with matching header", sign(jwt.SigningMethodEdDSA, priv, claims("bella-photography", now.Add(time.Hour))), "bella-photography", 200},
		{"forged signature", sign(jwt.SigningMethodEdDSA, otherPriv, claims("bella-photography", now.Add(time.Hour))), "", 401},
		{"wrong hs256 secret", sign(jwt.SigningMethodHS256, []byte("another-secret-that-is-long-enough-000"), claims("bella-photography", now.Add(time.Hour))), "", 401},
		{"expired", sign(jwt.SigningMethodHS256, []byte(hsKey), claims("bella-photography", now.Add(-time.Hour))), "", 401},
		{"header disagrees", sign(jwt.SigningMethodHS256, []byte(hsKey), claims("bella-photography", now.Add(time.Hour))), "rose-venue", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			suiteSecrets.Store(tc.token, true)
			before := len(h.up.Requests())
			resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{
				"Authorization": "Bearer " + tc.token, "X-Supplier-ID": tc.header})
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if sent := len(h.up.Requests()) - before; (tc.status == 200) != (sent == 1) {
				t.Errorf("the upstream saw %d requests", sent)
			}
		})
	}
}

// TestPlatformKeyPool: a pool key that gets 429 rests for its Retry-After
// and the request is retried at once with another pool key, invisibly.
func TestPlatformKeyPool(t *testing.T) {
	spare := secret("sk-platform-spare-")
	h := start(t, setup{
		fake: fakeopenai.Options{Keys: []string{spare}},
		env:  map[string]string{"SPARE_KEY": spare},
		providers: `
  - name: openai
    type: openai
    base_url: %s
    api_keys: [env://PLATFORM_KEY, env://SPARE_KEY]`})
	seen := map[string]int{}
	for range 4 {
		if _, err := h.client().CreateChatCompletion(ctxT(t), weddingChat); err != nil {
			t.Fatal(err)
		}
		seen[h.lastAuth()]++
	}
	if seen["Bearer "+h.platformKey] != 2 || seen["Bearer "+spare] != 2 {
		t.Errorf("the pool did not spread calls evenly: %d and %d", seen["Bearer "+h.platformKey], seen["Bearer "+spare])
	}

	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindRateLimit, RetryAfter: time.Minute})
	resp, err := h.client().CreateChatCompletion(ctxT(t), weddingChat)
	if err != nil {
		t.Fatalf("a 429 on one pool key reached the client: %v", err)
	}
	if resp.Header().Get("X-Veil-Attempts") != "2" {
		t.Errorf("attempts %q, want 2", resp.Header().Get("X-Veil-Attempts"))
	}
	rested := h.lastAuth()
	for range 4 {
		if _, err := h.client().CreateChatCompletion(ctxT(t), weddingChat); err != nil {
			t.Fatal(err)
		}
		if h.lastAuth() != rested {
			t.Fatal("a key resting after its 429 was used")
		}
	}

	// With one key left, a 429 goes to the client as the provider sent it.
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindRateLimit, RetryAfter: time.Minute})
	_, err = h.client().CreateChatCompletion(ctxT(t), weddingChat)
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusTooManyRequests {
		t.Errorf("want the provider's 429, got %v", err)
	}
}

// TestHybridSupplier: a hybrid supplier is served on its own key, and on
// platform keys (within its tier) when its own key cannot be had.
func TestHybridSupplier(t *testing.T) {
	roseKey := secret("sk-rose-own-")
	tp := &tap{}
	h := start(t, setup{
		fake: fakeopenai.Options{Keys: []string{roseKey}},
		env:  map[string]string{"ROSE_KEY": roseKey},
		tap:  tp.add,
		extra: `tiers:
  - name: starter
    requests_per_minute: 100
suppliers:
  default_tier: starter
  entries:
    - id: rose-venue
      mode: hybrid
      keys:
        openai: env://ROSE_KEY
    - id: lily-florist
      mode: client
      allow_platform_fallback: true
      keys:
        openai: env://LILY_KEY_NOT_SET
`})
	resp, err := h.clientFor("rose-venue").CreateChatCompletion(ctxT(t), weddingChat)
	if err != nil || resp.Header().Get("X-Veil-Key-Source") != "client" || h.lastAuth() != "Bearer "+roseKey {
		t.Fatalf("hybrid with a key: %v, source %q", err, resp.Header().Get("X-Veil-Key-Source"))
	}
	resp, err = h.clientFor("lily-florist").CreateChatCompletion(ctxT(t), weddingChat)
	if err != nil || resp.Header().Get("X-Veil-Key-Source") != "platform" || h.lastAuth() != "Bearer "+h.platformKey {
		t.Fatalf("fallback to platform: %v, source %q", err, resp.Header().Get("X-Veil-Key-Source"))
	}
	r := tp.one(t, resp.Header().Get("X-Request-Id"))
	if r.Billed != "platform" || r.Reason != "platform_fallback" {
		t.Errorf("record billed %q reason %q", r.Billed, r.Reason)
	}
}

// TestClientKeyRefusedFallsBackToPlatform (scenario 2): a client-mode
// supplier allowed to fall back whose own key the provider refuses is
// served on platform keys, billed to the platform, with the reason in its
// record; the client sees no error.
func TestClientKeyRefusedFallsBackToPlatform(t *testing.T) {
	revoked := secret("sk-venue-revoked-")
	tp := &tap{}
	h := start(t, setup{
		env: map[string]string{"VENUE_KEY": revoked},
		tap: tp.add,
		extra: `suppliers:
  entries:
    - id: rose-venue
      mode: client
      allow_platform_fallback: true
      keys:
        openai: env://VENUE_KEY
`})
	resp, err := h.clientFor("rose-venue").CreateChatCompletion(ctxT(t), weddingChat)
	if err != nil {
		t.Fatalf("the client saw an error: %v", err)
	}
	if resp.Header().Get("X-Veil-Key-Source") != "platform" || resp.Header().Get("X-Veil-Failover") != "true" {
		t.Errorf("key source %q failover %q", resp.Header().Get("X-Veil-Key-Source"), resp.Header().Get("X-Veil-Failover"))
	}
	r := tp.one(t, resp.Header().Get("X-Request-Id"))
	if r.Billed != "platform" || r.Reason != "platform_fallback" || len(r.Attempts) < 2 || r.Attempts[0].Status != 401 {
		t.Errorf("record billed %q reason %q attempts %+v", r.Billed, r.Reason, r.Attempts)
	}
	trail := h.audit.String()
	if !strings.Contains(trail, "supplier key refused; falling back") {
		t.Error("the refusal of the supplier's key was not audited")
	}
	if !strings.Contains(trail, `"supplier call falls back to platform keys"`) ||
		!strings.Contains(trail, `"cause":"supplier_key_refused"`) || !strings.Contains(trail, `"billed":"platform"`) {
		t.Errorf("the fallback was not audited:\n%s", trail)
	}
	if strings.Contains(trail, revoked) {
		t.Error("the audit trail shows the supplier's key")
	}
}
