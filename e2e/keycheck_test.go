package e2e

import (
	"errors"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/app"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/keys"
)

// TestKeyCheck: `veil keys check` (app.CheckKeys) asks each provider type
// for its model list as veil itself calls that provider, so that for
// OpenAI, Azure, Anthropic and OpenAI-compatible servers alike a key that
// serves traffic through veil passes the check, and a key the provider
// does not know is reported refused.
func TestKeyCheck(t *testing.T) {
	cases := []struct {
		name      string
		providers string
		model     string
		// probePath is where the check must ask for the model list.
		probePath string
		// header must be on the probe, proof it was shaped for the type.
		header string
	}{
		{"openai", `
  - name: openai
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY`, "gpt-4o-mini", "/v1/models", "Authorization"},
		{"azure", `
  - name: azure
    type: azure
    base_url: {root}
    api_key: env://PLATFORM_KEY
    azure:
      api_version: 2024-10-21`, "gpt-4o-mini", "/openai/models", "Api-Key"},
		{"anthropic", `
  - name: anthropic
    type: anthropic
    base_url: %s
    api_key: env://PLATFORM_KEY
    models: [claude-haiku-4-5]`, "claude-haiku-4-5", "/v1/models", "Anthropic-Version"},
		{"openaicompat", `
  - name: openaicompat
    type: openaicompat
    base_url: %s
    api_key: env://PLATFORM_KEY`, "gpt-4o-mini", "/v1/models", "Authorization"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			own, unknown := secret("sk-bella-own-"), secret("sk-rose-unknown-")
			h := start(t, setup{
				fake:      fakeopenai.Options{Keys: []string{own}},
				providers: tc.providers,
				env:       map[string]string{"BELLA_KEY": own, "ROSE_KEY": unknown},
				extra: `suppliers:
  entries:
    - id: bella-photography
      mode: client
      keys:
        ` + tc.name + `: env://BELLA_KEY
    - id: rose-venue
      mode: client
      keys:
        ` + tc.name + `: env://ROSE_KEY
`})
			// Bella's own key serves traffic through veil.
			chat := openai.ChatCompletionRequest{Model: tc.model, Messages: weddingChat.Messages}
			if _, err := h.clientFor("bella-photography").CreateChatCompletion(ctxT(t), chat); err != nil {
				t.Fatalf("bella's key does not serve a chat through veil: %v", err)
			}
			cfg, err := config.ParseWithEnv([]byte(h.yaml), t.Name()+".yaml", h.lookup)
			if err != nil {
				t.Fatal(err)
			}
			opts := app.Options{Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: h.lookup}}}

			checks := []struct {
				who      string
				supplier string
				fp       string
				refused  bool
			}{
				{"supplier's working key", "bella-photography", keys.Fingerprint(own), false},
				{"supplier's unknown key", "rose-venue", keys.Fingerprint(unknown), true},
				{"platform key", "", keys.Fingerprint(h.platformKey), false},
			}
			for _, c := range checks {
				t.Run(c.who, func(t *testing.T) {
					before := len(h.up.Requests())
					got, err := app.CheckKeys(ctxT(t), cfg, opts, c.supplier, nil)
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != 1 || got[0].Provider != tc.name || got[0].Fingerprint != c.fp {
						t.Fatalf("checks %+v, want one of %s with fingerprint %s", got, tc.name, c.fp)
					}
					if c.refused {
						if !errors.Is(got[0].Err, app.ErrKeyRefused) {
							t.Errorf("unknown key: %v, want refused", got[0].Err)
						}
					} else if got[0].Err != nil || got[0].Models == 0 {
						t.Errorf("working key: %d models, %v", got[0].Models, got[0].Err)
					}
					probes := h.up.Requests()[before:]
					if len(probes) != 1 || probes[0].Method != "GET" || probes[0].Path != tc.probePath ||
						probes[0].Header.Get(tc.header) == "" {
						t.Errorf("the upstream saw %s, want one GET %s with %s", described(probes), tc.probePath, tc.header)
					}
				})
			}
		})
	}
}

// described lists requests by method and path, without their headers,
// which hold keys.
func described(reqs []fakeopenai.Received) string {
	var b strings.Builder
	for _, r := range reqs {
		b.WriteString(r.Method + " " + r.Path + "; ")
	}
	return "[" + strings.TrimSuffix(b.String(), "; ") + "]"
}
