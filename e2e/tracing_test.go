package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/otlptest"
)

// The app's trace context, as an instrumented WedSync app sends it.
const (
	appTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	appSpanID      = "00f067aa0ba902b7"
	appTraceparent = "00-" + appTraceID + "-" + appSpanID + "-01"
	appTracestate  = "wedsync=app1,congo=t61rcWkgMzE"
)

// traced starts veil exporting its spans to an OTLP receiver, with a
// collector credential the sweep looks for.
func traced(t *testing.T, s setup, primary bool) (*harness, *fakeopenai.Server, *otlptest.Receiver, string) {
	t.Helper()
	rx := otlptest.New(t)
	credential := strongSecret(t)
	if s.env == nil {
		s.env = map[string]string{}
	}
	s.env["OTLP_TOKEN"] = credential
	s.extra += `
tracing:
  otlp_endpoint: ` + rx.URL() + `
  sample_ratio: 0
  service_name: veil-e2e
  batch_timeout: 20ms
  headers:
    Authorization: env://OTLP_TOKEN
`
	if !primary {
		return start(t, s), nil, rx, credential
	}
	h, p := startWithPrimary(t, s)
	return h, p, rx, credential
}

// spansOf waits for the spans of trace id: the request's and n attempts'.
func spansOf(t *testing.T, rx *otlptest.Receiver, traceID string, attempts int) (req otlptest.Span, atts []otlptest.Span) {
	t.Helper()
	ctx := ctxT(t)
	for {
		var found []otlptest.Span
		for _, s := range rx.Spans() {
			if s.TraceID == traceID {
				found = append(found, s)
			}
		}
		if len(found) >= 1+attempts {
			for _, s := range found {
				if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
					req = s
				} else {
					atts = append(atts, s)
				}
			}
			if len(atts) != attempts || req.SpanID == "" {
				t.Fatalf("trace %s has %d spans: %+v", traceID, len(found), found)
			}
			slices.SortFunc(atts, func(a, b otlptest.Span) int {
				return int(a.Attrs["veil.attempt"].(int64) - b.Attrs["veil.attempt"].(int64))
			})
			return req, atts
		}
		if _, err := rx.WaitSpans(ctx, len(rx.Spans())+1); err != nil {
			t.Fatalf("trace %s: %v", traceID, err)
		}
	}
}

// traceparentOf splits a traceparent into trace ID, span ID and flags.
func traceparentOf(t *testing.T, v string) (traceID, spanID, flags string) {
	t.Helper()
	parts := strings.Split(v, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		t.Fatalf("upstream traceparent %q is not W3C version 00", v)
	}
	return parts[1], parts[2], parts[3]
}

// wantAttrs checks attributes of a span.
func wantAttrs(t *testing.T, s otlptest.Span, want map[string]any) {
	t.Helper()
	for k, v := range want {
		got, ok := s.Attrs[k]
		switch w := v.(type) {
		case []string:
			if g, _ := got.([]string); !slices.Equal(g, w) {
				t.Errorf("span %q: %s = %v, want %v", s.Name, k, got, w)
			}
		case nil:
			if ok {
				t.Errorf("span %q: %s = %v, want none", s.Name, k, got)
			}
		default:
			if got != v {
				t.Errorf("span %q: %s = %#v, want %#v", s.Name, k, got, v)
			}
		}
	}
}

