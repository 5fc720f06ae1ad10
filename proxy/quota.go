package proxy

import (
	"context"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/quota"
)

// reserve is admission's quota step: a call planned on platform keys is
// held to the caps of the supplier's tier and reserved against its quota.
func (s *Server) reserve(ctx *fasthttp.RequestCtx, x *exchange) bool {
	if x.rt.Quota == nil || x.plan[0].Source != billing.PlatformKey {
		return true
	}
	if e := s.capTier(x); e != nil {
		x.fail(ctx, e)
		return false
	}
	if !s.reserveQuota(ctx, x) {
		return false
	}
	x.admitted = true
	return true
}

// reserveQuota reserves a platform call against the supplier's tier before
// it is sent. Out of quota, a tier that switches to the client's key re-plans the
// call on the supplier's own key when it has one; otherwise the client gets
// 429 with Retry-After and X-RateLimit-* headers. It reports false when it
// answered the client itself.
func (s *Server) reserveQuota(ctx *fasthttp.RequestCtx, x *exchange) bool {
	ticket, refusal, err := x.rt.Quota.Admit(context.Background(), s.quotaRequest(x, &x.plan[0]))
	if err != nil {
		x.fail(ctx, &Error{Status: fasthttp.StatusServiceUnavailable, Type: typeUnavailable, Code: "quota_unavailable",
			Message: "veil cannot check the supplier's quota right now; try again shortly"})
		return false
	}
	if refusal == nil {
		x.ticket = ticket
		return true
	}
	limit := refusal.Denial.Limit
	if refusal.Tier.OnExhausted == config.ExhaustedSwitchToClient && s.switchToClient(x) {
		x.reason = "quota_exhausted:" + limit
		// Served on the supplier's key by its tier, not by the split of a
		// migration under way: the migration's gates do not count it.
		x.migration = migration{}
		s.log.Info("platform quota exhausted; serving on the supplier's own key", zap.ByteString("request_id", x.reqID),
			zap.ByteString("supplier", x.supplier), zap.String("tier", refusal.Tier.Name), zap.String("limit", limit))
		if s.migrations != nil {
			s.migrations.Exhausted(s.interns.get(x.supplier), x.plan[0].Provider.Name())
		}
		return true
	}
	s.metrics.QuotaRefused(refusal.Tier.Name, limit)
	h := &ctx.Response.Header
	h.Set("Retry-After", strconv.Itoa(refusal.RetryAfterSeconds()))
	if refusal.RequestsLimit > 0 {
		h.Set("X-RateLimit-Limit-Requests", strconv.FormatInt(refusal.RequestsLimit, 10))
		h.Set("X-RateLimit-Remaining-Requests", strconv.FormatInt(refusal.RequestsRemaining, 10))
	}
	if refusal.TokensLimit > 0 {
		h.Set("X-RateLimit-Limit-Tokens", strconv.FormatInt(refusal.TokensLimit, 10))
		h.Set("X-RateLimit-Remaining-Tokens", strconv.FormatInt(refusal.TokensRemaining, 10))
	}
	x.fail(ctx, &Error{Status: fasthttp.StatusTooManyRequests, Type: "requests", Code: "quota_exceeded",
		Message: "supplier " + string(x.supplier) + " has used its " + refusal.Tier.Name + " tier's " + limitText(limit) +
			"; retry after " + strconv.Itoa(refusal.RetryAfterSeconds()) + "s"})
	return false
}

// capTier holds a platform call to the caps of the supplier's tier: more
// choices or output tokens than the tier allows are refused, and a call
// that sets no output limit is sent with the tier's.
func (s *Server) capTier(x *exchange) *Error {
	if !x.ep.understood || x.ep == epEmbeddings {
		return nil
	}
	t := x.rt.Quota.Tier(x.supplier, time.Now())
	if t == nil {
		return nil
	}
	if t.MaxN > 0 && x.fields.N > t.MaxN {
		return &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "integer_above_max_value", Param: "n",
			Message: "supplier " + string(x.supplier) + "'s " + t.Name + " tier allows at most n = " + strconv.Itoa(t.MaxN) +
				" choices per call on WedSync's keys"}
	}
	if t.MaxTokens <= 0 {
		return nil
	}
	if x.fields.MaxTokens > t.MaxTokens {
		return &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "integer_above_max_value", Param: "max_tokens",
			Message: "supplier " + string(x.supplier) + "'s " + t.Name + " tier allows at most " + strconv.Itoa(t.MaxTokens) +
				" output tokens per call on WedSync's keys"}
	}
	if x.fields.MaxTokens > 0 {
		return nil
	}
	field := "max_completion_tokens"
	switch x.ep {
	case epCompletions:
		field = "max_tokens"
	case epResponses:
		field = "max_output_tokens"
	}
	var limit [20]byte
	// The body was scanned already, so setting a member cannot fail.
	if b, err := jsonfield.SetRaw(x.scratch[:0], x.body, field, strconv.AppendInt(limit[:0], int64(t.MaxTokens), 10)); err == nil {
		// x.body may live in bodyBuf: the two buffers swap roles.
		x.bodyBuf, x.scratch = b, x.bodyBuf[:0]
		x.body = b
		x.fields.MaxTokens = t.MaxTokens
	}
	return nil
}

