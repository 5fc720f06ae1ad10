package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/vault/api"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/otlptest"
	"github.com/wedsync/veil/internal/vaulttest"
	"github.com/wedsync/veil/keys"
)

// The secret sweep: veil runs the main scenarios with credentials the test
// knows, then every place veil writes to that anyone but the provider can
// read (logs, audit, usage records and file, admin answers, metrics, the
// answers clients get, errors included, and the spans a collector gets) is searched for any eight
// characters in a row of any credential.
//
// Every credential is sweepLen characters drawn uniformly from the 62
// letters and digits, with no prefix, so any 8-character window of one is 8
// random characters. Text veil writes without knowing a credential matches
// a given window at a given position with probability 62^-8 (about
// 4.6e-15): over W windows and N characters of sinks a chance hit has
// probability at most W*N/62^8. With the 11 credentials below (446
// windows) and a megabyte of sinks that is about 2e-6; a run has some
// 320 KB of sinks, about 7e-7, and the test logs the bound for the sizes
// it saw. (The JWT signature is base64url, 64 symbols: 64^-8 is smaller
// still.) Request IDs, fingerprints and the provider's masked keys do not
// change the bound: either they do not derive from a credential's
// characters, or they show fewer than 8 of them in a row.

const (
	sweepLen    = 48
	sweepWindow = 8
	sweepAlnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// strongSecret returns sweepLen random letters and digits, registered for
// the suite's log sweep too.
func strongSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, sweepLen)
	n := big.NewInt(int64(len(sweepAlnum)))
	for i := range b {
		r, err := rand.Int(rand.Reader, n)
		if err != nil {
			t.Fatal(err)
		}
		b[i] = sweepAlnum[r.Int64()]
	}
	suiteSecrets.Store(string(b), true)
	return string(b)
}

// sink is a place veil writes to that others than the provider read.
type sink struct{ name, text string }

// sweeper drives the scenarios and keeps what veil showed.
type sweeper struct {
	t *testing.T
	h *harness
	v *vaulttest.Server
	// secrets are the credentials veil was given, by name.
	secrets map[string]string
	// client is every answer a client got (status line, headers, body);
	// admin every admin answer except /metrics, which is metrics.
	client, admin, metrics  bytes.Buffer
	clientCalls, adminCalls int
}

// record appends one answer, status line, headers and body, to buf.
func record(buf *bytes.Buffer, resp *http.Response, body []byte) {
	fmt.Fprintf(buf, "%s %s\n", resp.Proto, resp.Status)
	_ = resp.Header.Write(buf)
	buf.WriteString("\n")
	buf.Write(body)
	buf.WriteString("\n\n")
}

// call sends a request to veil's proxy listener (with the caller token and
// bella as supplier unless hdr says otherwise) and keeps the answer.
func (s *sweeper) call(method, path, body string, hdr map[string]string) (int, http.Header, string) {
	s.t.Helper()
	resp := s.h.do(method, path, body, hdr)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	record(&s.client, resp, b)
	s.clientCalls++
	return resp.StatusCode, resp.Header, string(b)
}

// supplierHeader is the header map of a call for supplier.
func supplierHeader(supplier string) map[string]string {
	return map[string]string{"X-Supplier-ID": supplier}
}

// adminCall sends a request to the admin listener with token (none when
// empty) and keeps the answer.
func (s *sweeper) adminCall(method, path, token, body string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, "http://"+s.h.app.AdminAddr()+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	buf := &s.admin
	if path == "/metrics" {
		buf = &s.metrics
	}
	record(buf, resp, b)
	s.adminCalls++
	return resp.StatusCode, string(b)
}

// adminOK is adminCall with the admin token, failing unless the status is
// want.
func (s *sweeper) adminOK(method, path, body string, want int) string {
	s.t.Helper()
	code, got := s.adminCall(method, path, s.h.adminToken, body)
	if code != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, got)
	}
	return got
}

// accept makes the fake provider accept only the named keys.
func (s *sweeper) accept(names ...string) {
	var ks []string
	for _, n := range names {
		ks = append(ks, s.secrets[n])
	}
	s.h.up.SetKeys(ks...)
}

