package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
)

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Name three wedding songs."}]}`

// do sends a raw request to veil with the caller token unless the test sets
// its own Authorization.
func (h *harness) do(method, path, body string, hdr map[string]string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, "http://"+h.app.ProxyAddr()+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("X-Supplier-ID", testSupplier)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	h.t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

type envelope struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func readEnvelope(t *testing.T, resp *http.Response) envelope {
	t.Helper()
	var e envelope
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" {
		t.Fatalf("not an OpenAI error envelope (%v): %s", err, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error content type %q", ct)
	}
	return e
}

// TestHeadersNeverForwarded: client credentials, hop-by-hop headers and
// veil's control headers stop at veil; the upstream sees exactly one
// Authorization, carrying the platform key.
func TestHeadersNeverForwarded(t *testing.T) {
	h := start(t, setup{})
	conn, err := net.Dial("tcp", h.app.ProxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Written by hand so duplicates and odd headers go out exactly as here.
	raw := "POST /v1/chat/completions HTTP/1.1\r\n" +
		"Host: veil\r\n" +
		"Authorization: Bearer " + h.token + "\r\n" +
		"Api-Key: client-azure-key\r\n" +
		"X-Api-Key: client-anthropic-key\r\n" +
		"OpenAI-Organization: org-client\r\n" +
		"OpenAI-Project: proj-client\r\n" +
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n" +
		"Connection: keep-alive, X-Hop\r\n" +
		"X-Hop: hop-by-hop\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Upgrade: websocket\r\n" +
		"X-Supplier-ID: supplier-1\r\n" +
		"X-Workflow: photography\r\n" +
		"X-Veil-Debug: 1\r\n" +
		"X-Request-ID: wedding-42\r\n" +
		"User-Agent: wedsync-app/1.0\r\n" +
		"OpenAI-Beta: assistants=v2\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: " + itoa(len(chatBody)) + "\r\n\r\n" + chatBody
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "wedding-42" {
		t.Errorf("X-Request-ID = %q, want the client's", got)
	}
	got := h.lastUpstream().Header
	if auth := got.Values("Authorization"); len(auth) != 1 || auth[0] != "Bearer "+h.platformKey {
		t.Errorf("upstream Authorization = %d values, want exactly the platform key", len(auth))
	}
	for _, k := range []string{"Api-Key", "X-Api-Key", "Openai-Organization", "Openai-Project", "Proxy-Authorization",
		"X-Hop", "Keep-Alive", "Upgrade", "X-Supplier-Id", "X-Workflow", "X-Veil-Debug"} {
		if v := got.Values(k); len(v) > 0 {
			t.Errorf("upstream received %s: %q", k, v)
		}
	}
	for k, want := range map[string]string{"User-Agent": "wedsync-app/1.0", "Openai-Beta": "assistants=v2", "Content-Type": "application/json"} {
		if v := got.Get(k); v != want {
			t.Errorf("upstream %s = %q, want %q", k, v, want)
		}
	}
}

// TestPassThrough: paths veil does not interpret go upstream with method,
// query, body (multipart included), status and headers intact.
func TestPassThrough(t *testing.T) {
	h := start(t, setup{})

	t.Run("multipart", func(t *testing.T) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		_ = mw.WriteField("model", "whisper-1")
		fw, _ := mw.CreateFormFile("file", "vows.wav")
		_, _ = fw.Write(bytes.Repeat([]byte{0x52, 0x49, 0x46, 0x46}, 2048))
		_ = mw.Close()
		resp := h.do("POST", "/v1/audio/transcriptions", body.String(), map[string]string{"Content-Type": mw.FormDataContentType()})
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		up := h.lastUpstream()
		if up.Path != "/v1/audio/transcriptions" || !bytes.Equal(up.Body, body.Bytes()) {
			t.Errorf("upstream got %s with %d body bytes, want %d identical bytes", up.Path, len(up.Body), body.Len())
		}
		if up.Header.Get("Content-Type") != mw.FormDataContentType() {
			t.Errorf("content type %q", up.Header.Get("Content-Type"))
		}
	})

	t.Run("query and method", func(t *testing.T) {
		resp := h.do("DELETE", "/v1/files/file-abc123?purpose=fine-tune&limit=2", "", nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		up := h.lastUpstream()
		if up.Method != "DELETE" || up.Path != "/v1/files/file-abc123" || up.Query != "purpose=fine-tune&limit=2" {
			t.Errorf("upstream got %s %s ? %s", up.Method, up.Path, up.Query)
		}
		if resp.Header.Get("X-Veil-Provider") != "openai" {
			t.Errorf("X-Veil-Provider = %q", resp.Header.Get("X-Veil-Provider"))
		}
	})
}

// TestErrors: veil's own errors are OpenAI envelopes with the right status;
// upstream errors pass through unchanged.
func TestErrors(t *testing.T) {
	h := start(t, setup{limits: "  max_body_bytes: 4096\n"})
	cases := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		code                     string
		param                    string
	}{
		{"no token", "POST", "/v1/chat/completions", chatBody, map[string]string{"Authorization": ""}, 401, "missing_caller_token", ""},
		{"wrong token", "POST", "/v1/chat/completions", chatBody, map[string]string{"Authorization": "Bearer nope"}, 401, "invalid_caller_token", ""},
		{"not json", "POST", "/v1/chat/completions", "{model:", nil, 400, "invalid_json", ""},
		{"wrong type", "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":"yes"}`, nil, 400, "invalid_type", "stream"},
		{"no model", "POST", "/v1/embeddings", `{"input":"hi"}`, nil, 400, "missing_required_parameter", "model"},
		{"outside v1", "GET", "/admin/status", "", nil, 404, "unknown_url", ""},
		{"headers too large", "POST", "/v1/chat/completions", chatBody, map[string]string{"X-Wedding-Notes": strings.Repeat("n", 20000)}, 431, "headers_too_large", ""},
		{"too large", "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","x":"` + strings.Repeat("a", 5000) + `"}`, nil, 413, "request_too_large", ""},
	}
	before := len(h.up.Requests())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do(tc.method, tc.path, tc.body, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			e := readEnvelope(t, resp)
			if e.Error.Code == nil || *e.Error.Code != tc.code {
				t.Errorf("code %v, want %q (%s)", e.Error.Code, tc.code, e.Error.Message)
			}
			if tc.param != "" && (e.Error.Param == nil || *e.Error.Param != tc.param) {
				t.Errorf("param %v, want %q", e.Error.Param, tc.param)
			}
		})
	}
	if after := len(h.up.Requests()); after != before {
		t.Errorf("rejected requests reached the upstream: %d", after-before)
	}

	t.Run("upstream error passes through", func(t *testing.T) {
		h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindRateLimit, RetryAfter: 7 * time.Second})
		_, err := h.client().CreateChatCompletion(ctxT(t), weddingChat)
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 429 {
			t.Fatalf("want the upstream's 429, got %v", err)
		}
		if apiErr.Code != "rate_limit_exceeded" {
			t.Errorf("code %v", apiErr.Code)
		}
	})
}

