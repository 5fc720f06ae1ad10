package proxy

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/tracing"
	"github.com/wedsync/veil/usage"
)

// Tracing. With Options.Tracer set, a request gets a server span from
// Handle to complete, a child of the app's traceparent when it sent one,
// and each upstream attempt a client span under it, whose context goes
// upstream as the attempt's traceparent. Both carry the GenAI semantic
// conventions' attributes and veil's own, set as the span ends, and never
// a key, a token, a prompt or a completion. Without a tracer x.trace is
// nil, each hook is a nil check, and the app's trace headers pass
// upstream as they came.
//
// The hooks: Handle starts the request span, roundTrip starts an
// attempt's span, logAttempt and markLastAttempt note how it went, deliver
// and the trace tap read the finish reasons, complete ends the spans and
// release returns the state.

// traceState is one request's spans.
type traceState struct {
	// ctx holds the request span, the parent of the attempts'.
	ctx    context.Context
	req    trace.Span
	method string
	// The open attempt span: its target, key and number, and how it went
	// (status 0: no answer; code: veil's error code) and when it was over
	// as far as the attempt itself knows.
	att       trace.Span
	attTarget *policy.Attempt
	attKey    *keys.Key
	attN      int
	attStatus int
	attCode   string
	attEnd    time.Time
	// finish are the answer's finish reasons, one per choice.
	finish  [maxFinishReasons]string
	nFinish int
	tp      [64]byte
}

const maxFinishReasons = 8

var tracePool = sync.Pool{New: func() any { return new(traceState) }}

var _ tap = (*traceState)(nil)

// startTrace starts the request's server span.
func (x *exchange) startTrace(ctx *fasthttp.RequestCtx) {
	t := tracePool.Get().(*traceState)
	h := &ctx.Request.Header
	parent := tracing.Extract(context.Background(), h.Peek(tracing.HeaderTraceparent), h.Peek(tracing.HeaderTracestate))
	t.method = methodName(ctx.Method())
	t.ctx, t.req = x.s.tracer.Start(parent, t.method, trace.WithSpanKind(trace.SpanKindServer))
	x.trace = t
}

// release returns t to the pool, its spans ended.
func (t *traceState) release() {
	*t = traceState{}
	tracePool.Put(t)
}

// traceAttempt starts the span of an attempt at a with key, ending the
// previous attempt's, and sets its trace context on the upstream request
// h in place of the app's.
func (x *exchange) traceAttempt(a *policy.Attempt, key *keys.Key, h *fasthttp.RequestHeader) {
	t := x.trace
	now := time.Now()
	if t.att != nil {
		x.endAttempt(a, now)
	}
	// Named once it is known to be recorded: an unsampled span is never
	// seen, and its name would cost an allocation.
	_, t.att = x.s.tracer.Start(t.ctx, t.method, trace.WithSpanKind(trace.SpanKindClient))
	if t.att.IsRecording() {
		t.att.SetName(x.spanName(t.method, x.s.interns.get(a.Model)))
	}
	t.attTarget, t.attKey, t.attN, t.attStatus, t.attCode, t.attEnd = a, key, x.attempts, 0, "", time.Time{}
	setTraceContext(h, t.att.SpanContext(), t.tp[:0])
}

// setTraceContext sets sc as the trace context of the upstream request h,
// in place of the app's; buf is room for the traceparent.
func setTraceContext(h *fasthttp.RequestHeader, sc trace.SpanContext, buf []byte) {
	h.Del(tracing.HeaderTraceparent)
	h.Del(tracing.HeaderTracestate)
	h.SetBytesV(tracing.HeaderTraceparent, tracing.AppendTraceparent(buf, sc))
	if ts := sc.TraceState(); ts.Len() > 0 {
		h.Set(tracing.HeaderTracestate, ts.String())
	}
}

