package proxy

import (
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/policy"
)

// maxInFlightKeys bounds the suppliers tracked per process; beyond it, a
// supplier never seen before is not capped rather than tracked.
const maxInFlightKeys = 1 << 16

// inflightKey is one supplier's calls to one provider. Both strings are
// shared (the provider's configured name, the interned supplier ID), so a
// lookup allocates nothing.
type inflightKey struct {
	provider, supplier string
}

// inflight counts each supplier's calls in flight to each provider, so that
// one supplier's slow or stalled calls cannot take more than its share of a
// provider's connections: a call beyond the supplier's cap is not sent.
type inflight struct {
	mu sync.Mutex
	n  map[inflightKey]*int
}

// acquire takes a slot for k unless k holds limit already; it reports
// whether it did. A limit below one means no cap.
func (f *inflight) acquire(k inflightKey, limit int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.n[k]
	if c == nil {
		if len(f.n) >= maxInFlightKeys {
			return true // not tracked: release finds no counter
		}
		if f.n == nil {
			f.n = make(map[inflightKey]*int)
		}
		c = new(int)
		f.n[k] = c
	}
	if limit > 0 && *c >= limit {
		return false
	}
	*c++
	return true
}

// release gives back a slot acquire took.
func (f *inflight) release(k inflightKey) {
	f.mu.Lock()
	if c := f.n[k]; c != nil && *c > 0 {
		*c--
	}
	f.mu.Unlock()
}

// inFlightLimit is the supplier's cap on calls in flight to one provider:
// its tier's, else limits.supplier_in_flight.
func (s *Server) inFlightLimit(x *exchange) int {
	if x.rt.Quota != nil {
		if t := x.rt.Quota.Tier(x.supplier, x.start); t != nil && t.UpstreamInFlight > 0 {
			return t.UpstreamInFlight
		}
	}
	return s.limits.SupplierInFlight
}

// takeSlot takes the supplier's slot for a's provider, releasing the one
// it held for an earlier target; it returns the error to answer with when
// the supplier is at its cap there.
func (s *Server) takeSlot(x *exchange, a *policy.Attempt) *Error {
	s.releaseSlot(x)
	k := inflightKey{provider: a.Provider.Name(), supplier: s.interns.get(x.supplier)}
	limit := s.inFlightLimit(x)
	if !s.inflight.acquire(k, limit) {
		s.metrics.SupplierOverloaded(a.Provider.Name())
		return &Error{Status: fasthttp.StatusTooManyRequests, Type: "requests", Code: codeSupplierInFlight,
			Message: "supplier " + string(x.supplier) + " already has " + strconv.Itoa(limit) + " calls in flight to provider " +
				a.Provider.Name() + "; retry when some have finished"}
	}
	x.slot, x.holdsSlot = k, true
	return nil
}

// releaseSlot gives back the slot the exchange holds, if any.
func (s *Server) releaseSlot(x *exchange) {
	if x.holdsSlot {
		s.inflight.release(x.slot)
		x.holdsSlot = false
	}
}

// codeSupplierInFlight is the error code of a call beyond its supplier's
// cap on calls in flight to a provider.
const codeSupplierInFlight = "supplier_in_flight_limit"
