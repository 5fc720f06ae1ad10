package provider

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/keys"
)

// TestProbe: a probe is one GET /v1/models with a platform key, and the
// provider's answer is its result.
func TestProbe(t *testing.T) {
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{"sk-probe-platform"}})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	cases := []struct {
		name   string
		secret string
		want   int
	}{
		{"valid key", "sk-probe-platform", 200},
		{"refused key", "sk-probe-revoked", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(config.Provider{Name: "openai", Type: "openai", BaseURL: up.URL()}, []keys.Secret{keys.NewSecret(tc.secret)}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			status, err := p.Probe(time.Now().Add(10 * time.Second))
			if err != nil || status != tc.want {
				t.Fatalf("probe: %d %v, want %d", status, err, tc.want)
			}
		})
	}
	reqs := up.Requests()
	if len(reqs) != 2 || reqs[0].Method != "GET" || reqs[0].Path != "/v1/models" ||
		reqs[0].Header.Get("Authorization") != "Bearer sk-probe-platform" {
		t.Errorf("requests %+v", reqs)
	}

	dead, err := New(config.Provider{Name: "dead", Type: "openai", BaseURL: "http://127.0.0.1:1/v1"}, []keys.Secret{keys.NewSecret("sk-x")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if status, err := dead.Probe(time.Now().Add(5 * time.Second)); err == nil || status != 0 {
		t.Errorf("dead port: %d %v", status, err)
	}
	clientOnly, err := New(config.Provider{Name: "byok", Type: "openai", BaseURL: up.URL()}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientOnly.Probe(time.Now().Add(time.Second)); err == nil || !strings.Contains(err.Error(), "no platform key") {
		t.Errorf("provider without platform keys: %v", err)
	}
}

// TestCheckKey: a key check asks each provider type for its model list the
// way that type expects (Azure's /openai/models with api-version and
// api-key, Anthropic's x-api-key and anthropic-version), so a working key
// is accepted with the provider's model count and a revoked one is refused
// with the provider's message.
func TestCheckKey(t *testing.T) {
	const good, revoked = "sk-check-good-0123456789", "sk-check-revoked-0123456789"
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{good}, Models: []string{"gpt-4o-mini", "gpt-4o"}})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	root := strings.TrimSuffix(up.URL(), "/v1")
	providers := []struct {
		cfg        config.Provider
		models     int
		path       string
		header     string
		refusalMsg string
	}{
		{config.Provider{Name: "openai", Type: "openai", BaseURL: up.URL()}, 2, "/v1/models", "Authorization", "Incorrect API key"},
		{config.Provider{Name: "azure", Type: "azure", BaseURL: root, Azure: &config.Azure{APIVersion: "2024-10-21"}},
			2, "/openai/models", "api-key", "Access denied"},
		{config.Provider{Name: "anthropic", Type: "anthropic", BaseURL: up.URL()},
			len(fakeopenai.DefaultAnthropicModels), "/v1/models", "x-api-key", "invalid x-api-key"},
		{config.Provider{Name: "compat", Type: "openaicompat", BaseURL: up.URL()}, 2, "/v1/models", "Authorization", "Incorrect API key"},
	}
	for _, pc := range providers {
		p, err := New(pc.cfg, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		for _, key := range []string{good, revoked} {
			t.Run(pc.cfg.Name+"/"+key[len("sk-check-"):len(key)-len("-0123456789")], func(t *testing.T) {
				before := len(up.Requests())
				r, err := p.CheckKey(keys.NewKey(keys.NewSecret(key), billing.ClientKey, ""), time.Now().Add(10*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				if key == good && (!r.OK() || r.Models != pc.models || r.Message != "") {
					t.Errorf("working key: %+v, want 200 with %d models", r, pc.models)
				}
				if key == revoked && (r.OK() || !r.Refused() || !strings.Contains(r.Message, pc.refusalMsg)) {
					t.Errorf("revoked key: %+v, want refused with %q", r, pc.refusalMsg)
				}
				reqs := up.Requests()[before:]
				if len(reqs) != 1 || reqs[0].Method != "GET" || reqs[0].Path != pc.path || reqs[0].Header.Get(pc.header) == "" {
					t.Fatalf("upstream saw %+v, want one GET %s with %s", reqs, pc.path, pc.header)
				}
				if pc.cfg.Type == "anthropic" && reqs[0].Header.Get("anthropic-version") == "" {
					t.Error("the Anthropic probe has no anthropic-version")
				}
			})
		}
	}
}

// TestCheckKeyCode: a key check carries the error's code, which tells an
// account out of quota from a refused key.
func TestCheckKeyCode(t *testing.T) {
	const broke, wrong = "sk-check-broke-0123456789", "sk-check-wrong-0123456789"
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{"sk-check-good-0123456789"}, NoQuotaKeys: []string{broke}})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	p, err := New(config.Provider{Name: "openai", Type: "openai", BaseURL: up.URL()}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	for key, want := range map[string]KeyProbe{broke: {Status: 429, Code: "insufficient_quota"}, wrong: {Status: 401, Code: "invalid_api_key"}} {
		r, err := p.CheckKey(keys.NewKey(keys.NewSecret(key), billing.ClientKey, ""), time.Now().Add(10*time.Second))
		if err != nil || r.Status != want.Status || r.Code != want.Code {
			t.Errorf("CheckKey = %+v, %v; want status %d code %s", r, err, want.Status, want.Code)
		}
	}
}
