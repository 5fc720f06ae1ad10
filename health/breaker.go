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

// Breaker is a target's circuit breaker: after Failures consecutive
// failures it opens, refusing the target for Cooldown; then it lets one
// probe through (half-open), which closes it on success or opens it again.
// Rate limits (429) and key refusals (401, 403) are not the target's
// failure and do not count.
type Breaker struct {
	Failures int
	Cooldown time.Duration

	mu          sync.Mutex
	state       string
	consecutive int
	openedAt    time.Time
	probing     bool
}

// Allow reports whether the target may be tried at now. In half-open, only
// one probe at a time is allowed.
func (b *Breaker) Allow(now time.Time) bool {
	if b == nil || b.Failures <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Open:
		if now.Sub(b.openedAt) < b.Cooldown {
			return false
		}
		b.state, b.probing = HalfOpen, true
		return true
	case HalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	default:
		return true
	}
}

// Available reports whether Allow would let a call through at now, without
// taking the half-open probe.
func (b *Breaker) Available(now time.Time) bool {
	if b == nil || b.Failures <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Open:
		return now.Sub(b.openedAt) >= b.Cooldown
	case HalfOpen:
		return !b.probing
	default:
		return true
	}
}

// Record updates the breaker with an attempt's outcome.
func (b *Breaker) Record(o Outcome, now time.Time) {
	if b == nil || b.Failures <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch o {
	case Success:
		b.state, b.consecutive, b.probing = Closed, 0, false
	case Failure:
		b.consecutive++
		if b.state == HalfOpen || b.consecutive >= b.Failures {
			b.state, b.openedAt, b.probing = Open, now, false
		}
	}
}

// State is closed, open or half_open.
func (b *Breaker) State() string {
	if b == nil {
		return Closed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == "" {
		return Closed
	}
	return b.state
}
