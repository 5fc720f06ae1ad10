package health

import (
	"sync"
	"testing"
	"time"
)

func TestCounts(t *testing.T) {
	t0 := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	type event struct {
		at     time.Duration
		failed bool
	}
	tests := []struct {
		name       string
		width      time.Duration
		slots      int64
		events     []event
		at         time.Duration
		ok, failed uint64
	}{
		{"nothing counted", time.Second, 10, nil, 0, 0, 0},
		{"one slot", time.Second, 10, []event{{0, false}, {0, true}, {500 * time.Millisecond, false}}, time.Second / 2, 2, 1},
		{"all slots of the span", time.Second, 10, []event{{0, true}, {9 * time.Second, false}}, 9 * time.Second, 1, 1},
		{"the oldest slot ages out", time.Second, 10, []event{{0, true}, {9 * time.Second, false}}, 10 * time.Second, 1, 0},
		{"fewer slots than the array", 10 * time.Second, 6, []event{{0, true}, {55 * time.Second, false}}, 59 * time.Second, 1, 1},
		{"six slots end sooner", 10 * time.Second, 6, []event{{0, true}, {55 * time.Second, false}}, 60 * time.Second, 1, 0},
		{"a reused slot starts from zero", time.Second, 10, []event{{0, true}, {0, true}, {10 * time.Second, false}}, 10 * time.Second, 1, 0},
		{"future slots are left out", time.Second, 10, []event{{0, false}, {3 * time.Second, true}}, time.Second, 1, 0},
		{"a zero width counts per nanosecond", 0, 10, []event{{0, false}, {time.Nanosecond, false}, {20, true}}, 20, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c counts
			for _, e := range tc.events {
				c.add(e.failed, t0.Add(e.at), tc.width)
			}
			if ok, failed := c.sum(t0.Add(tc.at), tc.width, tc.slots); ok != tc.ok || failed != tc.failed {
				t.Errorf("sum = %d ok, %d failed; want %d, %d", ok, failed, tc.ok, tc.failed)
			}
		})
	}
}

func TestCountsBefore1970(t *testing.T) {
	var c counts
	at := time.Date(1969, 12, 31, 23, 59, 30, 0, time.UTC)
	c.add(true, at, time.Second)
	c.add(false, at.Add(time.Second), time.Second)
	if ok, failed := c.sum(at.Add(time.Second), time.Second, 10); ok != 1 || failed != 1 {
		t.Errorf("sum = %d, %d; want 1, 1", ok, failed)
	}
}

func TestCountsReset(t *testing.T) {
	var c counts
	now := time.Now()
	c.add(true, now, time.Second)
	c.reset()
	if ok, failed := c.sum(now, time.Second, 10); ok+failed != 0 {
		t.Errorf("sum after reset = %d, %d", ok, failed)
	}
	c.add(false, now, time.Second)
	if ok, failed := c.sum(now, time.Second, 10); ok != 1 || failed != 0 {
		t.Errorf("sum after reset and add = %d, %d; want only the new count", ok, failed)
	}
}

// Concurrent writers within one slot lose nothing once it is claimed.
func TestCountsConcurrent(t *testing.T) {
	var c counts
	now := time.Now()
	c.add(false, now, time.Minute)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 1000 {
				c.add(i%2 == 0, now, time.Minute)
			}
		})
	}
	wg.Wait()
	if ok, failed := c.sum(now, time.Minute, 10); ok != 4001 || failed != 4000 {
		t.Errorf("sum = %d ok, %d failed; want 4001, 4000", ok, failed)
	}
}

func TestWindowCountsOnlyAnswers(t *testing.T) {
	var w window
	now := time.Now()
	for _, o := range []Outcome{Success, Failure, RateLimited, KeyRejected, Success} {
		w.add(o, now)
	}
	if ok, failed := w.sum(now); ok != 2 || failed != 1 {
		t.Errorf("sum = %d ok, %d failed; want 2, 1", ok, failed)
	}
}
