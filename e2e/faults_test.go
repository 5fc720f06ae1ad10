package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/fakeopenai"
)

// One test per failover fault case. Each asserts what the client saw
// (status, X-Veil-* headers, body) and what the fake provider saw (how many
// requests, with which bodies).

// startWithPrimary starts veil with the two providers of twoProviders,
// except that the primary gets a fake of its own, so that faults scripted
// on it never reach the secondary (h.up) and each side's requests can be
// counted apart.
func startWithPrimary(t *testing.T, s setup) (*harness, *fakeopenai.Server) {
	t.Helper()
	primary := fakeopenai.New(fakeopenai.Options{})
	if err := primary.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("primary fake: %v", err)
	}
	// Registered before start's cleanups, so it runs after veil stopped.
	t.Cleanup(func() { _ = primary.Close() })
	s.providers = `
  - name: primary
    type: openai
    base_url: ` + primary.URL() + `
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]
  - name: secondary
    type: openai
    base_url: %[1]s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]`
	h := start(t, s)
	primary.SetKeys(h.platformKey)
	return h, primary
}

// served is what the client saw of one call.
type served struct {
	status                       int
	provider, attempts, failover string
	body                         []byte
	header                       http.Header
}

func (s served) String() string {
	return fmt.Sprintf("status %d provider %q attempts %q failover %q", s.status, s.provider, s.attempts, s.failover)
}

// chat sends body to veil's chat completions and reads the whole answer.
func (h *harness) chat(body string) served {
	h.t.Helper()
	resp := h.do("POST", "/v1/chat/completions", body, nil)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("read answer: %v", err)
	}
	return served{status: resp.StatusCode, provider: resp.Header.Get("X-Veil-Provider"),
		attempts: resp.Header.Get("X-Veil-Attempts"), failover: resp.Header.Get("X-Veil-Failover"),
		body: b, header: resp.Header}
}

// isCompletion reports whether b is a chat completion with an answer.
func isCompletion(b []byte) bool {
	var c struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	return json.Unmarshal(b, &c) == nil && c.Object == "chat.completion" && len(c.Choices) > 0 && c.Choices[0].Message.Content != ""
}

// bodies returns the bodies of the requests up received, in order.
func bodies(up *fakeopenai.Server) [][]byte {
	var out [][]byte
	for _, r := range up.Requests() {
		out = append(out, r.Body)
	}
	return out
}

// TestFault429Persistent: a provider answering 429 to every call. Alone,
// it is tried 1+max_retries times, each retry after its Retry-After, and
// its last 429 reaches the client as it sent it; with a secondary planned,
// the secondary serves at once.
func TestFault429Persistent(t *testing.T) {
	const retryAfter = 300 * time.Millisecond // retry-after-ms: 300, Retry-After: 1
	for _, maxRetries := range []int{0, 1, 2} {
		t.Run(fmt.Sprintf("alone, max_retries %d", maxRetries), func(t *testing.T) {
			h := start(t, setup{limits: fmt.Sprintf("  max_retries: %d\n", maxRetries)})
			h.up.Script(fakeopenai.RateLimit(retryAfter).Repeat(-1))
			began := time.Now()
			got := h.chat(chatBody)
			took := time.Since(began)
			want := 1 + maxRetries
			if got.status != 429 || got.provider != "openai" || got.attempts != itoa(want) || got.failover != "" {
				t.Errorf("%v, want 429 from openai after %d attempts, no failover", got, want)
			}
			if ra, ms := got.header.Get("Retry-After"), got.header.Get("Retry-After-Ms"); ra != "1" || ms != "300" {
				t.Errorf("Retry-After %q, retry-after-ms %q: the provider's were 1 and 300", ra, ms)
			}
			var e envelope
			if err := json.Unmarshal(got.body, &e); err != nil || e.Error.Code == nil || *e.Error.Code != "rate_limit_exceeded" ||
				e.Error.Type != "requests" || !strings.Contains(e.Error.Message, "Rate limit reached") {
				t.Errorf("not the provider's 429 envelope: %s", got.body)
			}
			if took < time.Duration(maxRetries)*retryAfter {
				t.Errorf("%d retries took %v, less than their Retry-After waits", maxRetries, took)
			}
			bs := bodies(h.up)
			if len(bs) != want {
				t.Fatalf("the provider got %d requests, want %d", len(bs), want)
			}
			for i, b := range bs {
				if string(b) != chatBody {
					t.Errorf("request %d carried %q", i, b)
				}
			}
		})
	}

	t.Run("secondary planned", func(t *testing.T) {
		h, primary := startWithPrimary(t, setup{})
		primary.Script(fakeopenai.RateLimit(retryAfter).Repeat(-1))
		got := h.chat(chatBody)
		if got.status != 200 || got.provider != "secondary" || got.attempts != "2" || got.failover != "true" || !isCompletion(got.body) {
			t.Errorf("%v, want a completion from the secondary after 2 attempts: %s", got, got.body)
		}
		if ra := got.header.Get("Retry-After"); ra != "" {
			t.Errorf("the primary's Retry-After %q leaked into the secondary's answer", ra)
		}
		if p, s := len(primary.Requests()), len(h.up.Requests()); p != 1 || s != 1 {
			t.Errorf("primary got %d requests and secondary %d, want 1 each", p, s)
		}
	})
}

