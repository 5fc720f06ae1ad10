package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wedsync/veil/internal/fakeopenai"
)

const streamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Write a long wedding speech."}]}`

// openStream sends a streaming chat request over a raw connection and
// returns a reader positioned at the start of the SSE body.
func (h *harness) openStream(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", h.app.ProxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	req, _ := http.NewRequest("POST", "http://"+h.app.ProxyAddr()+"/v1/chat/completions", strings.NewReader(streamBody))
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("X-Supplier-ID", testSupplier)
	req.Header.Set("Content-Type", "application/json")
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return conn, bufio.NewReader(resp.Body)
}

// nextData reads SSE lines until a data line and returns its payload,
// skipping comments and blank lines.
// leakOptions are goleak's options for goroutines started from now on.
// fasthttp's housekeeping (idle server workers, with nothing on top of
// them, serve no one; pool and dialer cleaners; the server date ticker)
// starts lazily and outlives a request by design.
func leakOptions() []goleak.Option {
	return []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("github.com/valyala/fasthttp.(*workerPool).workerFunc"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1")}
}

func nextData(t *testing.T, r *bufio.Reader) (string, error) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "data:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "data:")), nil
		}
	}
}

// TestStreamFlushesEachEvent: the first event reaches the client while the
// upstream is still in the middle of its stream (stalled after one chunk),
// so veil cannot be buffering the stream.
func TestStreamFlushesEachEvent(t *testing.T) {
	h := start(t, setup{})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStallStream, After: 1, Stall: time.Minute})
	_, r := h.openStream(t)
	first, err := nextData(t, r)
	if err != nil {
		t.Fatalf("first event: %v", err)
	}
	if !strings.Contains(first, `"chat.completion.chunk"`) {
		t.Errorf("first event %q", first)
	}
	if st := h.up.Stats(); st.InFlight == 0 {
		t.Error("the upstream had already finished when the first event arrived")
	}
}

// TestClientGoneCancelsUpstream: a client that disconnects while the
// upstream is silent is noticed by veil's keep-alive writes; veil closes the
// upstream request, which the provider sees as soon as it writes again.
// (proxy's TestPumpNoticesGoneClientWhileUpstreamSilent shows the silent
// part without any provider at all.)
func TestClientGoneCancelsUpstream(t *testing.T) {
	h := start(t, setup{})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStallStream, After: 2, Stall: 2 * time.Second})
	// Every goroutine the stream starts, in veil and in the fake provider,
	// must be gone once the client is.
	defer goleak.VerifyNone(t, leakOptions()...)
	conn, r := h.openStream(t)
	if _, err := nextData(t, r); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	select {
	case <-h.up.Cancelled():
	case <-time.After(20 * time.Second): // a failure guard, not a timing assertion
		t.Fatal("the upstream never saw its request cancelled")
	}
	waitFor(t, func() bool { return strings.Contains(h.logs.String(), `"interrupted":"client_gone"`) })
}

// TestStreamIdleTimeout: an upstream that goes silent mid-stream ends the
// client's stream with an in-band error event and no [DONE].
func TestStreamIdleTimeout(t *testing.T) {
	h := start(t, setup{limits: "  stream_idle_timeout: 300ms\n"})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStallStream, After: 1, Stall: time.Minute})
	_, r := h.openStream(t)
	var events []string
	for {
		d, err := nextData(t, r)
		if err != nil {
			break
		}
		events = append(events, d)
	}
	if len(events) < 2 {
		t.Fatalf("events %q", events)
	}
	last := events[len(events)-1]
	if !strings.Contains(last, `"error"`) || !strings.Contains(last, "upstream_idle_timeout") {
		t.Errorf("last event %q, want an in-band idle timeout error", last)
	}
	for _, e := range events {
		if e == "[DONE]" {
			t.Error("a cut stream must not end with [DONE]")
		}
	}
}

// TestStreamCutByUpstream: an upstream that drops the connection mid-stream
// gives the client an in-band error and no [DONE].
func TestStreamCutByUpstream(t *testing.T) {
	h := start(t, setup{})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindCut, After: 2})
	_, r := h.openStream(t)
	body, _ := io.ReadAll(r)
	if bytes.Contains(body, []byte("[DONE]")) {
		t.Error("a cut stream must not end with [DONE]")
	}
	if !bytes.Contains(body, []byte("upstream_stream_error")) {
		t.Errorf("no in-band error in %q", body)
	}
}

// TestStreamErrorEventPassesThrough: an error event the provider sends
// mid-stream reaches the client as sent.
func TestStreamErrorEventPassesThrough(t *testing.T) {
	h := start(t, setup{})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindErrorEvent, After: 1})
	_, r := h.openStream(t)
	body, _ := io.ReadAll(r)
	if !bytes.Contains(body, []byte(`{"error":`)) || bytes.Contains(body, []byte("[DONE]")) {
		t.Errorf("body %q", body)
	}
}

// waitFor polls cond until it holds; it fails only after a generous guard.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
