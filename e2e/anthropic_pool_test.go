package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/internal/fakeopenai"
)

// Anthropic organisations of the fake's accounts (the Messages API names
// an organisation by a UUID).
const (
	anthropicOrgWedsync = "5d8b2f0e-1c4a-4e7b-9f3d-2a6c8e0b4d71"
	anthropicOrgEvents  = "c3a9e1f7-6b2d-4f8a-b0e5-7d4c1a9f3e26"
	anthropicOrgRose    = "9e7d3b1a-2f4c-4a6e-8d0b-5c1f7a3e9b42"
)

// TestAnthropicPoolOverOrganisations: an Anthropic provider whose pool
// holds two keys of one organisation and a key of another counts two
// accounts, by the organisation each answer names in
// anthropic-organization-id, so its limits are counted once per
// organisation in /admin/capacity and /admin/status, not once per key.
// Apps never see an organisation, under Anthropic's name or OpenAI's, on
// platform keys or on their own.
func TestAnthropicPoolOverOrganisations(t *testing.T) {
	keyA1, keyA2, keyB := secret("sk-ant-org-a-1-"), secret("sk-ant-org-a-2-"), secret("sk-ant-org-b-")
	roseKey := secret("sk-ant-rose-own-")
	h := start(t, setup{
		fake: fakeopenai.Options{Keys: []string{keyA1, keyA2, keyB, roseKey}, Accounts: []fakeopenai.Account{
			{Organization: anthropicOrgWedsync, Keys: []string{keyA1, keyA2}},
			{Organization: anthropicOrgEvents, Keys: []string{keyB}},
			{Organization: anthropicOrgRose, Keys: []string{roseKey}},
		}},
		env: map[string]string{"KEY_A1": keyA1, "KEY_A2": keyA2, "KEY_B": keyB, "ROSE_KEY": roseKey},
		providers: `
  - name: claude
    type: anthropic
    base_url: %s
    api_keys: [env://KEY_A1, env://KEY_A2, env://KEY_B]
    models: [claude-haiku-4-5]
    anthropic:
      max_tokens: 512`,
		extra: `suppliers:
  entries:
    - id: rose-venue
      mode: client
      keys:
        claude: env://ROSE_KEY
`})

	// Two rounds of the pool's keys, plain and streamed, on platform keys;
	// then the supplier's own key.
	for i := range 6 {
		stream := i%2 == 1
		resp, body := post(t, h, testSupplier, `{"model":"claude-haiku-4-5","stream":`+strconv.FormatBool(stream)+
			`,"messages":[{"role":"user","content":"A toast for the couple."}]}`)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Veil-Key-Source") != "platform" {
			t.Fatalf("call %d: status %d on %q keys: %s", i, resp.StatusCode, resp.Header.Get("X-Veil-Key-Source"), body)
		}
		noOrganisation(t, "platform call "+strconv.Itoa(i), resp.Header)
	}
	resp, body := post(t, h, "rose-venue", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"A toast."}]}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Veil-Key-Source") != "client" {
		t.Fatalf("rose: status %d on %q keys: %s", resp.StatusCode, resp.Header.Get("X-Veil-Key-Source"), body)
	}
	noOrganisation(t, "the supplier's own key", resp.Header)

	used := map[string]int{}
	for _, r := range h.up.Requests() {
		if r.Path == "/v1/messages" {
			used[r.Header.Get("X-Api-Key")]++
		}
	}
	if used[keyA1] == 0 || used[keyA2] == 0 || used[keyB] == 0 || used[roseKey] != 1 {
		t.Fatalf("keys used %d, %d, %d and rose's %d times: want every pool key", used[keyA1], used[keyA2], used[keyB], used[roseKey])
	}

	// The fake's Anthropic limits are 4,000 requests and 2,400,000 tokens
	// a minute per organisation: 8,000 and 4,800,000 over two, where three
	// keys counted apart would make 12,000.
	code, out := h.admin("/admin/capacity", h.adminToken)
	var rep admin.CapacityReport
	if err := json.Unmarshal([]byte(out), &rep); code != http.StatusOK || err != nil {
		t.Fatalf("/admin/capacity: %d %v %s", code, err, out)
	}
	var found bool
	for _, p := range rep.Providers {
		if p.Provider != "claude" {
			continue
		}
		found = true
		if p.Accounts != 2 || count(p.Requests.Limit) != "8000" || count(p.Requests.Remaining) != "7998" ||
			count(p.Tokens.Limit) != "4800000" {
			t.Errorf("capacity of claude: %d accounts, %s of %s requests, %s tokens; want 2 organisations, 7998 of 8000 "+
				"requests, 4800000 tokens", p.Accounts, count(p.Requests.Remaining), count(p.Requests.Limit), count(p.Tokens.Limit))
		}
	}
	if !found {
		t.Fatalf("/admin/capacity has no claude: %s", out)
	}
	if f := count(rep.Forecast.RequestsPerMinute); f != "8000" {
		t.Errorf("capacity %s requests per minute, want the 8000 of claude's two organisations", f)
	}
	s := h.view(t, "claude")
	if s.Pool == nil {
		t.Fatal("/admin/status has no pool for claude")
	}
	if s.Pool.Accounts != 2 || count(s.Pool.Requests.Limit) != "8000" {
		t.Errorf("/admin/status pool: %d accounts, %s requests; want two organisations of 4000", s.Pool.Accounts,
			count(s.Pool.Requests.Limit))
	}
}

// count writes a count of a report, "none" when absent.
func count(n *int64) string {
	if n == nil {
		return "none"
	}
	return strconv.FormatInt(*n, 10)
}

// noOrganisation fails when an answer names a provider organisation under
// OpenAI's name or Anthropic's.
func noOrganisation(t *testing.T, what string, hd http.Header) {
	t.Helper()
	for _, k := range []string{"Openai-Organization", "Anthropic-Organization-Id"} {
		if v := hd.Get(k); v != "" {
			t.Errorf("%s: the app saw %s %q", what, k, v)
		}
	}
}
