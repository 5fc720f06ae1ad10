package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/wedsync/veil/internal/flight"
	"github.com/wedsync/veil/internal/mix"
)

// Defaults for the zero fields of Options.
const (
	DefaultMaxCostBytes    = 256 << 20
	DefaultExpectedEntries = 100_000
	DefaultTTL             = time.Hour
	DefaultBufferItems     = 64
)

// Options configure New. The zero value of a field selects its default.
type Options struct {
	// MaxCostBytes bounds the memory the entries take, as measured by
	// Entry.Cost. The default is DefaultMaxCostBytes.
	MaxCostBytes int64
	// ExpectedEntries is how many entries the store is expected to hold
	// when full; ristretto keeps ten times as many admission counters. The
	// default is DefaultExpectedEntries.
	ExpectedEntries int64
	// TTL is how long an entry lives. The default is DefaultTTL; a
	// negative TTL means entries never expire.
	TTL time.Duration
	// BufferItems is ristretto's Get buffer size. The default is
	// DefaultBufferItems.
	BufferItems int64
}

// ErrInvalidOptions is returned by New for negative sizes.
var ErrInvalidOptions = errors.New("cache: invalid options")

// Answers holds cached answers in a ristretto cache, grouped by scope so that
// one scope's entries can be purged at once. It is safe for concurrent use,
// except that Close must not overlap other calls.
type Answers struct {
	c       *ristretto.Cache[uint64, *item]
	o       Options       // with defaults applied
	ttl     time.Duration // as ristretto takes it: 0 for no expiry
	maxCost int64
	seed    maphash.Seed

	// gens maps a scope to its *atomic.Uint64 generation; a scope that
	// was never purged is absent and has generation 0.
	gens sync.Map
	// epoch is bumped by PurgeAll.
	epoch atomic.Uint64

	hits, misses, sets, dropped atomic.Uint64

	// mu serialises PurgeAll and Close and guards the fields below.
	mu     sync.Mutex
	closed bool
	// base holds the ristretto metrics that PurgeAll's Clear reset.
	base struct{ rejected, evicted uint64 }

	flights flight.Group[flightKey, *Entry]
}

// item is what the store keeps in ristretto. The ristretto key is a 64-bit
// digest of the fields; Get compares them all, so a digest collision can
// only cause a miss, never a wrong answer.
type item struct {
	scope      string
	epoch, gen uint64
	key        Key
	entry      *Entry
}

// itemOverhead is the memory an item takes besides its scope and entry,
// with ristretto's bookkeeping for it.
const itemOverhead = 160

// New returns the answer cache configured by o.
func New(o Options) (*Answers, error) {
	if o.MaxCostBytes < 0 || o.ExpectedEntries < 0 || o.BufferItems < 0 {
		return nil, fmt.Errorf("%w: negative size in %+v", ErrInvalidOptions, o)
	}
	if o.MaxCostBytes == 0 {
		o.MaxCostBytes = DefaultMaxCostBytes
	}
	if o.ExpectedEntries == 0 {
		o.ExpectedEntries = DefaultExpectedEntries
	}
	if o.BufferItems == 0 {
		o.BufferItems = DefaultBufferItems
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	ttl := max(o.TTL, 0)
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *item]{
		NumCounters:        10 * o.ExpectedEntries,
		MaxCost:            o.MaxCostBytes,
		BufferItems:        o.BufferItems,
		Metrics:            true,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cache: creating ristretto cache: %w", err)
	}
	return &Answers{c: c, o: o, ttl: ttl, maxCost: o.MaxCostBytes, seed: maphash.MakeSeed()}, nil
}

// slot is where a scope and key live now: the ristretto key and the epoch
// and generation an item must have to be current.
type slot struct {
	hash       uint64
	epoch, gen uint64
}

func (s *Answers) slot(scope string, k Key) slot {
	var gen uint64
	if v, ok := s.gens.Load(scope); ok {
		gen = v.(*atomic.Uint64).Load()
	}
	epoch := s.epoch.Load()
	h := binary.LittleEndian.Uint64(k[:8]) ^ maphash.String(s.seed, scope)
	h = mix.Mix64(h ^ mix.Mix64(gen^mix.Mix64(epoch)))
	return slot{hash: h, epoch: epoch, gen: gen}
}

// Get returns the entry stored for k in scope, if any. The entry is shared
// and must not be modified.
func (s *Answers) Get(scope string, k Key) (*Entry, bool) {
	e, ok := s.get(scope, k, s.slot(scope, k))
	if ok {
		s.hits.Add(1)
	} else {
		s.misses.Add(1)
	}
	return e, ok
}

func (s *Answers) get(scope string, k Key, sl slot) (*Entry, bool) {
	it, ok := s.c.Get(sl.hash)
	if !ok || it == nil || it.key != k || it.gen != sl.gen || it.epoch != sl.epoch || it.scope != scope {
		return nil, false
	}
	return it.entry, true
}

