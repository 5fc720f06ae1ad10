package cache

import (
	"errors"
	"sync"
	"time"
)

// ErrFlightAborted is returned by Do to the callers that waited for a
// call of fn that panicked or exited its goroutine.
var ErrFlightAborted = errors.New("cache: shared call aborted")

// flightGroup collapses concurrent calls for the same slot into one.
type flightGroup struct {
	mu sync.Mutex
	m  map[flightKey]*Flight
}

type flightKey struct {
	scope      string
	epoch, gen uint64
	key        Key
}

// Flight is one miss in progress, that identical concurrent requests may
// wait for instead of each asking the provider (single flight). The request
// that leads it stores the answer, if any, and ends it; the others Wait
// and then look the key up again.
type Flight struct {
	g       *flightGroup
	key     flightKey
	done    chan struct{}
	waiters int
	entry   *Entry
	err     error
}

// Begin returns the flight of k in scope and whether the caller leads it.
// A leader must call End exactly once, after storing the answer or giving
// up; a follower calls Wait.
func (s *Answers) Begin(scope string, k Key) (f *Flight, leader bool) {
	return s.begin(scope, k, s.slot(scope, k))
}

func (s *Answers) begin(scope string, k Key, sl slot) (*Flight, bool) {
	fk := flightKey{scope: scope, epoch: sl.epoch, gen: sl.gen, key: k}
	g := &s.flights
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[fk]; ok {
		f.waiters++
		return f, false
	}
	if g.m == nil {
		g.m = make(map[flightKey]*Flight)
	}
	f := &Flight{g: g, key: fk, done: make(chan struct{}), err: ErrFlightAborted}
	g.m[fk] = f
	return f, true
}

// End finishes a flight its leader began, handing e (nil when there is no
// answer to share) to the followers.
func (f *Flight) End(e *Entry) {
	f.entry = e
	f.g.mu.Lock()
	delete(f.g.m, f.key)
	f.g.mu.Unlock()
	close(f.done)
}

// Wait blocks until the flight ends or timeout passes, and returns the
// leader's answer: nil when it had none to share or the wait timed out.
func (f *Flight) Wait(timeout time.Duration) *Entry {
	select {
	case <-f.done:
		return f.entry
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.done:
		return f.entry
	case <-t.C:
		return nil
	}
}

// Do returns the entry for k in scope, calling fn to produce it on a miss.
// Concurrent calls for the same scope and key share one call of fn: the
// others wait for it and receive its result. When fn returns an entry and a
// nil error, the entry is stored (see Set). shared is false only for the
// caller whose fn produced the result; it is true for a cache hit and for the
// callers that waited. An error from fn is returned to every caller of that
// flight and nothing is stored; fn should therefore not depend on the
// context of one client's request, and may return (nil, nil) to store
// nothing while sharing no answer.
func (s *Answers) Do(scope string, k Key, fn func() (*Entry, error)) (entry *Entry, shared bool, err error) {
	sl := s.slot(scope, k)
	if e, ok := s.get(scope, k, sl); ok {
		s.hits.Add(1)
		return e, true, nil
	}
	s.misses.Add(1)
	f, leader := s.begin(scope, k, sl)
	if !leader {
		<-f.done
		return f.entry, true, f.err
	}
	var e *Entry
	defer func() { f.End(e) }()
	e, err = fn()
	if err == nil && e != nil {
		s.set(scope, k, e, sl)
	}
	f.err = err
	return e, false, err
}

// waiting returns how many callers wait for the flight of k in scope.
func (s *Answers) waiting(scope string, k Key) int {
	sl := s.slot(scope, k)
	g := &s.flights
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[flightKey{scope: scope, epoch: sl.epoch, gen: sl.gen, key: k}]; ok {
		return f.waiters
	}
	return 0
}
