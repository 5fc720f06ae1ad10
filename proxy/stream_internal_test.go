package proxy

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
)

type brokenClient struct{}

func (brokenClient) Write([]byte) (int, error) { return 0, errors.New("connection closed") }

// pumpWith runs the stream writer over an upstream body and a client writer,
// and returns once the pump has finished.
func pumpWith(t *testing.T, lim config.Limits, upstream io.Reader, client io.Writer) *metrics.Metrics {
	t.Helper()
	m := metrics.New()
	s := &Server{limits: lim, metrics: m, log: zap.NewNop(), health: health.NewRegistry(), rt: new(atomic.Pointer[Runtime])}
	x := s.acquire()
	p, err := provider.New(config.Provider{Name: "openai", Type: config.ProviderTypeOpenAI, BaseURL: "http://127.0.0.1:1/v1"},
		[]keys.Secret{keys.NewSecret("sk-test")}, provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	x.planBuf[0] = policy.Attempt{Provider: p}
	x.plan = x.planBuf[:1]
	x.served = &x.plan[0]
	x.stream.resp = fasthttp.AcquireResponse()
	x.stream.resp.SetBodyStream(upstream, -1)
	x.stream.streamed = true
	s.streams.Add(1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := bufio.NewWriter(client)
		x.pump(w)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // failure guard only
		t.Fatal("the stream writer never returned")
	}
	return m
}

// TestPumpNoticesGoneClientWhileUpstreamSilent: the upstream sends nothing
// at all, the client is gone; the keep-alive write notices and the upstream
// body is closed (its writer sees the pipe closed).
func TestPumpNoticesGoneClientWhileUpstreamSilent(t *testing.T) {
	pr, pw := io.Pipe()
	lim := config.Default().Limits
	lim.KeepAliveInterval = 10 * time.Millisecond
	m := pumpWith(t, lim, pr, brokenClient{})
	if _, err := pw.Write([]byte("data: {}\n\n")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("upstream write after cancel: %v, want closed pipe", err)
	}
	if got := m.InterruptedStreams(cutClientGone); got != 1 {
		t.Errorf("client_gone count %v", got)
	}
}

// TestPumpCopiesEventsVerbatim: events reach the client byte for byte, each
// flushed, comments from upstream are not forwarded.
func TestPumpCopiesEventsVerbatim(t *testing.T) {
	in := "data: {\"a\":1}\n\n: upstream comment\n\nevent: x\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n"
	var out strings.Builder
	pumpWith(t, config.Default().Limits, strings.NewReader(in), &out)
	want := "data: {\"a\":1}\n\nevent: x\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n"
	if out.String() != want {
		t.Errorf("client got %q, want %q", out.String(), want)
	}
}

// TestPumpTruncatedUpstream: a stream that ends mid-event gets an in-band
// error and no [DONE].
func TestPumpTruncatedUpstream(t *testing.T) {
	var out strings.Builder
	m := pumpWith(t, config.Default().Limits, strings.NewReader("data: {\"a\":1}\n\ndata: {\"partial"), &out)
	if !strings.Contains(out.String(), "upstream_stream_error") || strings.Contains(out.String(), "[DONE]") {
		t.Errorf("client got %q", out.String())
	}
	if got := m.InterruptedStreams(cutUpstreamError); got != 1 {
		t.Errorf("upstream_error count %v", got)
	}
}
