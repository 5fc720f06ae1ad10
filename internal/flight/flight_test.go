package flight

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor spins until g has n followers on k.
func waitFor(t *testing.T, g *Group[string, int], k string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.Waiting(k) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d followers on %q, want %d", g.Waiting(k), k, n)
		}
		runtime.Gosched()
	}
}

func TestDoSharesOneCall(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		val     int
		err     error
		callers int
	}{
		{"a value", 42, nil, 8},
		{"an error", 0, boom, 5},
		{"alone", 7, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				g       Group[string, int]
				calls   atomic.Int64
				release = make(chan struct{})
				wg      sync.WaitGroup
				leaders atomic.Int64
			)
			fn := func() (int, error) {
				calls.Add(1)
				<-release
				return tc.val, tc.err
			}
			for range tc.callers {
				wg.Go(func() {
					v, shared, err := g.Do("k", fn)
					if !shared {
						leaders.Add(1)
					}
					if v != tc.val || !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
						t.Errorf("Do = %d, %v; want %d, %v", v, err, tc.val, tc.err)
					}
				})
			}
			waitFor(t, &g, "k", tc.callers-1)
			close(release)
			wg.Wait()
			if calls.Load() != 1 || leaders.Load() != 1 {
				t.Errorf("fn called %d times, %d leaders; want one each", calls.Load(), leaders.Load())
			}
			if g.Waiting("k") != 0 {
				t.Errorf("%d followers left", g.Waiting("k"))
			}
		})
	}
}

func TestDoKeysAreApart(t *testing.T) {
	var g Group[string, int]
	release := make(chan struct{})
	started := make(chan struct{})
	go func() {
		_, _, _ = g.Do("a", func() (int, error) {
			close(started)
			<-release
			return 1, nil
		})
	}()
	<-started
	v, shared, err := g.Do("b", func() (int, error) { return 2, nil })
	if v != 2 || shared || err != nil {
		t.Errorf("Do(b) = %d, %v, %v while a is in flight; want its own call", v, shared, err)
	}
	close(release)
}

// After a call ends, the next Begin of its key leads a new one.
func TestEndedCallIsNotFollowed(t *testing.T) {
	var g Group[string, int]
	c, leader := g.Begin("k")
	if !leader {
		t.Fatal("the first caller does not lead")
	}
	f, leader := g.Begin("k")
	if leader || f != c || g.Waiting("k") != 1 {
		t.Fatalf("the second caller leads %v, same call %v", leader, f == c)
	}
	select {
	case <-f.Done():
		t.Fatal("Done before End")
	default:
	}
	c.End(5, nil)
	<-f.Done()
	if v, err := f.Result(); v != 5 || err != nil {
		t.Errorf("Result = %d, %v; want 5", v, err)
	}
	next, leader := g.Begin("k")
	if !leader || next == c {
		t.Error("an ended call is still followed")
	}
	next.End(0, nil)
}

func TestRunAborted(t *testing.T) {
	tests := []struct {
		name string
		exit func()
	}{
		{"panic", func() { panic("boom") }},
		{"goexit", runtime.Goexit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var g Group[string, int]
			started, release := make(chan struct{}), make(chan struct{})
			leaderDone := make(chan any)
			go func() {
				defer func() { leaderDone <- recover() }()
				_, _, _ = g.Do("k", func() (int, error) {
					close(started)
					<-release
					tc.exit()
					return 1, nil
				})
			}()
			<-started
			follower := make(chan error)
			go func() {
				_, _, err := g.Do("k", func() (int, error) { return 0, nil })
				follower <- err
			}()
			waitFor(t, &g, "k", 1)
			close(release)
			r := <-leaderDone
			if tc.name == "panic" && r != "boom" {
				t.Errorf("leader recovered %v, want the panic", r)
			}
			if err := <-follower; !errors.Is(err, ErrAborted) {
				t.Errorf("follower error = %v, want %v", err, ErrAborted)
			}
			if _, leader := g.Begin("k"); !leader {
				t.Error("the aborted call is still followed")
			}
		})
	}
}
