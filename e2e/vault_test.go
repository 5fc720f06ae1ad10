package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/vaulttest"
	"github.com/wedsync/veil/usage"
)

// vaultSetup starts a real Vault dev server with veil's policy from
// deploy/vault/veil.hcl, and returns it with a token for veil that carries
// only that policy.
func vaultSetup(t *testing.T) (*vaulttest.Server, string) {
	t.Helper()
	v := vaulttest.Start(t)
	suiteSecrets.Store(v.RootToken, true)
	hcl, err := os.ReadFile("../deploy/vault/veil.hcl")
	if err != nil {
		t.Fatal(err)
	}
	v.WritePolicy(t, "veil", string(hcl))
	token := v.Token(t, []string{"veil"}, time.Hour, 0, true)
	suiteSecrets.Store(token, true)
	return v, token
}

// vaultYAML is the config section pointing veil at v with a token from
// env://VAULT_TOKEN.
func vaultYAML(v *vaulttest.Server, refresh, maxStale string) string {
	return `vault:
  enabled: true
  address: ` + v.Addr + `
  timeout: 2s
  auth:
    method: token
    token: env://VAULT_TOKEN
keys:
  refresh_interval: ` + refresh + `
  max_staleness: ` + maxStale + `
  fetch_timeout: 2s
suppliers:
  default_mode: platform
  entries:
    - id: bella-photography
      mode: client
    - id: nokey-florist
      mode: client
`
}

// TestVaultSupplierKeys: bella's key comes from Vault; a platform-mode
// supplier gets the platform key; a client-mode supplier with nothing in
// Vault gets supplier_key_missing; a caller scoped to bella cannot act for
// rose. /admin/keys shows fingerprints and versions only.
func TestVaultSupplierKeys(t *testing.T) {
	v, token := vaultSetup(t)
	bellaKey := secret("sk-bella-vault-")
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": bellaKey, "organization": "org-bella"})
	scoped := secret("veil-bella-app-")
	h := start(t, setup{
		fake: fakeopenai.Options{Keys: []string{bellaKey}},
		env:  map[string]string{"VAULT_TOKEN": token, "SCOPED": scoped},
		callers: `  - name: bella-app
    token: env://SCOPED
    suppliers: [bella-photography]
`,
		extra: vaultYAML(v, "1m", "10m"),
	})
	ctx := ctxT(t)
	if _, err := h.clientFor("bella-photography").CreateChatCompletion(ctx, weddingChat); err != nil {
		t.Fatal(err)
	}
	if h.lastAuth() != "Bearer "+bellaKey {
		t.Error("bella's request did not carry her key from Vault")
	}
	if got := h.lastUpstream().Header.Get("Openai-Organization"); got != "org-bella" {
		t.Errorf("organization %q, want bella's from Vault", got)
	}
	if _, err := h.clientFor("rose-venue").CreateChatCompletion(ctx, weddingChat); err != nil {
		t.Fatal(err)
	}
	if h.lastAuth() != "Bearer "+h.platformKey {
		t.Error("rose's request did not carry the platform key")
	}

	before := len(h.up.Requests())
	resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"X-Supplier-ID": "nokey-florist"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d", resp.StatusCode)
	}
	if e := readEnvelope(t, resp); *e.Error.Code != "supplier_key_missing" {
		t.Errorf("code %q", *e.Error.Code)
	}
	resp = h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"Authorization": "Bearer " + scoped, "X-Supplier-ID": "rose-venue"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("scoped caller for another supplier: status %d", resp.StatusCode)
	}
	if n := len(h.up.Requests()) - before; n != 0 {
		t.Errorf("refused requests reached the upstream: %d", n)
	}

	code, body := h.admin("/admin/keys", h.adminToken)
	if code != 200 {
		t.Fatalf("admin keys %d", code)
	}
	var ks struct {
		Suppliers []struct {
			Supplier, Provider, Version, Fingerprint string
			Missing                                  bool
		} `json:"suppliers"`
	}
	if err := json.Unmarshal([]byte(body), &ks); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range ks.Suppliers {
		if s.Supplier == "bella-photography" && s.Version == "1" && s.Fingerprint != "" {
			found = true
		}
	}
	if !found || strings.Contains(body, bellaKey) {
		t.Errorf("admin keys: %s", body)
	}
}

