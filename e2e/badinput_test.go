package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// canary is a listener that must never be called: a request that reaches
// it was redirected by the client.
type canary struct {
	ln    net.Listener
	calls atomic.Int64
}

func newCanary(t *testing.T) *canary {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &canary{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.calls.Add(1)
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return c
}

func (c *canary) addr() string { return c.ln.Addr().String() }
func (c *canary) url() string  { return "http://" + c.addr() }

// TestRedirectAttemptsNeverChangeTheUpstream: body fields, headers, query
// parameters and request-line forms that name another host or key leave
// the upstream and the key as configured: the canary is never called, and
// the fake receives every call on its own paths with the platform key.
func TestRedirectAttemptsNeverChangeTheUpstream(t *testing.T) {
	h := start(t, setup{})
	c := newCanary(t)
	other := "sk-attacker-0000000000000000000000"
	bodies := map[string]string{
		"api_base":       `{"model":"gpt-4o-mini","api_base":"` + c.url() + `/v1","messages":[{"role":"user","content":"hi"}]}`,
		"base_url":       `{"model":"gpt-4o-mini","base_url":"` + c.url() + `","messages":[{"role":"user","content":"hi"}]}`,
		"api_key":        `{"model":"gpt-4o-mini","api_key":"` + other + `","messages":[{"role":"user","content":"hi"}]}`,
		"azure_endpoint": `{"model":"gpt-4o-mini","azure_endpoint":"` + c.url() + `","messages":[{"role":"user","content":"hi"}]}`,
		"host and url":   `{"model":"gpt-4o-mini","host":"` + c.addr() + `","url":"` + c.url() + `","endpoint":"` + c.url() + `","messages":[{"role":"user","content":"hi"}]}`,
		"extra_headers":  `{"model":"gpt-4o-mini","extra_headers":{"Host":"` + c.addr() + `","Authorization":"Bearer ` + other + `"},"messages":[{"role":"user","content":"hi"}]}`,
		"model as url":   `{"model":"` + c.url() + `/v1","messages":[{"role":"user","content":"hi"}]}`,
		"embeddings":     `{"model":"text-embedding-3-small","input":"hi","api_base":"` + c.url() + `"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			path := "/v1/chat/completions"
			if strings.Contains(body, "embedding") {
				path = "/v1/embeddings"
			}
			resp := h.do("POST", path, body, nil)
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 && resp.StatusCode != 400 {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	headers := map[string]map[string]string{
		"host":              {"Host": c.addr()},
		"x-forwarded-host":  {"X-Forwarded-Host": c.addr(), "X-Forwarded-Proto": "http", "Forwarded": "host=" + c.addr()},
		"x-original-url":    {"X-Original-URL": c.url() + "/v1/chat/completions", "X-Rewrite-URL": c.url()},
		"openai base url":   {"OpenAI-Base-URL": c.url(), "X-OpenAI-Base-URL": c.url(), "X-Upstream": c.url()},
		"openai-api-key":    {"Api-Key": other, "X-Api-Key": other, "OpenAI-API-Key": other},
		"azure api version": {"Api-Version": "../../" + c.addr()},
	}
	for name, hdr := range headers {
		t.Run(name, func(t *testing.T) {
			resp := h.do("POST", "/v1/chat/completions", chatBody, hdr)
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	t.Run("query", func(t *testing.T) {
		resp := h.do("POST", "/v1/chat/completions?base_url="+c.url()+"&api_key="+other, chatBody, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
	})
	t.Run("absolute request line", func(t *testing.T) {
		status, _ := h.raw(t, "POST "+c.url()+"/v1/chat/completions HTTP/1.1\r\nHost: "+c.addr()+"\r\n"+h.authLines()+
			"Connection: close\r\nContent-Type: application/json\r\nContent-Length: "+fmt.Sprint(len(chatBody))+"\r\n\r\n"+chatBody)
		if status != 200 {
			t.Errorf("status %d", status)
		}
	})

	if n := c.calls.Load(); n != 0 {
		t.Errorf("the canary was called %d times", n)
	}
	for _, r := range h.up.Requests() {
		if !strings.HasPrefix(r.Path, "/v1/") || r.Header.Get("Authorization") != "Bearer "+h.platformKey {
			t.Errorf("upstream got %s %s with Authorization %q", r.Method, r.Path, keyShape(r.Header.Get("Authorization")))
		}
		if strings.Contains(r.Query, "attacker") {
			t.Errorf("upstream query %q carries the client's key", r.Query)
		}
		for _, name := range []string{"X-Forwarded-Host", "X-Original-Url", "Forwarded", "Api-Key", "X-Api-Key", "Openai-Api-Key"} {
			if v := r.Header.Get(name); v != "" {
				t.Errorf("upstream got %s: %q", name, v)
			}
		}
	}
}

// keyShape describes a credential without printing it.
func keyShape(v string) string {
	if v == "" {
		return "none"
	}
	return fmt.Sprintf("%d bytes", len(v))
}

// authLines are the caller's header lines for raw requests.
func (h *harness) authLines() string {
	return "Authorization: Bearer " + h.token + "\r\nX-Supplier-ID: " + testSupplier + "\r\n"
}

// raw writes a request to veil over a fresh connection and returns the
// status of the first response (0 when none came) and whether veil closed
// the connection after it (nothing more could be read).
func (h *harness) raw(t *testing.T, req string) (status int, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", h.app.ProxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // hang guard only
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, true
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode >= 400 {
		var e envelope
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" {
			t.Errorf("status %d without an OpenAI envelope: %q", resp.StatusCode, body)
		}
		if strings.Contains(string(body), h.token) {
			t.Error("the error body quotes the caller's token")
		}
	}
	// Whatever else was written (a smuggled request) must not be answered.
	_, err = br.ReadByte()
	return resp.StatusCode, err != nil && (resp.Close || err == io.EOF)
}

// TestModelNameTricks: model names that would reach another path, add a
// query, split a header or carry control characters are refused with 400
// invalid_model before any provider is asked, on every provider type.
func TestModelNameTricks(t *testing.T) {
	h := start(t, setup{providers: `
  - name: openai
    type: openai
    base_url: %[1]s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]
  - name: azure
    type: azure
    base_url: {root}
    api_key: env://PLATFORM_KEY
    azure:
      api_version: 2024-10-21`})
	models := []string{
		"../../admin", "gpt-4o-mini/../../../openai/deployments/other", "./gpt-4o-mini", "gpt-4o-mini/", "/gpt-4o-mini",
		`gpt-4o-mini\..\admin`, "gpt-4o-mini?api-version=1999-01-01", "gpt-4o-mini#x", "gpt%2f..%2fadmin",
		"gpt-4o-mini\r\nX-Injected: 1", "gpt-4o-mini\x00", "gpt-4o-mini\x1b[31m", "gpt 4o", "gpt-4o-mini\u2028",
		strings.Repeat("g", 300),
	}
	for _, m := range models {
		t.Run(strings.ToValidUTF8(fmt.Sprintf("%q", m), "?"), func(t *testing.T) {
			for _, path := range []string{"/v1/chat/completions", "/v1/embeddings"} {
				b, _ := json.Marshal(map[string]any{"model": m, "input": "hi", "messages": []map[string]string{{"role": "user", "content": "hi"}}})
				resp := h.do("POST", path, string(b), nil)
				if resp.StatusCode != 400 {
					t.Errorf("%s: status %d", path, resp.StatusCode)
				}
				if e := readEnvelope(t, resp); e.Error.Code == nil || *e.Error.Code != "invalid_model" || e.Error.Param == nil || *e.Error.Param != "model" {
					t.Errorf("%s: envelope %+v", path, e.Error)
				}
			}
		})
	}
	t.Run("path tricks", func(t *testing.T) {
		for _, p := range []string{"/v1/models/..%2f..%2fadmin%2fstatus", "/v1/../admin/status", "/v1/%2e%2e/%2e%2e/metrics", "/v1//../../etc/passwd"} {
			resp := h.do("GET", p, "", nil)
			_, _ = io.Copy(io.Discard, resp.Body)
		}
	})
	for _, r := range h.up.Requests() {
		if !strings.HasPrefix(r.Path, "/v1/") && !strings.HasPrefix(r.Path, "/openai/") || strings.Contains(r.Path, "..") {
			t.Errorf("upstream got %s %s", r.Method, r.Path)
		}
		if strings.Contains(r.Path, "admin") || strings.Contains(r.Path, "etc") {
			t.Errorf("upstream got %s %s", r.Method, r.Path)
		}
	}
	if n := len(h.up.Requests()); n > 4 {
		t.Errorf("%d requests reached the upstream; only the path tricks under /v1/models may", n)
	}
}

// rawChat is a chat request with the caller's headers, extra header lines
// and the body framed by Content-Length.
func (h *harness) rawChat(extra string) string {
	return "POST /v1/chat/completions HTTP/1.1\r\nHost: veil\r\n" + h.authLines() + extra +
		"Content-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(chatBody)) + "\r\n\r\n" + chatBody
}

// TestHeaderControlCharacters: control characters in header names and
// values are refused with 400 and the connection closed, before anything
// reaches a provider; obs-text (bytes over 0x7f) is not a control character.
func TestHeaderControlCharacters(t *testing.T) {
	h := start(t, setup{})
	cases := map[string]string{
		"nul in a value":             "X-Wedding: a\x00b\r\n",
		"escape in a value":          "X-Wedding: \x1b[2J\r\n",
		"bare cr in a value":         "X-Wedding: a\rInjected: 1\r\n",
		"del in a value":             "X-Wedding: a\x7f\r\n",
		"vertical tab in a value":    "X-Wedding: a\x0bb\r\n",
		"control in a name":          "X-Wed\x01ding: a\r\n",
		"control in the supplier id": "X-Supplier-ID: bella\x00-photography\r\n",
		"control in the token":       "Authorization: Bearer \x01" + strings.Repeat("a", 20) + "\r\n",
	}
	for name, line := range cases {
		t.Run(name, func(t *testing.T) {
			status, closed := h.raw(t, h.rawChat(line))
			if status != 400 || !closed {
				t.Errorf("status %d, closed %v; want 400 and a closed connection", status, closed)
			}
		})
	}
	t.Run("obs-text is accepted", func(t *testing.T) {
		if status, _ := h.raw(t, h.rawChat("Connection: close\r\nX-Wedding: caf\xe9\r\n")); status != 200 {
			t.Errorf("status %d", status)
		}
	})
	if n := len(h.up.Requests()); n != 1 {
		t.Errorf("%d requests reached the upstream, want only the obs-text one", n)
	}
}

// TestRequestSmuggling: framings two HTTP parsers may read differently are
// refused with 400 and the connection closed, so the request hidden after
// the first is never read; the upstream sees none of them.
func TestRequestSmuggling(t *testing.T) {
	h := start(t, setup{})
	hidden := "GET /v1/models HTTP/1.1\r\nHost: veil\r\n" + h.authLines() + "\r\n"
	head := "POST /v1/chat/completions HTTP/1.1\r\nHost: veil\r\n" + h.authLines() + "Content-Type: application/json\r\n"
	chunk := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(chatBody), chatBody)
	cases := map[string]string{
		"content-length and chunked": head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + hidden,
		"chunked and content-length": head + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunk + hidden,
		"duplicate content-length":   head + "Content-Length: " + fmt.Sprint(len(chatBody)) + "\r\nContent-Length: 4\r\n\r\n" + chatBody + hidden,
		"content-length list":        head + "Content-Length: 4, 4\r\n\r\n" + chatBody + hidden,
		"signed content-length":      head + "Content-Length: +4\r\n\r\n" + chatBody + hidden,
		"chunked, identity":          head + "Transfer-Encoding: chunked, identity\r\n\r\n" + chunk + hidden,
		"identity, chunked":          head + "Transfer-Encoding: identity, chunked\r\n\r\n" + chunk + hidden,
		"xchunked":                   head + "Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n" + chatBody + hidden,
		"two transfer-encodings":     head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" + chunk + hidden,
		"space before the colon":     head + "Transfer-Encoding : chunked\r\n\r\n" + chunk + hidden,
		"folded transfer-encoding":   head + "Transfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n" + chunk + hidden,
		"folded header":              head + "X-Wedding: a\r\n b\r\nContent-Length: " + fmt.Sprint(len(chatBody)) + "\r\n\r\n" + chatBody + hidden,
		"chunked on http/1.0":        strings.Replace(head, "HTTP/1.1", "HTTP/1.0", 1) + "Transfer-Encoding: chunked\r\n\r\n" + chunk + hidden,
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			status, closed := h.raw(t, req)
			if status != 400 || !closed {
				t.Errorf("status %d, closed %v; want 400 and a closed connection", status, closed)
			}
		})
	}
	if n := len(h.up.Requests()); n != 0 {
		t.Errorf("%d smuggling requests reached the upstream", n)
	}
	t.Run("odd but valid spellings pass", func(t *testing.T) {
		for _, te := range []string{"Chunked", "CHUNKED", "\tchunked"} {
			if status, _ := h.raw(t, head+"Connection: close\r\nTransfer-Encoding:"+te+"\r\n\r\n"+chunk); status != 200 {
				t.Errorf("Transfer-Encoding:%q: status %d", te, status)
			}
		}
	})
}

// TestOversizedRequests: headers over limits.max_header_bytes get 431 and
// bodies over limits.max_body_bytes get 413, announced or streamed, without
// veil waiting for (or keeping) the whole body; nothing reaches a provider.
func TestOversizedRequests(t *testing.T) {
	h := start(t, setup{limits: "  max_body_bytes: 65536\n  max_header_bytes: 8192\n"})
	head := "POST /v1/chat/completions HTTP/1.1\r\nHost: veil\r\n" + h.authLines() + "Content-Type: application/json\r\n"
	t.Run("one huge header", func(t *testing.T) {
		if status, closed := h.raw(t, head+"X-Notes: "+strings.Repeat("n", 1<<20)+"\r\nContent-Length: 2\r\n\r\n{}"); status != 431 || !closed {
			t.Errorf("status %d, closed %v", status, closed)
		}
	})
	t.Run("many headers", func(t *testing.T) {
		if status, closed := h.raw(t, head+strings.Repeat("X-Guest: Aunt Mabel\r\n", 2000)+"Content-Length: 2\r\n\r\n{}"); status != 431 || !closed {
			t.Errorf("status %d, closed %v", status, closed)
		}
	})
	t.Run("announced body of 10 GB, never sent", func(t *testing.T) {
		// Only the header is written: an answer proves veil did not wait
		// for the body.
		if status, closed := h.raw(t, head+"Content-Length: 10737418240\r\n\r\n{\"model\":"); status != 413 || !closed {
			t.Errorf("status %d, closed %v", status, closed)
		}
	})
	t.Run("chunked body without end", func(t *testing.T) {
		conn, err := net.Dial("tcp", h.app.ProxyAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second)) // hang guard only
		go func() {
			if _, err := io.WriteString(conn, head+"Transfer-Encoding: chunked\r\n\r\n"); err != nil {
				return
			}
			piece := fmt.Sprintf("%x\r\n%s\r\n", 4096, strings.Repeat("a", 4096))
			for range 1 << 12 { // up to 16 MiB, far past the limit
				if _, err := io.WriteString(conn, piece); err != nil {
					return // veil answered and closed
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	if n := len(h.up.Requests()); n != 0 {
		t.Errorf("%d oversized requests reached the upstream", n)
	}
}

// TestDeepJSON: nesting deeper than veil's scanner accepts is a 400
// invalid_json, whatever provider would get it; ordinary depth passes.
func TestDeepJSON(t *testing.T) {
	h := start(t, setup{providers: anthropicProviders})
	deep := func(n int) string {
		return `{"model":"%s","messages":[{"role":"user","content":"hi"}],"metadata":{"x":` +
			strings.Repeat("[", n) + strings.Repeat("]", n) + `}}`
	}
	for _, model := range []string{"gpt-4o-mini", "claude-haiku-4-5"} {
		t.Run(model, func(t *testing.T) {
			for _, n := range []int{200, 100000} {
				resp := h.do("POST", "/v1/chat/completions", fmt.Sprintf(deep(n), model), nil)
				if resp.StatusCode != 400 {
					t.Errorf("depth %d: status %d", n, resp.StatusCode)
				}
				if e := readEnvelope(t, resp); e.Error.Code == nil || *e.Error.Code != "invalid_json" {
					t.Errorf("depth %d: envelope %+v", n, e.Error)
				}
			}
		})
	}
	if n := len(h.up.Requests()); n != 0 {
		t.Errorf("%d deep requests reached the upstream", n)
	}
	resp := h.do("POST", "/v1/chat/completions", fmt.Sprintf(deep(20), "gpt-4o-mini"), nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("depth 20: status %d", resp.StatusCode)
	}
}

// TestTierCaps: a tier's max_n and max_tokens bound platform calls: more is
// a 400 naming the parameter, none is sent with the tier's limit, and a
// supplier on its own key is not bound by WedSync's tier.
func TestTierCaps(t *testing.T) {
	grace := secret("sk-grace-")
	h := start(t, setup{fake: fakeopenai.Options{Keys: []string{grace}}, env: map[string]string{"GRACE_KEY": grace}, extra: `tiers:
  - name: starter
    max_n: 2
    max_tokens: 500
suppliers:
  default_tier: starter
  entries:
    - id: grace-venues
      mode: client
      keys:
        openai: env://GRACE_KEY
`})
	refused := []struct {
		name, body, param string
	}{
		{"n", `{"model":"gpt-4o-mini","n":3,"messages":[{"role":"user","content":"hi"}]}`, "n"},
		{"max_tokens", `{"model":"gpt-4o-mini","max_tokens":501,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens"},
		{"max_completion_tokens", `{"model":"gpt-4o-mini","max_completion_tokens":100000,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens"},
		{"completions max_tokens", `{"model":"gpt-4o-mini","prompt":"hi","max_tokens":9000}`, "max_tokens"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/chat/completions"
			if strings.Contains(tc.body, "prompt") {
				path = "/v1/completions"
			}
			resp := h.do("POST", path, tc.body, nil)
			if resp.StatusCode != 400 {
				t.Errorf("status %d", resp.StatusCode)
			}
			if e := readEnvelope(t, resp); e.Error.Param == nil || *e.Error.Param != tc.param || !strings.Contains(e.Error.Message, "starter") {
				t.Errorf("envelope %+v", e.Error)
			}
		})
	}
	if n := len(h.up.Requests()); n != 0 {
		t.Fatalf("%d refused calls reached the upstream", n)
	}
	sent := func(t *testing.T, path, body string, supplier string) map[string]any {
		t.Helper()
		resp := h.do("POST", path, body, map[string]string{"X-Supplier-ID": supplier})
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var got map[string]any
		if err := json.Unmarshal(h.lastUpstream().Body, &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	t.Run("none asked: the tier's limit is sent", func(t *testing.T) {
		if got := sent(t, "/v1/chat/completions", chatBody, testSupplier); got["max_completion_tokens"] != 500.0 {
			t.Errorf("upstream body %v", got)
		}
		if got := sent(t, "/v1/completions", `{"model":"gpt-4o-mini","prompt":"hi"}`, testSupplier); got["max_tokens"] != 500.0 {
			t.Errorf("upstream body %v", got)
		}
	})
	t.Run("within the caps: unchanged", func(t *testing.T) {
		got := sent(t, "/v1/chat/completions", `{"model":"gpt-4o-mini","n":2,"max_tokens":120,"messages":[{"role":"user","content":"hi"}]}`, testSupplier)
		if got["max_tokens"] != 120.0 || got["n"] != 2.0 || got["max_completion_tokens"] != nil {
			t.Errorf("upstream body %v", got)
		}
	})
	t.Run("own key: not capped", func(t *testing.T) {
		got := sent(t, "/v1/chat/completions", `{"model":"gpt-4o-mini","n":4,"messages":[{"role":"user","content":"hi"}]}`, "grace-venues")
		if got["n"] != 4.0 || got["max_completion_tokens"] != nil {
			t.Errorf("upstream body %v", got)
		}
	})
}

// hostileUpstream answers by model: what a broken or malicious provider
// might send.
func hostileUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	const role = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}` + "\n\n"
	chunk := func(content string) string {
		return `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"` + content + `"}}]}` + "\n\n"
	}
	const finish = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	// The plain answer's numbers still decode into a client's int64 (and
	// overflow when added); the stream's usage chunk, which veil reads and
	// strips since the client did not ask for it, does not even decode.
	const absurdPlain = `{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807,"total_tokens":-5,"prompt_tokens_details":{"cached_tokens":-1}}`
	const absurd = `{"prompt_tokens":1e30,"completion_tokens":99999999999999999999,"total_tokens":-5,"prompt_tokens_details":{"cached_tokens":-1}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Model == "hostile-retry" {
			w.Header().Set("Retry-After", "99999999999")
			w.Header().Set("Retry-After-Ms", "1e300")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"message":"come back next millennium","type":"server_error","code":null,"param":null}}`)
			return
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			content, usage := "a toast", `{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}`
			switch req.Model {
			case "hostile-utf8":
				content = "caf\xe9 \xff\xfe menu"
			case "hostile-usage":
				usage = absurdPlain
			case "hostile-longline":
				content = strings.Repeat("a", 10<<20)
			}
			_, _ = io.WriteString(w, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"`+
				content+`"},"finish_reason":"stop"}],"usage":`+usage+`}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		_, _ = io.WriteString(w, role)
		f.Flush()
		switch req.Model {
		case "hostile-longline":
			_, _ = io.WriteString(w, chunk(strings.Repeat("a", 10<<20)))
		case "hostile-utf8":
			_, _ = io.WriteString(w, chunk("caf\xe9 \xff\xfe"))
		default:
			_, _ = io.WriteString(w, chunk("a toast"))
		}
		_, _ = io.WriteString(w, finish)
		switch req.Model {
		case "hostile-usage":
			_, _ = io.WriteString(w, `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":`+absurd+"}\n\n")
		case "hostile-nodone":
			return // the body ends cleanly, without [DONE]
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestHostileUpstream: a provider sending a 10 MB SSE line, invalid UTF-8,
// absurd usage numbers, no [DONE] or absurd retry hints is handled within
// bounds: the client gets an answer or a clear error, every call has one
// usage record with bounded tokens, and veil keeps serving.
func TestHostileUpstream(t *testing.T) {
	up := hostileUpstream(t)
	recs := &tap{}
	h := start(t, setup{tap: recs.add, limits: "  max_retries: 2\n", providers: `
  - name: hostile
    type: openai
    base_url: ` + up.URL + `/v1
    api_key: env://PLATFORM_KEY`})
	models := []string{"hostile-longline", "hostile-utf8", "hostile-usage", "hostile-nodone"}
	want := 0
	for _, m := range models {
		t.Run(m, func(t *testing.T) {
			req := openai.ChatCompletionRequest{Model: m, Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "A toast"}}}
			resp, err := h.client().CreateChatCompletion(ctxT(t), req)
			switch {
			case m == "hostile-longline" && err != nil:
				// Passed through or refused, but answered.
			case err != nil:
				t.Errorf("plain: %v", err)
			case resp.Choices[0].Message.Content == "":
				t.Error("plain: empty answer")
			}
			req.Stream = true
			got, err := readStream(t, h.client(), req)
			if m == "hostile-longline" {
				if err == nil || strings.Contains(got.text, strings.Repeat("a", 1<<20)) {
					t.Errorf("the 10 MB event reached the client (err %v, %d bytes)", err, len(got.text))
				}
			} else if err != nil || got.text == "" {
				t.Errorf("stream: %q, %v", got.text, err)
			}
			want += 2
		})
	}
	t.Run("absurd retry hints", func(t *testing.T) {
		_, err := h.client().CreateChatCompletion(ctxT(t), openai.ChatCompletionRequest{Model: "hostile-retry",
			Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "A toast"}}})
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 503 {
			t.Errorf("want the provider's 503, got %v", err)
		}
		want++
	})
	for _, r := range recs.wait(t, want) {
		for name, n := range map[string]int64{"prompt": r.PromptTokens, "completion": r.CompletionTokens, "cached": r.CachedTokens} {
			if n < 0 || n > 1_000_000_000 {
				t.Errorf("%s: %s tokens %d", r.Model, name, n)
			}
		}
		if r.CostUSD != nil && (math.IsNaN(*r.CostUSD) || math.IsInf(*r.CostUSD, 0) || *r.CostUSD < 0) {
			t.Errorf("%s: cost %v", r.Model, *r.CostUSD)
		}
		if r.RequestedModel == "hostile-retry" && len(r.Attempts) > 3 {
			t.Errorf("%d attempts on absurd retry hints", len(r.Attempts))
		}
	}
	if _, err := h.client().CreateChatCompletion(ctxT(t), openai.ChatCompletionRequest{Model: "hostile-utf8",
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "still there?"}}}); err != nil {
		t.Errorf("veil stopped serving: %v", err)
	}
}