// TestUnknownModel: with model lists configured, a model nobody serves is a
// 404 model_not_found from veil.
func TestUnknownModel(t *testing.T) {
	h := start(t, setup{providers: `
  - name: openai
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]`})
	resp := h.do("POST", "/v1/chat/completions", `{"model":"gpt-9-ultra","messages":[]}`, nil)
	if resp.StatusCode != 404 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if e := readEnvelope(t, resp); *e.Error.Code != "model_not_found" {
		t.Errorf("code %q", *e.Error.Code)
	}
}

// TestUnreachableProviderFailsOver: a provider that refuses connections is
// skipped for the next planned one; alone, it is a 502 envelope.
func TestUnreachableProviderFailsOver(t *testing.T) {
	dead := deadAddr(t)
	h := start(t, setup{providers: `
  - name: primary
    type: openai
    base_url: http://` + dead + `/v1
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]
  - name: secondary
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]`})
	resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Veil-Provider") != "secondary" || resp.Header.Get("X-Veil-Attempts") != "2" {
		t.Errorf("status %d provider %q attempts %q", resp.StatusCode, resp.Header.Get("X-Veil-Provider"), resp.Header.Get("X-Veil-Attempts"))
	}

	alone := start(t, setup{providers: `
  - name: primary
    type: openai
    base_url: http://` + dead + `/v1%.0s
    api_key: env://PLATFORM_KEY`})
	resp = alone.do("POST", "/v1/chat/completions", chatBody, nil)
	if resp.StatusCode != 502 {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	if e := readEnvelope(t, resp); *e.Error.Code != "upstream_unavailable" {
		t.Errorf("code %q", *e.Error.Code)
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestRequestID(t *testing.T) {
	h := start(t, setup{})
	a := h.do("GET", "/v1/models", "", nil).Header.Get("X-Request-Id")
	b := h.do("GET", "/v1/models", "", nil).Header.Get("X-Request-Id")
	if a == "" || a == b {
		t.Errorf("generated request ids %q and %q", a, b)
	}
	if got := h.do("GET", "/v1/models", "", map[string]string{"X-Request-ID": "bad id (with spaces)"}).Header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Errorf("a malformed client id was kept: %q", got)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestStatusFailsOver: a 503 (or 429, 5xx) from the first planned provider
// sends the call to the next one before anything reaches the client; a
// request error (400) is passed through from the first.
func TestStatusFailsOver(t *testing.T) {
	h := start(t, setup{providers: twoProviders})
	for _, status := range []int{503, 500, 529} {
		h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: status})
		resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("X-Veil-Provider") != "secondary" || resp.Header.Get("X-Veil-Failover") != "true" {
			t.Errorf("after %d: status %d provider %q failover %q", status, resp.StatusCode,
				resp.Header.Get("X-Veil-Provider"), resp.Header.Get("X-Veil-Failover"))
		}
	}
	// A stream fails over the same way: the status comes before any byte.
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindRateLimit, RetryAfter: time.Second})
	if _, r := h.openStream(t); r == nil {
		t.Fatal("no stream")
	}
	// Both planned targets failing once: the last one is retried after a
	// backoff and answers.
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: 503, Times: 2})
	resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Veil-Attempts") != "3" {
		t.Errorf("both failing once: status %d attempts %q", resp.StatusCode, resp.Header.Get("X-Veil-Attempts"))
	}
	// Failing persistently: after max_retries (2) the last answer passes
	// through as the provider sent it.
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: 503, Times: 10})
	resp = h.do("POST", "/v1/chat/completions", chatBody, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("X-Veil-Attempts") != "4" {
		t.Errorf("persistent 503: status %d attempts %q", resp.StatusCode, resp.Header.Get("X-Veil-Attempts"))
	}
	h.up.Reset()
	// A request error is not the provider's fault: no failover.
	resp = h.do("POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[]}`, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("X-Veil-Attempts") != "1" {
		t.Errorf("400: status %d attempts %q", resp.StatusCode, resp.Header.Get("X-Veil-Attempts"))
	}
}

