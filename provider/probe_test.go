package provider

import (
	"strings"
	"testing"
	"time"

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
