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

// observation is an account's rate limits as of one answer, in absolute
// terms: times in unix nanoseconds (0: not said), counts -1 when not said.
type observation struct {
	// acct is the account observed (see Account); 0 is the unnamed one.
	acct             uint64
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

// live reports whether the observation still counts at now (unix
// nanoseconds) among an account's others: until maxObservationAge after
// the later of the answer and its reset times. An account that stopped
// answering (a key taken out of the pool, an organisation no longer used)
// so drops out of its provider's headroom instead of counting as whole
// for ever.
func (o observation) live(now int64) bool {
	return o.at != 0 && now-max(o.at, o.resetReq, o.resetT) <= int64(maxObservationAge)
}

// limitCell holds an account's latest observation. Writers take turns, for
// a few atomic stores each; readers never lock: a sequence count, odd
// while a write is under way, tells them to read again. Both allocate
// nothing.
type limitCell struct {
	write                            sync.Mutex
	seq                              atomic.Uint64
	acct                             atomic.Uint64
	at, limReq, remReq, limTok, remT atomic.Int64
	resetReq, resetT                 atomic.Int64
}

// store writes o.
func (c *limitCell) store(o observation) {
	c.write.Lock()
	c.seq.Add(1)
	c.acct.Store(o.acct)
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
		o := observation{acct: c.acct.Load(), at: c.at.Load(), limReq: c.limReq.Load(), remReq: c.remReq.Load(), limTok: c.limTok.Load(),
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