// TestFault500Once: the only provider fails once with a 500; veil tries it
// again after a backoff and the client gets the second answer.
func TestFault500Once(t *testing.T) {
	h := start(t, setup{})
	h.up.Script(fakeopenai.Status(500, 1))
	got := h.chat(chatBody)
	if got.status != 200 || got.provider != "openai" || got.attempts != "2" || got.failover != "" || !isCompletion(got.body) {
		t.Errorf("%v, want a completion after 2 attempts: %s", got, got.body)
	}
	rs := h.up.Requests()
	if len(rs) != 2 {
		t.Fatalf("the provider got %d requests, want 2", len(rs))
	}
	for i, r := range rs {
		if string(r.Body) != chatBody {
			t.Errorf("request %d carried %q", i, r.Body)
		}
	}
	// Full jitter may pick a backoff of zero, so only the order is certain.
	t.Logf("retried %v after the 500", rs[1].At.Sub(rs[0].At))
}

// TestFault503PersistentFallsBack: a primary answering 503 to every call;
// the secondary serves each one. While the primary's breaker is closed
// each call tries the primary first (X-Veil-Failover: true); once it
// opens, the plan leaves the primary out, so the secondary is the first
// planned target and serves in one attempt.
func TestFault503PersistentFallsBack(t *testing.T) {
	const calls = 10
	cases := []struct {
		name     string
		limits   string
		failures int // breaker_failures: calls that still try the primary
	}{
		{"breaker never opens", "  breaker_failures: 1000\n", 1000},
		{"breaker opens", "  breaker_failures: 4\n  breaker_cooldown: 1h\n", 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, primary := startWithPrimary(t, setup{limits: tc.limits})
			primary.Script(fakeopenai.Status(503, -1))
			for i := range calls {
				got := h.chat(chatBody)
				if got.status != 200 || got.provider != "secondary" || !isCompletion(got.body) {
					t.Fatalf("call %d: %v, want a completion from the secondary: %s", i, got, got.body)
				}
				if i < tc.failures {
					if got.attempts != "2" || got.failover != "true" {
						t.Errorf("call %d: %v, want the primary tried first and X-Veil-Failover: true", i, got)
					}
				} else if got.attempts != "1" || got.failover != "" {
					t.Errorf("call %d, breaker open: %v, want the secondary as the first planned target", i, got)
				}
			}
			wantPrimary := min(calls, tc.failures)
			ps := bodies(primary)
			if len(ps) != wantPrimary {
				t.Errorf("the primary got %d requests, want %d", len(ps), wantPrimary)
			}
			ss := bodies(h.up)
			if len(ss) != calls {
				t.Errorf("the secondary got %d requests, want %d", len(ss), calls)
			}
			for i, b := range append(ps, ss...) {
				if string(b) != chatBody {
					t.Errorf("request %d carried %q", i, b)
				}
			}
		})
	}
}

