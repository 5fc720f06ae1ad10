package deploy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"sigs.k8s.io/yaml"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/app"
	"github.com/wedsync/veil/keys"
)

// localEnv holds the secrets localConfig's references name.
var localEnv = map[string]string{"PLATFORM_KEY": "sk-deploy-test", "SUPPLIER_KEY": "sk-deploy-supplier",
	"CALLER_TOKEN": "veil-deploy-test", "ADMIN_TOKEN": "veil-deploy-admin"}

func lookupLocal(k string) (string, bool) { v, ok := localEnv[k]; return v, ok }

// localConfig returns the veil config text with what it reaches outside
// the process swapped for local stand-ins, so that it starts in a test:
// listeners on free loopback ports, secrets from localEnv, Vault off, the
// embedded store in memory, suppliers' own keys from localEnv, the spool in a temporary directory, no alert
// webhook, no probes. What shapes the metrics stays as it is: providers
// (their keys aside), models, prices, routes, aliases, tiers, seasons,
// suppliers and the cache.
func localConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	doc["listen"] = map[string]any{"proxy": "127.0.0.1:0", "admin": "127.0.0.1:0"}
	doc["admin"] = map[string]any{"token": "env://ADMIN_TOKEN"}
	doc["callers"] = []any{map[string]any{"name": "app", "token": "env://CALLER_TOKEN", "suppliers": []any{"*"}}}
	delete(doc, "vault")
	delete(doc, "alerts")
	doc["store"] = map[string]any{"type": "embedded"}
	delete(doc, "audit") // Options.Audit stands in for it
	limits, _ := doc["limits"].(map[string]any)
	if limits == nil {
		limits = map[string]any{}
	}
	limits["disable_probes"] = true
	doc["limits"] = limits
	usage, _ := doc["usage"].(map[string]any)
	if usage == nil {
		usage = map[string]any{}
	}
	usage["spool_dir"] = t.TempDir()
	doc["usage"] = usage
	providers, _ := doc["providers"].([]any)
	ownKeys := map[string]any{}
	for _, p := range providers {
		pm := p.(map[string]any)
		delete(pm, "api_keys")
		pm["api_key"] = "env://PLATFORM_KEY"
		ownKeys[pm["name"].(string)] = "env://SUPPLIER_KEY"
	}
	// Without Vault, suppliers' own keys come from the environment.
	suppliers, _ := doc["suppliers"].(map[string]any)
	entries, _ := suppliers["entries"].([]any)
	for _, e := range entries {
		e.(map[string]any)["keys"] = ownKeys
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ParseWithEnv(out, "local.yaml", lookupLocal)
	if err != nil {
		t.Fatalf("the config with local stand-ins does not parse:\n%v\n%s", err, out)
	}
	return cfg
}

// startLocal starts veil with cfg, shut down when the test ends.
func startLocal(t *testing.T, cfg *config.Config) *app.App {
	t.Helper()
	a, err := app.New(cfg, app.Options{Log: zap.NewNop(), Audit: zap.NewNop(), Version: "test",
		Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookupLocal}}})
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

// scrape reads the admin listener's /metrics as Prometheus does and
// returns the series names it lists (histograms as _bucket, _sum and
// _count).
func scrape(t *testing.T, a *app.App) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + a.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	names := map[string]bool{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}
