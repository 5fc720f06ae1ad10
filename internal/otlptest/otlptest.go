// Package otlptest is an OTLP/HTTP trace receiver for tests: it decodes
// the protobuf export requests a collector would, and keeps their spans,
// raw bodies and headers for assertions.
package otlptest

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, its IDs in hex and its attributes decoded
// to Go values: string, int64, float64, bool or []string.
type Span struct {
	Service                   string
	Scope                     string
	TraceID, SpanID, ParentID string
	TraceState                string
	Name                      string
	Kind                      tracepb.Span_SpanKind
	Start, End                time.Time
	Attrs                     map[string]any
	StatusCode                tracepb.Status_StatusCode
	StatusMessage             string
	Resource                  map[string]any
	droppedAttrs              int
}

// Receiver is a running OTLP/HTTP trace receiver.
type Receiver struct {
	srv *httptest.Server
	// status, when not 0, is answered instead of accepting an export.
	status atomic.Int32
	// hold, while set, makes exports wait until it is closed.
	hold atomic.Pointer[chan struct{}]

	mu       sync.Mutex
	spans    []Span
	bodies   []byte
	headers  []http.Header
	problems []string
	changed  chan struct{}
}

// New starts a receiver, closed when the test ends.
func New(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.Release()
		r.srv.Close()
	})
	return r
}

// URL is the receiver's base URL, as a collector endpoint is configured.
func (r *Receiver) URL() string { return r.srv.URL }

// Fail makes exports answer status (0: accept them again).
func (r *Receiver) Fail(status int) { r.status.Store(int32(status)) }

// Hold makes exports wait until Release.
func (r *Receiver) Hold() {
	ch := make(chan struct{})
	r.hold.Store(&ch)
}

// Release lets held exports finish.
func (r *Receiver) Release() {
	if ch := r.hold.Swap(nil); ch != nil {
		close(*ch)
	}
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if ch := r.hold.Load(); ch != nil {
		select {
		case <-*ch:
		case <-req.Context().Done():
			return
		}
	}
	if s := r.status.Load(); s != 0 {
		http.Error(w, "refused by the test", int(s))
		return
	}
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		r.problem(fmt.Sprintf("unexpected export %s %s (Content-Type %q)", req.Method, req.URL.Path, req.Header.Get("Content-Type")))
		http.Error(w, "not an OTLP/HTTP protobuf trace export", http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			r.problem("bad gzip body: " + err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ex collectorpb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &ex); err != nil {
		r.problem("body is not an ExportTraceServiceRequest: " + err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	spans := decode(&ex)
	r.mu.Lock()
	r.spans = append(r.spans, spans...)
	r.bodies = append(r.bodies, raw...)
	r.headers = append(r.headers, req.Header.Clone())
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *Receiver) problem(s string) {
	r.mu.Lock()
	r.problems = append(r.problems, s)
	r.mu.Unlock()
}

// Spans returns every span received so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Bodies returns every export body received, decompressed and
// concatenated: what a collector stores, for secret sweeps.
func (r *Receiver) Bodies() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.bodies...)
}

// Headers returns the headers of each accepted export.
func (r *Receiver) Headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...)
}

// Problems lists the requests that were not OTLP/HTTP protobuf trace
// exports.
func (r *Receiver) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

// WaitSpans waits until at least n spans have arrived, or ctx ends; it
// returns the spans received.
func (r *Receiver) WaitSpans(ctx context.Context, n int) ([]Span, error) {
	for {
		r.mu.Lock()
		got, changed := len(r.spans), r.changed
		r.mu.Unlock()
		if got >= n {
			return r.Spans(), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return r.Spans(), fmt.Errorf("%d spans received, want %d: %w", got, n, ctx.Err())
		}
	}
}

func decode(ex *collectorpb.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range ex.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		service, _ := res["service.name"].(string)
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				out = append(out, Span{Service: service, Scope: ss.GetScope().GetName(), Resource: res,
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()), TraceState: s.GetTraceState(), Name: s.GetName(),
					Kind: s.GetKind(), Start: time.Unix(0, int64(s.GetStartTimeUnixNano())), End: time.Unix(0, int64(s.GetEndTimeUnixNano())),
					Attrs: attrs(s.GetAttributes()), StatusCode: s.GetStatus().GetCode(), StatusMessage: s.GetStatus().GetMessage(),
					droppedAttrs: int(s.GetDroppedAttributesCount())})
			}
		}
	}
	return out
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_ArrayValue:
		var out []string
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, e.GetStringValue())
		}
		return out
	}
	return nil
}

// DroppedAttributes is how many attributes the span's limits dropped.
func (s Span) DroppedAttributes() int { return s.droppedAttrs }
