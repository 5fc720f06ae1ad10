package proxy

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/similarity"
	"github.com/wedsync/veil/usage"
)

// errNoPlatformKey says the shadow's provider has no platform key.
var errNoPlatformKey = errors.New("the provider has no platform key")

// Shadows are the running comparisons of a supplier's two systems; see
// compare.Comparisons.
type Shadows interface {
	// Shadow says whether this request is chosen to be sent to the other
	// system too, and which; choosing does not count it as shadowed.
	Shadow(supplier []byte, spread uint64) (id string, other billing.KeySource, ok bool)
	// Begin counts one shadow call about to be made, and returns where it
	// goes (empty: the other system's first planned provider) and who pays
	// for it; false means no call is made.
	Begin(id string) (provider string, billed billing.Payer, ok bool)
	// Record takes both answers of one shadowed request.
	Record(id string, p compare.Pair)
}

// shadowState is a request chosen for comparison: what the shadow call
// needs once the primary answer is complete (the request context is off
// limits by then), and the primary answer's text.
type shadowState struct {
	id    string
	other billing.KeySource
	req   *fasthttp.Request
	text  []byte
}

var _ tap = (*shadowState)(nil)

// startShadow is admission's comparison step: it decides, once the request
// is planned, whether it is also sent to the other system, and keeps a
// copy of it when it is. It never stops the request.
func (s *Server) startShadow(ctx *fasthttp.RequestCtx, x *exchange) bool {
	if s.shadows == nil || (x.ep != epChat && x.ep != epCompletions) || x.fields.N > 1 {
		return true
	}
	id, other, ok := s.shadows.Shadow(x.supplier, x.spread)
	if !ok || other == x.plan[0].Source {
		return true
	}
	sh := &shadowState{id: id, other: other, req: fasthttp.AcquireRequest()}
	ctx.Request.Header.CopyTo(&sh.req.Header)
	sh.req.SetBody(x.body)
	x.shadow = sh
	return true
}

// event is the comparison's tap: it keeps the text of each chunk.
func (sh *shadowState) event(ev sse.Event) (sse.Event, error) {
	if len(ev.Data) > 0 && ev.Data[0] == '{' {
		sh.shadowText(ev.Data, true)
	}
	return ev, nil
}

// shadowText keeps the primary answer's text from a plain body or one
// stream chunk.
func (sh *shadowState) shadowText(data []byte, stream bool) {
	if stream {
		sh.text = append(sh.text, gjson.GetBytes(data, "choices.0.delta.content").String()...)
		sh.text = append(sh.text, gjson.GetBytes(data, "choices.0.text").String()...)
		return
	}
	sh.text = append(sh.text, gjson.GetBytes(data, "choices.0.message.content").String()...)
	sh.text = append(sh.text, gjson.GetBytes(data, "choices.0.text").String()...)
}

// finishShadow sends the shadow call in the background once the primary
// answer is complete and successful; the client never waits for it.
func (s *Server) finishShadow(x *exchange, elapsed time.Duration, costUSD float64) {
	sh := x.shadow
	if sh == nil {
		return
	}
	x.shadow = nil
	// An answer that failed cannot be compared, and one served on the
	// other system (a fallback, or a quota's switch) already is the other
	// system's: neither is shadowed, nor counted.
	if x.status != fasthttp.StatusOK || x.stream.interrupted != "" || x.served == nil || x.served.Source == sh.other {
		fasthttp.ReleaseRequest(sh.req)
		return
	}
	primary := billing.Outcome{Status: x.status, Latency: elapsed, TTFT: x.stream.ttft, PromptTokens: x.usage.tokens.Prompt,
		CompletionTokens: x.usage.tokens.Completion, CostUSD: costUSD, CostMicros: int64(math.Round(costUSD * 1e6)), Text: string(sh.text)}
	id := string(x.reqID)
	job := shadowJob{sh: sh, rt: x.rt, supplier: string(x.supplier), model: append([]byte(nil), x.fields.Model...),
		workflow: x.workflow, endpoint: x.ep, caller: x.caller.Name, reqID: id + "-shadow", scoreID: id + "-similarity",
		primary: primary}
	if x.trace != nil {
		job.parent = x.trace.req.SpanContext()
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		defer fasthttp.ReleaseRequest(sh.req)
		s.runShadow(&job)
	}()
}

// shadowJob is one shadow call's inputs, copied out of the exchange.
type shadowJob struct {
	sh       *shadowState
	rt       *Runtime
	supplier string
	model    []byte
	workflow string
	endpoint endpoint
	caller   string
	reqID    string
	// scoreID is the request ID of the similarity scoring call's record.
	scoreID string
	primary billing.Outcome
	// parent is the request's span, under which the shadow call's span
	// starts; invalid when tracing is off.
	parent trace.SpanContext
}

