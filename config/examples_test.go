package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wedsync/veil/billing"
)

// exampleFiles returns the example configurations shipped in deploy/examples.
func exampleFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "deploy", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestExamples parses and validates every shipped example so that they
// cannot rot. Secret references are only checked, never resolved, so no
// environment is needed.
func TestExamples(t *testing.T) {
	files := exampleFiles(t)
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for _, want := range []string{"minimal.yaml", "sidecar.yaml", "multi-provider.yaml"} {
		if !slices.Contains(names, want) {
			t.Errorf("example %s is missing; found %v", want, names)
		}
	}

	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseWithEnv(data, f, noEnv)
			if err != nil {
				t.Fatalf("example does not parse:\n%v", err)
			}
			if _, ok := c.Provider(c.Routing.DefaultProvider); !ok {
				t.Errorf("default provider %q not found", c.Routing.DefaultProvider)
			}
		})
	}
}

func TestExampleDetails(t *testing.T) {
	load := func(t *testing.T, name string) *Config {
		t.Helper()
		path := filepath.Join("..", "deploy", "examples", name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseWithEnv(data, path, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("minimal", func(t *testing.T) {
		c := load(t, "minimal.yaml")
		if len(c.Providers) != 1 || c.Providers[0].APIKey.Scheme() != SchemeEnv {
			t.Errorf("want one provider with an env:// key, got %+v", c.Providers)
		}
		if len(c.Callers) != 1 || c.Callers[0].TokenSHA256 == "" {
			t.Errorf("want one caller by token_sha256, got %+v", c.Callers)
		}
	})
	t.Run("sidecar", func(t *testing.T) {
		c := load(t, "sidecar.yaml")
		if c.Admin.Token.Scheme() != SchemeFile {
			t.Errorf("admin token = %q, want a file:// reference", c.Admin.Token)
		}
		ops := c.Admin.Operators()
		if len(ops) != 3 || ops[0].Name != LegacyAdminName || ops[1].Role != AdminRoleViewer || ops[2].Role != AdminRoleOperator {
			t.Errorf("operators %+v, want admin, then a viewer and an operator", ops)
		}
		for _, op := range ops {
			if op.Token.Scheme() != SchemeFile {
				t.Errorf("operator %s token = %q, want a file:// reference", op.Name, op.Token)
			}
		}
		for _, p := range c.Providers {
			if p.APIKey.Scheme() != SchemeFile {
				t.Errorf("provider %s key = %q, want a file:// reference", p.Name, p.APIKey)
			}
		}
		if !c.Vault.Enabled || c.Vault.Auth.Method != "kubernetes" || c.Vault.Auth.TokenFile == "" {
			t.Errorf("vault = %+v, want kubernetes auth with the service account token", c.Vault)
		}
		if bella, ok := c.Supplier("bella-photography"); !ok || bella.Mode != billing.ModeClient {
			t.Errorf("want bella-photography in client mode, got %+v", bella)
		}
	})
	t.Run("wedsync-peak", func(t *testing.T) {
		c := load(t, "wedsync-peak.yaml")
		if st, ok := c.Tier("starter"); !ok || st.MaxN != 1 || st.MaxTokens != 2048 {
			t.Errorf("starter tier %+v, want caps of one choice and 2048 output tokens", st)
		}
	})
	t.Run("multi-provider", func(t *testing.T) {
		c := load(t, "multi-provider.yaml")
		if len(c.Providers) < 2 {
			t.Fatalf("want at least two providers, got %d", len(c.Providers))
		}
		types := map[string]bool{}
		for _, p := range c.Providers {
			types[p.Type] = true
			if len(p.Models) == 0 {
				t.Errorf("provider %s has no models list", p.Name)
			}
		}
		for _, want := range SupportedProviderTypes() {
			if !types[want] {
				t.Errorf("no provider of type %s in the example", want)
			}
		}
		if a, ok := c.Provider("anthropic"); !ok || a.ModelMap["gpt-4o-mini"] != "claude-haiku-4-5" || a.Anthropic.MaxTokens != 2048 {
			t.Errorf("anthropic provider %+v, want gpt-4o-mini mapped to claude-haiku-4-5 and max_tokens 2048", a)
		}
		if z, ok := c.Provider("azure"); !ok || z.Azure.Deployments["gpt-4o-mini"] != "wedsync-mini" {
			t.Errorf("azure provider %+v, want a deployment for gpt-4o-mini", z)
		}
		if o, ok := c.Provider("ollama"); !ok || o.NeedsKey() {
			t.Errorf("ollama provider %+v, want one without a key", o)
		}
		priced := map[string]bool{}
		for _, p := range c.Prices {
			priced[p.Provider] = true
		}
		for _, want := range []string{"openai", "azure", "anthropic"} {
			if !priced[want] {
				t.Errorf("no prices for provider %s", want)
			}
		}
	})
}