// startShadowSpan starts the client span of a comparison's shadow call to
// a, begun at start, under the request's span (the shadow call is part
// of the app's trace though the app never waits for it), and sets its
// trace context on the upstream request h. Like an attempt's span, it
// carries no key, token, prompt or completion.
func (s *Server) startShadowSpan(j *shadowJob, a *policy.Attempt, start time.Time, h *fasthttp.RequestHeader) trace.Span {
	parent := trace.ContextWithSpanContext(context.Background(), j.parent)
	_, span := s.tracer.Start(parent, "shadow", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start))
	setTraceContext(h, span.SpanContext(), nil)
	if !span.IsRecording() {
		return span
	}
	model := string(a.Model)
	if model == "" {
		model = string(j.model)
	}
	op := genAIOperation(j.endpoint)
	span.SetName(op + " " + model)
	providerName := tracing.ProviderName(a.Provider.Type())
	span.SetAttributes(
		tracing.GenAIOperationName.String(op),
		tracing.GenAIProviderName.String(providerName),
		tracing.GenAISystem.String(providerName),
		tracing.GenAIRequestModel.String(model),
		tracing.Provider.String(a.Provider.Name()),
		tracing.Shadow.Bool(true),
		tracing.Comparison.String(j.sh.id),
		tracing.RequestID.String(j.reqID),
		tracing.SupplierID.String(j.supplier),
		tracing.HTTPRequestMethod.String(fasthttp.MethodPost))
	if j.workflow != "" {
		span.SetAttributes(tracing.Workflow.String(j.workflow))
	}
	return span
}

// endShadowSpan ends a shadow call's span with what its usage record
// says of the answer.
func endShadowSpan(span trace.Span, rec *usage.Record) {
	if !span.IsRecording() {
		span.End()
		return
	}
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, tracing.KeySource.String(string(rec.KeySource)))
	if rec.Status > 0 {
		attrs = append(attrs, tracing.HTTPResponseStatusCode.Int(rec.Status))
	}
	if rec.Model != "" {
		attrs = append(attrs, tracing.GenAIResponseModel.String(rec.Model))
	}
	if rec.TotalTokens > 0 {
		attrs = append(attrs, tracing.GenAIUsageInputTokens.Int64(rec.PromptTokens),
			tracing.GenAIUsageOutputTokens.Int64(rec.CompletionTokens))
	}
	if rec.Error != "" {
		attrs = append(attrs, tracing.ErrorType.String(rec.Error))
		span.SetStatus(codes.Error, rec.Error)
	}
	span.SetAttributes(attrs...)
	span.End()
}

// attemptDone notes how the open attempt went: its status (0: none) and
// veil's error code.
func (t *traceState) attemptDone(status int, code string) {
	t.attStatus, t.attCode, t.attEnd = status, code, time.Now()
}

// endAttempt ends the open attempt's span; next is the target of the
// attempt that follows it (nil: none), which tells what became of it.
func (x *exchange) endAttempt(next *policy.Attempt, now time.Time) {
	t := x.trace
	span := t.att
	t.att = nil
	// A streamed answer lasts until its end (or the resumption that
	// replaces it); any other attempt ends with its answer or failure.
	delivered := x.stream.streamed && x.served == t.attTarget
	end := t.attEnd
	if end.IsZero() || delivered {
		end = now
	}
	if !span.IsRecording() {
		span.End()
		return
	}
	var outcome, reason string
	switch {
	case next == nil && x.served == t.attTarget && x.key == t.attKey && t.attCode == "":
		outcome = "served"
	case next == nil:
		outcome, reason = "failed", attemptReason(t.attCode, t.attStatus)
	case delivered:
		outcome, reason = "resumed", "stream_broken"
	case next == t.attTarget && x.swappedFrom == t.attKey:
		outcome, reason = "key_swapped", attemptReason(t.attCode, t.attStatus)
	case next == t.attTarget:
		outcome, reason = "retried", attemptReason(t.attCode, t.attStatus)
	default:
		outcome, reason = "failed_over", attemptReason(t.attCode, t.attStatus)
	}
	a := t.attTarget
	providerName := tracing.ProviderName(a.Provider.Type())
	attrs := make([]attribute.KeyValue, 0, 14)
	attrs = append(attrs,
		tracing.GenAIProviderName.String(providerName),
		tracing.GenAISystem.String(providerName),
		tracing.Provider.String(a.Provider.Name()),
		tracing.Attempt.Int(t.attN),
		tracing.HTTPRequestMethod.String(t.method),
		tracing.AttemptOutcome.String(outcome))
	if op := genAIOperation(x.ep); op != "" {
		attrs = append(attrs, tracing.GenAIOperationName.String(op))
	}
	if len(a.Model) > 0 {
		attrs = append(attrs, tracing.GenAIRequestModel.String(x.s.interns.get(a.Model)))
	}
	if t.attKey != nil {
		attrs = append(attrs, tracing.KeySource.String(string(t.attKey.Source())))
	}
	if t.attStatus > 0 {
		attrs = append(attrs, tracing.HTTPResponseStatusCode.Int(t.attStatus))
	}
	if reason != "" {
		attrs = append(attrs, tracing.AttemptReason.String(reason), tracing.ErrorType.String(reason))
	}
	span.SetAttributes(attrs...)
	switch {
	case reason != "":
		span.SetStatus(codes.Error, reason)
	case t.attStatus >= 400:
		span.SetStatus(codes.Error, "")
	}
	span.End(trace.WithTimestamp(end))
}