// Set stores e for k in scope, to live for the store's TTL; e must not be
// modified afterwards. It returns false when the entry was dropped: when e
// is nil or costs more than the whole store, when the store is closed, or
// when ristretto dropped the write under contention. Like ristretto, it may
// return true for an entry that the admission policy then declines, which
// Stats counts as Rejected. Writes are applied asynchronously; Wait makes
// them visible.
func (s *Answers) Set(scope string, k Key, e *Entry) bool {
	return s.set(scope, k, e, s.slot(scope, k))
}

func (s *Answers) set(scope string, k Key, e *Entry, sl slot) bool {
	if e == nil {
		s.dropped.Add(1)
		return false
	}
	cost := e.Cost() + itemOverhead + int64(len(scope))
	if cost > s.maxCost {
		s.dropped.Add(1)
		return false
	}
	it := &item{scope: scope, epoch: sl.epoch, gen: sl.gen, key: k, entry: e}
	if !s.c.SetWithTTL(sl.hash, it, cost, s.ttl) {
		s.dropped.Add(1)
		return false
	}
	s.sets.Add(1)
	return true
}

// Recost charges the cache again for e, stored for k in scope, after a
// hit made it keep more memory (see Entry.MemoBytes): e is stored anew with
// its current cost and the time it has left to live, so that the cache's
// bound holds and the answer does not outlive its TTL. It reports whether
// the cache took the new cost.
func (s *Answers) Recost(scope string, k Key, e *Entry) bool {
	left := s.ttl - time.Since(e.StoredAt)
	if s.ttl > 0 && left <= 0 {
		return false
	}
	if s.ttl <= 0 {
		left = 0
	}
	sl := s.slot(scope, k)
	cost := e.Cost() + itemOverhead + int64(len(scope))
	if cost > s.maxCost {
		return false
	}
	it := &item{scope: scope, epoch: sl.epoch, gen: sl.gen, key: k, entry: e}
	return s.c.SetWithTTL(sl.hash, it, cost, left)
}

// Purge drops every entry of scope in O(1): it moves the scope to a new
// generation, so that entries stored before are never returned again. Their
// memory is reclaimed as ristretto evicts them or their TTL ends. A Set that
// runs concurrently with Purge may store its entry in either generation; Do
// stores its result in the generation that was current when Do began, so an
// answer fetched before a Purge is never served after it.
func (s *Answers) Purge(scope string) {
	v, ok := s.gens.Load(scope)
	if !ok {
		v, _ = s.gens.LoadOrStore(scope, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// PurgeAll drops every entry and frees their memory at once.
func (s *Answers) PurgeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	// Bumping the epoch first hides entries whose Set overlaps Clear.
	s.epoch.Add(1)
	s.base.rejected += s.c.Metrics.SetsRejected()
	s.base.evicted += s.c.Metrics.KeysEvicted()
	s.c.Clear()
}

// Stats are the counters of Answers. Hits, Misses, Sets, Dropped, Rejected and
// Evictions only grow; Entries and CostBytes are current.
type Stats struct {
	// Hits and Misses count Get calls (and the lookups of Do).
	Hits, Misses uint64
	// Sets counts the Set calls that returned true.
	Sets uint64
	// Dropped counts the Set calls that returned false.
	Dropped uint64
	// Rejected counts entries that ristretto's admission policy declined
	// after Set returned true.
	Rejected uint64
	// Evictions counts entries removed to make room or because their TTL
	// ended.
	Evictions uint64
	// Entries is the number of entries held, including purged ones that
	// are not yet evicted.
	Entries int64
	// CostBytes is the total cost of the entries held.
	CostBytes int64
}

// Stats returns the store's counters.
func (s *Answers) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Hits:    s.hits.Load(),
		Misses:  s.misses.Load(),
		Sets:    s.sets.Load(),
		Dropped: s.dropped.Load(),
	}
	if s.closed {
		st.Rejected, st.Evictions = s.base.rejected, s.base.evicted
		return st
	}
	m := s.c.Metrics
	added, evicted := m.KeysAdded(), m.KeysEvicted()
	st.Rejected = s.base.rejected + m.SetsRejected()
	st.Evictions = s.base.evicted + evicted
	if added > evicted {
		st.Entries = int64(added - evicted)
	}
	st.CostBytes = s.c.MaxCost() - s.c.RemainingCost()
	return st
}

// Wait blocks until every Set so far is applied, so that tests can observe
// its effect.
func (s *Answers) Wait() { s.c.Wait() }

// Close stops the store's goroutines and frees its entries. Afterwards Get
// misses and Set drops. Close must not overlap other calls on the store.
func (s *Answers) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.base.rejected += s.c.Metrics.SetsRejected()
	s.base.evicted += s.c.Metrics.KeysEvicted()
	s.c.Close()
}
