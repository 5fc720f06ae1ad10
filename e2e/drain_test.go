package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// shutdownIn starts veil's drain with the given timeout; its result
// arrives on the channel.
func (h *harness) shutdownIn(timeout time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done <- h.app.Shutdown(ctx)
	}()
	return done
}

// lastData reads a stream to its end and returns its last data line.
func lastData(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var last string
	for {
		d, err := nextData(t, r)
		if err != nil {
			return last
		}
		last = d
	}
}

// openStreamAfter opens a stream and reads its first n data lines.
func (h *harness) openStreamAfter(t *testing.T, n int) *bufio.Reader {
	t.Helper()
	_, r := h.openStream(t)
	for range n {
		if _, err := nextData(t, r); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// TestDrainFlipsReadiness: once shutdown starts, /readyz fails at once
// while an in-flight stream is still allowed to finish with [DONE].
func TestDrainFlipsReadiness(t *testing.T) {
	h := start(t, setup{})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStallStream, After: 1, Stall: 3 * time.Second})
	r := h.openStreamAfter(t, 1)
	done := h.shutdownIn(20 * time.Second)
	waitFor(t, func() bool { code, _ := h.admin("/readyz", ""); return code == 503 })
	if last := lastData(t, r); last != "[DONE]" {
		t.Errorf("the in-flight stream ended with %q, want [DONE]", last)
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestDrainEndsStreamsInBand: a stream still open when the drain timeout
// passes ends with an in-band error event (no [DONE], so SDKs raise an
// error rather than take a cut answer as whole), its usage record is
// flushed marked partial, shutdown succeeds, and nothing the stream started
// outlives veil and the provider.
func TestDrainEndsStreamsInBand(t *testing.T) {
	recs := &tap{}
	h := start(t, setup{tap: recs.add})
	leaks := leakOptions()
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStallStream, After: 2}) // stalls until the fake closes
	r := h.openStreamAfter(t, 2)
	done := h.shutdownIn(300 * time.Millisecond)
	last := lastData(t, r)
	var e envelope
	if err := json.Unmarshal([]byte(last), &e); err != nil || e.Error.Code == nil || *e.Error.Code != "server_shutting_down" {
		t.Errorf("the stream ended with %q, want veil's in-band shutdown error", last)
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	rs := recs.wait(t, 1)
	if !rs[0].Partial || !rs[0].Stream || rs[0].Status != 200 {
		t.Errorf("usage record %+v, want a partial stream", rs[0])
	}
	if n := h.app.Metrics().InterruptedStreams("shutdown"); n != 1 {
		t.Errorf("veil_streams_interrupted_total{reason=\"shutdown\"} = %v, want 1", n)
	}
	_ = h.up.Close()
	goleak.VerifyNone(t, leaks...)
}