// attemptReason says why an attempt did not serve: veil's error code when
// it has one, else what the provider's status means.
func attemptReason(code string, status int) string {
	switch {
	case code != "":
		return code
	case status == fasthttp.StatusUnauthorized, status == fasthttp.StatusForbidden:
		return "key_refused"
	case status == fasthttp.StatusTooManyRequests:
		return "rate_limited"
	case status >= 500, status == fasthttp.StatusRequestTimeout, status == fasthttp.StatusConflict:
		return "upstream_error"
	}
	return "upstream_status"
}

// endTrace ends the last attempt's span and the request's.
func (x *exchange) endTrace() {
	t := x.trace
	now := time.Now()
	if t.att != nil {
		x.endAttempt(nil, now)
	}
	span := t.req
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetName(x.spanName(t.method, string(x.fields.Model)))
	attrs := make([]attribute.KeyValue, 0, 28)
	attrs = append(attrs,
		tracing.HTTPRequestMethod.String(t.method),
		tracing.HTTPResponseStatusCode.Int(x.status),
		tracing.RequestID.String(string(x.reqID)),
		tracing.Attempts.Int(x.attempts),
		tracing.Stream.Bool(x.stream.streamed))
	if route := routeOf(x.ep); route != "" {
		attrs = append(attrs, tracing.HTTPRoute.String(route))
	}
	if op := genAIOperation(x.ep); op != "" {
		attrs = append(attrs, tracing.GenAIOperationName.String(op))
	}
	if len(x.fields.Model) > 0 {
		attrs = append(attrs, tracing.GenAIRequestModel.String(string(x.fields.Model)))
	}
	if m := x.usage.tokens.Model; len(m) > 0 {
		attrs = append(attrs, tracing.GenAIResponseModel.String(string(m)))
	}
	if tk := &x.usage.tokens; tk.Found || tk.Prompt > 0 || tk.Completion > 0 {
		attrs = append(attrs, tracing.GenAIUsageInputTokens.Int64(tk.Prompt), tracing.GenAIUsageOutputTokens.Int64(tk.Completion))
	}
	if t.nFinish > 0 {
		attrs = append(attrs, tracing.GenAIResponseFinishReasons.StringSlice(t.finish[:t.nFinish]))
	}
	a := x.served
	if a == nil {
		a = x.tried
	}
	if a != nil {
		providerName := tracing.ProviderName(a.Provider.Type())
		attrs = append(attrs, tracing.GenAIProviderName.String(providerName), tracing.GenAISystem.String(providerName),
			tracing.Provider.String(a.Provider.Name()))
	}
	if x.served != nil {
		attrs = append(attrs, tracing.Failover.Bool(x.failedOver()))
	}
	if len(x.supplier) > 0 {
		attrs = append(attrs, tracing.SupplierID.String(string(x.supplier)))
	}
	if x.caller != nil {
		attrs = append(attrs, tracing.Caller.String(x.caller.Name))
	}
	if x.key != nil {
		attrs = append(attrs, tracing.KeySource.String(string(x.key.Source())))
	}
	if x.ep.understood {
		outcome := x.cache.outcome
		if outcome == "" {
			outcome = "bypass"
		}
		attrs = append(attrs, tracing.Cache.String(outcome))
	}
	for _, kv := range [...]struct {
		key   attribute.Key
		value string
	}{{tracing.Workflow, x.workflow}, {tracing.RouteReason, x.reason}, {tracing.ErrorCode, x.err},
		{tracing.ErrorType, x.err}, {tracing.StreamInterrupted, x.stream.interrupted}} {
		if kv.value != "" {
			attrs = append(attrs, kv.key.String(kv.value))
		}
	}
	if len(x.upstreamID) > 0 {
		attrs = append(attrs, tracing.UpstreamRequestID.String(string(x.upstreamID)))
	}
	span.SetAttributes(attrs...)
	switch cut := x.stream.interrupted; {
	case x.status >= 500:
		span.SetStatus(codes.Error, x.err)
	case cut != "" && cut != cutClientGone:
		span.SetStatus(codes.Error, cut)
	}
	span.End()
}