// TestClientRetryHintsIgnored: headers by which a client might ask veil to
// try harder change nothing: a failing call takes the same attempts with
// and without them.
func TestClientRetryHintsIgnored(t *testing.T) {
	recs := &tap{}
	h := start(t, setup{tap: recs.add, limits: "  max_retries: 1\n  retry_backoff: 1ms\n"})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: 503, Times: -1})
	hints := map[string]string{"X-Stainless-Retry-Count": "0", "X-Veil-Retries": "50", "X-Veil-Max-Attempts": "50",
		"X-Should-Retry": "true", "Retry-After": "0", "X-Retry-Count": "100", "X-Max-Retries": "100"}
	for _, hdr := range []map[string]string{nil, hints} {
		resp := h.do("POST", "/v1/chat/completions", chatBody, hdr)
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 503 {
			t.Errorf("status %d", resp.StatusCode)
		}
	}
	rs := recs.wait(t, 2)
	if len(rs[0].Attempts) != len(rs[1].Attempts) || len(rs[1].Attempts) > 2 {
		t.Errorf("attempts without hints %d, with hints %d (max_retries 1)", len(rs[0].Attempts), len(rs[1].Attempts))
	}
	for _, r := range h.up.Requests() {
		for name := range hints {
			if strings.HasPrefix(name, "X-Veil-") && r.Header.Get(name) != "" {
				t.Errorf("upstream got %s", name)
			}
		}
	}
}
