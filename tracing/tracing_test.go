package tracing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"

	"github.com/wedsync/veil/internal/otlptest"
	"github.com/wedsync/veil/tracing"
)

func options(endpoint string) tracing.Options {
	return tracing.Options{Endpoint: endpoint, SampleRatio: 1, ServiceName: "veil", ServiceVersion: "test",
		QueueSize: 64, BatchSize: 8, BatchTimeout: time.Hour, Timeout: 5 * time.Second,
		Headers: map[string]string{"Authorization": "Bearer collector-credential"}}
}

func shutdown(t *testing.T, tr *tracing.Tracing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestExportOnShutdown: spans are sent as OTLP/HTTP protobuf to the
// collector's /v1/traces with the configured headers and resource, in
// batches of at most BatchSize, and what is still queued at shutdown is
// flushed.
func TestExportOnShutdown(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // after the receiver closed
	rx := otlptest.New(t)
	tr, err := tracing.New(options(rx.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := tr.Tracer().Start(context.Background(), "chat gpt-4o-mini", trace.WithSpanKind(trace.SpanKindServer))
	for range 11 {
		_, child := tr.Tracer().Start(ctx, "attempt", trace.WithSpanKind(trace.SpanKindClient))
		child.End()
	}
	root.End()
	// A full batch of 8 goes at once; the other 4 wait for shutdown (the
	// batch timeout is an hour).
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rx.WaitSpans(wctx, 8); err != nil {
		t.Fatal(err)
	}
	shutdown(t, tr)
	spans := rx.Spans()
	if len(spans) != 12 {
		t.Fatalf("%d spans received, want 12", len(spans))
	}
	if p := rx.Problems(); len(p) > 0 {
		t.Errorf("the receiver saw: %v", p)
	}
	hs := rx.Headers()
	if len(hs) != 2 {
		t.Errorf("%d exports, want 2 (a full batch, then the flush)", len(hs))
	}
	for _, h := range hs {
		if h.Get("Authorization") != "Bearer collector-credential" {
			t.Errorf("export without the configured header: %v", h)
		}
	}
	rootID := root.SpanContext().SpanID().String()
	for _, s := range spans {
		if s.Service != "veil" || s.Resource["service.version"] != "test" || s.Scope != tracing.ScopeName {
			t.Errorf("span %q: service %q, resource %v, scope %q", s.Name, s.Service, s.Resource, s.Scope)
		}
		if s.TraceID != root.SpanContext().TraceID().String() {
			t.Errorf("span %q is in trace %s", s.Name, s.TraceID)
		}
		switch s.Name {
		case "attempt":
			if s.ParentID != rootID || s.Kind != tracepb.Span_SPAN_KIND_CLIENT {
				t.Errorf("attempt span: parent %s kind %v, want %s and client", s.ParentID, s.Kind, rootID)
			}
		case "chat gpt-4o-mini":
			if s.ParentID != "" || s.Kind != tracepb.Span_SPAN_KIND_SERVER {
				t.Errorf("root span: parent %q kind %v", s.ParentID, s.Kind)
			}
		default:
			t.Errorf("unexpected span %q", s.Name)
		}
	}
	if st := tr.Stats(); st.Exported != 12 || st.Dropped != 0 || st.Failed != 0 || st.Queued != 0 {
		t.Errorf("stats %+v, want 12 exported", st)
	}
	// Spans ended after shutdown go nowhere, and a second shutdown is
	// harmless.
	_, late := tr.Tracer().Start(context.Background(), "late")
	late.End()
	shutdown(t, tr)
	if st := tr.Stats(); st.Exported != 12 {
		t.Errorf("stats after a late span %+v", st)
	}
}

// TestFullQueueDrops: while the collector hangs, ending spans never waits:
// the queue fills, and every span past it is dropped and counted.
func TestFullQueueDrops(t *testing.T) {
	rx := otlptest.New(t)
	rx.Hold()
	o := options(rx.URL())
	o.QueueSize, o.BatchSize = 4, 1
	tr, err := tracing.New(o)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			_, s := tr.Tracer().Start(context.Background(), "span")
			s.End()
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ending spans waited for the hanging collector")
	}
	st := tr.Stats()
	// At most one export is in flight and QueueSize spans wait.
	if st.Dropped < n-1-uint64(o.QueueSize) || st.Dropped+uint64(st.Queued) > n {
		t.Errorf("stats %+v with a hanging collector, want at least %d dropped", st, n-1-o.QueueSize)
	}
	rx.Release()
	shutdown(t, tr)
	st = tr.Stats()
	if st.Exported+st.Dropped+st.Failed != n || st.Queued != 0 {
		t.Errorf("stats %+v after shutdown: every one of %d spans must be exported, dropped or failed", st, n)
	}
	if got := len(rx.Spans()); uint64(got) != st.Exported {
		t.Errorf("the collector has %d spans, stats say %d exported", got, st.Exported)
	}
}

// TestFailedExportsAreCounted: a collector that refuses exports costs the
// spans, counted as failed, and nothing else.
func TestFailedExportsAreCounted(t *testing.T) {
	rx := otlptest.New(t)
	rx.Fail(400) // not retried
	tr, err := tracing.New(options(rx.URL()))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, s := tr.Tracer().Start(context.Background(), "span")
		s.End()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Failed != 3 || st.Exported != 0 {
		t.Errorf("stats %+v, want 3 failed", st)
	}
	rx.Fail(0)
	_, s := tr.Tracer().Start(context.Background(), "span")
	s.End()
	shutdown(t, tr)
	if st := tr.Stats(); st.Failed != 3 || st.Exported != 1 {
		t.Errorf("stats %+v, want the later span exported", st)
	}
}

// TestSampling: a ratio of 0 records none of the traces veil starts, but
// follows an app's sampled flag; every span still has a valid context to
// propagate.
func TestSampling(t *testing.T) {
	rx := otlptest.New(t)
	o := options(rx.URL())
	o.SampleRatio = 0
	tr, err := tracing.New(o)
	if err != nil {
		t.Fatal(err)
	}
	_, own := tr.Tracer().Start(context.Background(), "own")
	own.End()
	if !own.SpanContext().IsValid() || own.SpanContext().IsSampled() || own.IsRecording() {
		t.Errorf("a trace veil starts at ratio 0: %+v, recording %v", own.SpanContext(), own.IsRecording())
	}
	sampled := tracing.Extract(context.Background(), []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), nil)
	_, app := tr.Tracer().Start(sampled, "app")
	app.End()
	unsampled := tracing.Extract(context.Background(), []byte("00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-00"), nil)
	_, off := tr.Tracer().Start(unsampled, "app-unsampled")
	off.End()
	shutdown(t, tr)
	spans := rx.Spans()
	if len(spans) != 1 || spans[0].Name != "app" || spans[0].ParentID != "00f067aa0ba902b7" {
		t.Errorf("spans %+v, want the app-sampled one alone", spans)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, edit := range map[string]func(*tracing.Options){
		"queue":    func(o *tracing.Options) { o.QueueSize = 0 },
		"batch":    func(o *tracing.Options) { o.BatchSize = 100 },
		"timeout":  func(o *tracing.Options) { o.Timeout = 0 },
		"ratio":    func(o *tracing.Options) { o.SampleRatio = 2 },
		"endpoint": func(o *tracing.Options) { o.Endpoint = "collector:4318" },
		"userinfo": func(o *tracing.Options) { o.Endpoint = "http://u:secretpw@collector:4318" },
	} {
		t.Run(name, func(t *testing.T) {
			o := options("http://collector:4318")
			edit(&o)
			tr, err := tracing.New(o)
			if err == nil {
				shutdown(t, tr)
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Errorf("the error repeats the password: %v", err)
			}
		})
	}
}

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://collector:4318":              "http://collector:4318/v1/traces",
		"http://collector:4318/":             "http://collector:4318/v1/traces",
		"https://otel.example/v1/traces":     "https://otel.example/v1/traces",
		"https://gw.example/tenant/a/traces": "https://gw.example/tenant/a/traces",
	} {
		if got, err := tracing.TracesURL(in); err != nil || got != want {
			t.Errorf("TracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
