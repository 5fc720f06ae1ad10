package health

import (
	"sync/atomic"
	"time"
)

// maxSlots is the most slots a counts window has.
const maxSlots = 10

// Geometry of a target's window: six ten-second slots make the one-minute
// success rate.
const (
	windowSlots = 6
	slotWidth   = 10 * time.Second
)

// counts is a sliding window of successes and failures in fixed slots of
// a width the caller gives, summed over the last few of them; the width
// and the number of slots summed (up to maxSlots) must stay the same for
// one window between resets. It takes no lock: a slot is claimed for its
// span by the first writer that sees it stale, and a count racing with the
// claim may be lost, which a health statistic can afford; a caller that
// holds a lock of its own loses nothing.
type counts struct {
	slots [maxSlots]countSlot
}

type countSlot struct {
	n      atomic.Int64 // slot number + 1; 0 unused
	ok     atomic.Uint64
	failed atomic.Uint64
}

// slotNumber numbers the slot of now for slots of width, from 1.
func slotNumber(now time.Time, width time.Duration) int64 {
	return now.UnixNano()/int64(max(width, 1)) + 1
}

// add counts one success or failure at now.
func (w *counts) add(failed bool, now time.Time, width time.Duration) {
	n := slotNumber(now, width)
	i := n % maxSlots
	if i < 0 {
		i += maxSlots
	}
	sl := &w.slots[i]
	if e := sl.n.Load(); e != n {
		if sl.n.CompareAndSwap(e, n) {
			sl.ok.Store(0)
			sl.failed.Store(0)
		}
	}
	if failed {
		sl.failed.Add(1)
	} else {
		sl.ok.Add(1)
	}
}

// sum adds the last slots of width up to and including the one of now.
func (w *counts) sum(now time.Time, width time.Duration, slots int64) (ok, failed uint64) {
	n := slotNumber(now, width)
	for i := range w.slots {
		sl := &w.slots[i]
		if e := sl.n.Load(); e > n-slots && e <= n {
			ok += sl.ok.Load()
			failed += sl.failed.Load()
		}
	}
	return ok, failed
}

// reset forgets every count.
func (w *counts) reset() {
	for i := range w.slots {
		w.slots[i].n.Store(0)
	}
}

// window counts a target's successes and failures over the last minute.
type window struct {
	c counts
}

// add counts one outcome; rate limits and key rejections are not counted,
// as they say nothing about the target's health.
func (w *window) add(o Outcome, now time.Time) {
	if o == Success || o == Failure {
		w.c.add(o == Failure, now, slotWidth)
	}
}

// sum adds the slots of the last minute as of now.
func (w *window) sum(now time.Time) (ok, failed uint64) {
	return w.c.sum(now, slotWidth, windowSlots)
}
