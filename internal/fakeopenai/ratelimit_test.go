package fakeopenai

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestRequestLimit: with a rate limit of its own, the fake counts what is
// left down with every call, says so in its headers, streams included,
// and answers 429 once the window is used up.
func TestRequestLimit(t *testing.T) {
	s := startServer(t, Options{RequestLimit: 3, TokenLimit: 1000, LimitWindow: time.Hour})
	hc := httpClient(t)
	chat := `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"Hello"}]}`
	for i, stream := range []bool{false, true, false} {
		body := chat
		if stream {
			body = `{"model":"gpt-4o-mini","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`
		}
		resp, _ := do(t, hc, "POST", s.URL()+"/chat/completions", body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: status %d", i, resp.StatusCode)
		}
		h := resp.Header
		if got := h.Get("X-Ratelimit-Remaining-Requests"); got != strconv.Itoa(2-i) {
			t.Errorf("call %d: %s requests left, want %d", i, got, 2-i)
		}
		if h.Get("X-Ratelimit-Limit-Requests") != "3" || h.Get("X-Ratelimit-Limit-Tokens") != "1000" {
			t.Errorf("call %d: limits %s and %s", i, h.Get("X-Ratelimit-Limit-Requests"), h.Get("X-Ratelimit-Limit-Tokens"))
		}
		left, _ := strconv.Atoi(h.Get("X-Ratelimit-Remaining-Tokens"))
		if want := 1000 - (i+1)*(len(chat)/4+10); left > want+10 || left < want-10 {
			t.Errorf("call %d: %d tokens left, want about %d", i, left, want)
		}
		if d, err := time.ParseDuration(h.Get("X-Ratelimit-Reset-Requests")); err != nil || d <= 0 || d > time.Hour {
			t.Errorf("call %d: reset %q", i, h.Get("X-Ratelimit-Reset-Requests"))
		}
	}
	if resp, _ := do(t, hc, "GET", s.URL()+"/models", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("listing models is not a model call: %d", resp.StatusCode)
	}
	resp, body := do(t, hc, "POST", s.URL()+"/chat/completions", chat)
	if resp.StatusCode != http.StatusTooManyRequests || code(decodeEnvelope(t, body)) != "rate_limit_exceeded" {
		t.Fatalf("over the limit: %d %s", resp.StatusCode, body)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 3500 || ra > 3600 {
		t.Errorf("Retry-After %q, want the rest of the hour", resp.Header.Get("Retry-After"))
	}
	if resp.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
		t.Errorf("remaining %q on the 429", resp.Header.Get("X-Ratelimit-Remaining-Requests"))
	}
	if n := s.Stats().RateLimited; n != 1 {
		t.Errorf("Stats().RateLimited = %d", n)
	}
}