// quotaRequest is what an attempt is expected to take, priced at the
// costliest of it and the platform targets planned after it.
func (s *Server) quotaRequest(x *exchange, a *policy.Attempt) quota.Request {
	later := x.quotaLater[:0]
	for i := range x.plan {
		if b := &x.plan[i]; b != a && b.Source == billing.PlatformKey && len(later) < cap(later) {
			later = append(later, quota.Target{Provider: b.Provider.Name(), Model: s.interns.get(b.Model)})
		}
	}
	return quota.Request{
		Supplier:   x.supplier,
		Provider:   a.Provider.Name(),
		Model:      s.interns.get(a.Model),
		Prompt:     int64(len(x.body) / 4), // about four bytes of JSON per prompt token
		MaxTokens:  int64(x.fields.MaxTokens),
		Completion: x.ep != epEmbeddings,
		Later:      later,
		ID:         string(x.reqID),
		Now:        time.Now(),
	}
}

// admitFallback admits a platform attempt that follows client attempts
// (hybrid mode, or a client supplier allowed to fall back). Out of quota,
// it is a 429 for this attempt; there is no client key left to switch to.
func (s *Server) admitFallback(x *exchange, a *policy.Attempt) *Error {
	if e := s.capTier(x); e != nil {
		return e
	}
	req := s.quotaRequest(x, a)
	// A client-mode supplier's own key failing: its calls are held to its
	// tier's fallback allowance, not its (usually small) platform tier. A
	// hybrid supplier's platform calls are its platform tier's.
	req.Fallback = x.rt.Policy.Mode(x.supplier) == billing.ModeClient
	ticket, refusal, err := x.rt.Quota.Admit(context.Background(), req)
	switch {
	case err != nil:
		return &Error{Status: fasthttp.StatusServiceUnavailable, Type: typeUnavailable, Code: "quota_unavailable",
			Message: "veil cannot check the supplier's quota right now; try again shortly"}
	case refusal != nil:
		s.metrics.QuotaRefused(refusal.Tier.Name, refusal.Denial.Limit)
		return &Error{Status: fasthttp.StatusTooManyRequests, Type: "requests", Code: "quota_exceeded",
			Message: "supplier " + string(x.supplier) + "'s own key could not serve the call, and its " + refusal.Tier.Name +
				" tier's " + limitText(refusal.Denial.Limit) + " for platform keys is used up"}
	}
	x.ticket, x.admitted = ticket, true
	x.reason = "platform_fallback"
	return nil
}

// switchToClient re-plans the call on the supplier's own keys, if the
// supplier has one for the first provider.
func (s *Server) switchToClient(x *exchange) bool {
	if s.keys == nil {
		return false
	}
	if _, err := s.keys.Get(context.Background(), string(x.supplier), x.plan[0].Provider.Name()); err != nil {
		return false
	}
	plan, err := x.rt.Policy.Plan(x.planBuf[:0], &policy.Request{Model: x.fields.Model, Understood: x.ep.understood,
		Supplier: x.supplier, Source: billing.ClientKey, Workflow: []byte(x.workflow), Now: x.start, Load: s.health, Keys: s.keyPresence})
	if err != nil {
		return false
	}
	x.plan = plan
	return true
}

func limitText(limit string) string {
	switch limit {
	case quota.LimitRequests:
		return "requests per minute"
	case quota.LimitTokens:
		return "tokens per minute"
	case quota.LimitMonthTokens:
		return "monthly tokens"
	case quota.LimitMonthCost:
		return "monthly budget"
	case quota.LimitConcurrent:
		return "concurrent requests"
	}
	return limit
}

// settle hands the call's real usage to the quota, in the background.
func (s *Server) settle(x *exchange, costMicros int64) {
	if x.rt.Quota == nil || !x.ticket.Active() {
		return
	}
	ok := x.status/100 == 2 && x.err == ""
	x.rt.Quota.SettleAsync(x.ticket, ok, x.usage.tokens.Prompt, x.usage.tokens.Completion, costMicros)
}
