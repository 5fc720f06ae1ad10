package proxy

import (
	"bytes"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/quota"
)

// The rate-limit headers veil writes on a platform call, in OpenAI's
// names (fasthttp's normalized spelling).
const (
	headerLimitRequests     = "X-Ratelimit-Limit-Requests"
	headerRemainingRequests = "X-Ratelimit-Remaining-Requests"
	headerResetRequests     = "X-Ratelimit-Reset-Requests"
	headerLimitTokens       = "X-Ratelimit-Limit-Tokens"     //nolint:gosec // G101: a header name, not a credential
	headerRemainingTokens   = "X-Ratelimit-Remaining-Tokens" //nolint:gosec // G101: a header name, not a credential
	headerResetTokens       = "X-Ratelimit-Reset-Tokens"     //nolint:gosec // G101: a header name, not a credential
)

// headerOrganization names the organisation of the key an answer was made
// with: OpenAI's, or on a platform key Anthropic's, which its translator
// renames from headerAnthropicOrganization.
const headerOrganization = "Openai-Organization"

// headerAnthropicOrganization is Anthropic's name for the organisation of
// the key an answer was made with.
const headerAnthropicOrganization = "Anthropic-Organization-Id"

// rateLimitPrefix starts every rate-limit header a provider sends (after
// translation: Anthropic's are renamed to OpenAI's by its translator).
const rateLimitPrefix = "X-Ratelimit-"

// noteRateLimits keeps what a provider said of a platform key's rate
// limits in its target's health, for the capacity overview and load-aware
// routing, as a report of the key's account (rateLimitAccount); the pool
// learns the key's account, and rests the account's keys when a served
// answer says it used up their limit.
func (s *Server) noteRateLimits(a *policy.Attempt, key *keys.Key, h *fasthttp.ResponseHeader, status int) {
	t := s.health.Target(a.Provider.Name())
	if t == nil || key.Source() != billing.PlatformKey {
		return
	}
	account := rateLimitAccount(a.Provider, key, h)
	l := health.RateLimits{
		RemainingRequests: headerInt(h, headerRemainingRequests), RemainingTokens: headerInt(h, headerRemainingTokens),
		LimitRequests: headerInt(h, headerLimitRequests), LimitTokens: headerInt(h, headerLimitTokens),
		ResetRequests: headerReset(h, headerResetRequests), ResetTokens: headerReset(h, headerResetTokens),
	}
	now := time.Now()
	t.ReportAccountRateLimits(account, l, now)
	pool := a.Provider.Platform()
	if pool == nil || pool.Len() < 2 {
		return
	}
	// An answer served with the last of its account's limit rests the
	// account's keys until the limit has room for a call again: the
	// pool's other accounts take the next calls, without a 429 first. A
	// 429 rests its own key only (otherKey), as before: another key may
	// have limits of its own (a project's) that the account does not show.
	if rest := exhaustedFor(l); rest > 0 && status >= 200 && status < 300 {
		pool.Exhausted(key, account, now, rest)
		return
	}
	pool.NoteAccount(key, account)
}

// exhaustedFor is how long an account whose answer said l has no room for
// another call, 0 when it has: a limit used up refills evenly until its
// reset (as health models it), so a request is back after reset/limit,
// and enough tokens for a call, taken as a hundredth of the limit, after
// a hundredth of the reset.
func exhaustedFor(l health.RateLimits) time.Duration {
	var d time.Duration
	if l.RemainingRequests == 0 && l.ResetRequests > 0 {
		d = l.ResetRequests
		if l.LimitRequests > 1 {
			d /= time.Duration(l.LimitRequests)
		}
	}
	if l.RemainingTokens == 0 && l.ResetTokens > 0 {
		d = max(d, l.ResetTokens/100)
	}
	return d
}

// rateLimitAccount is the account whose rate limits a platform answer
// reports: the organisation it names (OpenAI's OpenAI-Organization, or
// Anthropic's anthropic-organization-id, which its translator passes on
// under OpenAI's name; each is sent on every answer, and the keys of one
// organisation share its limits), else, at Azure, the provider as a whole
// (its keys are the two of the one resource its base URL names, sharing
// its deployments' limits), else the key itself. It reads the header
// before ownHeaders drops it, and does not allocate.
func rateLimitAccount(p *provider.Provider, key *keys.Key, h *fasthttp.ResponseHeader) uint64 {
	if org := h.Peek(headerOrganization); len(org) > 0 {
		return health.OrgAccount(org)
	}
	if p.Type() == config.ProviderTypeAzure {
		return 0
	}
	return health.KeyAccount(key.Fingerprint())
}

