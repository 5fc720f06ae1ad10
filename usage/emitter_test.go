package usage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// fast makes retries quick; a test that wants a long flush interval sets
// its own.
func fast(o Options) Options {
	o.MinBackoff = time.Millisecond
	o.MaxBackoff = 2 * time.Millisecond
	return o
}

func closeEmitter(t testing.TB, e *Emitter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestEmitterBatches(t *testing.T) {
	s := &testSink{name: "mem"}
	e := NewEmitter(Options{BatchSize: 10, FlushInterval: time.Hour}, s)
	rs := recs(25)
	for _, r := range rs {
		e.Emit(r)
	}
	s.n.waitUntil(t, "two full batches", func() bool { return len(s.got) == 20 })
	s.n.read(func() {
		if !slices.Equal(s.batches, []int{10, 10}) {
			t.Errorf("batches before Close = %v, want [10 10]: the partial one waits for the interval", s.batches)
		}
	})
	closeEmitter(t, e)
	s.n.read(func() {
		if !slices.Equal(s.batches, []int{10, 10, 5}) {
			t.Errorf("batches after Close = %v, want [10 10 5]", s.batches)
		}
		if !slices.Equal(ids(s.got), ids(rs)) {
			t.Error("records written out of order")
		}
		if s.closes != 1 {
			t.Errorf("sink closed %d times, want 1", s.closes)
		}
	})
}

func TestEmitterFlushesPartialBatchOnInterval(t *testing.T) {
	s := &testSink{name: "mem"}
	e := NewEmitter(Options{BatchSize: 1000, FlushInterval: 5 * time.Millisecond}, s)
	defer closeEmitter(t, e)
	rs := recs(3)
	for _, r := range rs {
		e.Emit(r)
	}
	// Before Close: only the interval can have written them.
	s.n.waitUntil(t, "the partial batch", func() bool { return len(s.got) == len(rs) })
	if got := ids(s.written()); !slices.Equal(got, ids(rs)) {
		t.Errorf("written %v, want %v", got, ids(rs))
	}
}

func TestEmitterCloseDrainsEverything(t *testing.T) {
	for _, n := range []int{0, 1, 999, 20000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			obs := newCountObserver()
			a, b := &testSink{name: "a"}, &overflowSink{testSink: testSink{name: "b"}}
			e := NewEmitter(Options{QueueSize: n + 1, BatchSize: 64, Observer: obs}, a, b)
			rs := recs(n)
			for _, r := range rs {
				e.Emit(r)
			}
			closeEmitter(t, e)
			for _, s := range []*testSink{a, &b.testSink} {
				if got := ids(s.written()); !slices.Equal(got, ids(rs)) {
					t.Errorf("sink %s: %d records written, want the %d emitted in order", s.name, len(got), n)
				}
				if got := obs.get(s.name + "/delivered"); got != n {
					t.Errorf("sink %s: delivered count %d, want %d", s.name, got, n)
				}
				if got := obs.get(s.name + "/dropped"); got != 0 {
					t.Errorf("sink %s: dropped count %d, want 0", s.name, got)
				}
				s.n.read(func() {
					if s.closes != 1 {
						t.Errorf("sink %s closed %d times, want 1", s.name, s.closes)
					}
				})
			}
			if n > 0 {
				obs.n.read(func() {
					if obs.depths == 0 {
						t.Error("queue depth never reported")
					}
				})
			}
		})
	}
}

// stuck returns a write func that blocks until release is closed, and
// reports each entry on entered.
func stuck(release <-chan struct{}, entered chan<- struct{}) func(int, []*Record) error {
	return func(int, []*Record) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil
	}
}

