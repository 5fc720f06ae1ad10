package e2e

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestOneSuppliersKeyFaultStaysWithIt: one supplier's own key fails in each
// way a key fails (server errors, a used-up account, resets, stalls,
// refusals) at 50 calls a second while three other suppliers, on their own
// keys and on platform keys, keep calling at 20 a second each. The
// failing supplier is served on platform keys (it may fall back), billed to
// the platform; the others lose no call, none of theirs moves to another key
// or is billed to anyone else, and the provider, which serves every other
// key, is never declared down.
func TestOneSuppliersKeyFaultStaysWithIt(t *testing.T) {
	faults := []struct {
		name  string
		fault fakeopenai.Fault
		cause string
	}{
		{"server errors", fakeopenai.Status(500, 0), "failing"},
		{"used-up account", fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: 429, Type: "insufficient_quota",
			Code: "insufficient_quota", Message: "You exceeded your current quota, please check your plan and billing details."},
			"out_of_quota"},
		{"connection resets", fakeopenai.ConnReset(), "failing"},
		{"stalls past the attempt timeout", fakeopenai.Stall(3 * time.Second), "failing"},
		{"refusals", fakeopenai.Status(401, 0), "refused"},
	}
	for _, fc := range faults {
		t.Run(fc.name, func(t *testing.T) {
			badKey, roseKey, lilyKey := secret("sk-bakery-own-"), secret("sk-rose-own-"), secret("sk-lily-own-")
			tp := &tap{}
			h := start(t, setup{
				fake:   fakeopenai.Options{Keys: []string{badKey, roseKey, lilyKey}},
				env:    map[string]string{"BAD_KEY": badKey, "ROSE_KEY": roseKey, "LILY_KEY": lilyKey},
				tap:    tp.add,
				limits: "  breaker_failures: 3\n  breaker_cooldown: 1m\n  max_retries: 1\n  attempt_timeout: 300ms\n",
				extra: `suppliers:
  entries:
    - id: bad-bakery
      mode: client
      allow_platform_fallback: true
      keys:
        openai: env://BAD_KEY
    - id: rose-venue
      mode: hybrid
      keys:
        openai: env://ROSE_KEY
    - id: lily-florist
      mode: client
      keys:
        openai: env://LILY_KEY
    - id: pat-planner
      mode: platform
`})
			h.up.Script(fc.fault.ForKey(badKey).Repeat(-1))
			bystanders := map[string]string{"rose-venue": "client", "lily-florist": "client", "pat-planner": "platform"}
			// Open loop: the failing supplier at 50 calls a second, the
			// others at 20 each, whatever happens to earlier calls.
			rates := map[string]int{"bad-bakery": 50, "rose-venue": 20, "lily-florist": 20, "pat-planner": 20}
			const period = 2 * time.Second
			type result struct {
				supplier, source, failover, id string
				err                            error
			}
			results := make(chan result, 4*110)
			var wg sync.WaitGroup
			for sup, rate := range rates {
				c := h.clientFor(sup)
				n := rate * int(period/time.Second)
				for i := range n {
					wg.Go(func() {
						time.Sleep(time.Duration(i) * time.Second / time.Duration(rate))
						resp, err := c.CreateChatCompletion(ctxT(t), weddingChat)
						results <- result{supplier: sup, source: resp.Header().Get("X-Veil-Key-Source"),
							failover: resp.Header().Get("X-Veil-Failover"), id: resp.Header().Get("X-Request-Id"), err: err}
					})
				}
			}
			wg.Wait()
			close(results)
			calls := rates["bad-bakery"] * int(period/time.Second)
			for r := range results {
				if r.err != nil {
					t.Errorf("%s: a call failed: %v", r.supplier, r.err)
					continue
				}
				rec := tp.one(t, r.id)
				if want, ok := bystanders[r.supplier]; ok {
					if r.source != want || r.failover == "true" || string(rec.Billed) != want {
						t.Errorf("%s: served on %s (failover %q), billed %s; want its own %s key, untouched", r.supplier,
							r.source, r.failover, rec.Billed, want)
					}
					continue
				}
				if r.source != "platform" || rec.Billed != "platform" || rec.Reason != "platform_fallback" {
					t.Errorf("bad-bakery: served on %s, billed %s, reason %q; want the platform fallback", r.source, rec.Billed,
						rec.Reason)
				}
			}
			logs := h.logs.String()
			if strings.Contains(logs, "alert: provider is down") || strings.Contains(logs, `"breaker":"open"`) {
				t.Errorf("one supplier's key took the provider out:\n%s", grepLines(logs, "alert"))
			}
			alerts := grepLines(logs, "alert: supplier key is out")
			if fc.cause == "refused" {
				alerts = grepLines(logs, "alert: supplier key refused")
			}
			if strings.Count(alerts, "\n") != 0 || !strings.Contains(alerts, `"supplier":"bad-bakery"`) ||
				fc.cause != "refused" && !strings.Contains(alerts, fc.cause) {
				t.Errorf("want one supplier key alert for bad-bakery with cause %q:\n%s", fc.cause, grepLines(logs, "alert"))
			}
			// Once the key is held out, the failing supplier's calls go
			// straight to the fallback: the fake saw far fewer calls with
			// its key than the supplier made.
			withBad := 0
			for _, r := range h.up.Requests() {
				if strings.Contains(r.Header.Get("Authorization"), badKey) {
					withBad++
				}
			}
			if withBad >= calls {
				t.Errorf("the failing key was tried %d times for %d calls: it was never held out", withBad, calls)
			}
		})
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestOverloadIsShedNot502: when every connection to the provider is busy
// (here the one allowed, held by a stalled call), a call waits
// conn_wait and is answered 503 overloaded with Retry-After, naming the
// provider it could not reach and the attempt; it is counted, and the
// provider, which did nothing wrong, is not held against.
func TestOverloadIsShedNot502(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{
		tap: tp.add,
		providers: `
  - name: openai
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY
    max_conns: 1
    conn_wait: 50ms`,
		limits: "  breaker_failures: 1\n",
	})
	h.up.Script(fakeopenai.Stall(1500 * time.Millisecond))
	held := make(chan int, 1)
	go func() {
		resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
		_ = resp.Body.Close()
		held <- resp.StatusCode
	}()
	for i := 0; len(h.up.Requests()) == 0; i++ {
		if i > 500 {
			t.Fatal("the first call never reached the fake")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"code":"overloaded"`) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a call beyond capacity: %d %s (Retry-After %q), want 503 overloaded", resp.StatusCode, body,
			resp.Header.Get("Retry-After"))
	}
	if resp.Header.Get("X-Veil-Provider") != "openai" || resp.Header.Get("X-Veil-Attempts") != "1" ||
		resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("veil's error headers: provider %q attempts %q request id %q", resp.Header.Get("X-Veil-Provider"),
			resp.Header.Get("X-Veil-Attempts"), resp.Header.Get("X-Request-Id"))
	}
	if r := tp.one(t, resp.Header.Get("X-Request-Id")); r.Provider != "openai" || r.Error != "overloaded" || r.Status != 503 {
		t.Errorf("record provider %q error %q status %d", r.Provider, r.Error, r.Status)
	}
	if code := <-held; code != 200 {
		t.Errorf("the call holding the connection got %d", code)
	}
	if _, m := h.admin("/metrics", ""); !strings.Contains(m, `veil_overloaded_total{provider="openai",reason="upstream_pool"} 1`) {
		t.Errorf("the shed call is not counted:\n%s", grepLines(m, "overloaded"))
	}
	if strings.Contains(h.logs.String(), "alert: provider is down") {
		t.Error("a full connection pool took the provider out")
	}
}

// TestStalledSupplierKeepsToItsShare: a supplier whose calls stall can have
// no more than its cap of calls in flight to a provider; the call beyond is
// refused at once with 429 and Retry-After, while another supplier's calls
// to the same provider are served throughout.
func TestStalledSupplierKeepsToItsShare(t *testing.T) {
	stalled := secret("sk-stalled-own-")
	tp := &tap{}
	h := start(t, setup{
		fake:   fakeopenai.Options{Keys: []string{stalled}},
		env:    map[string]string{"STALLED_KEY": stalled},
		tap:    tp.add,
		limits: "  supplier_in_flight: 2\n",
		extra: `suppliers:
  entries:
    - id: slow-studio
      mode: client
      keys:
        openai: env://STALLED_KEY
`})
	h.up.Script(fakeopenai.Stall(1500 * time.Millisecond).ForKey(stalled).Repeat(2))
	done := make(chan int, 2)
	for range 2 {
		go func() {
			resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"X-Supplier-ID": "slow-studio"})
			_ = resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	for i := 0; len(h.up.Requests()) < 2; i++ {
		if i > 500 {
			t.Fatal("the stalled calls never reached the fake")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"X-Supplier-ID": "slow-studio"})
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 429 || !strings.Contains(string(body), "supplier_in_flight_limit") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the third stalled-supplier call: %d %s (Retry-After %q), want 429 supplier_in_flight_limit",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	for range 5 {
		if resp := h.do("POST", "/v1/chat/completions", chatBody, nil); resp.StatusCode != 200 {
			t.Errorf("another supplier got %d while one stalled", resp.StatusCode)
		} else {
			_ = resp.Body.Close()
		}
	}
	for range 2 {
		if code := <-done; code != 200 {
			t.Errorf("a stalled call ended with %d", code)
		}
	}
	// The slots are back: the supplier may call again.
	if resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"X-Supplier-ID": "slow-studio"}); resp.StatusCode != 200 {
		t.Errorf("after its calls finished the supplier got %d", resp.StatusCode)
	} else {
		_ = resp.Body.Close()
	}
}

// TestClientGoneWhileWaitingStopsTheTries: a client that hangs up while
// veil waits for a provider's answer headers costs no further upstream
// attempt: no retry, no other target; the record says client_gone.
func TestClientGoneWhileWaitingStopsTheTries(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{
		tap:    tp.add,
		limits: "  attempt_timeout: 600ms\n  max_retries: 2\n  retry_backoff: 10ms\n",
	})
	h.up.Script(fakeopenai.Stall(3 * time.Second).Repeat(-1))
	conn := rawChat(t, h, "gone-client-1", chatBody)
	time.Sleep(100 * time.Millisecond)
	_ = conn.Close() // the app gives up on its call
	r := tp.one(t, "gone-client-1")
	if n := len(h.up.Requests()); n != 1 {
		t.Errorf("%d upstream requests for a call whose client had left, want 1 (no retry)", n)
	}
	if !r.Partial || r.Error != "client_gone" || len(r.Attempts) != 1 {
		t.Errorf("record: partial %v error %q attempts %+v, want client_gone after one attempt", r.Partial, r.Error, r.Attempts)
	}
}

// TestClientGoneWhileAwaitingHeadersCutsTheCall: a client that hangs up
// while veil waits for a provider's response headers has the upstream
// call cut (the provider sees its connection closed, long before the
// attempt timeout), and no retry is made.
func TestClientGoneWhileAwaitingHeadersCutsTheCall(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{
		tap:    tp.add,
		limits: "  attempt_timeout: 60s\n  max_retries: 2\n",
	})
	h.up.Script(fakeopenai.Stall(0).Repeat(-1)) // no headers until the fake closes
	conn := rawChat(t, h, "gone-awaiting-1", chatBody)
	if err := h.up.WaitRequests(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close() // the app gives up on its call
	r := tp.one(t, "gone-awaiting-1")
	for i := 0; h.up.Stats().Abandoned == 0 && i < 2000; i++ {
		time.Sleep(5 * time.Millisecond) // the fake looks at its connections every 20ms
	}
	if st := h.up.Stats(); st.Abandoned != 1 || st.Requests != 1 {
		t.Errorf("upstream: %d requests, %d given up by veil; want the one call cut", st.Requests, st.Abandoned)
	}
	if r.Error != "client_gone" || r.Status != 499 || len(r.Attempts) != 1 {
		t.Errorf("record: status %d error %q attempts %+v, want 499 client_gone after one attempt", r.Status, r.Error, r.Attempts)
	}
}

// TestClientGoneWhileHeldStopsTheStream: a client that hangs up while veil
// holds its stream back for the first token (another target being
// planned) has the upstream cancelled at once and no other target asked.
func TestClientGoneWhileHeldStopsTheStream(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{
		fake: fakeopenai.Options{TTFT: 4 * time.Second},
		tap:  tp.add,
		providers: `
  - name: openai
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]
  - name: backup
    type: openaicompat
    base_url: {root}/v1
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]`,
		limits: "  ttft_timeout: 30s\n",
	})
	conn := rawChat(t, h, "gone-held-1", streamBody)
	for i := 0; len(h.up.Requests()) == 0; i++ {
		if i > 500 {
			t.Fatal("the stream never reached the fake")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = conn.Close()
	select {
	case <-h.up.Cancelled():
	case <-time.After(20 * time.Second): // a failure guard, not a timing assertion
		t.Fatal("the held upstream stream was never cancelled")
	}
	r := tp.one(t, "gone-held-1")
	if n := len(h.up.Requests()); n != 1 {
		t.Errorf("%d upstream requests, want 1: no other target for a client that left", n)
	}
	if r.Error != "client_gone" || len(r.Attempts) != 1 {
		t.Errorf("record: error %q attempts %+v, want client_gone after one attempt", r.Error, r.Attempts)
	}
}

// rawChat sends a chat call for the test supplier with request ID id on a
// connection of its own, which the caller closes to hang up.
func rawChat(t *testing.T, h *harness, id, body string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", h.app.ProxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: veil\r\nAuthorization: Bearer " + h.token +
		"\r\nX-Supplier-ID: " + testSupplier + "\r\nX-Request-ID: " + id + "\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	return conn
}
