package health

import (
	"sync/atomic"
	"time"
)

// Window geometry: six ten-second slots make the one-minute success rate.
const (
	windowSlots = 6
	slotSeconds = 10
)

// window counts successes and failures over the last minute in fixed
// slots, without locks. A slot is claimed for its ten seconds by the first
// writer that sees it stale; a count racing with the claim may be lost,
// which a health statistic can afford.
type window struct {
	slots [windowSlots]slot
}

type slot struct {
	epoch  atomic.Int64 // slot number (unix seconds / slotSeconds) + 1; 0 unused
	ok     atomic.Uint64
	failed atomic.Uint64
}

// add counts one outcome; rate limits and key rejections are not counted,
// as they say nothing about the target's health.
func (w *window) add(o Outcome, now time.Time) {
	if o != Success && o != Failure {
		return
	}
	n := now.Unix()/slotSeconds + 1
	sl := &w.slots[n%windowSlots]
	if e := sl.epoch.Load(); e != n {
		if sl.epoch.CompareAndSwap(e, n) {
			sl.ok.Store(0)
			sl.failed.Store(0)
		}
	}
	if o == Success {
		sl.ok.Add(1)
	} else {
		sl.failed.Add(1)
	}
}

// sum adds the slots of the last minute as of now.
func (w *window) sum(now time.Time) (ok, failed uint64) {
	n := now.Unix()/slotSeconds + 1
	for i := range w.slots {
		sl := &w.slots[i]
		if e := sl.epoch.Load(); e > n-windowSlots && e <= n {
			ok += sl.ok.Load()
			failed += sl.failed.Load()
		}
	}
	return ok, failed
}
