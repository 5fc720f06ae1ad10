package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/provider"
)

func mustProvider(t *testing.T, name string, models ...string) *provider.Provider {
	t.Helper()
	p, err := provider.New(config.Provider{Name: name, Type: "openai", BaseURL: "http://127.0.0.1:1/v1", Models: models},
		[]keys.Secret{keys.NewSecret("sk-" + name)}, provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func names(as []Attempt) string {
	var b []string
	for _, a := range as {
		b = append(b, a.Provider.Name()+":"+a.Reason)
	}
	return strings.Join(b, ",")
}

func TestPlan(t *testing.T) {
	openai := mustProvider(t, "openai")
	vllm := mustProvider(t, "vllm", "llama-3.1-8b", "gpt-4o-mini")
	listed := mustProvider(t, "listed", "gpt-4o-mini")
	cases := []struct {
		name      string
		providers []*provider.Provider
		def       string
		req       Request
		want      string
		err       error
	}{
		{"default serves any model", []*provider.Provider{openai}, "", Request{Model: []byte("gpt-4o"), Understood: true}, "openai:default_provider", nil},
		{"listed first, default as fallback", []*provider.Provider{openai, vllm}, "openai", Request{Model: []byte("llama-3.1-8b"), Understood: true}, "vllm:model_listed,openai:fallback_provider", nil},
		{"two listed in config order", []*provider.Provider{vllm, listed}, "vllm", Request{Model: []byte("gpt-4o-mini"), Understood: true}, "vllm:model_listed,listed:model_listed", nil},
		{"pass-through goes to default", []*provider.Provider{vllm, openai}, "openai", Request{Understood: false}, "openai:pass_through", nil},
		{"nobody serves the model", []*provider.Provider{vllm, listed}, "vllm", Request{Model: []byte("gpt-9"), Understood: true}, "", ErrNoProvider},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Options{Providers: tc.providers, DefaultProvider: tc.def})
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Plan(nil, &tc.req)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if names(got) != tc.want {
				t.Errorf("plan %s, want %s", names(got), tc.want)
			}
			for _, a := range got {
				if a.Source != billing.PlatformKey {
					t.Errorf("attempt %s has source %v", a.Provider.Name(), a.Source)
				}
			}
		})
	}
}

func TestNewRejectsUnknownDefault(t *testing.T) {
	if _, err := New(Options{Providers: []*provider.Provider{mustProvider(t, "openai")}, DefaultProvider: "azure"}); err == nil {
		t.Error("an unknown default provider was accepted")
	}
	if _, err := New(Options{}); !errors.Is(err, ErrNoProvider) {
		t.Errorf("no providers: %v", err)
	}
}

func TestPlanAllocs(t *testing.T) {
	p, _ := New(Options{Providers: []*provider.Provider{mustProvider(t, "openai"), mustProvider(t, "vllm", "gpt-4o-mini")}, DefaultProvider: "openai"})
	buf := make([]Attempt, 0, 4)
	req := &Request{Model: []byte("gpt-4o-mini"), Understood: true}
	if a := testing.AllocsPerRun(100, func() { _, _ = p.Plan(buf[:0], req) }); a != 0 {
		t.Errorf("%.1f allocations per plan", a)
	}
}

