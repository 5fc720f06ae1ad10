package provider

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/keys"
)

// TestAnthropicOrganization: an answer on a platform key names its key's
// Anthropic organisation as OpenAI names its own, for the proxy to read as
// the account of its rate limits; on a supplier's own key, or with no key,
// the organisation is dropped with Anthropic's other headers.
func TestAnthropicOrganization(t *testing.T) {
	p := goldenProvider(t, "anthropic")
	platform := keys.NewKey(keys.NewSecret("sk-ant-platform-test"), billing.PlatformKey, "")
	client := keys.NewKey(keys.NewSecret("sk-ant-bella-own"), billing.ClientKey, "1")
	const org = "0f2c6d8e-4b1a-4c3e-9d7f-fa4e0b6c1d2a"
	tests := []struct {
		name    string
		key     *keys.Key
		header  bool // the answer names its organisation
		stream  bool
		status  int
		wantOrg string
	}{
		{"platform key", platform, true, false, fasthttp.StatusOK, org},
		{"platform key, stream", platform, true, true, fasthttp.StatusOK, org},
		{"platform key, rate limited", platform, true, false, fasthttp.StatusTooManyRequests, org},
		{"platform key, no organisation named", platform, false, false, fasthttp.StatusOK, ""},
		{"the supplier's own key", client, true, false, fasthttp.StatusOK, ""},
		{"no key", nil, true, false, fasthttp.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp fasthttp.Response
			resp.SetStatusCode(tt.status)
			resp.Header.SetContentType("application/json")
			resp.SetBodyString(`{"id":"msg_01","type":"message","role":"assistant","model":"claude-haiku-4-5",` +
				`"content":[{"type":"text","text":"Yes."}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}`)
			if tt.status != fasthttp.StatusOK {
				resp.SetBodyString(`{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`)
			}
			if tt.stream {
				resp.Header.SetContentType("text/event-stream")
			}
			if tt.header {
				resp.Header.Set("anthropic-organization-id", org)
			}
			resp.Header.Set("anthropic-ratelimit-requests-limit", "4000")
			if err := p.Translate(&resp, &Call{Suffix: []byte("/chat/completions"), Key: tt.key}); err != nil {
				t.Fatal(err)
			}
			if got := string(resp.Header.Peek("OpenAI-Organization")); got != tt.wantOrg {
				t.Errorf("OpenAI-Organization %q, want %q", got, tt.wantOrg)
			}
			if got := resp.Header.Peek("Anthropic-Organization-Id"); len(got) > 0 {
				t.Errorf("anthropic-organization-id %q kept", got)
			}
			if got := string(resp.Header.Peek("X-Ratelimit-Limit-Requests")); got != "4000" {
				t.Errorf("x-ratelimit-limit-requests %q, want 4000", got)
			}
		})
	}
}
