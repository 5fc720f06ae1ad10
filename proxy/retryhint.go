package proxy

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// retryAfter reads how long a 429 asks to wait: retry-after-ms, or
// Retry-After in seconds or as an HTTP date; 5 seconds when absent.
func retryAfter(h *fasthttp.ResponseHeader) time.Duration {
	if v := h.Peek("Retry-After-Ms"); len(v) > 0 {
		if ms, err := strconv.ParseFloat(string(v), 64); err == nil && ms >= 0 {
			return clampHint(ms / 1000)
		}
	}
	if v := h.Peek("Retry-After"); len(v) > 0 {
		if secs, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return clampHint(float64(secs))
		}
		if t, err := fasthttp.ParseHTTPDate(v); err == nil {
			return clampHint(time.Until(t).Seconds())
		}
	}
	return 5 * time.Second
}

// maxRetryHint bounds what a provider's retry hint can say: a day. Callers
// bound it further (limits.max_retry_wait, provider.MaxCooldown).
const maxRetryHint = 24 * time.Hour

// clampHint turns a hint in seconds into a duration in [0, maxRetryHint],
// so that absurd hints (1e300, an overflowing integer) cannot wrap around.
func clampHint(secs float64) time.Duration {
	switch {
	case !(secs > 0): // negative, zero or NaN
		return 0
	case secs >= maxRetryHint.Seconds():
		return maxRetryHint
	}
	return time.Duration(secs * float64(time.Second))
}

// headerInt reads a non-negative integer header; -1 when absent or not a
// number. It allocates nothing, whatever the header holds.
func headerInt(h *fasthttp.ResponseHeader, name string) int64 {
	v := h.Peek(name)
	if len(v) == 0 || len(v) > 18 { // 18 digits cannot overflow
		return -1
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// retryHint is how long a 429 or 503 asks to wait (retry-after-ms, or
// Retry-After in seconds or as a date); 0 when it says nothing.
func retryHint(h *fasthttp.ResponseHeader) time.Duration {
	if len(h.Peek("Retry-After-Ms")) == 0 && len(h.Peek("Retry-After")) == 0 {
		return 0
	}
	return retryAfter(h)
}