// TestVaultRotationUnderLoad: while requests run steadily, a Vault admin
// writes a new version of bella's key and the provider stops accepting the
// old one at once. No client request fails: requests that meet the refusal
// refresh the key (one shared refresh) and retry with the new version.
func TestVaultRotationUnderLoad(t *testing.T) {
	v, token := vaultSetup(t)
	oldKey, newKey := secret("sk-bella-v1-"), secret("sk-bella-v2-")
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": oldKey})
	h := start(t, setup{
		fake:  fakeopenai.Options{Keys: []string{oldKey}, NoRecord: true},
		env:   map[string]string{"VAULT_TOKEN": token},
		extra: vaultYAML(v, "2s", "10m"),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h.clientFor("bella-photography")
			for ctx.Err() == nil {
				_, err := c.CreateChatCompletion(context.Background(), weddingChat)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	// A steady load of at least a thousand requests on either side of the
	// rotation, however fast the machine is.
	waitFor(t, func() bool { return ok.Load() >= 1000 })
	// As a Vault admin rotates: the new key exists at the provider, then
	// goes into Vault, then the provider revokes the old one at once.
	h.up.SetKeys(oldKey, newKey, h.platformKey)
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": newKey})
	h.up.SetKeys(newKey, h.platformKey)
	rotatedAt := ok.Load()
	waitFor(t, func() bool { return ok.Load() > rotatedAt+1000 })
	cancel()
	wg.Wait()
	t.Logf("%d requests succeeded, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d client requests failed during the rotation; first: %v", failed.Load(), firstErr.Load())
	}
	if !strings.Contains(h.logs.String(), `"supplier key rotated"`) {
		t.Error("the rotation was not audited")
	}
}

// TestVaultRotationPickedUpByRefresh: with the provider accepting both
// keys, the background refresh alone moves bella to the new version.
func TestVaultRotationPickedUpByRefresh(t *testing.T) {
	v, token := vaultSetup(t)
	oldKey, newKey := secret("sk-bella-v1-"), secret("sk-bella-v2-")
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": oldKey})
	h := start(t, setup{
		fake:  fakeopenai.Options{Keys: []string{oldKey, newKey}},
		env:   map[string]string{"VAULT_TOKEN": token},
		extra: vaultYAML(v, "1s", "10m"),
	})
	c := h.clientFor("bella-photography")
	if _, err := c.CreateChatCompletion(ctxT(t), weddingChat); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": newKey})
	waitFor(t, func() bool {
		if _, err := c.CreateChatCompletion(ctxT(t), weddingChat); err != nil {
			t.Fatal(err)
		}
		return h.lastAuth() == "Bearer "+newKey
	})
	t.Logf("new key in use %s after the write (refresh interval 1s, jitter ±20%%)", time.Since(written).Round(10*time.Millisecond))
}

// TestVaultDown: with Vault unreachable, cached keys keep serving; past
// max_staleness the supplier gets a 503 envelope; when Vault is back veil
// recovers without a restart.
func TestVaultDown(t *testing.T) {
	v, token := vaultSetup(t)
	bellaKey := secret("sk-bella-vault-")
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": bellaKey})
	h := start(t, setup{
		fake:  fakeopenai.Options{Keys: []string{bellaKey}},
		env:   map[string]string{"VAULT_TOKEN": token},
		extra: vaultYAML(v, "500ms", "3s"),
	})
	c := h.clientFor("bella-photography")
	if _, err := c.CreateChatCompletion(ctxT(t), weddingChat); err != nil {
		t.Fatal(err)
	}
	v.Block()
	// Still served from memory while Vault is down.
	for range 5 {
		if _, err := c.CreateChatCompletion(ctxT(t), weddingChat); err != nil {
			t.Fatalf("a cached key stopped serving before max_staleness: %v", err)
		}
	}
	// Past max_staleness: 503 with a clear error.
	waitFor(t, func() bool {
		resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"X-Supplier-ID": "bella-photography"})
		if resp.StatusCode != http.StatusServiceUnavailable {
			return false
		}
		e := readEnvelope(t, resp)
		return *e.Error.Code == "supplier_key_unavailable"
	})
	// Platform suppliers are unaffected.
	if _, err := h.clientFor("rose-venue").CreateChatCompletion(ctxT(t), weddingChat); err != nil {
		t.Errorf("a platform supplier failed while Vault was down: %v", err)
	}
	v.Unblock()
	waitFor(t, func() bool {
		_, err := c.CreateChatCompletion(ctxT(t), weddingChat)
		return err == nil
	})
	if !strings.Contains(h.logs.String(), "serving a cached supplier key while its source is unreachable") {
		t.Error("no audit warning while serving stale keys")
	}
}

