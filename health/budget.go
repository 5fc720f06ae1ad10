package health

import (
	"sync"
	"time"
)

// Budget bounds retries to a target so that an outage does not multiply
// its load: within each window, retries may be at most Ratio of the
// requests plus Floor.
type Budget struct {
	Ratio  float64
	Floor  int
	Window time.Duration

	mu       sync.Mutex
	start    time.Time
	requests int
	retries  int
	denied   int
}

// Request counts a first attempt.
func (b *Budget) Request(now time.Time) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.roll(now)
	b.requests++
	b.mu.Unlock()
}

// Retry reports whether one more retry fits, and counts it when it does.
func (b *Budget) Retry(now time.Time) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(now)
	if float64(b.retries) >= b.Ratio*float64(b.requests)+float64(b.Floor) {
		b.denied++
		return false
	}
	b.retries++
	return true
}

// Denied is how many retries the budget refused in the current window.
func (b *Budget) Denied() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.denied
}

func (b *Budget) roll(now time.Time) {
	if now.Sub(b.start) >= b.Window {
		b.start, b.requests, b.retries, b.denied = now, 0, 0, 0
	}
}