// TestBreakerOpensAndCloses: a primary that keeps failing opens its
// breaker, so calls go straight to the secondary (one attempt); after the
// cooldown a probe finds it healthy and it serves again.
func TestBreakerOpensAndCloses(t *testing.T) {
	h := start(t, setup{limits: "  breaker_failures: 2\n  breaker_cooldown: 300ms\n", providers: twoProviders})
	call := func() *http.Response {
		resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp
	}
	for range 2 {
		h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: 503})
		if resp := call(); resp.Header.Get("X-Veil-Provider") != "secondary" {
			t.Fatalf("failover to secondary: %q", resp.Header.Get("X-Veil-Provider"))
		}
	}
	resp := call()
	if resp.Header.Get("X-Veil-Provider") != "secondary" || resp.Header.Get("X-Veil-Attempts") != "1" {
		t.Errorf("with the breaker open: provider %q attempts %q", resp.Header.Get("X-Veil-Provider"), resp.Header.Get("X-Veil-Attempts"))
	}
	if code, body := h.admin("/admin/status", h.adminToken); code != 200 || !strings.Contains(body, `"breaker": "open"`) {
		t.Errorf("status does not show the open breaker: %s", body)
	}
	if _, body := h.admin("/metrics", ""); !strings.Contains(body, `veil_breaker_state{provider="primary"} 2`) ||
		!strings.Contains(body, `veil_target_up{provider="primary"} 0`) {
		t.Error("metrics do not show the open breaker")
	}
	waitFor(t, func() bool { return call().Header.Get("X-Veil-Provider") == "primary" })
}

// TestRetryHonoursRetryAfter: a 429 whose Retry-After fits max_retry_wait
// is retried after it; one asking for longer is passed through at once.
func TestRetryHonoursRetryAfter(t *testing.T) {
	h := start(t, setup{})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindRateLimit, RetryAfter: time.Second})
	started := time.Now()
	resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Veil-Attempts") != "2" {
		t.Errorf("status %d attempts %q", resp.StatusCode, resp.Header.Get("X-Veil-Attempts"))
	}
	if time.Since(started) < time.Second {
		t.Error("the retry did not wait for Retry-After")
	}
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindRateLimit, RetryAfter: time.Minute})
	resp = h.do("POST", "/v1/chat/completions", chatBody, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 429 || resp.Header.Get("X-Veil-Attempts") != "1" {
		t.Errorf("a long Retry-After: status %d attempts %q", resp.StatusCode, resp.Header.Get("X-Veil-Attempts"))
	}
}

// TestRetryBudget: with a provider failing every call, retries stay within
// its budget (a fifth of the requests plus a small floor), so an outage
// does not multiply the load on it.
func TestRetryBudget(t *testing.T) {
	h := start(t, setup{limits: "  retry_backoff: 1ms\n  breaker_failures: 1000\n"})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: 503, Times: -1})
	before := h.up.Stats().Requests
	const n = 100
	for range n {
		resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 503 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	attempts := h.up.Stats().Requests - before
	t.Logf("%d requests made %d upstream attempts", n, attempts)
	if limit := int64(n + n/5 + 5); attempts > limit {
		t.Errorf("%d attempts for %d requests, more than the budget allows (%d)", attempts, n, limit)
	}
	if _, body := h.admin("/metrics", ""); !strings.Contains(body, `veil_retries_denied_total{provider="openai"}`) {
		t.Error("denied retries are not counted")
	}
}
