package cache

import (
	"errors"
	"sync"
)

// ErrFlightAborted is returned by Do to the callers that waited for a
// call of fn that panicked or exited its goroutine.
var ErrFlightAborted = errors.New("cache: shared call aborted")

// flightGroup collapses concurrent calls for the same slot into one.
type flightGroup struct {
	mu sync.Mutex
	m  map[flightKey]*flight
}

type flightKey struct {
	scope      string
	epoch, gen uint64
	key        Key
}

type flight struct {
	done    chan struct{}
	waiters int
	entry   *Entry
	err     error
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
func (s *Store) Do(scope string, k Key, fn func() (*Entry, error)) (entry *Entry, shared bool, err error) {
	sl := s.slot(scope, k)
	if e, ok := s.get(scope, k, sl); ok {
		s.hits.Add(1)
		return e, true, nil
	}
	s.misses.Add(1)

	fk := flightKey{scope: scope, epoch: sl.epoch, gen: sl.gen, key: k}
	g := &s.flights
	g.mu.Lock()
	if f, ok := g.m[fk]; ok {
		f.waiters++
		g.mu.Unlock()
		<-f.done
		return f.entry, true, f.err
	}
	if g.m == nil {
		g.m = make(map[flightKey]*flight)
	}
	f := &flight{done: make(chan struct{}), err: ErrFlightAborted}
	g.m[fk] = f
	g.mu.Unlock()

	defer func() {
		g.mu.Lock()
		delete(g.m, fk)
		g.mu.Unlock()
		close(f.done)
	}()
	e, err := fn()
	if err == nil && e != nil {
		s.set(scope, k, e, sl)
	}
	f.entry, f.err = e, err
	return e, false, err
}

// waiting returns how many callers wait for the flight of k in scope.
func (s *Store) waiting(scope string, k Key) int {
	sl := s.slot(scope, k)
	g := &s.flights
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[flightKey{scope: scope, epoch: sl.epoch, gen: sl.gen, key: k}]; ok {
		return f.waiters
	}
	return 0
}
