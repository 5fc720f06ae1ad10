package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestCapacityMetrics: the peak-capacity series are on /metrics before the
// first request, and move with traffic: a stream's time to first token
// and duration, the provider's headroom from its rate-limit headers, a
// tier's refusals by limit, and the season in force.
func TestCapacityMetrics(t *testing.T) {
	h := start(t, setup{extra: `prices:
  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}
tiers:
  - name: starter
    requests_per_minute: 2
suppliers:
  default_tier: starter
seasons:
  - {name: all-year, from: "01-01", to: "12-31"}
`})
	metrics := func() string {
		t.Helper()
		code, body := h.admin("/metrics", "")
		if code != 200 {
			t.Fatalf("metrics %d", code)
		}
		return body
	}
	has := func(body string, lines ...string) []string {
		var missing []string
		for _, l := range lines {
			if !strings.Contains(body, "\n"+l+"\n") {
				missing = append(missing, l)
			}
		}
		return missing
	}

	if missing := has(metrics(),
		`veil_ttft_seconds_count{model="gpt-4o-mini",provider="openai"} 0`,
		`veil_stream_duration_seconds_count{model="gpt-4o-mini",provider="openai"} 0`,
		`veil_provider_headroom_ratio{kind="requests",provider="openai"} NaN`,
		`veil_provider_headroom_ratio{kind="tokens",provider="openai"} NaN`,
		`veil_quota_refusals_total{limit="rpm",tier="starter"} 0`,
		`veil_season_active{season="all-year"} 1`,
	); len(missing) > 0 {
		t.Errorf("before the first request, /metrics lacks %q", missing)
	}

	resp := h.do("POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Name three wedding songs."}]}`, nil)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: status %d", resp.StatusCode)
	}
	// The fake answers with 9999 of 10000 requests and 29999000 of
	// 30000000 tokens left.
	after := []string{
		`veil_ttft_seconds_count{model="gpt-4o-mini",provider="openai"} 1`,
		`veil_stream_duration_seconds_count{model="gpt-4o-mini",provider="openai"} 1`,
		`veil_provider_headroom_ratio{kind="requests",provider="openai"} 0.9999`,
		`veil_provider_headroom_ratio{kind="tokens",provider="openai"} 0.9999666666666667`,
	}
	// A stream's statistics land when its exchange finishes, just after
	// the client has read [DONE].
	waitFor(t, func() bool { return len(has(metrics(), after...)) == 0 })

	for i, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
		resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("call %d: status %d, want %d", i+2, resp.StatusCode, want)
		}
	}
	if missing := has(metrics(),
		`veil_quota_refusals_total{limit="rpm",tier="starter"} 1`,
		`veil_quota_refusals_total{limit="tpm",tier="starter"} 0`,
		`veil_stream_duration_seconds_count{model="gpt-4o-mini",provider="openai"} 1`,
	); len(missing) > 0 {
		t.Errorf("after a refusal, /metrics lacks %q", missing)
	}
}
