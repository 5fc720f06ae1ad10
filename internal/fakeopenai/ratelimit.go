package fakeopenai

import (
	"strconv"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// DefaultLimitWindow is the window of Options.RequestLimit and TokenLimit
// when Options.LimitWindow is zero.
const DefaultLimitWindow = time.Minute

// budget is the fake's own rate limit: requests and tokens used in the
// current fixed window.
type budget struct {
	mu       sync.Mutex
	start    time.Time
	requests int64
	tokens   int64
}

// limitState is what a call's x-ratelimit-* headers say when the fake
// keeps a budget.
type limitState struct {
	on                     bool
	limReq, remReq         int64
	limTok, remTok         int64
	reset                  time.Duration
	limReqText, limTokText string
}

// limited reports whether the fake keeps a budget (Options.RequestLimit).
func (s *Server) limited() bool { return s.opts.RequestLimit > 0 }

// window is the budget's window.
func (s *Server) window() time.Duration {
	if s.opts.LimitWindow > 0 {
		return s.opts.LimitWindow
	}
	return DefaultLimitWindow
}

// takeBudget takes one request and tokens (estimated from the body, as
// OpenAI counts them before answering) from the window holding now. It
// reports the state after taking, or, when the window has no room left,
// the state without taking and false.
func (s *Server) takeBudget(tokens int64, now time.Time) (limitState, bool) {
	b := &s.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	w := s.window()
	if b.start.IsZero() || now.Sub(b.start) >= w {
		b.start, b.requests, b.tokens = now, 0, 0
	}
	limTok := int64(s.opts.TokenLimit)
	ok := b.requests < int64(s.opts.RequestLimit) && (limTok <= 0 || b.tokens+tokens <= limTok)
	if ok {
		b.requests++
		b.tokens += tokens
	}
	st := limitState{on: true, limReq: int64(s.opts.RequestLimit), remReq: int64(s.opts.RequestLimit) - b.requests,
		reset: max(b.start.Add(w).Sub(now), time.Millisecond)}
	st.limTok, st.remTok = 30000000, 29999000
	if limTok > 0 {
		st.limTok, st.remTok = limTok, limTok-b.tokens
	}
	st.limReqText, st.limTokText = strconv.FormatInt(st.limReq, 10), strconv.FormatInt(st.limTok, 10)
	return st, ok
}

// estimateTokens is the tokens a call takes from the budget: a quarter of
// its body's bytes plus max_tokens, about as OpenAI estimates before
// answering.
func estimateTokens(ctx *fasthttp.RequestCtx) int64 {
	body := requestBody(ctx)
	return int64(len(body)/4) + gjson.GetBytes(body, "max_tokens").Int()
}

// spendsBudget reports whether calls to r count against the budget: the
// OpenAI endpoints that run a model.
func (r route) spendsBudget() bool {
	switch r {
	case routeChat, routeCompletions, routeEmbeddings, routeResponses:
		return true
	}
	return false
}

// overBudget answers a call the budget has no room for: 429
// rate_limit_exceeded with Retry-After until the window is whole again.
func (s *Server) overBudget(ctx *fasthttp.RequestCtx, c *call) {
	s.budgetRefusals.Add(1)
	f := Fault{Kind: KindRateLimit, RetryAfter: c.limits.reset}
	s.writeRateLimited(ctx, c, f)
}

// resetTokens is the x-ratelimit-reset-tokens value.
func (st limitState) resetTokens() string {
	if !st.on {
		return "2ms"
	}
	return st.reset.String()
}

// headers are the x-ratelimit-* values of a call that the budget
// counted.
func (st limitState) headers() (limReq, remReq, resetReq, limTok, remTok string) {
	return st.limReqText, strconv.FormatInt(max(st.remReq, 0), 10), st.reset.String(), st.limTokText,
		strconv.FormatInt(max(st.remTok, 0), 10)
}