// lastKey names the secret the provider saw on the last call.
func (s *sweeper) lastKey() string {
	s.t.Helper()
	auth := s.h.lastAuth()
	for n, v := range s.secrets {
		if auth == "Bearer "+v {
			return n
		}
	}
	return "an unknown key"
}

// expect fails the test unless a call's status is want.
func (s *sweeper) expect(what string, code int, body string, want int) {
	s.t.Helper()
	if code != want {
		s.t.Errorf("%s: status %d, want %d: %s", what, code, want, body)
	}
}

// TestSecretSweep: after the main scenarios ran with known credentials, no
// sink holds eight characters in a row of any of them.
func TestSecretSweep(t *testing.T) {
	v, _ := vaultSetup(t)
	s := &sweeper{t: t, v: v, secrets: map[string]string{}}
	for _, n := range []string{"platform key (env)", "platform key (Vault)", "platform key after reload",
		"bella's key v1 (Vault)", "bella's key v2 (Vault)", "rose's refused key (Vault)", "caller token",
		"admin token", "Vault token", "JWT HS256 secret"} {
		s.secrets[n] = strongSecret(t)
	}
	// A Vault token with an ID we chose, with veil's policy; short-lived so
	// that veil renews it while the scenarios run.
	renewable := true
	if _, err := v.Client.Auth().Token().Create(&api.TokenCreateRequest{ID: s.secrets["Vault token"],
		Policies: []string{"veil"}, TTL: "6s", Renewable: &renewable}); err != nil {
		t.Fatalf("creating the Vault token: %v", err)
	}
	v.WriteKV(t, "wedsync/platform/secondary", map[string]any{"api_key": s.secrets["platform key (Vault)"]})
	for _, p := range []string{"primary", "secondary"} {
		v.WriteKV(t, "wedsync/suppliers/bella-photography/"+p, map[string]any{"api_key": s.secrets["bella's key v1 (Vault)"]})
	}
	v.WriteKV(t, "wedsync/suppliers/rose-venue/primary", map[string]any{"api_key": s.secrets["rose's refused key (Vault)"]})

	usageFile := filepath.Join(t.TempDir(), "usage.jsonl")
	tp := &tap{}
	collector := otlptest.New(t) // every request's spans, sampled at ratio 1
	s.h = start(t, setup{
		tap: tp.add,
		env: map[string]string{"PLATFORM_KEY": s.secrets["platform key (env)"], "CALLER_TOKEN": s.secrets["caller token"],
			"ADMIN_TOKEN": s.secrets["admin token"], "VAULT_TOKEN": s.secrets["Vault token"], "JWT_HS": s.secrets["JWT HS256 secret"]},
		limits: "  max_retries: 0\n",
		providers: `
  - name: primary
    type: openai
    base_url: %[1]s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini, text-embedding-3-small]
  - name: secondary
    type: openai
    base_url: %[1]s
    api_key: vault://secret/wedsync/platform/secondary#api_key
    models: [gpt-4o-mini, text-embedding-3-small]`,
		// bella is in client mode, tiny-florist has a tier of one request a
		// minute, everyone else is on platform keys.
		extra: vaultYAML(v, "1h", "10h") + `    - id: tiny-florist
      tier: starter
jwt:
  hs256_keys: [env://JWT_HS]
  issuer: wedsync
tiers:
  - name: starter
    requests_per_minute: 1
    tokens_per_minute: 100000
usage:
  flush_interval: 20ms
  sinks:
    - type: file
      path: ` + usageFile + `
prices:
  - {provider: primary, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.60}
  - {provider: secondary, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.60}
  - {provider: primary, model: text-embedding-3-small, input_per_mtok: 0.02}
tracing:
  otlp_endpoint: ` + collector.URL() + `
  batch_timeout: 20ms
`,
	})
	// The harness made credentials of its own; these scenarios use ours.
	s.h.platformKey, s.h.token, s.h.adminToken = s.secrets["platform key (env)"], s.secrets["caller token"], s.secrets["admin token"]
	s.accept("platform key (env)", "platform key (Vault)", "bella's key v1 (Vault)")

	s.scenarios(t)

	// Usage records of streams are emitted once they end; the file sink
	// writes in batches. Wait until both hold every record.
	var fileText string
	waitFor(t, func() bool {
		n := len(tp.all())
		time.Sleep(50 * time.Millisecond)
		b, _ := os.ReadFile(usageFile)
		fileText = string(b)
		return n == len(tp.all()) && strings.Count(fileText, "\n") == n
	})
	// Every client call has its request span.
	waitFor(t, func() bool {
		n := 0
		for _, sp := range collector.Spans() {
			if sp.ParentID == "" {
				n++
			}
		}
		return n >= s.clientCalls
	})
	var recs bytes.Buffer
	for _, r := range tp.all() {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		recs.Write(append(b, '\n'))
	}

	sinks := []sink{
		{"operational log", s.h.logs.String()}, // the operational log and the audit log interleaved
		{"audit log", s.h.audit.String()},
		{"usage records", recs.String()},
		{"usage file", fileText},
		{"admin answers", s.admin.String()},
		{"metrics", s.metrics.String()},
		{"client answers", s.client.String()},
		{"spans", string(collector.Bodies())}, // OTLP protobuf, as the collector stores it
	}
	s.checkSinksSawScenarios(t, len(tp.all()), sinks)
	sweepSinks(t, s.secrets, sinks)
	noMaskedEchoes(t, s.secrets, sinks)
}

