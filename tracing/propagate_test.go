package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/wedsync/veil/tracing"
)

func TestExtract(t *testing.T) {
	tests := []struct {
		name, traceparent, tracestate string
		wantTrace, wantSpan           string
		wantSampled                   bool
		wantState                     string
	}{
		{name: "sampled with state", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
			wantTrace: "4bf92f3577b34da6a3ce929d0e0e4736", wantSpan: "00f067aa0ba902b7", wantSampled: true, wantState: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"},
		{name: "not sampled", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
			wantTrace: "4bf92f3577b34da6a3ce929d0e0e4736", wantSpan: "00f067aa0ba902b7"},
		{name: "absent", tracestate: "congo=t61rcWkgMzE"},
		{name: "zero trace id", traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{name: "garbage", traceparent: "hello", tracestate: "congo=t61rcWkgMzE"},
		{name: "version ff", traceparent: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := trace.SpanContextFromContext(tracing.Extract(context.Background(), []byte(tc.traceparent), []byte(tc.tracestate)))
			if tc.wantTrace == "" {
				if sc.IsValid() {
					t.Errorf("extracted %v from %q", sc, tc.traceparent)
				}
				return
			}
			if sc.TraceID().String() != tc.wantTrace || sc.SpanID().String() != tc.wantSpan || sc.IsSampled() != tc.wantSampled ||
				sc.TraceState().String() != tc.wantState || !sc.IsRemote() {
				t.Errorf("extracted %v %v sampled %v state %q remote %v", sc.TraceID(), sc.SpanID(), sc.IsSampled(), sc.TraceState(), sc.IsRemote())
			}
		})
	}
}

func TestAppendTraceparent(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	for flags, want := range map[trace.TraceFlags]string{
		trace.FlagsSampled: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		0:                  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		0xff:               "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // only the sampled flag is known to version 00
	} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})
		if got := string(tracing.AppendTraceparent([]byte("x"), sc)); got != "x"+want {
			t.Errorf("flags %x: %q, want %q", flags, got, want)
		}
	}
	buf := make([]byte, 0, 64)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
	if n := testing.AllocsPerRun(100, func() { _ = tracing.AppendTraceparent(buf[:0], sc) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
