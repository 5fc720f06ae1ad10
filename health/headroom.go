package health

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// said reports whether an answer said what is left of a limit.
func (l RateLimits) said() bool { return l.RemainingRequests >= 0 || l.RemainingTokens >= 0 }

// maxObservationAge is how long an observation that gave no reset time
// counts; after it the provider's headroom is unknown again.
const maxObservationAge = time.Minute

// observation is a provider's rate limits as of one answer, in absolute
// terms: times in unix nanoseconds (0: not said), counts -1 when not said.
type observation struct {
	at               int64
	limReq, remReq   int64
	limTok, remTok   int64
	resetReq, resetT int64
}

// noObservation is an observation that says nothing.
var noObservation = observation{limReq: -1, remReq: -1, limTok: -1, remTok: -1}

// observe turns an answer's rate limits at now into an observation.
func observe(l RateLimits, now time.Time) observation {
	o := observation{at: now.UnixNano(), limReq: l.LimitRequests, remReq: l.RemainingRequests,
		limTok: l.LimitTokens, remTok: l.RemainingTokens}
	if l.ResetRequests >= 0 {
		o.resetReq = o.at + int64(l.ResetRequests)
	}
	if l.ResetTokens >= 0 {
		o.resetT = o.at + int64(l.ResetTokens)
	}
	return o
}

// left is the fraction of the provider's tightest limit left at now (unix
// nanoseconds), from 0 to 1, and whether the observation tells it. A
// limit refills evenly until its reset time, when it is whole again, as
// providers describe their reset headers.
func (o observation) left(now int64) (float64, bool) {
	if o.at == 0 {
		return 1, false
	}
	fr, okR := fraction(o.limReq, o.remReq, o.at, o.resetReq, now)
	ft, okT := fraction(o.limTok, o.remTok, o.at, o.resetT, now)
	if !okR && !okT {
		return 1, false
	}
	return min(fr, ft), true
}

// fraction is what is left of one limit at now: the share observed at at,
// refilled evenly until reset (0: unknown, when the observation counts for
// maxObservationAge only).
func fraction(limit, remaining, at, reset, now int64) (float64, bool) {
	switch {
	case remaining < 0:
		return 1, false
	case reset == 0 && now-at > int64(maxObservationAge):
		return 1, false
	case reset != 0 && now >= reset:
		return 1, true
	}
	f := 1.0
	switch {
	case limit > 0:
		f = min(float64(remaining)/float64(limit), 1)
	case remaining == 0:
		f = 0 // no limit given, but nothing left
	}
	if reset > at && now > at {
		f += (1 - f) * float64(now-at) / float64(reset-at)
	}
	return f, true
}

// limitCell holds a target's latest observation. Writers take turns, for a
// few atomic stores each; readers never lock: a sequence count, odd while
// a write is under way, tells them to read again. Both allocate nothing.
type limitCell struct {
	write                            sync.Mutex
	seq                              atomic.Uint64
	at, limReq, remReq, limTok, remT atomic.Int64
	resetReq, resetT                 atomic.Int64
}

// store writes o.
func (c *limitCell) store(o observation) {
	c.write.Lock()
	c.seq.Add(1)
	c.at.Store(o.at)
	c.limReq.Store(o.limReq)
	c.remReq.Store(o.remReq)
	c.limTok.Store(o.limTok)
	c.remT.Store(o.remTok)
	c.resetReq.Store(o.resetReq)
	c.resetT.Store(o.resetT)
	c.seq.Add(1)
	c.write.Unlock()
}

// load reads the latest observation and the sequence count it was read
// at (even; 0 before the first write).
func (c *limitCell) load() (observation, uint64) {
	for {
		s := c.seq.Load()
		if s&1 == 1 {
			runtime.Gosched()
			continue
		}
		o := observation{at: c.at.Load(), limReq: c.limReq.Load(), remReq: c.remReq.Load(), limTok: c.limTok.Load(),
			remTok: c.remT.Load(), resetReq: c.resetReq.Load(), resetT: c.resetT.Load()}
		if c.seq.Load() == s {
			if s == 0 {
				return noObservation, 0
			}
			return o, s
		}
	}
}

// RateLimited holds the provider out until until, the end of a 429's
// Retry-After or reset, unless an earlier 429 holds it out longer.
func (t *Target) RateLimited(until time.Time) {
	u := until.UnixNano()
	for {
		cur := t.coolUntil.Load()
		if cur >= u || t.coolUntil.CompareAndSwap(cur, u) {
			return
		}
	}
}

// sharedView is every replica's headroom as the store last gave it, by
// provider; it is replaced whole, never changed.
type sharedView struct {
	byProvider map[string]sharedEntry
}

// sharedEntry is one provider's shared headroom.
type sharedEntry struct {
	obs  observation
	cool int64 // unix nanoseconds; 0: none
}

// Load reports, for the named provider at now, the fraction of its platform
// keys' tightest rate limit that is left (1 when nothing tells), whether a
// 429 holds it out, and the moving average of its time to response
// headers (0 before its first answer). It merges this replica's
// observations with every replica's, shared through the store: the newer
// observation counts, and the later cooldown. It reads atomics only and
// allocates nothing, for the request path.
func (r *Registry) Load(name string, now time.Time) (left float64, coolingDown bool, latency time.Duration) {
	ns := now.UnixNano()
	t := r.targets[name]
	obs, cool := r.merged(t, name)
	left, _ = obs.left(ns)
	if t != nil {
		latency = time.Duration(loadSeconds(&t.latencyEWMA) * float64(time.Second))
	}
	return left, cool > ns, latency
}

// merged is the newer of this replica's observation of the named provider
// (t, nil when it is not a target) and the shared one, and the later
// cooldown.
func (r *Registry) merged(t *Target, name string) (observation, int64) {
	obs, cool := noObservation, int64(0)
	if t != nil {
		obs, _ = t.limits.load()
		cool = t.coolUntil.Load()
	}
	if v := r.shared.Load(); v != nil && len(v.byProvider) > 0 {
		if e, ok := v.byProvider[name]; ok {
			if e.obs.at > obs.at {
				obs = e.obs
			}
			cool = max(cool, e.cool)
		}
	}
	return obs, cool
}

// headroomOf is the merged headroom of a target for its snapshot: the
// fraction left, when something tells, and the end of a cooldown still
// running at now.
func (r *Registry) headroomOf(name string, now time.Time) (*float64, *time.Time) {
	obs, cool := r.merged(r.targets[name], name)
	var left *float64
	if f, ok := obs.left(now.UnixNano()); ok {
		f = float64(int(f*1e4)) / 1e4
		left = &f
	}
	var until *time.Time
	if cool > now.UnixNano() {
		u := time.Unix(0, cool).UTC()
		until = &u
	}
	return left, until
}