// oddBody is a valid chat request whose bytes a re-encoding would change:
// spaces around colons, tabs, CRLF, escaped and raw non-ASCII, an escaped
// U+2028, an exponent and trailing blank lines.
const oddBody = "{ \"model\" :\t\"gpt-4o-mini\" ,\r\n  \"messages\" : [ {\"role\":\"user\",\n\t\"content\":" +
	"\"Caf\\u00e9 f\u00f6r tv\u00e5 \u2014 \u5a5a\u793c \U0001F48D \\\"first dance\\\" \\u2028 tab:\\t end  \"} ]\n" +
	" ,\"temperature\" : 7E-1 }\r\n\r\n"

// TestFaultResetBeforeHeaders: a provider that resets the connection before
// any response header. The next attempt (the next planned provider, or the
// only one tried again) gets the request body byte for byte.
func TestFaultResetBeforeHeaders(t *testing.T) {
	if !json.Valid([]byte(oddBody)) {
		t.Fatal("oddBody is not valid JSON")
	}
	cases := []struct {
		name               string
		providers          string
		provider, failover string
	}{
		{"next planned provider", twoProviders, "secondary", "true"},
		{"only provider tried again", "", "openai", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, setup{providers: tc.providers})
			h.up.Script(fakeopenai.ConnReset())
			got := h.chat(oddBody)
			if got.status != 200 || got.provider != tc.provider || got.attempts != "2" || got.failover != tc.failover || !isCompletion(got.body) {
				t.Errorf("%v, want a completion from %s after 2 attempts, failover %q: %s", got, tc.provider, tc.failover, got.body)
			}
			if st := h.up.Stats(); st.Faults != 1 {
				t.Errorf("%d faults applied, want the one reset", st.Faults)
			}
			bs := bodies(h.up)
			if len(bs) != 2 {
				t.Fatalf("the fake got %d requests, want the reset one and the retry", len(bs))
			}
			for i, b := range bs {
				if !bytes.Equal(b, []byte(oddBody)) {
					t.Errorf("request %d body differs from the client's:\n got %q\nwant %q", i, b, oddBody)
				}
			}
		})
	}
}

// TestFaultContextLengthExceeded: a 400 context_length_exceeded is the
// request's fault, not the provider's: it reaches the client byte for byte
// after exactly one upstream attempt, although a secondary is planned.
func TestFaultContextLengthExceeded(t *testing.T) {
	fault := fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: 400, Code: "context_length_exceeded",
		Message: "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens. " +
			"Please reduce the length of the messages."}
	h := start(t, setup{providers: twoProviders})
	for _, tc := range []struct{ name, body string }{{"chat", chatBody}, {"stream", streamBody}} {
		t.Run(tc.name, func(t *testing.T) {
			// What the provider answers when asked directly.
			h.up.Script(fault)
			req, _ := http.NewRequest("POST", h.up.URL()+"/chat/completions", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+h.platformKey)
			req.Header.Set("Content-Type", "application/json")
			direct, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := io.ReadAll(direct.Body)
			_ = direct.Body.Close()
			if direct.StatusCode != 400 || !bytes.Contains(want, []byte(`"code":"context_length_exceeded"`)) {
				t.Fatalf("the fake answered %d %s", direct.StatusCode, want)
			}

			before := h.up.Stats().Requests
			h.up.Script(fault)
			got := h.chat(tc.body)
			if got.status != 400 || got.provider != "primary" || got.attempts != "1" || got.failover != "" {
				t.Errorf("%v, want the primary's 400 after one attempt", got)
			}
			if !bytes.Equal(got.body, want) {
				t.Errorf("body changed on the way:\n got %s\nwant %s", got.body, want)
			}
			if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type %q", ct)
			}
			if n := h.up.Stats().Requests - before; n != 1 {
				t.Errorf("%d upstream requests, want exactly 1", n)
			}
		})
	}
}