// TestTracingPlainCall: a chat completion from an app that sent a
// traceparent (sampled) and a tracestate, with tracing at ratio 0 so that
// only the app's flag samples. The upstream gets the app's trace with the
// attempt span's ID and the app's tracestate; the collector gets a server
// span under the app's span and a client span under it, with the GenAI
// attributes and veil's, and nothing secret.
func TestTracingPlainCall(t *testing.T) {
	h, _, rx, credential := traced(t, setup{}, false)
	resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"Traceparent": appTraceparent,
		"Tracestate": appTracestate, "X-Workflow": "photography"})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !isCompletion(body) {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	up := h.lastUpstream()
	traceID, upSpan, flags := traceparentOf(t, up.Header.Get("Traceparent"))
	if traceID != appTraceID || upSpan == appSpanID || flags != "01" {
		t.Errorf("upstream traceparent %q: want the app's trace, a span of veil's, sampled", up.Header.Get("Traceparent"))
	}
	if ts := up.Header.Get("Tracestate"); ts != appTracestate {
		t.Errorf("upstream tracestate %q, want the app's %q", ts, appTracestate)
	}
	if n := len(up.Header.Values("Traceparent")); n != 1 {
		t.Errorf("%d traceparent headers upstream", n)
	}

	req, atts := spansOf(t, rx, appTraceID, 1)
	att := atts[0]
	if req.Name != "chat gpt-4o-mini" || req.ParentID != appSpanID || req.Service != "veil-e2e" {
		t.Errorf("request span %q parent %s service %q: want chat gpt-4o-mini under the app's span %s", req.Name, req.ParentID, req.Service, appSpanID)
	}
	if att.ParentID != req.SpanID || att.SpanID != upSpan || att.Kind != tracepb.Span_SPAN_KIND_CLIENT || att.Name != "chat gpt-4o-mini" {
		t.Errorf("attempt span %q %s parent %s kind %v: want the upstream's span %s under %s", att.Name, att.SpanID, att.ParentID, att.Kind, upSpan, req.SpanID)
	}
	if att.Start.Before(req.Start) || att.End.After(req.End) {
		t.Errorf("the attempt [%v, %v] is not within the request [%v, %v]", att.Start, att.End, req.Start, req.End)
	}
	var answer struct {
		Model string `json:"model"`
		Usage struct {
			Prompt     int64 `json:"prompt_tokens"`
			Completion int64 `json:"completion_tokens"`
		} `json:"usage"`
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || len(answer.Choices) == 0 {
		t.Fatalf("answer %s: %v", body, err)
	}
	wantAttrs(t, req, map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": answer.Model,
		"gen_ai.provider.name": "openai", "gen_ai.system": "openai",
		"gen_ai.usage.input_tokens": answer.Usage.Prompt, "gen_ai.usage.output_tokens": answer.Usage.Completion,
		"gen_ai.response.finish_reasons": []string{answer.Choices[0].FinishReason},
		"http.request.method":            "POST", "http.response.status_code": int64(200), "http.route": "/v1/chat/completions",
		"veil.request_id": resp.Header.Get("X-Request-Id"), "veil.supplier_id": testSupplier, "veil.caller": "wedsync-app",
		"veil.key_source": "platform", "veil.cache": "bypass", "veil.workflow": "photography", "veil.provider": "openai",
		"veil.attempts": int64(1), "veil.failover": false, "veil.stream": false, "error.type": nil,
	})
	wantAttrs(t, att, map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.provider.name": "openai",
		"veil.provider": "openai", "veil.attempt": int64(1), "veil.key_source": "platform",
		"http.response.status_code": int64(200), "veil.attempt.outcome": "served", "veil.attempt.reason": nil,
	})
	if req.StatusCode == tracepb.Status_STATUS_CODE_ERROR || att.StatusCode == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("a served call's spans are errors: %v %v", req.StatusCode, att.StatusCode)
	}
	sweepSpans(t, h, rx, credential, chatBody, completionText(t, body))
}

