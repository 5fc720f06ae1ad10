package proxy

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/usage"
)

// record builds the exchange's usage record, prices it, counts its tokens
// and cost in metrics and hands it to the emitter. It returns the cost in
// micro-dollars.
func (s *Server) record(x *exchange, providerName string, elapsed time.Duration) (costMicros int64) {
	now := time.Now()
	x.estimateDelivered()
	x.mergeResumed()
	r := &usage.Record{
		TS:               now.UTC(),
		RequestID:        string(x.reqID),
		Supplier:         s.interns.get(x.supplier),
		Caller:           x.caller.Name,
		Workflow:         x.workflow,
		Endpoint:         x.ep.name,
		RequestedModel:   s.interns.get(x.fields.Model),
		Provider:         providerName,
		KeySource:        keySource(x.key),
		Stream:           x.stream.streamed || x.fields.Stream,
		Status:           x.status,
		PromptTokens:     x.usage.tokens.Prompt,
		CompletionTokens: x.usage.tokens.Completion,
		CachedTokens:     x.usage.tokens.Cached,
		TotalTokens:      x.usage.tokens.Total,
		LatencyMS:        float64(elapsed.Microseconds()) / 1000,
		Cache:            usage.CacheBypass,
		Failover:         x.failedOver(),
		TokensEstimated:  x.usage.estimated,
		Partial:          x.stream.interrupted != "",
		Error:            x.err,
		Reason:           x.reason,
		MigrationID:      x.migration.id,
	}
	if len(x.upstreamID) > 0 {
		r.UpstreamRequestID = string(x.upstreamID)
	}
	r.Model = r.RequestedModel
	if len(x.usage.tokens.Model) > 0 {
		r.Model = s.interns.get(x.usage.tokens.Model)
	}
	if x.cache.outcome != "" {
		r.Cache = x.cache.outcome
	}
	if e := x.cache.hit; e != nil {
		// Nobody pays for an answer from the cache; the tokens it would
		// have cost are reported as saved.
		r.Provider, r.Model, r.Billed, r.SavedTokens = e.Provider, e.Model, billing.PaidByNone, int64(e.TotalTokens)
		r.SetCost(0)
		if s.usage != nil {
			s.usage.Emit(r)
		}
		return 0
	}
	if x.stream.ttft > 0 {
		r.TTFTMS = float64(x.stream.ttft.Microseconds()) / 1000
	}
	r.Billed = payer(x)
	if n := min(x.attemptCount, len(x.attemptLog)); n > 0 {
		r.Attempts = append(make([]usage.Attempt, 0, n), x.attemptLog[:n]...)
	}
	if prices := x.rt.Prices; prices != nil && providerName != "" && r.TotalTokens > 0 {
		if x.resume != nil && len(x.resume.parts) > 0 {
			s.priceSegments(prices, r, now)
		} else {
			s.priceCall(prices, r, providerName, r.Model, now)
		}
	}
	if r.TotalTokens > 0 {
		cost := 0.0
		if r.CostUSD != nil {
			cost = *r.CostUSD
		}
		s.metrics.ObserveUsage(providerName, x.usage.tokens.Model, r.KeySource, r.PromptTokens, r.CompletionTokens, cost)
	}
	if s.usage != nil {
		s.usage.Emit(r)
	}
	if r.CostMicros != nil {
		return *r.CostMicros
	}
	return 0
}

// priceCall prices the record's tokens at provider's price for model (the
// model the client asked for when model has none).
func (s *Server) priceCall(prices Pricer, r *usage.Record, provider, model string, now time.Time) {
	if micros, ok := s.cost(prices, provider, model, r.RequestedModel, now, r.PromptTokens, r.CachedTokens, r.CompletionTokens); ok {
		r.SetCost(micros)
	}
}

// priceSegments prices a resumed answer per attempt: each part at the
// price of the provider and model that produced it. The record has no
// cost when any part has no price.
func (s *Server) priceSegments(prices Pricer, r *usage.Record, now time.Time) {
	var total int64
	for i := range r.Attempts {
		a := &r.Attempts[i]
		if a.PromptTokens == 0 && a.CompletionTokens == 0 {
			continue
		}
		r.TokensEstimated = r.TokensEstimated || a.TokensEstimated
		model := a.Model
		if model == "" {
			model = r.Model
		}
		micros, ok := s.cost(prices, a.Provider, model, r.RequestedModel, now, a.PromptTokens, 0, a.CompletionTokens)
		if !ok {
			return
		}
		a.CostMicros = micros
		total += micros
	}
	r.SetCost(total)
}

// cost prices tokens at provider's price for model, else for the model the
// client asked for; an unpriced model is warned about once.
func (s *Server) cost(prices Pricer, provider, model, requested string, now time.Time, prompt, cached, completion int64) (int64, bool) {
	micros, ok := prices.CostMicros(provider, model, now, prompt, cached, completion)
	if !ok && model != requested {
		micros, ok = prices.CostMicros(provider, requested, now, prompt, cached, completion)
	}
	if !ok && prices.Unknown(provider, model) {
		s.log.Warn("no price for model; usage records carry a null cost", zap.String("provider", provider), zap.String("model", model))
	}
	return micros, ok
}

// payer is who pays for the exchange's call: the owner of the key it was
// made with, or nobody when no provider was asked, because veil refused
// the call itself (a bad request, a quota, a missing key, overload) or
// the client left first.
func payer(x *exchange) billing.Payer {
	asked := false
	for _, a := range x.attemptLog[:min(x.attemptCount, len(x.attemptLog))] {
		if a.Error != codeOverloaded {
			asked = true
			break
		}
	}
	switch {
	case !asked && x.attemptCount <= len(x.attemptLog):
		return billing.PaidByNone
	case keySource(x.key) == billing.ClientKey:
		return billing.PaidByClient
	}
	return billing.PaidByPlatform
}

// interner shares the strings of values that repeat (supplier IDs, model
// names), so a record does not allocate them every time. It stops adding
// after a bound, so hostile values cannot grow it.
type interner struct {
	mu sync.RWMutex
	m  map[string]string
}

const maxInterned = 4096

func (in *interner) get(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	in.mu.RLock()
	v, ok := in.m[string(b)]
	in.mu.RUnlock()
	if ok {
		return v
	}
	v = string(b)
	in.mu.Lock()
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) < maxInterned {
		in.m[v] = v
	}
	in.mu.Unlock()
	return v
}