// TestFaultFlappingPrimary: a primary that fails in runs of 503s and
// recovers in between. Each run opens its breaker, so the secondary serves
// while the primary is out, with only the half-open probes reaching the
// primary; each recovery closes it, and the primary serves again. No client
// ever sees an error.
func TestFaultFlappingPrimary(t *testing.T) {
	const failures, cooldown = 2, 300 * time.Millisecond
	h, primary := startWithPrimary(t, setup{
		limits: fmt.Sprintf("  breaker_failures: %d\n  breaker_cooldown: %s\n", failures, cooldown)})
	calls, clientErrors := 0, 0
	// call sends one request and checks that the attempts the client was
	// told about are the requests the two fakes saw.
	call := func() served {
		t.Helper()
		p0, s0 := primary.Stats().Requests, h.up.Stats().Requests
		got := h.chat(chatBody)
		p, s := primary.Stats().Requests-p0, h.up.Stats().Requests-s0
		calls++
		if got.status != 200 || !isCompletion(got.body) {
			clientErrors++
			t.Errorf("call %d: %v: %s", calls, got, got.body)
		}
		if got.attempts != itoa(int(p+s)) {
			t.Errorf("call %d: %v, but the primary got %d requests and the secondary %d", calls, got, p, s)
		}
		switch got.provider {
		case "primary":
			if p != 1 || s != 0 || got.failover != "" {
				t.Errorf("call %d served by the primary: %v, primary %d, secondary %d requests", calls, got, p, s)
			}
		case "secondary":
			if s != 1 || (p == 1) != (got.failover == "true") {
				t.Errorf("call %d served by the secondary: %v, primary %d requests", calls, got, p)
			}
		default:
			t.Errorf("call %d: served by %q", calls, got.provider)
		}
		return got
	}
	breaker := func() string {
		_, body := h.admin("/admin/status", h.adminToken)
		var st struct {
			Health []health.Snapshot `json:"health"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("status: %v: %s", err, body)
		}
		for _, s := range st.Health {
			if s.Target == "primary" {
				return s.Breaker
			}
		}
		t.Fatalf("no primary in %s", body)
		return ""
	}

	if got := call(); got.provider != "primary" || got.attempts != "1" {
		t.Fatalf("healthy primary: %v", got)
	}
	for run := 1; run <= 2; run++ {
		primary.Script(fakeopenai.Status(503, -1))
		// The failures that open the breaker: each call fails over.
		for i := range failures {
			if got := call(); got.provider != "secondary" || got.attempts != "2" || got.failover != "true" {
				t.Errorf("run %d, failure %d: %v, want failover to the secondary", run, i+1, got)
			}
		}
		if st := breaker(); st != health.Open {
			t.Errorf("run %d: breaker %q after %d failures, want open", run, st, failures)
		}
		// While it stays down, only half-open probes reach the primary, at
		// most one per cooldown; each fails and the secondary answers.
		openedAt, p0 := time.Now(), primary.Stats().Requests
		probes := 0
		waitFor(t, func() bool {
			if got := call(); got.attempts == "2" {
				probes++
			}
			return probes >= 2
		})
		elapsed := time.Since(openedAt)
		if n := primary.Stats().Requests - p0; n != int64(probes) {
			t.Errorf("run %d: the primary got %d requests while out, for %d probes", run, n, probes)
		}
		if limit := int(elapsed/cooldown) + 1; probes > limit {
			t.Errorf("run %d: %d probes in %v, more than one per %v cooldown", run, probes, elapsed, cooldown)
		}
		// Recovery: the next probe succeeds and the primary serves again.
		primary.Reset()
		waitFor(t, func() bool { return call().provider == "primary" })
		if st := breaker(); st != health.Closed {
			t.Errorf("run %d: breaker %q after the primary recovered, want closed", run, st)
		}
		for range 3 {
			if got := call(); got.provider != "primary" || got.attempts != "1" || got.failover != "" {
				t.Errorf("run %d, recovered: %v, want the primary in one attempt", run, got)
			}
		}
	}
	if clientErrors != 0 {
		t.Errorf("%d of %d calls failed for the client", clientErrors, calls)
	}
	t.Logf("%d calls, no client errors", calls)
}

// TestFaultConstantFailureBounded: requests arriving at a steady rate at a
// provider that fails every call. Each client gets the provider's 503, and
// the retries stay within the provider's retry budget, so the upstream sees
// at most requests*(1+ratio)+floor attempts (one floor per budget window
// the run spans). TestRetryBudget sends its requests back to back; here
// they arrive on a clock, overlapping as real traffic does.
func TestFaultConstantFailureBounded(t *testing.T) {
	const n, every = 200, 10 * time.Millisecond
	// The budget veil gives every provider, read from the constructor veil
	// uses rather than copied.
	budget := health.NewRegistry("openai").Budget("openai")
	ratio, floor, window := budget.Ratio, budget.Floor, budget.Window

	h := start(t, setup{limits: "  retry_backoff: 1ms\n  breaker_failures: 1000\n"})
	h.up.Script(fakeopenai.Status(503, -1))
	// What the provider's 503 looks like.
	req, _ := http.NewRequest("POST", h.up.URL()+"/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Authorization", "Bearer "+h.platformKey)
	direct, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	want503, _ := io.ReadAll(direct.Body)
	_ = direct.Body.Close()
	before := h.up.Stats().Requests

	type result struct {
		served
		err error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	tick := time.NewTicker(every)
	defer tick.Stop()
	began := time.Now()
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", "http://"+h.app.ProxyAddr()+"/v1/chat/completions", strings.NewReader(chatBody))
			req.Header.Set("Authorization", "Bearer "+h.token)
			req.Header.Set("X-Supplier-ID", testSupplier)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			results[i] = result{served: served{status: resp.StatusCode, provider: resp.Header.Get("X-Veil-Provider"),
				attempts: resp.Header.Get("X-Veil-Attempts"), failover: resp.Header.Get("X-Veil-Failover"), body: b}, err: err}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)

	told := 0 // attempts the clients were told about
	for i, r := range results {
		if r.err != nil {
			t.Errorf("request %d: %v", i, r.err)
			continue
		}
		if r.status != 503 || r.provider != "openai" || !bytes.Equal(r.body, want503) {
			t.Errorf("request %d: %v %s, want the provider's 503 %s", i, r.served, r.body, want503)
		}
		var a int
		if _, err := fmt.Sscan(r.attempts, &a); err != nil || a < 1 || a > 3 {
			t.Errorf("request %d: X-Veil-Attempts %q, want 1 to 1+max_retries (3)", i, r.attempts)
		}
		told += a
	}
	attempts := int(h.up.Stats().Requests - before)
	if told != attempts {
		t.Errorf("the clients were told of %d attempts, the provider got %d", told, attempts)
	}
	// Each budget window the run touched allows ceil(ratio*its requests +
	// floor) retries; on a normal machine the run fits in one window.
	windows := int(elapsed/window) + 1
	limit := n + int(math.Ceil(ratio*n)) + floor*windows + (windows - 1)
	t.Logf("%d requests over %v made %d upstream attempts (budget ratio %.2f, floor %d, window %v: limit %d)",
		n, elapsed.Round(time.Millisecond), attempts, ratio, floor, window, limit)
	if attempts > limit {
		t.Errorf("%d attempts for %d requests, more than the retry budget allows (%d)", attempts, n, limit)
	}
	if attempts < n+floor {
		t.Errorf("%d attempts for %d requests: the budget's floor of %d retries was not used", attempts, n, floor)
	}
}

// openStreamWith is openStream for a body of the caller's choosing; it also
// returns the response, for its headers.
func (h *harness) openStreamWith(t *testing.T, body string) (net.Conn, *http.Response, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", h.app.ProxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	req, _ := http.NewRequest("POST", "http://"+h.app.ProxyAddr()+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("X-Supplier-ID", testSupplier)
	req.Header.Set("Content-Type", "application/json")
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return conn, resp, bufio.NewReader(resp.Body)
}

// TestFaultClientDisconnectNoLeak: a client that leaves while the provider
// is still streaming, on the failover paths: a stream veil held until its
// first token because a secondary was planned, and a stream the secondary
// serves after the primary failed before its first token. The provider
// sees its stream cancelled, and no goroutine is left behind.
// TestClientGoneCancelsUpstream covers a single provider gone silent, where
// a keep-alive write notices the client; here the provider keeps writing,
// and veil's relay of its next event notices.
func TestFaultClientDisconnectNoLeak(t *testing.T) {
	cases := []struct {
		name               string
		fault              *fakeopenai.Fault
		provider, failover string
		streams            int64
	}{
		{"held stream, first provider", nil, "primary", "", 1},
		{"after failover", &fakeopenai.Fault{Kind: fakeopenai.KindErrorEvent, After: 0}, "secondary", "true", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A long answer, streamed steadily: the provider is writing when
			// the client leaves.
			h := start(t, setup{providers: twoProviders,
				fake: fakeopenai.Options{ReplyWords: 5000, ChunkDelay: 2 * time.Millisecond}})
			if tc.fault != nil {
				h.up.Script(*tc.fault)
			}
			leakOpts := leakOptions()

			conn, resp, r := h.openStreamWith(t, streamBody)
			if p, f := resp.Header.Get("X-Veil-Provider"), resp.Header.Get("X-Veil-Failover"); p != tc.provider || f != tc.failover {
				t.Errorf("provider %q failover %q, want %q and %q", p, f, tc.provider, tc.failover)
			}
			first, err := nextData(t, r)
			if err != nil || !strings.Contains(first, `"chat.completion.chunk"`) {
				t.Fatalf("first event %q: %v", first, err)
			}
			// Only the stream the client reads is left in the provider; any
			// earlier one (the failed primary's) has been counted.
			waitFor(t, func() bool { return h.up.Stats().InFlight == 1 })
			for len(h.up.Cancelled()) > 0 {
				<-h.up.Cancelled()
			}
			cancelled := h.up.Stats().StreamsCancelled
			if st := h.up.Stats(); st.Streams != tc.streams {
				t.Errorf("the provider started %d streams, want %d", st.Streams, tc.streams)
			}

			_ = conn.Close()
			select {
			case <-h.up.Cancelled():
			case <-time.After(20 * time.Second): // a failure guard, not a timing assertion
				t.Fatal("the provider never saw its stream cancelled")
			}
			if n := h.up.Stats().StreamsCancelled - cancelled; n != 1 {
				t.Errorf("%d streams cancelled, want the client's one", n)
			}
			waitFor(t, func() bool { return h.up.Stats().InFlight == 0 })
			waitFor(t, func() bool { return strings.Contains(h.logs.String(), `"interrupted":"client_gone"`) })
			if st := h.up.Stats(); st.Requests != tc.streams {
				t.Errorf("the provider got %d requests, want %d", st.Requests, tc.streams)
			}

			// Settle: goroutines may take a moment to return on a busy
			// machine, so look again until none is left or a generous guard.
			var leak error
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if leak = goleak.Find(leakOpts...); leak == nil || time.Now().After(deadline) {
					break
				}
			}
			if leak != nil {
				t.Error(leak)
			}
		})
	}
}
