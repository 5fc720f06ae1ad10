package generation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/similarity"
	"github.com/wedsync/veil/store"
)

const baseYAML = `listen:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
providers:
  - {name: openai, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: env://PLATFORM_KEY}
callers:
  - {name: app, token: env://CALLER_TOKEN, suppliers: ["*"]}
tiers:
  - {name: starter, requests_per_minute: 3}
  - {name: pro, requests_per_minute: 30}
suppliers:
  default_tier: starter
prices:
  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}
usage:
  sinks: []
`

var env = map[string]string{"PLATFORM_KEY": "sk-platform-test", "CALLER_TOKEN": "veil-caller-test"}

func lookup(k string) (string, bool) { v, ok := env[k]; return v, ok }

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.ParseWithEnv([]byte(yaml), "veil.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func deps(t *testing.T) generation.Deps {
	t.Helper()
	st, err := store.NewEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return generation.Deps{Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}, Store: st}
}

func ptr[T any](v T) *T { return &v }

// TestBuild: a config generation builds into a whole runtime, or into an
// error and no runtime.
func TestBuild(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		overrides map[string]generation.Override
		deps      func(generation.Deps) generation.Deps
		wantErr   string
	}{
		{name: "the config as loaded", yaml: baseYAML},
		{name: "with a supplier override", yaml: baseYAML,
			overrides: map[string]generation.Override{"bella-photography": {Mode: ptr(billing.ModePlatform), Tier: ptr("pro")}}},
		{name: "an override naming an unknown tier", yaml: baseYAML,
			overrides: map[string]generation.Override{"bella-photography": {Tier: ptr("gold")}},
			wantErr:   "with the supplier overrides"},
		{name: "a caller token that does not resolve",
			yaml:    strings.Replace(baseYAML, "env://CALLER_TOKEN", "env://MISSING_TOKEN", 1),
			wantErr: "caller app: token"},
		{name: "a platform key that does not resolve",
			yaml:    strings.Replace(baseYAML, "env://PLATFORM_KEY", "env://MISSING_KEY", 1),
			wantErr: "provider openai: platform key 0"},
		{name: "no secret source", yaml: baseYAML,
			deps:    func(d generation.Deps) generation.Deps { d.Secrets = nil; return d },
			wantErr: "a secret source is required"},
		{name: "tiers without a store", yaml: baseYAML,
			deps:    func(d generation.Deps) generation.Deps { d.Store = nil; return d },
			wantErr: "quota: a store is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.yaml)
			d := deps(t)
			if tt.deps != nil {
				d = tt.deps(d)
			}
			rt, err := generation.Build(cfg, tt.overrides, d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Build error %v, want one with %q", err, tt.wantErr)
				}
				if rt != nil {
					t.Errorf("Build returned a runtime with its error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rt.Auth == nil || rt.Policy == nil || rt.Prices == nil || rt.Quota == nil || len(rt.Providers) != 1 {
				t.Fatalf("runtime not whole: %+v", rt)
			}
			if rt.Base != cfg {
				t.Errorf("Base is not the config as loaded")
			}
			if p := rt.Provider(""); p == nil || p.Name() != "openai" {
				t.Errorf("default provider %v", p)
			}
			if _, ok := rt.Prices.CostMicros("openai", "gpt-4o-mini", time.Now(), 1_000_000, 0, 0); !ok {
				t.Errorf("gpt-4o-mini is not priced")
			}
			if len(tt.overrides) == 0 {
				if rt.Config != cfg {
					t.Errorf("without overrides Config is not Base")
				}
				return
			}
			e, ok := rt.Config.Supplier("bella-photography")
			if !ok || e.Mode != "platform" || e.Tier != "pro" {
				t.Errorf("override not in the config in force: %+v %v", e, ok)
			}
			if _, ok := cfg.Supplier("bella-photography"); ok {
				t.Errorf("the override changed the config as loaded")
			}
			if got := rt.Policy.Mode([]byte("bella-photography")); got != "platform" {
				t.Errorf("policy mode %q, want platform", got)
			}
		})
	}
}