// TestTracingStreamStartsATrace: a streamed call from an app that sent
// no trace context: with tracing on, veil starts the trace (ratio 0, so
// not sampled: the upstream still gets a traceparent, flagged not
// sampled, and nothing is exported); a second stream with the app's
// sampled traceparent is exported, with the stream's usage and finish
// reason.
func TestTracingStreamStartsATrace(t *testing.T) {
	h, _, rx, credential := traced(t, setup{}, false)
	stream := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Write a toast for Ana and Ben."}]}`
	events := func(hdr map[string]string) (text, finish string) {
		resp := h.do("POST", "/v1/chat/completions", stream, hdr)
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, raw)
		}
		return streamText(t, raw)
	}

	text1, _ := events(nil)
	own := h.lastUpstream().Header.Get("Traceparent")
	ownTrace, _, flags := traceparentOf(t, own)
	if ownTrace == appTraceID || flags != "00" {
		t.Errorf("upstream traceparent %q without an app's: want a trace of veil's, not sampled at ratio 0", own)
	}
	if ts := h.lastUpstream().Header.Get("Tracestate"); ts != "" {
		t.Errorf("tracestate %q upstream for a trace veil started", ts)
	}

	text2, finish := events(map[string]string{"Traceparent": appTraceparent})
	if finish == "" || text2 == "" {
		t.Fatalf("stream without content (%q) or finish reason (%q)", text2, finish)
	}
	_, upSpan, _ := traceparentOf(t, h.lastUpstream().Header.Get("Traceparent"))
	req, atts := spansOf(t, rx, appTraceID, 1)
	wantAttrs(t, req, map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "veil.stream": true,
		"gen_ai.response.finish_reasons": []string{finish}, "veil.stream_interrupted": nil,
	})
	if in, out := req.Attrs["gen_ai.usage.input_tokens"], req.Attrs["gen_ai.usage.output_tokens"]; in == nil || out == nil || out.(int64) <= 0 {
		t.Errorf("stream usage %v/%v in the span", in, out)
	}
	if atts[0].SpanID != upSpan || atts[0].Attrs["veil.attempt.outcome"] != "served" {
		t.Errorf("attempt span %s %v, want the upstream's %s, served", atts[0].SpanID, atts[0].Attrs, upSpan)
	}
	// The streamed attempt lasts as long as its stream.
	if atts[0].End.After(req.End) || atts[0].End.Before(atts[0].Start) {
		t.Errorf("attempt [%v, %v], request ends %v", atts[0].Start, atts[0].End, req.End)
	}
	for _, s := range rx.Spans() {
		if s.TraceID == ownTrace {
			t.Errorf("a span of the unsampled trace was exported: %+v", s)
		}
	}
	sweepSpans(t, h, rx, credential, stream, text1+text2)
}

// TestTracingFailover: the primary answers 503 to every call: two attempt
// spans under the request's, the primary's failed over with its status
// and reason, the secondary's served, each with the span ID its upstream
// got.
func TestTracingFailover(t *testing.T) {
	h, primary, rx, credential := traced(t, setup{}, true)
	primary.Script(fakeopenai.Status(503, -1))
	got := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"Traceparent": appTraceparent})
	body, _ := io.ReadAll(got.Body)
	if got.StatusCode != 200 || got.Header.Get("X-Veil-Failover") != "true" {
		t.Fatalf("status %d failover %q: %s", got.StatusCode, got.Header.Get("X-Veil-Failover"), body)
	}
	pr, sr := primary.Requests(), h.up.Requests()
	if len(pr) != 1 || len(sr) != 1 {
		t.Fatalf("primary got %d requests, secondary %d", len(pr), len(sr))
	}
	_, pSpan, _ := traceparentOf(t, pr[0].Header.Get("Traceparent"))
	_, sSpan, _ := traceparentOf(t, sr[0].Header.Get("Traceparent"))
	if pSpan == sSpan {
		t.Errorf("both attempts sent span %s: each needs its own", pSpan)
	}
	req, atts := spansOf(t, rx, appTraceID, 2)
	for i, want := range []struct {
		span     string
		attrs    map[string]any
		errorish bool
	}{
		{pSpan, map[string]any{"veil.provider": "primary", "veil.attempt": int64(1), "http.response.status_code": int64(503),
			"veil.attempt.outcome": "failed_over", "veil.attempt.reason": "upstream_error", "error.type": "upstream_error"}, true},
		{sSpan, map[string]any{"veil.provider": "secondary", "veil.attempt": int64(2), "http.response.status_code": int64(200),
			"veil.attempt.outcome": "served", "veil.attempt.reason": nil}, false},
	} {
		a := atts[i]
		if a.SpanID != want.span || a.ParentID != req.SpanID {
			t.Errorf("attempt %d: span %s parent %s, want %s under %s", i+1, a.SpanID, a.ParentID, want.span, req.SpanID)
		}
		wantAttrs(t, a, want.attrs)
		if (a.StatusCode == tracepb.Status_STATUS_CODE_ERROR) != want.errorish {
			t.Errorf("attempt %d: status %v", i+1, a.StatusCode)
		}
	}
	if !atts[0].End.Before(atts[1].Start) && !atts[0].End.Equal(atts[1].Start) {
		t.Errorf("the first attempt ends %v, after the second starts %v", atts[0].End, atts[1].Start)
	}
	wantAttrs(t, req, map[string]any{"veil.attempts": int64(2), "veil.failover": true, "veil.provider": "secondary",
		"http.response.status_code": int64(200)})
	sweepSpans(t, h, rx, credential, chatBody, completionText(t, body))
}

