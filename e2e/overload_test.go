package e2e

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestListenerSheds: with limits.max_in_flight 3, three slow streams fill
// the listener; a fourth request is answered at once with 503 overloaded,
// Retry-After: 1 and the OpenAI envelope, never reaching the provider, and
// is counted with reason listener. Once one stream ends there is room
// again.
func TestListenerSheds(t *testing.T) {
	const held = 3
	h := start(t, setup{limits: "  max_in_flight: 3\n"})
	h.up.Script(fakeopenai.StallStream(1, 0).Repeat(held)) // each stalls after its first chunk until the fake closes
	conns := make([]net.Conn, 0, held)
	for range held {
		conn, r := h.openStream(t)
		if _, err := nextData(t, r); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	upstream := len(h.up.Requests())

	t0 := time.Now()
	resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	took := time.Since(t0)
	var env struct {
		Error struct{ Message, Type, Code string } `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if resp.StatusCode != 503 || env.Error.Code != "overloaded" || env.Error.Type != "service_unavailable" ||
		resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("the request beyond max_in_flight: %d %s (Retry-After %q), want 503 overloaded with Retry-After 1",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("the shed answer has no X-Request-Id")
	}
	if took > time.Second {
		t.Errorf("the shed answer took %v", took)
	}
	if n := len(h.up.Requests()); n != upstream {
		t.Errorf("the shed request reached the provider (%d calls, want %d)", n, upstream)
	}
	if _, m := h.admin("/metrics", ""); !strings.Contains(m, `veil_overloaded_total{provider="",reason="listener"} 1`) {
		t.Errorf("the shed request is not counted:\n%s", grepLines(m, "overloaded"))
	}

	// A stream counts until it ends: close one, and once veil has seen it
	// go a request is served again.
	_ = conns[0].Close()
	waitFor(t, func() bool {
		resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode == 200
	})
}
