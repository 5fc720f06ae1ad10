package health

import (
	"sync"
	"time"
)

// Breaker states.
const (
	Closed   = "closed"
	Open     = "open"
	HalfOpen = "half_open"
)

// Breaker is a target's circuit breaker. It opens on either of two
// triggers: Failures consecutive failures, or a failure share of at least
// ErrorRate among at least MinRequests answered attempts within the
// sliding Window. Open, it refuses the target for Cooldown; then it lets
// one probe through (half-open), which closes it on success or opens it
// again. Rate limits (429) and key refusals (401, 403) are not the
// target's failure and count towards neither trigger.
type Breaker struct {
	// Failures is how many consecutive failures open the breaker; zero
	// turns this trigger off.
	Failures int
	// Cooldown is how long an open breaker refuses the target.
	Cooldown time.Duration
	// Window is the span over which the failure share is measured, in ten
	// slots of a tenth each; zero turns the error-rate trigger off.
	Window time.Duration
	// MinRequests is how many answered attempts the window needs before
	// its failure share may open the breaker; below one means one.
	MinRequests int
	// ErrorRate is the failure share, from 0 to 1, that opens the breaker;
	// zero turns the error-rate trigger off.
	ErrorRate float64

	mu          sync.Mutex
	state       string
	consecutive int
	openedAt    time.Time
	probing     bool
	recent      counts // guarded by mu
}

// trigger says why a breaker opened.
type trigger uint8

const (
	noTrigger trigger = iota
	byConsecutive
	byErrorRate
	byProbe // failed while open or half-open
)

// change is what one recorded outcome did to a breaker's state, with the
// counts that made it open. It is a value so that recording allocates
// nothing.
type change struct {
	from, to      string
	trigger       trigger
	consecutive   int
	failed, total int
}

// alerting reports whether the change takes the target out (closed to
// open) or brings it back (open or half-open to closed); a failed
// half-open probe and the start of the probe are not news.
func (c change) alerting() bool {
	return c.from == Closed && c.to == Open || c.from != "" && c.from != Closed && c.to == Closed
}

// off reports whether the breaker never refuses anything.
func (b *Breaker) off() bool {
	return b == nil || b.Failures <= 0 && !b.rateOn()
}

func (b *Breaker) rateOn() bool { return b.ErrorRate > 0 && b.Window > 0 }

// current is the state, with the zero value read as closed. The caller
// holds mu.
func (b *Breaker) current() string {
	if b.state == "" {
		return Closed
	}
	return b.state
}

// Allow reports whether the target may be tried at now. In half-open, only
// one probe at a time is allowed.
func (b *Breaker) Allow(now time.Time) bool {
	return b.pass(now, true)
}

// Available reports whether Allow would let a call through at now, without
// taking the half-open probe.
func (b *Breaker) Available(now time.Time) bool {
	return b.pass(now, false)
}

// pass reports whether a call may go through at now; with take, a call
// that goes through while the breaker is not closed is its half-open
// probe.
func (b *Breaker) pass(now time.Time, take bool) bool {
	if b.off() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var ok bool
	switch b.state {
	case Open:
		ok = now.Sub(b.openedAt) >= b.Cooldown
	case HalfOpen:
		ok = !b.probing
	default:
		return true
	}
	if ok && take {
		b.state, b.probing = HalfOpen, true
	}
	return ok
}

// Record updates the breaker with an attempt's outcome.
func (b *Breaker) Record(o Outcome, now time.Time) {
	b.record(o, now)
}

// record is Record that reports what it did to the state.
func (b *Breaker) record(o Outcome, now time.Time) change {
	if b.off() || o != Success && o != Failure {
		return change{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := change{from: b.current()}
	switch o {
	case Success:
		if c.from != Closed {
			b.recent.reset() // a closed breaker starts a fresh window
		}
		b.state, b.consecutive, b.probing = Closed, 0, false
		if b.rateOn() {
			b.recent.add(false, now, b.rateSlot())
		}
	case Failure:
		b.consecutive++
		switch c.from {
		case HalfOpen, Open:
			// The half-open probe failed, or a call made while open (the
			// last target left) did: the cooldown starts again.
			c.trigger = byProbe
		default:
			if b.Failures > 0 && b.consecutive >= b.Failures {
				c.trigger, c.consecutive = byConsecutive, b.consecutive
				break
			}
			if !b.rateOn() {
				break
			}
			b.recent.add(true, now, b.rateSlot())
			failed, total := b.rateCounts(now)
			if total >= max(b.MinRequests, 1) && float64(failed) >= b.ErrorRate*float64(total) {
				c.trigger, c.failed, c.total = byErrorRate, failed, total
			}
		}
		if c.trigger != noTrigger {
			b.state, b.openedAt, b.probing = Open, now, false
			b.recent.reset()
		}
	}
	c.to = b.current()
	return c
}

// State is closed, open or half_open.
func (b *Breaker) State() string {
	if b == nil {
		return Closed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.current()
}

// rateBuckets is how many slots a breaker's error-rate window has: the
// window slides by a tenth of its span.
const rateBuckets = 10

// rateSlot is the width of a slot of the error-rate window.
func (b *Breaker) rateSlot() time.Duration { return b.Window / rateBuckets }

// rateCounts returns the failures and all answered attempts of the
// error-rate window ending at now. The caller holds mu.
func (b *Breaker) rateCounts(now time.Time) (failed, total int) {
	ok, bad := b.recent.sum(now, b.rateSlot(), rateBuckets)
	return int(bad), int(ok + bad)
}
