package similarity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/usage"
)

// Endpoint names of the scoring calls' usage records, as the proxy names
// the same endpoints.
const (
	endpointEmbeddings = "embeddings"
	endpointChat       = "chat_completions"
)

// DefaultCallTimeout bounds a scoring call whose context has no deadline.
const DefaultCallTimeout = 30 * time.Second

// MaxAnswerBytes is how much of each answer is sent to be scored: longer
// answers are cut (at a character boundary), which bounds a scoring
// call's tokens, and so its cost, whatever the answers.
const MaxAnswerBytes = 16 << 10

// errStatus is a provider's answer other than 200.
var errStatus = errors.New("similarity: the provider answered with an error")

// clip returns s cut to at most MaxAnswerBytes, at a character boundary.
func clip(s string) string { return clipTo(s, MaxAnswerBytes) }

// callResult is what a scoring call answered: the body (a copy) and the
// tokens the provider reported.
type callResult struct {
	body   []byte
	tokens usage.Tokens
}

// post sends body (JSON) to the provider's suffix (/embeddings or
// /chat/completions) with one of its platform keys, by ctx's deadline,
// and emits the call's usage record to in.Usage: shadow, billed to the
// platform, attributed to in's workflow, supplier, caller and comparison.
// An answer other than 200 is an error wrapping errStatus that gives the
// status and the provider's error code, never its message (providers
// quote part of a key they refuse).
func post(ctx context.Context, p *provider.Provider, prices Pricer, in *Input, endpoint, model string, body []byte) (*callResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pool := p.Platform()
	if pool == nil || pool.Len() == 0 {
		return nil, ErrNoPlatformKey
	}
	start := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(DefaultCallTimeout)
	}
	key := pool.Next(start)
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
	suffix := "/chat/completions"
	if endpoint == endpointEmbeddings {
		suffix = "/embeddings"
	}
	call := provider.Call{Suffix: []byte(suffix), Model: []byte(model), Key: key}
	if err := p.Prepare(req, &call); err != nil {
		return nil, fmt.Errorf("similarity: %s cannot take the call: %w", p.Name(), err)
	}
	rec := &usage.Record{TS: start.UTC(), RequestID: in.RequestID, Supplier: in.Supplier, Caller: in.Caller,
		Workflow: in.Workflow, Endpoint: endpoint, RequestedModel: model, Model: model, Provider: p.Name(),
		KeySource: billing.PlatformKey, Billed: billing.PaidByPlatform, Cache: usage.CacheBypass,
		MigrationID: in.Comparison, Shadow: true}
	attempt := usage.Attempt{Provider: p.Name(), Model: model, KeySource: billing.PlatformKey}
	emit := func() {
		attempt.Status, attempt.Error = rec.Status, rec.Error
		attempt.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
		rec.LatencyMS = attempt.LatencyMS
		rec.Attempts = []usage.Attempt{attempt}
		if in.Usage != nil {
			in.Usage.Emit(rec)
		}
	}
	if err := p.Do(req, resp, deadline, deadline); err != nil {
		rec.Error = "upstream_unavailable"
		if ReasonOf(err) == ReasonTimeout {
			rec.Error = "upstream_timeout"
		}
		emit()
		return nil, fmt.Errorf("similarity: %s: %w", p.Name(), err)
	}
	if err := p.Translate(resp, &call); err != nil {
		rec.Status, rec.Error = resp.StatusCode(), "upstream_invalid"
		emit()
		return nil, fmt.Errorf("similarity: %s: %w: %w", p.Name(), ErrInvalid, err)
	}
	rec.Status = resp.StatusCode()
	if id := resp.Header.Peek("X-Request-Id"); len(id) > 0 {
		rec.UpstreamRequestID = string(id)
	}
	res := &callResult{body: append([]byte(nil), resp.Body()...)}
	usage.FromBody(res.body, &res.tokens)
	t := &res.tokens
	rec.PromptTokens, rec.CompletionTokens, rec.CachedTokens, rec.TotalTokens = t.Prompt, t.Completion, t.Cached, t.Total
	if len(t.Model) > 0 {
		rec.Model = string(t.Model)
	}
	if prices != nil && t.Total > 0 {
		if micros, ok := prices.CostMicros(p.Name(), rec.Model, start, t.Prompt, t.Cached, t.Completion); ok {
			rec.SetCost(micros)
		}
	}
	if rec.Status != fasthttp.StatusOK {
		rec.Error = "upstream_status"
		emit()
		code := gjson.GetBytes(res.body, "error.code").String()
		if code == "" {
			code = gjson.GetBytes(res.body, "error.type").String()
		}
		return nil, fmt.Errorf("%w: %s answered %d %s", errStatus, p.Name(), rec.Status, code)
	}
	emit()
	return res, nil
}
