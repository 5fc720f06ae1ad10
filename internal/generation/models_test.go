package generation_test

import (
	"slices"
	"testing"

	"github.com/wedsync/veil/internal/generation"
)

// TestModelNames: every place the config names a model contributes its
// names, once each and sorted.
func TestModelNames(t *testing.T) {
	cfg := parse(t, `listen:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
providers:
  - name: openai
    type: openai
    base_url: "http://127.0.0.1:1/v1"
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini, gpt-4o]
  - name: anthropic
    type: anthropic
    base_url: "http://127.0.0.1:2"
    api_key: env://PLATFORM_KEY
    models: [claude-haiku-4-5]
    model_map: {gpt-4o-mini: claude-haiku-4-5, gpt-4.1: claude-sonnet-4-5}
  - name: azure
    type: azure
    base_url: "http://127.0.0.1:3"
    api_key: env://PLATFORM_KEY
    azure:
      api_version: "2024-10-21"
      deployments: {gpt-4o-azure: wedsync-prod-deployment}
callers:
  - {name: app, token: env://CALLER_TOKEN, suppliers: ["*"]}
aliases:
  wedsync-fast: gpt-4o-mini
  wedsync-smart: o3
routes:
  - {workflow: venue, model: venue-model, allowed_models: [venue-model, venue-backup]}
seasons:
  - name: peak
    from: "03-01"
    to: "10-31"
    routes:
      - {workflow: venue, model: peak-model}
prices:
  - {provider: openai, model: gpt-4o-mini-2024-07-18, input_per_mtok: 0.15, output_per_mtok: 0.6}
usage:
  sinks: []
`)
	want := []string{"claude-haiku-4-5", "claude-sonnet-4-5", "gpt-4.1", "gpt-4o", "gpt-4o-azure", "gpt-4o-mini",
		"gpt-4o-mini-2024-07-18", "o3", "peak-model", "venue-backup", "venue-model", "wedsync-fast", "wedsync-smart"}
	if got := generation.ModelNames(cfg); !slices.Equal(got, want) {
		t.Errorf("ModelNames\n got %q\nwant %q", got, want)
	}
	rt, err := generation.Build(cfg, nil, deps(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rt.Models, want) {
		t.Errorf("Runtime.Models %q, want %q", rt.Models, want)
	}
	if got := generation.ModelNames(parse(t, baseYAML)); !slices.Equal(got, []string{"gpt-4o-mini"}) {
		t.Errorf("base config: %q, want only the priced model", got)
	}
}
