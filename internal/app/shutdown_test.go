package app

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
)

// TestShutdownRightAfterStart: a Shutdown that comes before the listeners'
// Serve goroutines have begun still stops them, so it returns and no
// goroutine accepts forever.
func TestShutdownRightAfterStart(t *testing.T) {
	lookup := func(k string) (string, bool) { return map[string]string{"K": "sk-test", "T": "veil-test"}[k], true }
	cfg, err := config.ParseWithEnv([]byte(`listen:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
limits:
  disable_probes: true
providers:
  - {name: openai, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: env://K}
callers:
  - {name: app, token: env://T, suppliers: ["*"]}
usage:
  sinks: []
`), "veil.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		a, err := New(cfg, Options{Log: zap.NewNop(), Audit: zap.NewNop(), Version: "test",
			Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		cancel()
	}
}

// TestNewFailsCleanlyOnAMissingSecret: a start-up error (here a platform
// key whose variable is unset) is returned, not a panic, and what New had
// opened is closed.
func TestNewFailsCleanlyOnAMissingSecret(t *testing.T) {
	env := testEnv{"T": "veil-test"}
	a, err := env.newApp(t, strings.Replace(reloadYAML, "env://K}", "env://OPENAI_API_KEY}", 1))
	if err == nil || a != nil {
		t.Fatalf("New = %v, %v; want an error and no app", a, err)
	}
	if !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Errorf("the error does not name the missing variable: %v", err)
	}
}

// TestStartFailureReleasesResources: when a listener cannot be opened,
// Start returns the error and releases what New opened: the embedded
// store's file is free for the next veil at once.
func TestStartFailureReleasesResources(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	lookup := func(k string) (string, bool) { return map[string]string{"K": "sk-test", "T": "veil-test"}[k], true }
	body := `listen:
  proxy: 127.0.0.1:0
  admin: ` + busy.Addr().String() + `
limits:
  disable_probes: true
providers:
  - {name: openai, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: env://K}
callers:
  - {name: app, token: env://T, suppliers: ["*"]}
usage:
  sinks: []
store:
  data_dir: ` + t.TempDir() + `
`
	cfg, err := config.ParseWithEnv([]byte(body), "veil.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Log: zap.NewNop(), Audit: zap.NewNop(), Version: "test",
		Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}}
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err == nil || !strings.Contains(err.Error(), "admin listener") {
		t.Fatalf("Start = %v, want the admin listener's error", err)
	}
	b, err := New(cfg, opts) // the store's file must not be locked any more
	if err != nil {
		t.Fatalf("a second New on the same data directory: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Errorf("a Shutdown after the failed Start: %v", err)
	}
	_ = b.Start() // fails again on the busy admin address, and closes
	_ = b.Shutdown(ctx)
}