// spanName is a span's name: the GenAI operation and model ("chat
// gpt-4o-mini"), else the HTTP method and route.
func (x *exchange) spanName(method, model string) string {
	if op := genAIOperation(x.ep); op != "" {
		if model == "" {
			return op
		}
		return op + " " + model
	}
	if route := routeOf(x.ep); route != "" {
		return method + " " + route
	}
	return method
}

// genAIOperation is the gen_ai.operation.name of an endpoint, "" for
// those that are not a model call.
func genAIOperation(ep endpoint) string {
	switch ep.name {
	case epChat.name, epResponses.name:
		return "chat"
	case epCompletions.name:
		return "text_completion"
	case epEmbeddings.name:
		return "embeddings"
	}
	return ""
}

// routeOf is the http.route of an endpoint veil knows, "" for others.
func routeOf(ep endpoint) string {
	switch ep.name {
	case epChat.name:
		return "/v1/chat/completions"
	case epCompletions.name:
		return "/v1/completions"
	case epEmbeddings.name:
		return "/v1/embeddings"
	case epResponses.name:
		return "/v1/responses"
	case epModels.name:
		return "/v1/models"
	}
	return ""
}

// methodName is an HTTP method as the semantic conventions name it: one
// of the known methods, else _OTHER.
func methodName(m []byte) string {
	for _, known := range [...]string{fasthttp.MethodPost, fasthttp.MethodGet, fasthttp.MethodDelete, fasthttp.MethodPut,
		fasthttp.MethodPatch, fasthttp.MethodHead, fasthttp.MethodOptions} {
		if string(m) == known {
			return known
		}
	}
	return "_OTHER"
}

// event reads the finish reasons of a streamed answer's events, as the
// client gets them.
func (t *traceState) event(ev sse.Event) (sse.Event, error) {
	t.noteFinish(ev.Data)
	return ev, nil
}

// noteFinish keeps the finish reasons an answer or a chunk of one names.
// Only the reasons OpenAI's schema defines are kept as they are; any other
// value is "other", so that no text of the answer can reach a span.
func (t *traceState) noteFinish(b []byte) {
	const key = `"finish_reason":"`
	for t.nFinish < len(t.finish) {
		i := bytes.Index(b, []byte(key))
		if i < 0 {
			return
		}
		b = b[i+len(key):]
		j := bytes.IndexByte(b, '"')
		if j < 0 {
			return
		}
		t.finish[t.nFinish] = finishReason(b[:j])
		t.nFinish++
		b = b[j:]
	}
}

func finishReason(b []byte) string {
	for _, known := range [...]string{"stop", "length", "tool_calls", "content_filter", "function_call"} {
		if string(b) == known {
			return known
		}
	}
	return "other"
}
