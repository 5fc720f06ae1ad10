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
