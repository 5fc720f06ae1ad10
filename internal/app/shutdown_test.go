package app

import (
	"context"
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
	lookup := func(k string) (string, bool) { v, ok := map[string]string{"T": "veil-test"}[k]; return v, ok }
	cfg, err := config.ParseWithEnv([]byte(`listen:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
limits:
  disable_probes: true
providers:
  - {name: openai, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: env://OPENAI_API_KEY}
callers:
  - {name: app, token: env://T, suppliers: ["*"]}
usage:
  sinks: []
`), "veil.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Options{Log: zap.NewNop(), Audit: zap.NewNop(), Version: "test",
		Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}})
	if err == nil || a != nil {
		t.Fatalf("New = %v, %v; want an error and no app", a, err)
	}
	if !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Errorf("the error does not name the missing variable: %v", err)
	}
}
