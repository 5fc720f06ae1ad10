package cache

import (
	"github.com/wedsync/veil/internal/flight"
)

// ErrFlightAborted is returned by Do to the callers that waited for a
// call of fn that panicked or exited its goroutine.
var ErrFlightAborted = flight.ErrAborted

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
	c *flight.Call[flightKey, *Entry]
}

// Begin returns the flight of k in scope and whether the caller leads it.
// A leader must call End exactly once, after storing the answer or giving
// up; a follower calls Wait.
func (s *Answers) Begin(scope string, k Key) (f *Flight, leader bool) {
	sl := s.slot(scope, k)
	c, leader := s.flights.Begin(flightKey{scope: scope, epoch: sl.epoch, gen: sl.gen, key: k})
	return &Flight{c: c}, leader
}

// End finishes a flight its leader began, handing e (nil when there is no
// answer to share) to the followers.
func (f *Flight) End(e *Entry) { f.c.End(e, nil) }

// Done is closed when the flight ends; Answer then returns its answer.
func (f *Flight) Done() <-chan struct{} { return f.c.Done() }

// Answer returns the answer of an ended flight: nil when the leader had
// none to share, or when the flight has not ended yet.
func (f *Flight) Answer() *Entry {
	select {
	case <-f.c.Done():
		e, _ := f.c.Result()
		return e
	default:
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
	return s.flights.Do(flightKey{scope: scope, epoch: sl.epoch, gen: sl.gen, key: k}, func() (*Entry, error) {
		e, err := fn()
		if err == nil && e != nil {
			s.set(scope, k, e, sl)
		}
		return e, err
	})
}

// waiting returns how many callers wait for the flight of k in scope.
func (s *Answers) waiting(scope string, k Key) int {
	sl := s.slot(scope, k)
	return s.flights.Waiting(flightKey{scope: scope, epoch: sl.epoch, gen: sl.gen, key: k})
}
