package logging

import (
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestLimiter(maxKeys int) (*Limiter, *observer.ObservedLogs, *fakeClock) {
	core, logs := observer.New(zapcore.DebugLevel)
	clk := &fakeClock{t: time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC)}
	return NewLimiter(zap.New(core), LimiterOptions{Every: time.Minute, MaxKeys: maxKeys, Now: clk.now}), logs, clk
}

// repeated returns the RepeatedField of a line, or -1 when it has none.
func repeated(e observer.LoggedEntry) int64 {
	v, ok := e.ContextMap()[RepeatedField]
	if !ok {
		return -1
	}
	return int64(v.(uint64))
}

func TestLimiterFirstAtOnceThenOncePerInterval(t *testing.T) {
	l, logs, clk := newTestLimiter(0)
	steps := []struct {
		name     string
		advance  time.Duration
		calls    int
		lines    int   // lines written by the step
		repeated int64 // RepeatedField of the step's line, -1 for none
	}{
		{"first occurrence", 0, 1, 1, -1},
		{"within the interval", 30 * time.Second, 5, 0, 0},
		{"just before the interval ends", 29 * time.Second, 1, 0, 0},
		{"the interval has passed", time.Second, 3, 1, 6},
		{"quiet afterwards", 2 * time.Minute, 1, 1, 2},
		{"nothing held back", 2 * time.Minute, 1, 1, -1},
	}
	for _, s := range steps {
		clk.advance(s.advance)
		before := logs.Len()
		for range s.calls {
			l.Warn("vault_down", "supplier key unavailable", zap.String("supplier", "bella"))
		}
		got := logs.All()[before:]
		if len(got) != s.lines {
			t.Fatalf("%s: %d lines, want %d", s.name, len(got), s.lines)
		}
		if s.lines == 1 {
			if r := repeated(got[0]); r != s.repeated {
				t.Errorf("%s: repeated %d, want %d", s.name, r, s.repeated)
			}
			if got[0].Level != zapcore.WarnLevel || got[0].Message != "supplier key unavailable" || got[0].ContextMap()["supplier"] != "bella" {
				t.Errorf("%s: line %+v", s.name, got[0])
			}
		}
	}
}

func TestLimiterKeysAreIndependent(t *testing.T) {
	l, logs, _ := newTestLimiter(0)
	l.Warn("a", "a happened")
	l.Warn("b", "b happened")
	l.Warn("a", "a happened")
	l.Error("c", "c happened")
	l.Info("d", "d happened")
	l.Debug("e", "e happened")
	if n := logs.Len(); n != 5 {
		t.Errorf("%d lines, want one per key: %v", n, logs.All())
	}
}

func TestLimiterDisabledLevelCountsNothing(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	clk := &fakeClock{t: time.Unix(0, 0)}
	l := NewLimiter(zap.New(core), LimiterOptions{Every: time.Minute, Now: clk.now})
	l.Info("k", "hidden")
	l.Warn("k", "shown")
	if all := logs.All(); len(all) != 1 || repeated(all[0]) != -1 {
		t.Errorf("lines %v: a disabled level must not use up the key's interval", all)
	}
}

func TestLimiterBoundsKeys(t *testing.T) {
	l, logs, clk := newTestLimiter(2)
	l.Warn("a", "a")
	l.Warn("b", "b")
	// Full, nothing to forget: a new key is written but not tracked.
	l.Warn("c", "c")
	l.Warn("c", "c")
	if n := logs.Len(); n != 4 {
		t.Fatalf("%d lines, want 4", n)
	}
	// After the interval, a and b can be forgotten to make room.
	clk.advance(2 * time.Minute)
	l.Warn("d", "d")
	l.Warn("d", "d")
	if n := logs.Len(); n != 5 {
		t.Errorf("%d lines, want d tracked once room was made", n)
	}
}

func TestLimiterAllow(t *testing.T) {
	l, _, clk := newTestLimiter(0)
	if ok, n := l.Allow("k"); !ok || n != 0 {
		t.Fatalf("first: %v %d", ok, n)
	}
	for range 3 {
		if ok, _ := l.Allow("k"); ok {
			t.Fatal("allowed within the interval")
		}
	}
	clk.advance(time.Minute)
	if ok, n := l.Allow("k"); !ok || n != 3 {
		t.Errorf("after the interval: %v %d, want true 3", ok, n)
	}
}

func TestLimiterConcurrentCountsEveryCall(t *testing.T) {
	l, logs, clk := newTestLimiter(0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				l.Warn("k", "busy")
			}
		})
	}
	wg.Wait()
	clk.advance(time.Minute)
	l.Warn("k", "busy")
	all := logs.All()
	if len(all) != 2 || repeated(all[1]) != 7999 {
		t.Errorf("%d lines, last repeated %d; want 2 lines and 7999", len(all), repeated(all[len(all)-1]))
	}
}

func TestLimiterHeldBackAllocatesNothing(t *testing.T) {
	l, _, _ := newTestLimiter(0)
	err := errors.New("vault: unreachable")
	supplier := "bella-photography"
	l.Warn("key", "supplier key unavailable", zap.String("supplier", supplier), zap.Error(err))
	allocs := testing.AllocsPerRun(1000, func() {
		l.Warn("key", "supplier key unavailable", zap.String("supplier", supplier), zap.Error(err))
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per held-back call, want 0", allocs)
	}
}

func BenchmarkLimiterHeldBack(b *testing.B) {
	core, _ := observer.New(zapcore.InfoLevel)
	l := NewLimiter(zap.New(core), LimiterOptions{Every: time.Hour})
	err := errors.New("vault: unreachable")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Warn("key", "supplier key unavailable", zap.String("supplier", "bella"), zap.Error(err))
		}
	})
}
