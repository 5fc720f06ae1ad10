package e2e

import (
	"io"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestSilentUpstream: a provider that accepts the call and never answers
// is given up after attempt_timeout and the next provider answers, for
// plain calls and streams alike; with no provider left the client gets a
// 504 upstream_timeout envelope within request_timeout.
func TestSilentUpstream(t *testing.T) {
	recs := &tap{}
	h := start(t, setup{providers: twoProviders, tap: recs.add, limits: "  attempt_timeout: 300ms\n"})
	h.up.Script(fakeopenai.Stall(time.Minute))
	resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Veil-Provider") != "secondary" || resp.Header.Get("X-Veil-Attempts") != "2" {
		t.Errorf("plain: status %d provider %q attempts %q", resp.StatusCode, resp.Header.Get("X-Veil-Provider"), resp.Header.Get("X-Veil-Attempts"))
	}
	if rec := recs.one(t, resp.Header.Get("X-Request-ID")); len(rec.Attempts) != 2 || rec.Attempts[0].Error != "upstream_timeout" {
		t.Errorf("attempts %+v", rec.Attempts)
	}

	h.up.Script(fakeopenai.Stall(time.Minute))
	got := collectStream(t, h.client(), openai.ChatCompletionRequest{Model: "gpt-4o-mini", Stream: true,
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "Describe the venue."}}})
	if got.text == "" {
		t.Error("stream: no text")
	}

	one := start(t, setup{limits: "  attempt_timeout: 200ms\n  request_timeout: 1s\n  max_retries: 1\n"})
	one.up.Script(fakeopenai.Stall(time.Minute).Repeat(-1))
	resp = one.do("POST", "/v1/chat/completions", chatBody, nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 504 || !strings.Contains(string(body), `"code":"upstream_timeout"`) {
		t.Errorf("alone: status %d body %s", resp.StatusCode, body)
	}
}
