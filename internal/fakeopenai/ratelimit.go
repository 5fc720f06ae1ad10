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

// account is one of Options.Accounts, with its budget.
type account struct {
	limits Account
	budget budget
}

// initAccounts indexes Options.Accounts by key.
func (s *Server) initAccounts() {
	if len(s.opts.Accounts) == 0 {
		return
	}
	s.accounts = make(map[string]*account)
	for _, a := range s.opts.Accounts {
		acct := &account{limits: a}
		for _, k := range a.Keys {
			s.accounts[k] = acct
		}
	}
}

// accountOf is the account of the key a call presents, nil for none of
// Options.Accounts.
func (s *Server) accountOf(ctx *fasthttp.RequestCtx) *account {
	if s.accounts == nil {
		return nil
	}
	return s.accounts[presentedKey(ctx)]
}

// organization is what the call's answer says in OpenAI-Organization.
func (c *call) organization() string {
	if c.account != nil && c.account.limits.Organization != "" {
		return c.account.limits.Organization
	}
	return openAIOrg
}

// anthropicOrganization is what the call's answer says in
// anthropic-organization-id: its key's account's organisation, as the
// Messages API names the organisation of the key on every answer.
func (c *call) anthropicOrganization() string {
	if c.account != nil && c.account.limits.Organization != "" {
		return c.account.limits.Organization
	}
	return anthropicOrg
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

// window is the budget's window.
func (s *Server) window() time.Duration {
	if s.opts.LimitWindow > 0 {
		return s.opts.LimitWindow
	}
	return DefaultLimitWindow
}

// spend takes a model call from the budget that counts it, the account's
// of its key (Options.Accounts) or the server's own: it sets the call's
// limits, and reports false when there was no room left.
func (s *Server) spend(ctx *fasthttp.RequestCtx, c *call) bool {
	b, requests, tokens := &s.budget, s.opts.RequestLimit, s.opts.TokenLimit
	if a := c.account; a != nil {
		b, requests, tokens = &a.budget, a.limits.RequestLimit, a.limits.TokenLimit
	}
	if requests <= 0 || !c.rt.spendsBudget() {
		return true
	}
	var ok bool
	c.limits, ok = s.takeBudget(b, requests, tokens, estimateTokens(ctx), time.Now())
	return ok
}

// takeBudget takes one request and tokens (estimated from the body, as
// OpenAI counts them before answering) from b, a budget of requests and
// tokens (none when zero) per window, in the window holding now. It
// reports the state after taking, or, when the window has no room left,
// the state without taking and false.
func (s *Server) takeBudget(b *budget, requests, tokens int, cost int64, now time.Time) (limitState, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := s.window()
	if b.start.IsZero() || now.Sub(b.start) >= w {
		b.start, b.requests, b.tokens = now, 0, 0
	}
	limTok := int64(tokens)
	ok := b.requests < int64(requests) && (limTok <= 0 || b.tokens+cost <= limTok)
	if ok {
		b.requests++
		b.tokens += cost
	}
	st := limitState{on: true, limReq: int64(requests), remReq: int64(requests) - b.requests,
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