// TestTracingStreamResumed: a stream cut after its first tokens and
// resumed on the secondary: the first attempt's span lasts until the cut
// and says it was resumed, the second served; the request's says why the
// route changed.
func TestTracingStreamResumed(t *testing.T) {
	h, _, rx, credential := traced(t, setup{providers: twoProviders, limits: "  stream_resume: true\n"}, false)
	h.up.Script(fakeopenai.Cut(3))
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Write a long wedding speech."}]}`
	resp := h.do("POST", "/v1/chat/completions", body, map[string]string{"Traceparent": appTraceparent})
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), "data: [DONE]") {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	text, _ := streamText(t, raw)
	rs := h.up.Requests()
	if len(rs) != 2 {
		t.Fatalf("%d upstream requests, want 2", len(rs))
	}
	req, atts := spansOf(t, rx, appTraceID, 2)
	for i, want := range []map[string]any{
		{"veil.provider": "primary", "veil.attempt.outcome": "resumed", "veil.attempt.reason": "stream_broken"},
		{"veil.provider": "secondary", "veil.attempt.outcome": "served", "veil.attempt.reason": nil},
	} {
		if _, span, _ := traceparentOf(t, rs[i].Header.Get("Traceparent")); atts[i].SpanID != span {
			t.Errorf("attempt %d: span %s, the upstream got %s", i+1, atts[i].SpanID, span)
		}
		wantAttrs(t, atts[i], want)
	}
	if atts[0].End.After(atts[1].Start) {
		t.Errorf("the cut attempt ends %v, after its continuation starts %v", atts[0].End, atts[1].Start)
	}
	wantAttrs(t, req, map[string]any{"veil.route_reason": "stream_resumed", "veil.attempts": int64(2), "veil.stream": true})
	sweepSpans(t, h, rx, credential, body, text)
}

// TestTracingOffPassesTraceContext: without tracing, the app's trace
// headers reach the provider as the app sent them.
func TestTracingOffPassesTraceContext(t *testing.T) {
	h := start(t, setup{})
	resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"Traceparent": appTraceparent, "Tracestate": appTracestate})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	up := h.lastUpstream()
	if tp, ts := up.Header.Get("Traceparent"), up.Header.Get("Tracestate"); tp != appTraceparent || ts != appTracestate {
		t.Errorf("upstream traceparent %q tracestate %q, want the app's %q and %q", tp, ts, appTraceparent, appTracestate)
	}
}

// streamText is the text and the last finish reason of a streamed chat
// completion.
func streamText(t *testing.T, raw []byte) (text, finish string) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta        struct{ Content string } `json:"delta"`
				FinishReason *string                  `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		for _, ch := range c.Choices {
			text += ch.Delta.Content
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	return text, finish
}

// completionText is the text of a chat completion's choices.
func completionText(t *testing.T, body []byte) string {
	t.Helper()
	var c struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, ch := range c.Choices {
		b.WriteString(ch.Message.Content)
	}
	return b.String()
}

// sweepSpans flushes veil's spans and checks what the collector got:
// OTLP/HTTP protobuf with the credential in its header and never in a
// span, and no caller token, provider key, admin token, prompt or
// completion in any span. Texts are searched by every run of eight
// characters, as the secret sweep searches sinks.
func sweepSpans(t *testing.T, h *harness, rx *otlptest.Receiver, credential, prompt, completion string) {
	t.Helper()
	if err := <-h.shutdownIn(10 * time.Second); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if p := rx.Problems(); len(p) > 0 {
		t.Errorf("the collector saw: %v", p)
	}
	for _, hd := range rx.Headers() {
		if hd.Get("Authorization") != credential {
			t.Errorf("an export without the configured credential header")
		}
	}
	exported := rx.Bodies()
	if len(exported) == 0 {
		t.Fatal("no spans exported")
	}
	var msgs struct {
		Messages []struct{ Content string } `json:"messages"`
	}
	if err := json.Unmarshal([]byte(prompt), &msgs); err != nil || len(msgs.Messages) == 0 {
		t.Fatalf("prompt %s: %v", prompt, err)
	}
	// The harness's own secrets are a readable prefix ("sk-platform-")
	// and 32 random hex digits: the random part is swept.
	random := func(s string) string { return s[strings.LastIndexByte(s, '-')+1:] }
	texts := map[string]string{"collector credential": credential, "caller token": random(h.token),
		"platform key": random(h.platformKey), "admin token": random(h.adminToken), "completion": completion}
	for i, m := range msgs.Messages {
		texts[fmt.Sprintf("prompt message %d", i)] = m.Content
	}
	// A prompt or an answer may name what a span names for reasons of its
	// own: the supplier, the caller, the model, the workflow.
	named := strings.Join([]string{testSupplier, "wedsync-app", "gpt-4o-mini", "photography", "primary", "secondary"}, " ")
	for name, s := range texts {
		if len(s) < sweepWindow {
			t.Fatalf("%s %q is too short to sweep", name, s)
		}
		for i := 0; i+sweepWindow <= len(s); i++ {
			if w := s[i : i+sweepWindow]; bytes.Contains(exported, []byte(w)) && !strings.Contains(named, w) {
				t.Errorf("the exported spans contain %q of the %s", w, name)
				break
			}
		}
	}
}

// TestTracingShadowCall: a comparison's shadow call is part of the app's
// trace: a client span under the request's span, marked as a shadow of
// its comparison, with the answer's model, tokens and status, and the
// shadow call goes upstream with that span's traceparent in place of the
// app's. The span carries neither key nor text.
func TestTracingShadowCall(t *testing.T) {
	s, bellaKey := withBella(&tap{}, `suppliers:
  entries:
    - id: bella-photography
      mode: platform
      keys:
        openai: env://BELLA_KEY