// TestWithOverrides: overrides change only the fields they set, on a copy.
func TestWithOverrides(t *testing.T) {
	cfg := parse(t, strings.Replace(baseYAML, "  default_tier: starter\n", `  default_tier: starter
  entries:
    - {id: bella-photography, mode: platform, preferred_provider: openai}
`, 1))
	tests := []struct {
		name string
		ov   map[string]generation.Override
		want config.Supplier
	}{
		{name: "none", want: config.Supplier{ID: "bella-photography", Mode: "platform", PreferredProvider: "openai"}},
		{name: "mode only", ov: map[string]generation.Override{"bella-photography": {Mode: ptr(billing.ModeHybrid)}},
			want: config.Supplier{ID: "bella-photography", Mode: "hybrid", PreferredProvider: "openai"}},
		{name: "fallback and tier", ov: map[string]generation.Override{"bella-photography": {
			AllowPlatformFallback: ptr(true), Tier: ptr("pro"), PreferredProvider: ptr("")}},
			want: config.Supplier{ID: "bella-photography", Mode: "platform", Tier: "pro", AllowPlatformFallback: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := generation.WithOverrides(cfg, tt.ov)
			if (len(tt.ov) == 0) != (got == cfg) {
				t.Errorf("WithOverrides copied %v, want a copy only with overrides", got != cfg)
			}
			e, _ := got.Supplier("bella-photography")
			if e.ID != tt.want.ID || e.Mode != tt.want.Mode || e.Tier != tt.want.Tier ||
				e.PreferredProvider != tt.want.PreferredProvider || e.AllowPlatformFallback != tt.want.AllowPlatformFallback {
				t.Errorf("supplier %+v, want %+v", e, tt.want)
			}
			if orig, _ := cfg.Supplier("bella-photography"); orig.Mode != "platform" || orig.PreferredProvider != "openai" {
				t.Errorf("the base changed: %+v", orig)
			}
		})
	}
}

// TestSimilarityFollowsTheConfig: each generation compiles the
// comparisons' similarity methods, so that a reload changes them, and
// the counters given in Deps are shared by every generation.
func TestSimilarityFollowsTheConfig(t *testing.T) {
	d := deps(t)
	d.Similarity = &similarity.Counters{}
	build := func(yaml string) *generation.Runtime {
		t.Helper()
		rt, err := generation.Build(parse(t, yaml), nil, d)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	first := build(baseYAML)
	if first.Similarity == nil || first.Similarity.Method("planning") != "lexical" {
		t.Fatalf("default similarity %v", first.Similarity)
	}
	second := build(baseYAML + `comparisons:
  similarity:
    timeout: 3s
    workflows:
      planning: {method: judge, provider: openai, model: gpt-4o-mini}
`)
	if got := second.Similarity.Method("planning"); got != "judge gpt-4o-mini" {
		t.Errorf("after the reload planning is scored by %q", got)
	}
	if second.Similarity.Timeout() != 3*time.Second || second.Similarity.Counters() != d.Similarity || first.Similarity.Counters() != d.Similarity {
		t.Errorf("timeout %v, counters not shared", second.Similarity.Timeout())
	}
	if first.Similarity.Method("planning") != "lexical" {
		t.Error("the reload changed the running generation's similarity")
	}
}

// TestBuildScorer builds only the similarity scorer, with the providers it
// names: neither another provider's key nor a caller's token is resolved.
func TestBuildScorer(t *testing.T) {
	yaml := strings.Replace(baseYAML, "callers:", `  - {name: unused, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: env://UNRESOLVED}
callers:`, 1) + `comparisons:
  similarity:
    workflows:
      venue: {method: embeddings, provider: openai, model: text-embedding-3-small}
`
	cfg := parse(t, strings.Replace(yaml, "env://CALLER_TOKEN", "env://NOT_NEEDED", 1))
	set, providers, err := generation.BuildScorer(cfg, generation.Deps{Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, p := range providers {
			p.Close()
		}
	}()
	if len(providers) != 1 || providers[0].Name() != "openai" || set.Method("venue") != "embeddings text-embedding-3-small" {
		t.Errorf("providers %d, venue scored by %q", len(providers), set.Method("venue"))
	}
	cfg = parse(t, strings.Replace(yaml, "env://PLATFORM_KEY", "env://MISSING_KEY", 1))
	if _, _, err := generation.BuildScorer(cfg, generation.Deps{Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}}); err == nil ||
		!strings.Contains(err.Error(), "provider openai: platform key 0") {
		t.Errorf("err = %v", err)
	}
}