func TestEmitNeverBlocksOnAStuckSink(t *testing.T) {
	const queue = 100
	for _, overflow := range []bool{false, true} {
		t.Run(fmt.Sprintf("overflower=%v", overflow), func(t *testing.T) {
			release := make(chan struct{})
			entered := make(chan struct{}, 1)
			obs := newCountObserver()
			sk := &overflowSink{testSink: testSink{name: "stuck", write: stuck(release, entered)}}
			var sink Sink = &sk.testSink
			if overflow {
				sink = sk
			}
			e := NewEmitter(Options{QueueSize: queue, BatchSize: 1, Observer: obs}, sink)
			rs := recs(queue + 10)

			returned := make(chan struct{})
			go func() {
				defer close(returned)
				for _, r := range rs {
					e.Emit(r)
				}
			}()
			select {
			case <-returned:
			case <-time.After(guard):
				close(release)
				t.Fatal("Emit blocked on a stuck sink")
			}
			<-entered
			lost := obs.get("stuck/dropped")
			if overflow {
				lost = obs.get("stuck/spilled")
				if d := obs.get("stuck/dropped"); d != 0 {
					t.Errorf("dropped %d from an Overflower, want 0", d)
				}
			}
			// The queue holds 100 and the stuck Write at most one more.
			if lost < len(rs)-queue-1 {
				t.Errorf("%d records overflowed or dropped, want at least %d", lost, len(rs)-queue-1)
			}

			close(release)
			closeEmitter(t, e)
			got := sk.written()
			if overflow {
				got = append(got, sk.overflowed()...)
				checkOnce(t, ids(got), rs)
			} else {
				checkSubset(t, ids(got), rs)
				if len(got)+lost != len(rs) {
					t.Errorf("written %d + dropped %d != emitted %d", len(got), lost, len(rs))
				}
			}
		})
	}
}

func TestEmitterRetries(t *testing.T) {
	perm := fmt.Errorf("refused: %w", ErrPermanent)
	tests := []struct {
		name         string
		overflow     bool
		write        func(call int, batch []*Record) error
		wantCalls    int
		wantRetried  int
		wantWritten  int
		wantSpilled  int
		wantDropped  int
		wantDelivers int
	}{
		{
			name: "fails twice then succeeds",
			write: func(call int, _ []*Record) error {
				if call <= 2 {
					return errWrite
				}
				return nil
			},
			wantCalls: 3, wantRetried: 2, wantWritten: 5, wantDelivers: 5,
		},
		{
			name:      "always fails, overflowed",
			overflow:  true,
			write:     func(int, []*Record) error { return errWrite },
			wantCalls: 3, wantRetried: 2, wantSpilled: 5,
		},
		{
			name:      "always fails, dropped",
			write:     func(int, []*Record) error { return errWrite },
			wantCalls: 3, wantRetried: 2, wantDropped: 5,
		},
		{
			name:      "permanent error is not retried",
			overflow:  true,
			write:     func(int, []*Record) error { return perm },
			wantCalls: 1, wantSpilled: 5,
		},
		{
			name: "partial error: only the failed records dropped, not retried",
			write: func(_ int, batch []*Record) error {
				return &PartialError{Failed: batch[1:3], Err: errWrite}
			},
			wantCalls: 1, wantDropped: 2, wantDelivers: 3,
		},
		{
			name:     "partial error: only the failed records overflowed",
			overflow: true,
			write: func(_ int, batch []*Record) error {
				return fmt.Errorf("wrapped: %w", &PartialError{Failed: batch[:1], Err: errWrite})
			},
			wantCalls: 1, wantSpilled: 1, wantDelivers: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := newCountObserver()
			sk := &overflowSink{testSink: testSink{name: "s", write: tt.write}}
			var sink Sink = &sk.testSink
			if tt.overflow {
				sink = sk
			}
			e := NewEmitter(fast(Options{BatchSize: 5, MaxAttempts: 3, Observer: obs}), sink)
			rs := recs(5)
			for _, r := range rs {
				e.Emit(r)
			}
			closeEmitter(t, e)
			sk.n.read(func() {
				if sk.calls != tt.wantCalls {
					t.Errorf("Write called %d times, want %d", sk.calls, tt.wantCalls)
				}
				if len(sk.got) != tt.wantWritten {
					t.Errorf("written %d, want %d", len(sk.got), tt.wantWritten)
				}
				if len(sk.over) != tt.wantSpilled {
					t.Errorf("overflowed %d, want %d", len(sk.over), tt.wantSpilled)
				}
			})
			for outcome, want := range map[string]int{
				"retried": tt.wantRetried, "spilled": tt.wantSpilled,
				"dropped": tt.wantDropped, "delivered": tt.wantDelivers,
			} {
				if got := obs.get("s/" + outcome); got != want {
					t.Errorf("%s count %d, want %d", outcome, got, want)
				}
			}
		})
	}
}