// TestTokenLimit: a call whose tokens would pass the token limit is
// refused though requests are left; a new window starts afresh.
func TestTokenLimit(t *testing.T) {
	s := startServer(t, Options{RequestLimit: 100, TokenLimit: 60, LimitWindow: 200 * time.Millisecond})
	hc := httpClient(t)
	chat := `{"model":"gpt-4o-mini","max_tokens":30,"messages":[{"role":"user","content":"Hello"}]}`
	if resp, _ := do(t, hc, "POST", s.URL()+"/chat/completions", chat); resp.StatusCode != http.StatusOK {
		t.Fatalf("first call: %d", resp.StatusCode)
	}
	resp, _ := do(t, hc, "POST", s.URL()+"/chat/completions", chat)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("over the token limit: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if resp, _ := do(t, hc, "POST", s.URL()+"/chat/completions", chat); resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the next window never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAccounts: keys in organisations of their own answer with their
// organisation and count down their own budget, shared by the keys of one
// organisation; other keys keep the server's.
func TestAccounts(t *testing.T) {
	s := startServer(t, Options{LimitWindow: time.Hour, Accounts: []Account{
		{Organization: "org-wedsync-a", Keys: []string{"sk-a1", "sk-a2"}, RequestLimit: 2},
		{Organization: "org-wedsync-b", Keys: []string{"sk-b1"}, RequestLimit: 100, TokenLimit: 50000},
		{Organization: "org-wedsync-c", Keys: []string{"sk-c1"}},
	}})
	hc := httpClient(t)
	chat := `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"Hello"}]}`
	tests := []struct {
		key, org                   string
		status                     int
		limit, remaining, limitTok string
	}{
		{"sk-a1", "org-wedsync-a", http.StatusOK, "2", "1", "30000000"},
		{"sk-b1", "org-wedsync-b", http.StatusOK, "100", "99", "50000"},
		{"sk-a2", "org-wedsync-a", http.StatusOK, "2", "0", "30000000"}, // the organisation's budget, not the key's
		{"sk-a1", "org-wedsync-a", http.StatusTooManyRequests, "2", "0", "30000000"},
		{"sk-b1", "org-wedsync-b", http.StatusOK, "100", "98", "50000"},
		{"sk-c1", "org-wedsync-c", http.StatusOK, "10000", "9999", "30000000"}, // no limit of its own
		{testKey, "user-fakeopenai", http.StatusOK, "10000", "9999", "30000000"},
	}
	for i, tc := range tests {
		resp, body := do(t, hc, "POST", s.URL()+"/chat/completions", chat, "Authorization", "Bearer "+tc.key)
		h := resp.Header
		if resp.StatusCode != tc.status || h.Get("Openai-Organization") != tc.org {
			t.Errorf("call %d with %s: status %d, organisation %q; want %d, %q: %s", i, tc.key, resp.StatusCode,
				h.Get("Openai-Organization"), tc.status, tc.org, body)
		}
		if h.Get("X-Ratelimit-Limit-Requests") != tc.limit || h.Get("X-Ratelimit-Remaining-Requests") != tc.remaining ||
			h.Get("X-Ratelimit-Limit-Tokens") != tc.limitTok {
			t.Errorf("call %d with %s: requests %s of %s, tokens limit %s; want %s of %s, %s", i, tc.key,
				h.Get("X-Ratelimit-Remaining-Requests"), h.Get("X-Ratelimit-Limit-Requests"), h.Get("X-Ratelimit-Limit-Tokens"),
				tc.remaining, tc.limit, tc.limitTok)
		}
	}
	if resp, _ := do(t, hc, "GET", s.URL()+"/models", "", "Authorization", "Bearer sk-b1"); resp.Header.Get("Openai-Organization") != "org-wedsync-b" {
		t.Errorf("a model listing says organisation %q", resp.Header.Get("Openai-Organization"))
	}
	if n := s.Stats().RateLimited; n != 1 {
		t.Errorf("Stats().RateLimited = %d", n)
	}
}

// TestAnthropicAccounts: an Anthropic answer names the organisation of its
// key's account in anthropic-organization-id, streamed or not, as the
// Messages API does; other keys keep the server's organisation.
func TestAnthropicAccounts(t *testing.T) {
	s := startServer(t, Options{Accounts: []Account{
		{Organization: "5d8b2f0e-1c4a-4e7b-9f3d-2a6c8e0b4d71", Keys: []string{"sk-ant-a1", "sk-ant-a2"}},
		{Organization: "c3a9e1f7-6b2d-4f8a-b0e5-7d4c1a9f3e26", Keys: []string{"sk-ant-b1"}},
	}})
	hc := httpClient(t)
	tests := []struct{ key, org string }{
		{"sk-ant-a1", "5d8b2f0e-1c4a-4e7b-9f3d-2a6c8e0b4d71"},
		{"sk-ant-a2", "5d8b2f0e-1c4a-4e7b-9f3d-2a6c8e0b4d71"},
		{"sk-ant-b1", "c3a9e1f7-6b2d-4f8a-b0e5-7d4c1a9f3e26"},
		{testKey, anthropicOrg},
	}
	for _, tc := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(tc.key+" stream "+strconv.FormatBool(stream), func(t *testing.T) {
				body := `{"model":"claude-haiku-4-5","max_tokens":64,"stream":` + strconv.FormatBool(stream) +
					`,"messages":[{"role":"user","content":"Hello"}]}`
				resp, out := postMessages(t, hc, s, body, "X-Api-Key", tc.key)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, out)
				}
				if got := resp.Header.Get("Anthropic-Organization-Id"); got != tc.org {
					t.Errorf("anthropic-organization-id %q, want %q", got, tc.org)
				}
				if got := resp.Header.Get("Openai-Organization"); got != "" {
					t.Errorf("an Anthropic answer says OpenAI-Organization %q", got)
				}
			})
		}
	}
}
