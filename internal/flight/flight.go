// Package flight collapses concurrent calls for the same key into one
// (single flight): the first caller leads the call, the others wait for it
// and share its result.
package flight

import (
	"errors"
	"sync"
)

// ErrAborted is the result shared with the followers of a call whose
// leader panicked or exited its goroutine before ending it.
var ErrAborted = errors.New("flight: shared call aborted")

// Group holds the calls in progress, one per key. The zero value is ready
// to use; a Group must not be copied after first use.
type Group[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*Call[K, V]
}

// Call is one call in progress or ended.
type Call[K comparable, V any] struct {
	g       *Group[K, V]
	key     K
	done    chan struct{}
	waiters int // guarded by g.mu
	val     V
	err     error
}

// Begin returns the call of k and whether the caller leads it. A leader
// must end it exactly once, with End or Run; a follower waits for Done and
// then reads Result.
func (g *Group[K, V]) Begin(k K) (c *Call[K, V], leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.m[k]; ok {
		c.waiters++
		return c, false
	}
	if g.m == nil {
		g.m = make(map[K]*Call[K, V])
	}
	c = &Call[K, V]{g: g, key: k, done: make(chan struct{})}
	g.m[k] = c
	return c, true
}

// Waiting returns how many followers joined the call of k in progress; 0
// when there is none.
func (g *Group[K, V]) Waiting(k K) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.m[k]; ok {
		return c.waiters
	}
	return 0
}

// Do calls fn once for the concurrent callers of k: the first one runs it,
// the others wait for it and receive its result. shared is false only for
// the caller that ran fn. When fn panics, the panic goes on in its caller
// and the others receive ErrAborted.
func (g *Group[K, V]) Do(k K, fn func() (V, error)) (v V, shared bool, err error) {
	c, leader := g.Begin(k)
	if !leader {
		<-c.done
		return c.val, true, c.err
	}
	v, err = c.Run(fn)
	return v, false, err
}

// Run calls fn as the call's leader and ends the call with its result,
// which it returns; when fn panics or exits the goroutine, the call ends
// with ErrAborted and the panic goes on.
func (c *Call[K, V]) Run(fn func() (V, error)) (V, error) {
	var (
		v   V
		err = ErrAborted
	)
	defer func() { c.End(v, err) }()
	v, err = fn()
	return v, err
}

// End finishes the call, handing v and err to its followers, and lets the
// next Begin of its key lead a new call. Only the leader calls it, once.
func (c *Call[K, V]) End(v V, err error) {
	c.val, c.err = v, err
	c.g.mu.Lock()
	delete(c.g.m, c.key)
	c.g.mu.Unlock()
	close(c.done)
}

// Done is closed when the call has ended.
func (c *Call[K, V]) Done() <-chan struct{} { return c.done }

// Result returns what the leader ended the call with; it may be read only
// once Done is closed.
func (c *Call[K, V]) Result() (V, error) { return c.val, c.err }