func TestEmitAfterCloseDropsAndCloseIsIdempotent(t *testing.T) {
	obs := newCountObserver()
	s := &overflowSink{testSink: testSink{name: "s"}}
	e := NewEmitter(Options{Observer: obs}, s)
	closeEmitter(t, e)
	e.Emit(rec(1))
	e.Emit(nil)
	if got := obs.get("s/dropped"); got != 1 {
		t.Errorf("dropped %d after Close, want 1", got)
	}
	if got := len(s.overflowed()); got != 0 {
		t.Errorf("overflowed %d after Close, want 0: the sink is closed", got)
	}
	closeEmitter(t, e)
	s.n.read(func() {
		if s.closes != 1 {
			t.Errorf("sink closed %d times, want 1", s.closes)
		}
	})
}

func TestEmitterCloseIsBoundedByItsContext(t *testing.T) {
	for _, overflow := range []bool{false, true} {
		t.Run(fmt.Sprintf("overflower=%v", overflow), func(t *testing.T) {
			release := make(chan struct{})
			entered := make(chan struct{}, 1)
			obs := newCountObserver()
			sk := &overflowSink{testSink: testSink{name: "stuck", write: stuck(release, entered)}}
			var sink Sink = &sk.testSink
			if overflow {
				sink = sk
			}
			e := NewEmitter(Options{QueueSize: 100, BatchSize: 1, Observer: obs}, sink)
			rs := recs(50)
			for _, r := range rs {
				e.Emit(r)
			}
			<-entered // rs[0] is in the stuck Write, the rest queued

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Close(ctx) }()
			cancel()
			var err error
			select {
			case err = <-done:
			case <-time.After(guard):
				close(release)
				t.Fatal("Close ignored its context")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Close = %v, want context.Canceled", err)
			}
			outcome := "dropped"
			if overflow {
				outcome = "spilled"
			}
			if got := obs.get("stuck/" + outcome); got != len(rs)-1 {
				t.Errorf("%s %d when the context ended, want %d", outcome, got, len(rs)-1)
			}
			if overflow {
				checkOnce(t, ids(sk.overflowed()), rs[1:])
			}

			close(release) // the Write in progress ends, then the sink closes
			e.wait()
			if got := ids(sk.written()); !slices.Equal(got, ids(rs[:1])) {
				t.Errorf("written %v, want the one in progress", got)
			}
			if got := obs.get("stuck/delivered"); got != 1 {
				t.Errorf("delivered %d, want 1", got)
			}
			sk.n.read(func() {
				if sk.closes != 1 {
					t.Errorf("sink closed %d times, want 1", sk.closes)
				}
			})
		})
	}
}

// Emit racing Close loses nothing silently: every record is written or
// counted as dropped, once.
func TestEmitRacingClose(t *testing.T) {
	const producers, each = 8, 2000
	obs := newCountObserver()
	s := &testSink{name: "s"}
	e := NewEmitter(Options{BatchSize: 32, Observer: obs}, s)
	all := recs(producers * each)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			<-start
			for _, r := range all[p*each : (p+1)*each] {
				e.Emit(r)
			}
		})
	}
	close(start)
	closeEmitter(t, e)
	wg.Wait()
	got := s.written()
	checkSubset(t, ids(got), all)
	if d := obs.get("s/dropped"); len(got)+d != len(all) {
		t.Errorf("written %d + dropped %d != emitted %d", len(got), d, len(all))
	}
}