`)
	h, _, rx, credential := traced(t, s, false)
	var cmp struct {
		ID string `json:"id"`
	}
	h.adminJSON(t, "POST", "/admin/comparisons", `{"supplier":"bella-photography","other":"client","window":"1h","sample":1}`, 201, &cmp)
	resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"Traceparent": appTraceparent, "X-Workflow": "photography"})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !isCompletion(body) {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}

	var req, shadow otlptest.Span
	for req.SpanID == "" || shadow.SpanID == "" {
		if _, err := rx.WaitSpans(ctxT(t), len(rx.Spans())+1); err != nil {
			t.Fatalf("spans of the shadowed call: %v (%+v)", err, rx.Spans())
		}
		for _, sp := range rx.Spans() {
			switch {
			case sp.TraceID != appTraceID:
			case sp.Kind == tracepb.Span_SPAN_KIND_SERVER:
				req = sp
			case sp.Attrs["veil.shadow"] == true:
				shadow = sp
			}
		}
	}
	if shadow.ParentID != req.SpanID || shadow.Kind != tracepb.Span_SPAN_KIND_CLIENT || shadow.Name != "chat gpt-4o-mini" {
		t.Errorf("shadow span %q parent %s kind %v: want a client span chat gpt-4o-mini under the request's %s",
			shadow.Name, shadow.ParentID, shadow.Kind, req.SpanID)
	}
	wantAttrs(t, shadow, map[string]any{
		"veil.comparison": cmp.ID, "veil.request_id": resp.Header.Get("X-Request-Id") + "-shadow",
		"veil.supplier_id": "bella-photography", "veil.key_source": "client", "veil.provider": "openai",
		"veil.workflow": "photography", "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
		"gen_ai.request.model": "gpt-4o-mini", "http.response.status_code": int64(200), "error.type": nil,
	})
	if in, _ := shadow.Attrs["gen_ai.usage.input_tokens"].(int64); in <= 0 {
		t.Errorf("shadow span input tokens %v", shadow.Attrs["gen_ai.usage.input_tokens"])
	}
	var shadowUp []string
	for _, r := range h.up.Requests() {
		if r.Header.Get("Authorization") == "Bearer "+bellaKey {
			shadowUp = append(shadowUp, r.Header.Get("Traceparent"))
		}
	}
	if len(shadowUp) != 1 {
		t.Fatalf("%d shadow calls upstream, want 1", len(shadowUp))
	}
	if traceID, spanID, _ := traceparentOf(t, shadowUp[0]); traceID != appTraceID || spanID != shadow.SpanID {
		t.Errorf("shadow call's traceparent %q: want the shadow span %s of the app's trace", shadowUp[0], shadow.SpanID)
	}
	sweepSpans(t, h, rx, credential, chatBody, completionText(t, body))
}
