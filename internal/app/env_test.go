package app

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
)

// testEnv is the environment a test's config reads its env:// secrets
// from.
type testEnv map[string]string

func (e testEnv) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

// parse parses yaml with e's variables.
func (e testEnv) parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.ParseWithEnv([]byte(yaml), "veil.yaml", e.lookup)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newApp builds an App from yaml with e's secrets.
func (e testEnv) newApp(t *testing.T, yaml string) (*App, error) {
	t.Helper()
	return New(e.parse(t, yaml), Options{Log: zap.NewNop(), Audit: zap.NewNop(), Version: "test",
		Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: e.lookup}}})
}

// start builds and starts an App from yaml, shut down when the test ends.
func (e testEnv) start(t *testing.T, yaml string) *App {
	t.Helper()
	a, err := e.newApp(t, yaml)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return a
}
