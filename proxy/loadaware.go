package proxy

import (
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
)

// noteCooldown holds a provider out, for every replica once shared, after
// a 429 on a platform key that leaves no other key of its pool free: until
// the 429's Retry-After or, without one, the reset of the limit it used up
// (ADR 0028). A supplier's own key says nothing of the platform's
// capacity. Any other answer costs a status check.
func (s *Server) noteCooldown(a *policy.Attempt, key *keys.Key, h *fasthttp.ResponseHeader, status int) {
	if status != fasthttp.StatusTooManyRequests || key.Source() != billing.PlatformKey {
		return
	}
	t := s.health.Target(a.Provider.Name())
	if t == nil {
		return
	}
	now := time.Now()
	if pool := a.Provider.Platform(); pool.Len() > 1 && pool.Other(key, now) != nil {
		return // another key of the pool takes over (otherKey)
	}
	t.RateLimited(now.Add(cooldown(h)))
}

// cooldown is how long a 429 holds a provider out: its Retry-After, else
// the reset of the limit it used up, else five seconds; at most
// provider.MaxCooldown.
func cooldown(h *fasthttp.ResponseHeader) time.Duration {
	d := retryHint(h)
	if d <= 0 {
		if headerInt(h, headerRemainingRequests) == 0 {
			d = headerReset(h, headerResetRequests)
		}
		if headerInt(h, headerRemainingTokens) == 0 {
			d = max(d, headerReset(h, headerResetTokens))
		}
	}
	if d <= 0 {
		d = 5 * time.Second
	}
	return min(d, provider.MaxCooldown)
}

// noProviderInRegion is veil's answer to a call that a supplier's strict
// region cannot serve: 503, naming the region, as no provider elsewhere may
// take it.
func noProviderInRegion(err error, supplier []byte) *Error {
	region := "?"
	var re *policy.RegionError
	if errors.As(err, &re) {
		region = re.Region
	}
	return &Error{Status: fasthttp.StatusServiceUnavailable, Type: typeUnavailable, Code: "no_provider_in_region",
		Message: "No provider in region " + region + " can serve this request for supplier " + string(supplier) +
			", whose calls must stay in that region (region_strict); veil sent it nowhere else."}
}
