package tracing

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The W3C trace context headers.
const (
	HeaderTraceparent = "Traceparent"
	HeaderTracestate  = "Tracestate"
)

// Extract returns ctx with the remote span context of an app's
// traceparent and tracestate header values, as W3C Trace Context reads
// them; ctx itself when the traceparent is absent or not valid (a new
// trace starts then, and the tracestate is dropped with it).
func Extract(ctx context.Context, traceparent, tracestate []byte) context.Context {
	if len(traceparent) == 0 {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, carrier{traceparent: string(traceparent), tracestate: string(tracestate)})
}

// carrier holds the two headers Extract reads.
type carrier struct{ traceparent, tracestate string }

var _ propagation.TextMapCarrier = carrier{}

func (c carrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.traceparent
	case "tracestate":
		return c.tracestate
	}
	return ""
}

func (carrier) Set(string, string) {}

func (carrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// AppendTraceparent appends the traceparent header value of sc (version
// 00) to dst.
func AppendTraceparent(dst []byte, sc trace.SpanContext) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, tid[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, sid[:])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, []byte{byte(sc.TraceFlags() & trace.FlagsSampled)})
}
