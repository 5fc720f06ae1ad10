package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/app"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/logging"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/usage"
)

// suiteLog collects every log line veil writes during the suite, so that
// TestMain can prove no secret ever reached a log.
var suiteLog = &lockedBuffer{}

// suiteSecrets are every key and token the suite handed to veil.
var suiteSecrets sync.Map

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		code = sweepLogs()
	}
	os.Exit(code)
}

// sweepLogs fails the suite when any secret the tests used appears in the
// captured logs, or when nothing was captured at all (which would make the
// sweep meaningless).
func sweepLogs() int {
	logs := suiteLog.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		fmt.Fprintln(os.Stderr, "log sweep: no access lines were captured; the sweep would prove nothing")
		return 1
	}
	leaked := 0
	suiteSecrets.Range(func(k, _ any) bool {
		s := k.(string)
		if strings.Contains(logs, s) {
			fmt.Fprintf(os.Stderr, "log sweep: a secret (fingerprint %s) appears in the logs\n", keys.Fingerprint(s))
			leaked++
		}
		return true
	})
	if leaked > 0 {
		return 1
	}
	return 0
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// secret returns a fresh random secret and registers it for the sweep.
func secret(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	s := prefix + hex.EncodeToString(b)
	suiteSecrets.Store(s, true)
	return s
}

// harness is a running veil in front of a fake upstream.
type harness struct {
	t           *testing.T
	up          *fakeopenai.Server
	app         *app.App
	platformKey string
	token       string
	adminToken  string
	// logs holds the operational and the audit log; audit the audit log
	// alone.
	logs  *lockedBuffer
	audit *lockedBuffer
	// yaml and lookup are the config veil started with, for reload tests.
	yaml   string
	lookup func(string) (string, bool)
}

// setup holds the knobs a test may turn before veil starts.
type setup struct {
	fake   fakeopenai.Options
	limits string // extra YAML under limits:
	// providers replaces the default provider list (YAML items); %s is the
	// fake's URL (ending in /v1), {root} the fake's URL without /v1, and
	// the key is env://PLATFORM_KEY.
	providers string
	// callers are extra caller items (YAML) after the default caller.
	callers string
	// extra is appended to the config (top-level sections).
	extra string
	// env adds secrets that env:// references in the config can name.
	env map[string]string
	// tap receives every usage record as it is emitted.
	tap func(*usage.Record)
}

func start(t *testing.T, s setup) *harness {
	t.Helper()
	h := &harness{t: t, platformKey: secret("sk-platform-"), token: secret("veil-caller-"),
		adminToken: secret("veil-admin-"), logs: &lockedBuffer{}, audit: &lockedBuffer{}}
	s.fake.Keys = append(s.fake.Keys, h.platformKey)
	h.up = fakeopenai.New(s.fake)
	if err := h.up.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("fake upstream: %v", err)
	}
	t.Cleanup(func() { _ = h.up.Close() })

	providers := s.providers
	if providers == "" {
		providers = `
  - name: openai
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY`
	}
	// Active probes would add requests to the upstream's record and take
	// scripted faults meant for calls; tests about probes turn them on.
	probes := "  disable_probes: true\n"
	if strings.Contains(s.limits, "probe_") {
		probes = ""
	}
	yaml := `listen:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
admin:
  token: env://ADMIN_TOKEN
limits:
  keepalive_interval: 100ms
` + probes + s.limits + `
providers:` + fillProviders(providers, h.up.URL()) + `
callers:
  - name: wedsync-app
    token: env://CALLER_TOKEN
    suppliers: ["*"]
` + s.callers + s.extra
	env := map[string]string{"PLATFORM_KEY": h.platformKey, "CALLER_TOKEN": h.token, "ADMIN_TOKEN": h.adminToken}
	for k, v := range s.env {
		env[k] = v
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	h.yaml, h.lookup = yaml, lookup
	cfg, err := config.ParseWithEnv([]byte(yaml), t.Name()+".yaml", lookup)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	log, err := logging.New("debug", "json", multiWriter{h.logs, suiteLog})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := logging.New("debug", "json", multiWriter{h.logs, h.audit, suiteLog})
	if err != nil {
		t.Fatal(err)
	}
	secrets := keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}
	h.app, err = app.New(cfg, app.Options{Log: log, Audit: audit, Version: "test", Secrets: secrets, UsageTap: s.tap})
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	if err := h.app.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.app.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return h
}

// baseURL is what an app sets as OPENAI_BASE_URL.
func (h *harness) baseURL() string { return "http://" + h.app.ProxyAddr() + "/v1" }

// testSupplier is the supplier the suite's requests act for unless a test
// says otherwise.
const testSupplier = "bella-photography"

// client is a go-openai client pointed at veil, acting for testSupplier.
func (h *harness) client() *openai.Client { return h.clientFor(testSupplier) }

// clientFor is a go-openai client pointed at veil, acting for supplier.
func (h *harness) clientFor(supplier string) *openai.Client {
	c := openai.DefaultConfig(h.token)
	c.BaseURL = h.baseURL()
	c.HTTPClient = &http.Client{Transport: supplierTransport{supplier: supplier}}
	return openai.NewClientWithConfig(c)
}

// supplierTransport adds X-Supplier-ID to every request, as a WedSync app
// does.
type supplierTransport struct{ supplier string }

func (t supplierTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Supplier-ID", t.supplier)
	return http.DefaultTransport.RoundTrip(r)
}

// direct is a go-openai client pointed at the fake upstream itself.
func (h *harness) direct() *openai.Client {
	c := openai.DefaultConfig(h.platformKey)
	c.BaseURL = h.up.URL()
	return openai.NewClientWithConfig(c)
}

// lastUpstream returns the last request the fake received.
func (h *harness) lastUpstream() fakeopenai.Received {
	h.t.Helper()
	rs := h.up.Requests()
	if len(rs) == 0 {
		h.t.Fatal("the upstream received nothing")
	}
	return rs[len(rs)-1]
}

// multiWriter writes every log line to each of its buffers.
type multiWriter []*lockedBuffer

func (m multiWriter) Write(p []byte) (int, error) {
	for _, b := range m {
		_, _ = b.Write(p)
	}
	return len(p), nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fillProviders puts the fake's URL into a provider list: {root} is the URL
// without /v1, and the text is a format string with the URL as its one
// argument only when it has verbs (%s or %[1]s).
func fillProviders(text, url string) string {
	text = strings.ReplaceAll(text, "{root}", strings.TrimSuffix(url, "/v1"))
	if !strings.Contains(text, "%") {
		return text
	}
	return fmt.Sprintf(text, url)
}