func TestPlanClientMode(t *testing.T) {
	noPlatform, err := provider.New(config.Provider{Name: "openai", Type: "openai", BaseURL: "http://127.0.0.1:1/v1"}, nil, provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := New(Options{Providers: []*provider.Provider{noPlatform}, Modes: map[string]billing.Mode{"bella": billing.ModeClient, "rose": billing.ModePlatform}})
	if _, err := p.Plan(nil, &Request{Model: []byte("gpt-4o"), Understood: true, Supplier: []byte("rose")}); !errors.Is(err, ErrNoProvider) {
		t.Errorf("platform mode without platform keys: %v", err)
	}
	got, err := p.Plan(nil, &Request{Model: []byte("gpt-4o"), Understood: true, Supplier: []byte("bella")})
	if err != nil || len(got) != 1 || got[0].Source != billing.ClientKey {
		t.Errorf("client mode: %+v %v", got, err)
	}
}

func TestPlanRoutes(t *testing.T) {
	openai := mustProvider(t, "openai")
	azure := mustProvider(t, "azure", "gpt-4o")
	p, err := New(Options{
		Providers: []*provider.Provider{openai, azure},
		Routes: []config.Route{
			{Workflow: "photography", Model: "gpt-4o", Providers: []string{"azure", "openai"}, AllowedModels: []string{"gpt-4o", "fast"}},
			{Workflow: "planning", Model: "fast", Force: true},
		},
		Aliases: map[string]string{"fast": "gpt-4o-mini"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, workflow, model string
		want                  string
		wantModel             string
		err                   error
	}{
		{"route chain and default model", "photography", "", "azure:workflow_route,openai:workflow_route", "gpt-4o", nil},
		{"alias allowed through the route", "photography", "fast", "openai:workflow_route", "gpt-4o-mini", nil},
		{"not allowed", "photography", "o1", "", "", ErrModelNotAllowed},
		{"forced", "planning", "gpt-4o", "openai:default_provider", "gpt-4o-mini", nil},
		{"no route", "", "fast", "openai:default_provider", "gpt-4o-mini", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Plan(nil, &Request{Model: []byte(tc.model), Understood: true, Workflow: []byte(tc.workflow)})
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if names(got) != tc.want {
				t.Errorf("plan %s, want %s", names(got), tc.want)
			}
			if len(got) > 0 && string(got[0].Model) != tc.wantModel {
				t.Errorf("model %s, want %s", got[0].Model, tc.wantModel)
			}
		})
	}
}

func TestPlanSupplierModes(t *testing.T) {
	openai := mustProvider(t, "openai")
	azure := mustProvider(t, "azure")
	p, err := New(Options{
		Providers:        []*provider.Provider{openai, azure},
		Modes:            map[string]billing.Mode{"hy": billing.ModeHybrid, "cl": billing.ModeClient, "fb": billing.ModeClient, "pref": billing.ModePlatform},
		Preferred:        map[string]string{"pref": "azure"},
		PlatformFallback: map[string]bool{"fb": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ supplier, want string }{
		{"hy", "openai:client/default_provider,openai:platform/platform_fallback"},
		{"cl", "openai:client/default_provider"},
		{"fb", "openai:client/default_provider,openai:platform/platform_fallback"},
		{"pref", "azure:platform/preferred_provider,openai:platform/fallback_provider"},
		{"other", "openai:platform/default_provider"},
	}
	for _, tc := range cases {
		got, err := p.Plan(nil, &Request{Model: []byte("gpt-4o"), Understood: true, Supplier: []byte(tc.supplier)})
		if err != nil {
			t.Fatal(err)
		}
		var b []string
		for _, a := range got {
			b = append(b, a.Provider.Name()+":"+string(a.Source)+"/"+a.Reason)
		}
		if s := strings.Join(b, ","); s != tc.want {
			t.Errorf("%s: %s, want %s", tc.supplier, s, tc.want)
		}
	}
}

func TestPlanSeasonsAndRegions(t *testing.T) {
	openai := mustProvider(t, "openai")
	azure := mustProvider(t, "azure")
	openaiEU := mustProvider(t, "openai-eu")
	p, err := New(Options{
		Providers: []*provider.Provider{openai, azure, openaiEU},
		Routes:    []config.Route{{Workflow: "venue", Providers: []string{"openai"}}},
		Seasons: []config.Season{{
			Name: "peak", From: "03-01", To: "10-31", TimeZone: "Europe/London",
			Routes: []config.Route{{Workflow: "venue", Providers: []string{"azure", "openai"}}},
			Spread: config.Spread{Tiers: []string{"starter"}, Weights: map[string]int{"openai": 1, "azure": 3}},
		}},
		DefaultTier: "starter",
		Tiers:       map[string]string{"bella": "pro"},
		Regions:     map[string]Region{"rose": {Name: "eu", Providers: map[string]string{"openai": "openai-eu"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	june := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	dec := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	first := func(req Request) string {
		got, err := p.Plan(nil, &req)
		if err != nil {
			t.Fatal(err)
		}
		return got[0].Provider.Name() + "/" + got[0].Reason
	}
	if got := first(Request{Model: []byte("m"), Understood: true, Workflow: []byte("venue"), Now: june}); got != "azure/workflow_route" {
		t.Errorf("peak route: %s", got)
	}
	if got := first(Request{Model: []byte("m"), Understood: true, Workflow: []byte("venue"), Now: dec}); got != "openai/workflow_route" {
		t.Errorf("off-peak route: %s", got)
	}
	counts := map[string]int{}
	for i := range 400 {
		counts[first(Request{Model: []byte("m"), Understood: true, Supplier: []byte("lily"), Now: june, Spread: uint64(i)})]++
	}
	if counts["openai/season_spread"] != 100 || counts["azure/season_spread"] != 300 {
		t.Errorf("spread 1:3 over 400 requests: %v", counts)
	}
	if got := first(Request{Model: []byte("m"), Understood: true, Supplier: []byte("bella"), Now: june, Spread: 1}); got != "openai/default_provider" {
		t.Errorf("a tier outside the spread: %s", got)
	}
	if got := first(Request{Model: []byte("m"), Understood: true, Supplier: []byte("rose"), Now: dec}); got != "openai-eu/region" {
		t.Errorf("region: %s", got)
	}
	if p.Season(june) != "peak" || p.Season(dec) != "" {
		t.Error("season names")
	}
}

func TestCache(t *testing.T) {
	june := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	p, err := New(Options{Providers: []*provider.Provider{mustProvider(t, "openai")},
		Routes: []config.Route{{Workflow: "venue", Cache: config.CacheShared}, {Workflow: "planning", Cache: config.CacheOff},
			{Workflow: "catering"}},
		Seasons: []config.Season{{Name: "peak", From: "06-01", To: "06-30",
			Routes: []config.Route{{Workflow: "catering", Cache: config.CacheOff}}}},
		Tiers: map[string]string{"thrifty": "free"}, DefaultTier: "pro", CacheOffTiers: map[string]bool{"free": true}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, supplier, workflow string
		at                       time.Time
		want                     CacheMode
	}{
		{"no route", "bella", "", june, CacheSupplier},
		{"shared route", "bella", "venue", june, CacheShared},
		{"route off", "bella", "planning", june, CacheOff},
		{"season route off", "bella", "catering", june, CacheOff},
		{"out of season", "bella", "catering", june.AddDate(0, 2, 0), CacheSupplier},
		{"tier off wins over a shared route", "thrifty", "venue", june, CacheOff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Cache([]byte(tc.supplier), []byte(tc.workflow), tc.at); got != tc.want {
				t.Errorf("Cache = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestPlanFallback: a migration's target falls back to the source's
// attempts; a fallback equal to the mode adds nothing.
func TestPlanFallback(t *testing.T) {
	p, _ := New(Options{Providers: []*provider.Provider{mustProvider(t, "openai")}})
	tests := []struct {
		name             string
		source, fallback billing.KeySource
		want             []billing.KeySource
	}{
		{"to client, back to platform", billing.ClientKey, billing.PlatformKey, []billing.KeySource{billing.ClientKey, billing.PlatformKey}},
		{"to platform, back to client", billing.PlatformKey, billing.ClientKey, []billing.KeySource{billing.PlatformKey, billing.ClientKey}},
		{"fallback equal to the mode", billing.PlatformKey, billing.PlatformKey, []billing.KeySource{billing.PlatformKey}},
		{"no fallback", billing.ClientKey, "", []billing.KeySource{billing.ClientKey}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Plan(nil, &Request{Model: []byte("gpt-4o"), Understood: true, Supplier: []byte("bella"),
				Source: tc.source, Fallback: tc.fallback})
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("plan %+v, %v", got, err)
			}
			for i, a := range got {
				if a.Source != tc.want[i] {
					t.Errorf("attempt %d: source %s, want %s", i, a.Source, tc.want[i])
				}
			}
			if len(got) == 2 && got[1].Reason != ReasonMigration {
				t.Errorf("fallback reason %q", got[1].Reason)
			}
		})
	}
}

// TestPlanMigrationProvider: the provider a migration moves a supplier to
// goes first, asked for its own name of the model, for the models it lists
// or maps; other models, a workflow's chain and the fallback attempts are
// planned as without it.
func TestPlanMigrationProvider(t *testing.T) {
	openai := mustProvider(t, "openai")
	mapped, err := provider.New(config.Provider{Name: "anthropic", Type: "openai", BaseURL: "http://127.0.0.1:1/v1",
		ModelMap: map[string]string{"gpt-4o": "claude-sonnet-4"}}, nil, provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Providers: []*provider.Provider{openai, mapped}, DefaultProvider: "openai",
		Preferred: map[string]string{"bella": "openai"},
		Routes:    []config.Route{{Workflow: "venue", Providers: []string{"openai"}}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Request
		want string // provider:model:source:reason, ...
	}{
		{"mapped model on the migration's provider first",
			Request{Model: []byte("gpt-4o"), Source: billing.ClientKey, Provider: "anthropic"},
			"anthropic:claude-sonnet-4:client:migration_provider,openai:gpt-4o:client:fallback_provider"},
		{"the fallback is planned as without it",
			Request{Model: []byte("gpt-4o"), Source: billing.ClientKey, Fallback: billing.PlatformKey, Provider: "anthropic"},
			"anthropic:claude-sonnet-4:client:migration_provider,openai:gpt-4o:client:fallback_provider,openai:gpt-4o:platform:migration_fallback"},
		{"a model it does not list",
			Request{Model: []byte("gpt-4o-mini"), Source: billing.ClientKey, Provider: "anthropic"},
			"openai:gpt-4o-mini:client:preferred_provider"},
		{"a provider listing nothing changes nothing",
			Request{Model: []byte("gpt-4o"), Source: billing.PlatformKey, Provider: "openai"},
			"openai:gpt-4o:platform:preferred_provider"},
		{"a workflow's chain",
			Request{Model: []byte("gpt-4o"), Source: billing.ClientKey, Provider: "anthropic", Workflow: []byte("venue")},
			"openai:gpt-4o:client:workflow_route"},
		{"an unknown provider", Request{Model: []byte("gpt-4o"), Source: billing.ClientKey, Provider: "azure"},
			"openai:gpt-4o:client:preferred_provider,anthropic:claude-sonnet-4:client:model_listed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Understood, tc.req.Supplier = true, []byte("bella")
			got, err := p.Plan(nil, &tc.req)
			if err != nil {
				t.Fatal(err)
			}
			var b []string
			for _, a := range got {
				b = append(b, a.Provider.Name()+":"+string(a.Model)+":"+string(a.Source)+":"+a.Reason)
			}
			if s := strings.Join(b, ","); s != tc.want {
				t.Errorf("plan %s\nwant %s", s, tc.want)
			}
		})
	}
	req := &Request{Model: []byte("gpt-4o"), Understood: true, Source: billing.ClientKey, Provider: "anthropic"}
	buf := make([]Attempt, 0, 4)
	if a := testing.AllocsPerRun(100, func() { _, _ = p.Plan(buf[:0], req) }); a != 0 {
		t.Errorf("%.1f allocations per plan with a migration's provider", a)
	}
}