// runShadow sends the request to the other system as a plain call, then
// scores the two answers' similarity when both exist and records them for
// the comparison, and the shadow's usage.
func (s *Server) runShadow(j *shadowJob) {
	onProvider, billed, ok := s.shadows.Begin(j.sh.id)
	if !ok {
		return
	}
	start := time.Now()
	out := billing.Outcome{}
	rec := &usage.Record{TS: start.UTC(), RequestID: j.reqID, Supplier: j.supplier, Caller: j.caller, Workflow: j.workflow,
		Endpoint: j.endpoint.name, RequestedModel: string(j.model), Shadow: true, Cache: usage.CacheBypass,
		MigrationID: j.sh.id, Billed: billing.PaidByNone}
	var span trace.Span
	defer func() {
		out.Latency = time.Since(start)
		rec.LatencyMS = float64(out.Latency.Microseconds()) / 1000
		rec.Status, rec.Error = out.Status, out.Err
		if span != nil {
			endShadowSpan(span, rec) // the call only: scoring its answer follows
		}
		s.shadows.Record(j.sh.id, compare.Pair{Workflow: j.workflow, Primary: j.primary, Shadow: out,
			Score: s.scoreShadow(j, &out)})
		if s.usage != nil {
			s.usage.Emit(rec)
		}
	}()
	plan, err := j.rt.Policy.Plan(nil, &policy.Request{Model: j.model, Understood: true, Supplier: []byte(j.supplier),
		Workflow: []byte(j.workflow), Now: start, Source: j.sh.other, Health: s.health})
	if err != nil || len(plan) == 0 {
		out.Err = "no provider for the other system"
		return
	}
	a := &plan[0]
	if onProvider != "" {
		for i := range plan {
			if plan[i].Provider.Name() == onProvider {
				a = &plan[i]
			}
		}
	}
	key, err := s.shadowKey(j.supplier, a)
	if err != nil {
		out.Err = err.Error()
		return
	}
	rec.Provider, rec.KeySource = a.Provider.Name(), key.Source()
	body := j.sh.req.Body()
	if b, err := jsonfield.SetRaw(nil, body, "stream", []byte("false")); err == nil {
		body, _, _ = jsonfield.RemoveMember(nil, b, "stream_options")
	}
	if len(a.Model) > 0 {
		if b, err := jsonfield.SetString(nil, body, "model", string(a.Model)); err == nil {
			body = b
		}
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	copyRequestHeaders(&req.Header, &j.sh.req.Header, true)
	if s.tracer != nil {
		span = s.startShadowSpan(j, a, start, &req.Header)
	}
	req.SetBodyRaw(body)
	suffix := "/chat/completions"
	if j.endpoint == epCompletions {
		suffix = "/completions"
	}
	call := provider.Call{Suffix: []byte(suffix), Model: a.Model, Key: key}
	if err := a.Provider.Prepare(req, &call); err != nil {
		out.Err = err.Error()
		return
	}
	// Who pays for a shadow the provider is asked is the comparison's
	// choice (platform unless it says client), whichever key carried it:
	// the comparison is WedSync's trial of the other system. One that
	// never reached a provider stays billed to none.
	rec.Billed = billing.PaidByPlatform
	if billed == billing.PaidByClient {
		rec.Billed = billing.PaidByClient
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	deadline := start.Add(s.limits.RequestTimeout)
	if err := a.Provider.Do(req, resp, start.Add(s.limits.AttemptTimeout), deadline); err != nil {
		out.Err = upstreamError(a.Provider.Name(), err).Code
		return
	}
	out.Status = resp.StatusCode()
	rec.Attempts = []usage.Attempt{{Provider: a.Provider.Name(), KeySource: key.Source(), Status: out.Status,
		LatencyMS: msSince(start)}}
	if out.Status != fasthttp.StatusOK {
		out.Err = "upstream_status"
		return
	}
	var t usage.Tokens
	usage.FromBody(resp.Body(), &t)
	out.PromptTokens, out.CompletionTokens = t.Prompt, t.Completion
	rec.PromptTokens, rec.CompletionTokens, rec.CachedTokens, rec.TotalTokens = t.Prompt, t.Completion, t.Cached, t.Total
	rec.Model = string(t.Model)
	if rec.Model == "" {
		rec.Model = rec.RequestedModel
	}
	if p := j.rt.Prices; p != nil && t.Total > 0 {
		if micros, ok := p.CostMicros(a.Provider.Name(), rec.Model, start, t.Prompt, t.Cached, t.Completion); ok {
			rec.SetCost(micros)
			out.CostUSD, out.CostMicros = *rec.CostUSD, micros
		}
	}
	var sh shadowState
	sh.shadowText(resp.Body(), false)
	out.Text = string(sh.text)
}

// scoreShadow scores the similarity of the two answers of a shadowed
// request with the runtime's method for its workflow, within the method's
// timeout; its calls are billed to the platform as shadow usage. It runs
// in the shadow's goroutine, never on the client's path. Without a scorer,
// or without two answers, the score is zero, which the comparison reads as
// its own lexical score.
func (s *Server) scoreShadow(j *shadowJob, out *billing.Outcome) compare.Score {
	sc := j.rt.Similarity
	if sc == nil || j.primary.Failed() || out.Failed() {
		return compare.Score{}
	}
	var emit similarity.Emitter
	if s.usage != nil {
		emit = s.usage
	}
	score, err := sc.Score(context.Background(), &similarity.Input{Workflow: j.workflow, Primary: j.primary.Text,
		Shadow: out.Text, Comparison: j.sh.id, Supplier: j.supplier, Caller: j.caller, RequestID: j.scoreID, Usage: emit})
	if err != nil {
		s.quiet.Warn("shadow_similarity", "shadow answers not scored", zap.String("comparison", j.sh.id), zap.Error(err))
		return compare.Score{}
	}
	return score
}

// shadowKey is the key a shadow call uses: the provider's next platform
// key, or the supplier's own from memory.
func (s *Server) shadowKey(supplier string, a *policy.Attempt) (*keys.Key, error) {
	if a.Source == billing.PlatformKey {
		if pool := a.Provider.Platform(); pool != nil {
			return pool.Next(time.Now()), nil
		}
		return nil, errNoPlatformKey
	}
	if s.keys == nil {
		return nil, keys.ErrKeyMissing
	}
	k, err := s.keys.Get(context.Background(), supplier, a.Provider.Name())
	if err != nil {
		s.log.Warn("shadow call without a supplier key", zap.String("supplier", supplier), zap.Error(err))
	}
	return k, err
}