// scenarios runs the main paths of veil with the sweep's credentials.
func (s *sweeper) scenarios(t *testing.T) {
	h := s.h
	rose, tiny := supplierHeader("rose-venue"), supplierHeader("tiny-florist")

	// Plain and streamed chat on platform keys, and on bella's own key
	// from Vault.
	var (
		code int
		hdr  http.Header
		body string
	)
	for _, c := range []struct {
		who         string
		hdr         map[string]string
		source, key string
	}{{"rose", rose, "platform", "platform key (env)"}, {"bella", nil, "client", "bella's key v1 (Vault)"}} {
		code, hdr, body = s.call("POST", "/v1/chat/completions", chatBody, c.hdr)
		if code != 200 || hdr.Get("X-Veil-Key-Source") != c.source || s.lastKey() != c.key {
			t.Errorf("%s's chat: status %d, key source %q, the provider saw %s: %s", c.who, code, hdr.Get("X-Veil-Key-Source"), s.lastKey(), body)
		}
		code, _, body = s.call("POST", "/v1/chat/completions", streamBody, c.hdr)
		if code != 200 || !strings.Contains(body, "data: [DONE]") {
			t.Errorf("%s's stream: status %d: %s", c.who, code, body)
		}
	}

	// A cache hit, and an embeddings call.
	s.call("POST", "/v1/chat/completions", cachedChat, rose)
	if _, hdr, _ := s.call("POST", "/v1/chat/completions", cachedChat, rose); hdr.Get("X-Veil-Cache") != "HIT" {
		t.Errorf("the repeat was not a cache hit: %q", hdr.Get("X-Veil-Cache"))
	}
	code, _, body = s.call("POST", "/v1/embeddings", `{"model":"text-embedding-3-small","input":"a barn venue with fairy lights"}`, rose)
	s.expect("embeddings", code, body, 200)
	s.call("GET", "/v1/models", "", rose)

	// Failover to the secondary, whose platform key comes from Vault:
	// plain after a 500, streamed after an error event.
	h.up.Script(fakeopenai.Status(500, 1))
	code, hdr, body = s.call("POST", "/v1/chat/completions", chatBody, rose)
	if code != 200 || hdr.Get("X-Veil-Failover") != "true" || s.lastKey() != "platform key (Vault)" {
		t.Errorf("failover: status %d failover %q, the provider saw %s: %s", code, hdr.Get("X-Veil-Failover"), s.lastKey(), body)
	}
	h.up.Script(fakeopenai.ErrorEvent(0))
	code, hdr, body = s.call("POST", "/v1/chat/completions", streamBody, rose)
	if code != 200 || hdr.Get("X-Veil-Failover") != "true" || !strings.Contains(body, "data: [DONE]") {
		t.Errorf("stream failover: status %d failover %q: %s", code, hdr.Get("X-Veil-Failover"), body)
	}
	// A stream that fails after its first token: an in-band error event.
	h.up.Script(fakeopenai.Cut(2))
	s.call("POST", "/v1/chat/completions", streamBody, rose)

	// 429s: the provider's on both targets, passed through; veil's own.
	h.up.Script(fakeopenai.RateLimit(time.Second).Repeat(2))
	code, _, body = s.call("POST", "/v1/chat/completions", chatBody, rose)
	s.expect("provider 429", code, body, 429)
	s.call("POST", "/v1/chat/completions", chatBody, tiny)
	code, _, body = s.call("POST", "/v1/chat/completions", chatBody, tiny)
	s.expect("tier 429", code, body, 429)

	// The provider refuses the platform keys: its 401 (which, like
	// OpenAI's, shows the key's first 3 and last 4 characters) reaches the
	// client, plain and streamed.
	s.accept("bella's key v1 (Vault)")
	code, _, body = s.call("POST", "/v1/chat/completions", chatBody, rose)
	s.expect("platform key refused", code, body, 401)
	code, _, body = s.call("POST", "/v1/chat/completions", streamBody, rose)
	s.expect("platform key refused, streamed", code, body, 401)
	// It refuses bella's key with nothing newer in Vault.
	s.accept("platform key (env)", "platform key (Vault)")
	code, _, body = s.call("POST", "/v1/chat/completions", chatBody, nil)
	s.expect("bella's key refused", code, body, 401)

	// Rotation: a Vault admin writes bella's new key, the provider drops
	// the old one; the next call meets the refusal, refreshes and retries.
	for _, p := range []string{"primary", "secondary"} {
		s.v.WriteKV(t, "wedsync/suppliers/bella-photography/"+p, map[string]any{"api_key": s.secrets["bella's key v2 (Vault)"]})
	}
	s.accept("platform key (env)", "platform key (Vault)", "bella's key v2 (Vault)")
	// The key store's "no other version" is shared until the key's
	// version changes, so that a flood of refused calls reads it once:
	// the new version is picked up at the next refresh, or at once when
	// asked for.
	s.adminOK("POST", "/admin/suppliers/bella-photography/keys/refresh", "", 200)
	code, _, body = s.call("POST", "/v1/chat/completions", chatBody, nil)
	if code != 200 || s.lastKey() != "bella's key v2 (Vault)" {
		t.Errorf("after the rotation: status %d, the provider saw %s: %s", code, s.lastKey(), body)
	}

	// Bad client input. Bogus credentials are not secrets veil was given;
	// its own credentials presented in the wrong place are.
	bogus := "Bearer sk-" + strings.Repeat("Zq9", 16)
	for name, hd := range map[string]map[string]string{
		"a wrong caller token":         {"Authorization": bogus},
		"no caller token":              {"Authorization": ""},
		"the platform key as caller":   {"Authorization": "Bearer " + s.secrets["platform key (env)"]},
		"the admin token as caller":    {"Authorization": "Bearer " + s.secrets["admin token"]},
		"the Vault token as caller":    {"Authorization": "Bearer " + s.secrets["Vault token"]},
		"the JWT secret as caller":     {"Authorization": "Bearer " + s.secrets["JWT HS256 secret"]},
		"the caller token in api-key":  {"Authorization": "", "api-key": s.secrets["caller token"]},
		"the caller token, no bearer":  {"Authorization": s.secrets["caller token"]},
		"a JWT with a wrong signature": {"Authorization": "Bearer " + s.jwt(t, strongSecret(t))},
	} {
		if code, _, body := s.call("POST", "/v1/chat/completions", chatBody, hd); code != 401 {
			t.Errorf("%s: status %d: %s", name, code, body)
		}
	}
	for name, c := range map[string]struct {
		body string
		hdr  map[string]string
		want int
	}{
		"malformed JSON":   {`{"model":"gpt-4o-mini","messages":[`, rose, 400},
		"no supplier":      {chatBody, map[string]string{"X-Supplier-ID": ""}, 400},
		"an unknown model": {`{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, rose, 404},
	} {
		if code, _, body := s.call("POST", "/v1/chat/completions", c.body, c.hdr); code != c.want {
			t.Errorf("%s: status %d, want %d: %s", name, code, c.want, body)
		}
	}
	// A signed supplier token carries bella.
	token := s.jwt(t, s.secrets["JWT HS256 secret"])
	s.secrets["a signed supplier token's signature"] = token[strings.LastIndexByte(token, '.')+1:]
	suiteSecrets.Store(token, true)
	code, _, body = s.call("POST", "/v1/chat/completions", chatBody, map[string]string{"Authorization": "Bearer " + token, "X-Supplier-ID": ""})
	s.expect("signed supplier token", code, body, 200)

	s.adminScenarios(t)

	// A reload that moves the primary's platform key to a new one in
	// Vault, and one refused because a secret it names cannot be resolved.
	s.v.WriteKV(t, "wedsync/platform/primary", map[string]any{"api_key": s.secrets["platform key after reload"]})
	s.accept("platform key after reload", "platform key (Vault)", "bella's key v2 (Vault)")
	moved := strings.Replace(h.yaml, "env://PLATFORM_KEY", "vault://secret/wedsync/platform/primary#api_key", 1)
	for i, doc := range []string{moved + "aliases:\n  wedsync-fast: gpt-4o-mini\n",
		strings.Replace(moved, "primary#api_key", "primary#no_such_field", 1)} {
		cfg, err := config.ParseWithEnv([]byte(doc), "reload.yaml", h.lookup)
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if err := h.app.Reload(cfg); (err == nil) != (i == 0) {
			t.Errorf("reload %d: %v", i, err)
		}
	}
	code, _, body = s.call("POST", "/v1/chat/completions", `{"model":"wedsync-fast","messages":[{"role":"user","content":"A toast."}]}`, rose)
	if code != 200 || s.lastKey() != "platform key after reload" {
		t.Errorf("after the reload: status %d, the provider saw %s: %s", code, s.lastKey(), body)
	}
	// Vault unreachable: a key refresh fails and the keys' state says why
	// (checked with the admin answers below).
	s.v.Block()
	s.adminOK("POST", "/admin/suppliers/bella-photography/keys/refresh", "", 200)
	s.v.Unblock()
	// Every admin read once more, after all of it.
	s.adminReads(t)
}

// jwt returns a signed supplier token for bella signed with key.
func (s *sweeper) jwt(t *testing.T, key string) string {
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "wedsync", "sub": "planner-app",
		"supplier_id": "bella-photography", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// adminScenarios calls every admin endpoint, and the guarded ones with
// wrong credentials.
func (s *sweeper) adminScenarios(t *testing.T) {
	h := s.h
	for name, token := range map[string]string{"no token": "", "a wrong token": strongSecret(t),
		"the caller token": h.token, "the platform key": h.platformKey, "the Vault token": s.secrets["Vault token"]} {
		if code, body := s.adminCall("GET", "/admin/status", token, ""); code != 401 {
			t.Errorf("admin status with %s: %d %s", name, code, body)
		}
	}
	if code, _ := s.adminCall("GET", "/admin/nothing-here", h.adminToken, ""); code != 404 {
		t.Errorf("an unknown admin path: %d", code)
	}
	s.adminReads(t)
	s.adminOK("POST", "/admin/suppliers/bella-photography/keys/refresh", "", 200)
	s.adminOK("PUT", "/admin/suppliers/rose-venue", `{"tier":"starter"}`, 200)
	s.adminOK("GET", "/admin/suppliers/rose-venue", "", 200)
	s.adminOK("DELETE", "/admin/suppliers/rose-venue", "", 200)
	s.adminOK("POST", "/admin/cache/purge?supplier=rose-venue", "", 200)

	// A migration of bella to platform keys: planned (with a live probe of
	// the target key), read, validated, rolled back. One of rose to a key
	// of her own that the provider refuses: the probe fails.
	var m struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(s.adminOK("POST", "/admin/migrations",
		`{"supplier":"bella-photography","to":{"mode":"platform"},"stages":[{"share":0.5,"dwell":"1m"},{"share":1,"dwell":"1m"}],"reason":"sweep"}`,
		201)), &m); err != nil || m.ID == "" {
		t.Fatalf("migration plan: %v", err)
	}
	s.adminOK("GET", "/admin/migrations/"+m.ID, "", 200)
	s.adminOK("GET", "/admin/migrations/"+m.ID+"/validate", "", 200)
	s.adminOK("POST", "/admin/migrations/"+m.ID+"/start", "", 200)
	s.call("POST", "/v1/chat/completions", chatBody, nil)
	s.adminOK("POST", "/admin/migrations/"+m.ID+"/rollback", `{"reason":"sweep"}`, 200)
	s.adminOK("POST", "/admin/migrations",
		`{"supplier":"rose-venue","to":{"mode":"client","key_ref":"vault://secret/wedsync/suppliers/rose-venue/primary#api_key"},"reason":"sweep"}`, 400)

	// A shadow comparison of bella's calls on platform keys.
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(s.adminOK("POST", "/admin/comparisons",
		`{"supplier":"bella-photography","requests":1,"sample":1}`, 201)), &c); err != nil || c.ID == "" {
		t.Fatalf("comparison: %v", err)
	}
	// Call until the comparison has recorded its pair.
	for i := 0; ; i++ {
		var rep struct {
			Comparison struct {
				Recorded int `json:"recorded"`
			} `json:"comparison"`
		}
		if err := json.Unmarshal([]byte(s.adminOK("GET", "/admin/comparisons/"+c.ID, "", 200)), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Comparison.Recorded >= 1 {
			break
		}
		if i == 200 {
			t.Fatal("the comparison recorded no pair")
		}
		s.call("POST", "/v1/chat/completions", chatBody, nil)
		time.Sleep(20 * time.Millisecond)
	}
	s.adminCall("POST", "/admin/comparisons/"+c.ID+"/stop", h.adminToken, "")
}

// adminReads GETs every readable admin endpoint.
func (s *sweeper) adminReads(t *testing.T) {
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/admin/status", "/admin/keys", "/admin/usage",
		"/admin/usage?group_by=day,supplier,provider,model,key_source", "/admin/explain?supplier=bella-photography",
		"/admin/explain?supplier=rose-venue&workflow=venue&model=gpt-4o-mini", "/admin/explain?supplier=tiny-florist",
		"/admin/suppliers/bella-photography", "/admin/migrations", "/admin/comparisons", "/admin/capacity"} {
		s.adminOK("GET", p, "", 200)
	}
}

// checkSinksSawScenarios fails the test when a sink missed what the
// scenarios must have put in it, so that the sweep cannot pass by
// searching empty or partial sinks.
func (s *sweeper) checkSinksSawScenarios(t *testing.T, records int, sinks []sink) {
	t.Helper()
	text := map[string]string{}
	for _, sk := range sinks {
		text[sk.name] = sk.text
	}
	want := map[string][]string{
		"operational log": {`"msg":"request"`, `"supplier key rotated"`, `"caller authentication failed"`, `"vault token renewed"`},
		"audit log":       {`"admin action"`, `"admin authentication failed"`, `"supplier key fetched"`},
		"usage records":   {`"key_source":"client"`, `"key_source":"platform"`, `"cache":"hit"`, `"failover":true`},
		"usage file":      {`"key_source":"client"`, `"endpoint":"embeddings"`},
		"admin answers": {keys.Fingerprint(s.secrets["platform key (Vault)"]), keys.Fingerprint(s.secrets["bella's key v2 (Vault)"]),
			keys.Fingerprint(s.secrets["platform key after reload"]), "target key probe failed", `no field \"no_such_field\"`, "connection refused"},
		"metrics":        {"veil_requests_total{"},
		"client answers": {"X-Request-Id: ", "invalid_api_key", "quota_exceeded", "data: [DONE]"},
		"spans":          {"gen_ai.usage.input_tokens", "failed_over", "key_refused", "bella-photography"},
	}
	for name, subs := range want {
		for _, sub := range subs {
			if !strings.Contains(text[name], sub) {
				t.Errorf("the %s lack %q: the sweep would search a sink that missed the scenarios", name, sub)
			}
		}
	}
	if n := strings.Count(text["operational log"], `"msg":"request"`); n < s.clientCalls {
		t.Errorf("%d access lines for %d client calls", n, s.clientCalls)
	}
	if records < 20 {
		t.Errorf("only %d usage records", records)
	}
	var sizes []string
	for _, sk := range sinks {
		sizes = append(sizes, fmt.Sprintf("%s %d bytes", sk.name, len(sk.text)))
	}
	t.Logf("sinks: %s; %d client calls, %d admin calls, %d usage records", strings.Join(sizes, ", "),
		s.clientCalls, s.adminCalls, records)
}

// leak is one secret found in one sink.
type leak struct {
	secret, fingerprint, sink string
	// windows is how many of the secret's 8-character windows the sink
	// holds; offset is the first one's offset in the secret, at its byte
	// in the sink.
	windows, offset, at int
	// excerpt is the sink around the hit with every secret starred out.
	excerpt string
}

func (l leak) String() string {
	return fmt.Sprintf("%s (fingerprint %s) in the %s: %d windows, the first at offset %d of the secret, byte %d of the sink: %q",
		l.secret, l.fingerprint, l.sink, l.windows, l.offset, l.at, l.excerpt)
}

// leaks returns, for every secret and sink, the secret's 8-character
// windows that the sink holds. Every longer substring holds one of them.
func leaks(secrets map[string]string, sinks []sink) []leak {
	var out []leak
	for n, v := range secrets {
		for _, sk := range sinks {
			l := leak{secret: n, fingerprint: keys.Fingerprint(v), sink: sk.name, offset: -1}
			for off := 0; off+sweepWindow <= len(v); off++ {
				if i := strings.Index(sk.text, v[off:off+sweepWindow]); i >= 0 {
					if l.windows == 0 {
						l.offset, l.at = off, i
					}
					l.windows++
				}
			}
			if l.windows > 0 {
				lo, hi := max(0, l.at-80), min(len(sk.text), l.at+sweepWindow+80)
				l.excerpt = starred(sk.text[lo:hi], secrets)
				out = append(out, l)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// starred returns text with every 8-character window of every secret
// replaced by stars, so that a report can show where a secret leaked
// without repeating it.
func starred(text string, secrets map[string]string) string {
	out := []byte(text)
	for _, v := range secrets {
		for off := 0; off+sweepWindow <= len(v); off++ {
			w := v[off : off+sweepWindow]
			for from := 0; ; {
				i := strings.Index(text[from:], w)
				if i < 0 {
					break
				}
				copy(out[from+i:], strings.Repeat("*", sweepWindow))
				from += i + 1
			}
		}
	}
	return string(out)
}

// sweepSinks fails the test for every secret found in a sink, after
// checking on a planted leak that the search finds one.
func sweepSinks(t *testing.T, secrets map[string]string, sinks []sink) {
	t.Helper()
	windows, chars := 0, 0
	for n, v := range secrets {
		if len(v) < 40 {
			t.Errorf("secret %q (%s) is only %d characters", n, keys.Fingerprint(v), len(v))
		}
		windows += len(v) - sweepWindow + 1
	}
	for _, sk := range sinks {
		chars += len(sk.text)
	}
	t.Logf("%d secrets, %d windows of %d characters, %d characters of sinks: chance of a hit by coincidence <= %.1e",
		len(secrets), windows, sweepWindow, chars, float64(windows)*float64(chars)/math.Pow(62, sweepWindow))

	canary := strongSecret(t)
	planted := []sink{{"planted sink", `{"msg":"request","note":"` + canary[17:17+sweepWindow] + `"}`}}
	if got := leaks(map[string]string{"canary": canary}, planted); len(got) != 1 || got[0].offset != 17 ||
		strings.Contains(got[0].excerpt, canary[17:17+sweepWindow]) {
		t.Fatalf("the sweep does not find a planted 8-character leak as it should: %v", got)
	}
	for _, l := range leaks(secrets, sinks) {
		t.Errorf("LEAK: %s", l)
	}
}

// noMaskedEchoes fails where a sink shows a key the way providers mask it
// in their 401 answers (OpenAI: the first characters, stars, the last 4):
// veil answers a refused key itself, naming only its fingerprint.
func noMaskedEchoes(t *testing.T, secrets map[string]string, sinks []sink) {
	t.Helper()
	for n, v := range secrets {
		for _, sk := range sinks {
			if c := strings.Count(sk.text, "*"+v[len(v)-4:]); c > 0 {
				t.Errorf("the %s show the last 4 characters of %s (fingerprint %s) after a mask, %d times",
					sk.name, n, keys.Fingerprint(v), c)
			}
		}
	}
}