// ownHeaders makes an answer on a platform key say veil's rate limits,
// not the provider account's: the account's organisation (under OpenAI's
// name or Anthropic's, should a provider pass that on) and project headers
// are dropped, and its x-ratelimit-* headers are replaced by what the
// supplier has left of its tier after the call's reservation (none when it
// has no tier), so that an SDK paces itself by the supplier's budget. An answer on the supplier's own key keeps the provider's
// headers: they are its own account's.
func (x *exchange) ownHeaders(h *fasthttp.ResponseHeader, key *keys.Key) {
	if key == nil || key.Source() != billing.PlatformKey {
		return
	}
	h.Del(headerOrganization)
	h.Del(headerAnthropicOrganization)
	h.Del("Openai-Project")
	delPrefixed(h, rateLimitPrefix)
	requests, tokens := x.ticket.Headroom()
	if requests.Limit == 0 && tokens.Limit == 0 {
		return
	}
	now := time.Now()
	setHeadroom(h, headerLimitRequests, headerRemainingRequests, headerResetRequests, requests, now)
	setHeadroom(h, headerLimitTokens, headerRemainingTokens, headerResetTokens, tokens, now)
}

// setHeadroom writes one window's headroom as its three headers, when the
// tier limits it.
func setHeadroom(h *fasthttp.ResponseHeader, limit, remaining, reset string, hr quota.Headroom, now time.Time) {
	if hr.Limit <= 0 {
		return
	}
	var b [32]byte
	h.SetBytesV(limit, strconv.AppendInt(b[:0], hr.Limit, 10))
	h.SetBytesV(remaining, strconv.AppendInt(b[:0], hr.Remaining, 10))
	h.SetBytesV(reset, appendReset(b[:0], hr.Reset.Sub(now)))
}

// delPrefixed deletes every header whose name starts with prefix, in
// any case.
func delPrefixed(h *fasthttp.ResponseHeader, prefix string) {
	for {
		var found []byte
		for k := range h.All() {
			if len(k) >= len(prefix) && bytes.EqualFold(k[:len(prefix)], []byte(prefix)) {
				found = k
				break
			}
		}
		if found == nil {
			return
		}
		h.DelBytes(found) // copies the name before deleting: found may alias it
	}
}

// headerReset reads a rate-limit reset header: a duration such as "6m0s",
// "1.5s" or "20ms", or a number of seconds; -1 when absent or neither.
func headerReset(h *fasthttp.ResponseHeader, name string) time.Duration {
	v := h.Peek(name)
	if len(v) == 0 {
		return -1
	}
	secs, ok := parseSeconds(v)
	if !ok {
		return -1
	}
	return clampHint(secs)
}

// parseSeconds reads a non-negative duration written as Go writes one
// ("1h2m3.5s", "20ms") or a plain number of seconds, in seconds. Unlike
// time.ParseDuration it does not allocate.
func parseSeconds(v []byte) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	if c := v[len(v)-1]; c >= '0' && c <= '9' {
		// A number alone: seconds. (A failed parse's error allocates,
		// so a unit is looked for first.)
		n, err := strconv.ParseFloat(string(v), 64)
		return n, err == nil && n >= 0
	}
	total := 0.0
	for len(v) > 0 {
		i := 0
		for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
			i++
		}
		j := i
		for j < len(v) && (v[j] < '0' || v[j] > '9') && v[j] != '.' {
			j++
		}
		if i == 0 {
			return 0, false
		}
		n, err := strconv.ParseFloat(string(v[:i]), 64)
		if err != nil {
			return 0, false
		}
		var unit float64
		switch string(v[i:j]) {
		case "h":
			unit = 3600
		case "m":
			unit = 60
		case "s":
			unit = 1
		case "ms":
			unit = 1e-3
		case "us", "µs", "μs":
			unit = 1e-6
		case "ns":
			unit = 1e-9
		default:
			return 0, false
		}
		total += n * unit
		v = v[j:]
	}
	return total, true
}

// appendReset appends d, rounded up to the millisecond, as Go and OpenAI
// write a reset ("20ms", "1.5s", "6m0s", "263h5m0s").
func appendReset(b []byte, d time.Duration) []byte {
	if d <= 0 {
		return append(b, "0s"...)
	}
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1000 {
		return append(strconv.AppendInt(b, ms, 10), "ms"...)
	}
	hours, minutes, secs, frac := ms/3_600_000, ms/60_000%60, ms/1000%60, ms%1000
	if hours > 0 {
		b = append(strconv.AppendInt(b, hours, 10), 'h')
	}
	if hours > 0 || minutes > 0 {
		b = append(strconv.AppendInt(b, minutes, 10), 'm')
	}
	b = strconv.AppendInt(b, secs, 10)
	if frac > 0 {
		b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return append(b, 's')
}
