package e2e

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// headroomProviders are OpenAI, Anthropic and Azure, all on the fake.
const headroomProviders = `
  - name: openai
    type: openai
    base_url: %[1]s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]
  - name: anthropic
    type: anthropic
    base_url: %[1]s
    api_key: env://PLATFORM_KEY
    models: [claude-haiku-4-5]
    anthropic:
      max_tokens: 512
  - name: azure-eu
    type: azure
    base_url: {root}
    api_key: env://PLATFORM_KEY
    models: [gpt-4o]
    azure:
      api_version: 2024-10-21
      deployments:
        gpt-4o: wedsync-4o`

// TestAppsSeeTheirTiersHeadroom: an answer on platform keys carries the
// supplier's tier headroom in the x-ratelimit-* headers, not the
// platform account's, and no OpenAI-Organization or OpenAI-Project, from
// every provider, streamed or not; an answer on the supplier's own key
// carries its own account's headers as the provider sent them.
func TestAppsSeeTheirTiersHeadroom(t *testing.T) {
	roseKey := secret("sk-rose-own-")
	h := start(t, setup{
		fake:      fakeopenai.Options{Keys: []string{roseKey}, AzureDeployments: map[string]string{"wedsync-4o": "gpt-4o"}},
		env:       map[string]string{"ROSE_KEY": roseKey},
		providers: headroomProviders,
		extra: `tiers:
  - name: starter
    requests_per_minute: 50
    tokens_per_minute: 200000
suppliers:
  default_tier: starter
  entries:
    - id: rose-venue
      mode: client
      keys:
        openai: env://ROSE_KEY
`})
	for _, model := range []string{"gpt-4o-mini", "claude-haiku-4-5", "gpt-4o"} {
		for _, stream := range []bool{false, true} {
			name := model
			if stream {
				name += " stream"
			}
			t.Run(name, func(t *testing.T) {
				body := `{"model":"` + model + `","stream":` + strconv.FormatBool(stream) +
					`,"messages":[{"role":"user","content":"Name three wedding songs."}]}`
				resp := h.do("POST", "/v1/chat/completions", body, nil)
				if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, %v", resp.StatusCode, err)
				}
				hd := resp.Header
				if hd.Get("X-Veil-Key-Source") != "platform" {
					t.Fatalf("served on %q keys", hd.Get("X-Veil-Key-Source"))
				}
				for _, k := range []string{"Openai-Organization", "Openai-Project"} {
					if v := hd.Get(k); v != "" {
						t.Errorf("%s %q reached the app", k, v)
					}
				}
				if hd.Get("X-Ratelimit-Limit-Requests") != "50" || hd.Get("X-Ratelimit-Limit-Tokens") != "200000" {
					t.Errorf("limits %q requests, %q tokens; want the tier's 50 and 200000", hd.Get("X-Ratelimit-Limit-Requests"),
						hd.Get("X-Ratelimit-Limit-Tokens"))
				}
				checkRemaining(t, hd, "X-Ratelimit-Remaining-Requests", 49)
				checkRemaining(t, hd, "X-Ratelimit-Remaining-Tokens", 200000-1)
				for _, k := range []string{"X-Ratelimit-Reset-Requests", "X-Ratelimit-Reset-Tokens"} {
					if d, err := time.ParseDuration(hd.Get(k)); err != nil || d < 0 || d > time.Minute {
						t.Errorf("%s %q, want the time left in the minute", k, hd.Get(k))
					}
				}
			})
		}
	}
	for _, stream := range []bool{false, true} {
		t.Run("the supplier's own key, stream "+strconv.FormatBool(stream), func(t *testing.T) {
			body := `{"model":"gpt-4o-mini","stream":` + strconv.FormatBool(stream) +
				`,"messages":[{"role":"user","content":"Name three wedding songs."}]}`
			resp := h.do("POST", "/v1/chat/completions", body, map[string]string{"X-Supplier-ID": "rose-venue"})
			if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, %v", resp.StatusCode, err)
			}
			hd := resp.Header
			for k, want := range map[string]string{"X-Veil-Key-Source": "client", "Openai-Organization": "user-fakeopenai",
				"Openai-Project": "proj_fakeopenai", "X-Ratelimit-Limit-Requests": "10000", "X-Ratelimit-Remaining-Requests": "9999",
				"X-Ratelimit-Limit-Tokens": "30000000", "X-Ratelimit-Reset-Tokens": "2ms"} {
				if got := hd.Get(k); got != want {
					t.Errorf("%s = %q, want the provider's %q", k, got, want)
				}
			}
		})
	}
}

// checkRemaining fails unless header is a count of at most most, so
// neither absent nor the fake account's.
func checkRemaining(t *testing.T, hd http.Header, header string, most int) {
	t.Helper()
	n, err := strconv.Atoi(hd.Get(header))
	if err != nil || n < 0 || n > most {
		t.Errorf("%s %q, want the tier's headroom, at most %d", header, hd.Get(header), most)
	}
}