// TestVaultAppRoleAndReadiness: veil logs in with AppRole; /readyz answers
// only once it has.
func TestVaultAppRoleAndReadiness(t *testing.T) {
	v, _ := vaultSetup(t)
	roleID, secretID := v.AppRole(t, "veil", []string{"veil"}, 3*time.Second, 6*time.Second)
	suiteSecrets.Store(secretID, true)
	bellaKey := secret("sk-bella-vault-")
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": bellaKey})
	extra := strings.Replace(vaultYAML(v, "1s", "10m"), `    method: token
    token: env://VAULT_TOKEN`, `    method: approle
    role_id: env://ROLE_ID
    secret_id: env://SECRET_ID`, 1)
	h := start(t, setup{
		fake:  fakeopenai.Options{Keys: []string{bellaKey}},
		env:   map[string]string{"ROLE_ID": roleID, "SECRET_ID": secretID},
		extra: extra,
	})
	if code, body := h.admin("/readyz", ""); code != 200 {
		t.Fatalf("readyz %d: %s", code, body)
	}
	c := h.clientFor("bella-photography")
	// Past the AppRole token's max TTL (6s), veil has logged in again and
	// still reads bella's key at each refresh.
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.CreateChatCompletion(ctxT(t), weddingChat); err != nil {
			t.Fatalf("request failed after %v: %v", time.Until(deadline), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	refreshed := func() bool {
		code, body := h.admin("/admin/keys", h.adminToken)
		var ks struct {
			Suppliers []struct {
				Supplier  string
				CheckedAt time.Time `json:"checked_at"`
				LastError string    `json:"last_error"`
			} `json:"suppliers"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &ks) != nil {
			return false
		}
		for _, s := range ks.Suppliers {
			if s.Supplier == "bella-photography" && time.Since(s.CheckedAt) < 3*time.Second && s.LastError == "" {
				return true
			}
		}
		return false
	}
	waitFor(t, refreshed)
}

// TestRefusedKeyReadsVaultOnce: a flood of calls whose supplier key the
// provider refuses, with nothing newer in Vault, reads the key once, not
// once a call; the supplier's calls get the provider's 401.
func TestRefusedKeyReadsVaultOnce(t *testing.T) {
	v, token := vaultSetup(t)
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": secret("sk-bella-revoked-")})
	h := start(t, setup{env: map[string]string{"VAULT_TOKEN": token}, extra: vaultYAML(v, "1m", "10m")})
	c := h.clientFor("bella-photography")
	refused := func() {
		_, err := c.CreateChatCompletion(ctxT(t), weddingChat)
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusUnauthorized {
			t.Errorf("a call with the refused key: %v, want the provider's 401", err)
		}
	}
	refused() // reads the key, meets the refusal, reads Vault once more
	before := h.app.Metrics().KeyFetches("ok")
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 20 {
				refused()
			}
		})
	}
	wg.Wait()
	time.Sleep(1500 * time.Millisecond) // the answer is shared however long the refusals go on
	for range 20 {
		refused()
	}
	if n := h.app.Metrics().KeyFetches("ok") - before; n != 0 {
		t.Errorf("220 refused calls read Vault %v times, want none: the first refusal's answer is shared", n)
	}
}

// TestVaultNotReadyUntilLogin: with Vault unreachable at start, veil starts
// but is not ready; once Vault answers, it becomes ready without restart.
func TestVaultNotReadyUntilLogin(t *testing.T) {
	v, token := vaultSetup(t)
	v.Block()
	h := start(t, setup{env: map[string]string{"VAULT_TOKEN": token}, extra: vaultYAML(v, "1m", "10m")})
	if code, _ := h.admin("/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("readyz %d before Vault login, want 503", code)
	}
	v.Unblock()
	waitFor(t, func() bool { code, _ := h.admin("/readyz", ""); return code == 200 })
}

// TestAdminRefreshSupplierKeys: POST /admin/suppliers/{id}/keys/refresh
// re-reads a supplier's keys at once.
func TestAdminRefreshSupplierKeys(t *testing.T) {
	v, token := vaultSetup(t)
	oldKey, newKey := secret("sk-bella-v1-"), secret("sk-bella-v2-")
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": oldKey})
	h := start(t, setup{
		fake:  fakeopenai.Options{Keys: []string{oldKey, newKey}},
		env:   map[string]string{"VAULT_TOKEN": token},
		extra: vaultYAML(v, "1h", "10h"),
	})
	c := h.clientFor("bella-photography")
	if _, err := c.CreateChatCompletion(ctxT(t), weddingChat); err != nil {
		t.Fatal(err)
	}
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": newKey})
	req, _ := http.NewRequest("POST", "http://"+h.app.AdminAddr()+"/admin/suppliers/bella-photography/keys/refresh", nil)
	req.Header.Set("Authorization", "Bearer "+h.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("refresh %d", resp.StatusCode)
	}
	if _, err := c.CreateChatCompletion(ctxT(t), weddingChat); err != nil {
		t.Fatal(err)
	}
	if h.lastAuth() != "Bearer "+newKey {
		t.Error("the refresh did not pick up the new version")
	}
	if !strings.Contains(h.logs.String(), `"admin action"`) {
		t.Error("the admin action was not audited")
	}
}

// TestVaultPlatformKeyPool: a platform key reference to a Vault field that
// holds a list (api_keys) becomes a pool that veil spreads calls over.
func TestVaultPlatformKeyPool(t *testing.T) {
	v, token := vaultSetup(t)
	k1, k2 := secret("sk-platform-pool-1-"), secret("sk-platform-pool-2-")
	v.WriteKV(t, "wedsync/platform/openai", map[string]any{"api_keys": []string{k1, k2}})
	h := start(t, setup{
		fake: fakeopenai.Options{Keys: []string{k1, k2}},
		env:  map[string]string{"VAULT_TOKEN": token},
		providers: `
  - name: openai
    type: openai
    base_url: %s
    api_key: vault://secret/wedsync/platform/openai#api_keys`,
		extra: vaultYAML(v, "1m", "10m"),
	})
	seen := map[string]int{}
	for range 4 {
		if _, err := h.clientFor("rose-venue").CreateChatCompletion(ctxT(t), weddingChat); err != nil {
			t.Fatal(err)
		}
		seen[h.lastAuth()]++
	}
	if seen["Bearer "+k1] != 2 || seen["Bearer "+k2] != 2 {
		t.Errorf("calls per pool key: %d and %d, want 2 and 2", seen["Bearer "+k1], seen["Bearer "+k2])
	}
}

// TestVaultClientKeyOutageFallsBackToPlatform is scenario 2 end to end: a
// venue whose tier allows it keeps being served on platform keys while the
// provider refuses its own key from Vault, billed to the platform and
// audited, and its refused key is held out for the breaker cooldown; once
// a Vault admin stores a working key, its calls are back on its own key
// without anyone restarting veil.
func TestVaultClientKeyOutageFallsBackToPlatform(t *testing.T) {
	v, token := vaultSetup(t)
	oldKey, newKey := secret("sk-bella-v1-"), secret("sk-bella-v2-")
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": oldKey})
	yaml := strings.Replace(vaultYAML(v, "1s", "10m"), "    - id: bella-photography\n      mode: client\n",
		"    - id: bella-photography\n      mode: client\n      allow_platform_fallback: true\n", 1)
	tp := &tap{}
	h := start(t, setup{
		fake:   fakeopenai.Options{Keys: []string{oldKey}},
		env:    map[string]string{"VAULT_TOKEN": token},
		extra:  yaml,
		tap:    tp.add,
		limits: "  breaker_cooldown: 1s\n",
	})
	c := h.clientFor("bella-photography")
	call := func(step string) *usage.Record {
		t.Helper()
		resp, err := c.CreateChatCompletion(ctxT(t), weddingChat)
		if err != nil {
			t.Fatalf("%s: the client saw an error: %v", step, err)
		}
		return tp.one(t, resp.Header().Get("X-Request-Id"))
	}

	if r := call("own key"); r.KeySource != "client" || r.Billed != "client" {
		t.Errorf("own key: key source %q billed %q", r.KeySource, r.Billed)
	}
	h.up.SetKeys(h.platformKey) // the provider revokes bella's key
	for i := range 3 {
		r := call("outage")
		if r.KeySource != "platform" || r.Billed != "platform" || r.Reason != "platform_fallback" {
			t.Errorf("outage call %d: key source %q billed %q reason %q", i, r.KeySource, r.Billed, r.Reason)
		}
		// After the first refusal the key is held out for the cooldown:
		// calls go straight to the platform key, one attempt each.
		if i > 0 && len(r.Attempts) != 1 {
			t.Errorf("outage call %d: %d attempts %+v, want the held-out key skipped", i, len(r.Attempts), r.Attempts)
		}
	}
	trail := h.audit.String()
	if !strings.Contains(trail, `"supplier call falls back to platform keys"`) || !strings.Contains(trail, `"supplier":"bella-photography"`) {
		t.Errorf("the fallback was not audited:\n%s", trail)
	}
	if strings.Contains(trail, oldKey) {
		t.Error("the audit trail shows bella's key")
	}
	if logs := h.logs.String(); strings.Count(logs, `"alert: supplier key refused; falling back to platform keys"`) != 1 ||
		!strings.Contains(logs, `"supplier":"bella-photography"`) {
		t.Errorf("the key's outage was not alerted once:\n%s", logs)
	}

	// A Vault admin stores a new key that the provider accepts.
	h.up.SetKeys(newKey, h.platformKey)
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": newKey})
	// The refresh (every keys.refresh_interval) sees the new version; once
	// the cooldown is over, the probe call uses it and is served.
	waitFor(t, func() bool { return call("after the fix").KeySource == "client" })
	if r := call("after the fix"); r.KeySource != "client" || r.Billed != "client" || r.Reason != "" {
		t.Errorf("after the fix: key source %q billed %q reason %q", r.KeySource, r.Billed, r.Reason)
	}
	if !strings.Contains(h.logs.String(), `"alert: supplier key is accepted again"`) {
		t.Error("the key's return was not alerted")
	}
}
