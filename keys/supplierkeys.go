package keys

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/internal/flight"
)

var (
	// ErrKeyMissing means the supplier has no key for the provider at its
	// source (nothing stored, or deleted).
	ErrKeyMissing = errors.New("keys: the supplier has no key for this provider")
	// ErrUnreachable means the key source could not be asked (network,
	// timeout, sealed); a cached key keeps being served until it is stale.
	ErrUnreachable = errors.New("keys: the key source is unreachable")
	// ErrStale means the source has been unreachable for longer than the
	// maximum staleness, so the cached key is no longer served.
	ErrStale = errors.New("keys: the cached key is older than the maximum staleness")
)

// Fetcher reads suppliers' keys from where they live (Vault, or references
// in config). Errors wrap ErrKeyMissing or ErrUnreachable where they apply
// and never contain a key.
type Fetcher interface {
	// Fetch reads the current key of a supplier for a provider.
	Fetch(ctx context.Context, supplier, provider string) (*Key, error)
	// Version returns the current version cheaply, without reading the key.
	Version(ctx context.Context, supplier, provider string) (string, error)
}

// Observer is told about key cache events, for metrics. Any method may be
// called concurrently.
type Observer interface {
	KeyFetched(ok bool)
	KeyRotated()
	KeyServedStale()
}

// SupplierKeysOptions configure NewSupplierKeys.
type SupplierKeysOptions struct {
	Fetcher Fetcher
	// Refresh is how often each key's version is checked (with ±20% jitter).
	Refresh time.Duration
	// MaxStaleness is how long a key is served while its source is down.
	MaxStaleness time.Duration
	// Grace is how long a replaced key stays available as Previous.
	Grace time.Duration
	// FetchTimeout bounds one fetch or version check.
	FetchTimeout time.Duration
	// MissingTTL is how long "no key" is remembered before asking again;
	// default Refresh.
	MissingTTL time.Duration
	// Audit receives fetches, rotations and staleness warnings (with
	// fingerprints only).
	Audit *zap.Logger
	// Observer is told about events; nil means none.
	Observer Observer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// SupplierKeys holds suppliers' keys in memory. Requests read it without I/O once
// a key is loaded; a background loop checks each key's version on a
// jittered interval and swaps in new versions atomically, keeping the
// previous one for a grace period.
type SupplierKeys struct {
	o       SupplierKeysOptions
	entries sync.Map // slot -> *entry
	flights flight.Group[slot, *Key]
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type slot struct{ supplier, provider string }

// entry is one supplier and provider; its state is swapped atomically.
type entry struct {
	slot  slot
	state atomic.Pointer[state]
	// next is when the background loop checks it next (unix nanoseconds).
	next         atomic.Int64
	staleWarned  atomic.Bool
	missingUntil atomic.Int64
}

// state is an immutable snapshot of one entry.
type state struct {
	current       *Key // nil when missing
	previous      *Key
	previousUntil time.Time
	fetchedAt     time.Time // the current key was read
	checkedAt     time.Time // the source last answered
	lastErr       string
}

// NewSupplierKeys creates the key cache and starts its refresh loop; Close
// stops it.
func NewSupplierKeys(o SupplierKeysOptions) (*SupplierKeys, error) {
	if o.Fetcher == nil {
		return nil, errors.New("keys: cache needs a fetcher")
	}
	if o.Refresh <= 0 || o.MaxStaleness <= 0 || o.FetchTimeout <= 0 {
		return nil, errors.New("keys: cache needs positive refresh, max staleness and fetch timeout")
	}
	if o.MissingTTL <= 0 {
		o.MissingTTL = o.Refresh
	}
	if o.Audit == nil {
		o.Audit = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &SupplierKeys{o: o, stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c, nil
}

// Close stops the refresh loop.
func (c *SupplierKeys) Close() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}

// Get returns the supplier's current key for the provider. A cached key is
// returned without I/O, also while its source is unreachable, up to the
// maximum staleness (then ErrStale). The first request for a supplier waits
// for one fetch, shared by every request that asks at the same time.
func (c *SupplierKeys) Get(ctx context.Context, supplier, provider string) (*Key, error) {
	if e, ok := c.entries.Load(slot{supplier, provider}); ok {
		if k, ok, err := c.usable(e.(*entry)); ok {
			return k, err
		}
	}
	return c.load(ctx, slot{supplier, provider})
}

// usable answers from a loaded entry; ok is false when the entry must be
// fetched (no state yet, or a remembered miss that expired).
func (c *SupplierKeys) usable(e *entry) (*Key, bool, error) {
	st := e.state.Load()
	if st == nil {
		return nil, false, nil
	}
	now := c.o.Now()
	if st.current == nil {
		if now.UnixNano() < e.missingUntil.Load() {
			return nil, true, fmt.Errorf("supplier %s, provider %s: %w", e.slot.supplier, e.slot.provider, ErrKeyMissing)
		}
		return nil, false, nil
	}
	if age := now.Sub(st.checkedAt); age > c.o.MaxStaleness {
		return nil, true, fmt.Errorf("supplier %s, provider %s: key source silent for %s: %w",
			e.slot.supplier, e.slot.provider, age.Round(time.Second), ErrStale)
	} else if age > c.o.Refresh*2 && c.o.Observer != nil {
		c.o.Observer.KeyServedStale()
	}
	return st.current, true, nil
}

// Previous returns the key version replaced last, while its grace period
// lasts, for a retry when the new version is refused.
func (c *SupplierKeys) Previous(supplier, provider string) *Key {
	e, ok := c.entries.Load(slot{supplier, provider})
	if !ok {
		return nil
	}
	st := e.(*entry).state.Load()
	if st == nil || st.previous == nil || c.o.Now().After(st.previousUntil) {
		return nil
	}
	return st.previous
}

// Rejected is called when the provider refused key with 401. It refreshes
// the entry at once (one refresh shared by every request that saw the
// same rejection) and returns the newer key, or an error when the source
// has nothing newer.
func (c *SupplierKeys) Rejected(ctx context.Context, supplier, provider string, key *Key) (*Key, error) {
	s := slot{supplier, provider}
	if e, ok := c.entries.Load(s); ok {
		if st := e.(*entry).state.Load(); st != nil && st.current != nil && st.current != key {
			return st.current, nil // someone already moved on
		}
	}
	k, err := c.load(ctx, s)
	if err != nil {
		return nil, err
	}
	if k == key || k.Fingerprint() == key.Fingerprint() {
		return nil, fmt.Errorf("supplier %s, provider %s: the provider refused key %s and the source has no other", supplier, provider, key.Fingerprint())
	}
	return k, nil
}

// Refresh re-reads every cached key of a supplier now (all providers).
func (c *SupplierKeys) Refresh(ctx context.Context, supplier string) error {
	var errs []error
	c.entries.Range(func(k, _ any) bool {
		s := k.(slot)
		if s.supplier == supplier {
			if _, err := c.load(ctx, s); err != nil && !errors.Is(err, ErrKeyMissing) {
				errs = append(errs, err)
			}
		}
		return true
	})
	return errors.Join(errs...)
}

// Prewarm fetches the keys of suppliers for providers, logging failures.
func (c *SupplierKeys) Prewarm(ctx context.Context, suppliers, providers []string) {
	for _, s := range suppliers {
		for _, p := range providers {
			if _, err := c.Get(ctx, s, p); err != nil && !errors.Is(err, ErrKeyMissing) {
				c.o.Audit.Warn("key prewarm failed", zap.String("supplier", s), zap.String("provider", p), zap.Error(err))
			}
		}
	}
}

// load fetches a slot's key, once at a time per slot: a caller that
// finds a fetch of the slot in progress waits for it, until ctx ends, and
// shares its result.
func (c *SupplierKeys) load(ctx context.Context, s slot) (*Key, error) {
	f, leader := c.flights.Begin(s)
	if !leader {
		select {
		case <-f.Done():
			return f.Result()
		case <-ctx.Done():
			return nil, fmt.Errorf("supplier %s, provider %s: waiting for the key: %w", s.supplier, s.provider, ctx.Err())
		}
	}
	return f.Run(func() (*Key, error) { return c.fetch(ctx, s) })
}

// fetch reads a slot's key and updates its entry. A fetched key with
// another fingerprint than the current one replaces it (a rotation);
// without a current key the result is stored as the first state.
func (c *SupplierKeys) fetch(ctx context.Context, s slot) (*Key, error) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.FetchTimeout)
	defer cancel()
	k, err := c.o.Fetcher.Fetch(fctx, s.supplier, s.provider)
	if c.o.Observer != nil {
		c.o.Observer.KeyFetched(err == nil)
	}
	e := c.entry(s)
	now := c.o.Now()
	if err != nil {
		old := e.state.Load()
		if errors.Is(err, ErrKeyMissing) {
			c.o.Audit.Warn("supplier key missing", zap.String("supplier", s.supplier), zap.String("provider", s.provider))
			e.missingUntil.Store(now.Add(c.o.MissingTTL).UnixNano())
			e.state.Store(&state{checkedAt: now, lastErr: "missing"})
			return nil, err
		}
		c.o.Audit.Warn("supplier key fetch failed", zap.String("supplier", s.supplier), zap.String("provider", s.provider), zap.Error(err))
		if old != nil && old.current != nil {
			st := *old
			st.lastErr = err.Error()
			e.state.Store(&st)
			// Serve what we have until it is stale.
			if k, ok, uerr := c.usable(e); ok {
				return k, uerr
			}
		}
		return nil, err
	}
	old := e.state.Load()
	st := &state{current: k, fetchedAt: now, checkedAt: now}
	if old != nil && old.current != nil && old.current.Fingerprint() != k.Fingerprint() {
		st.previous, st.previousUntil = old.current, now.Add(c.o.Grace)
		c.o.Audit.Info("supplier key rotated", zap.String("supplier", s.supplier), zap.String("provider", s.provider),
			zap.Object("from", old.current), zap.Object("to", k))
		if c.o.Observer != nil {
			c.o.Observer.KeyRotated()
		}
	} else if old != nil && old.current != nil {
		st.current, st.previous, st.previousUntil = old.current, old.previous, old.previousUntil
	} else {
		c.o.Audit.Info("supplier key fetched", zap.String("supplier", s.supplier), zap.String("provider", s.provider), zap.Object("key", k))
	}
	e.state.Store(st)
	e.staleWarned.Store(false)
	c.schedule(e, now)
	return st.current, nil
}

func (c *SupplierKeys) entry(s slot) *entry {
	if e, ok := c.entries.Load(s); ok {
		return e.(*entry)
	}
	e, _ := c.entries.LoadOrStore(s, &entry{slot: s})
	return e.(*entry)
}

// schedule sets the next check of e to now + Refresh ± 20%.
func (c *SupplierKeys) schedule(e *entry, now time.Time) {
	jitter := time.Duration((rand.Float64()*0.4 - 0.2) * float64(c.o.Refresh)) //nolint:gosec // G404: refresh jitter, not a secret
	e.next.Store(now.Add(c.o.Refresh + jitter).UnixNano())
}

// loop checks due entries; it wakes often enough to honour short
// refresh intervals in tests and cheap when nothing is due.
func (c *SupplierKeys) loop() {
	defer close(c.done)
	tick := c.o.Refresh / 10
	tick = max(tick, 50*time.Millisecond)
	tick = min(tick, 5*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.checkDue()
		}
	}
}

// checkDue checks the version of every entry that is due, fetching the key
// again when the version changed.
func (c *SupplierKeys) checkDue() {
	now := c.o.Now()
	c.entries.Range(func(_, v any) bool {
		e := v.(*entry)
		st := e.state.Load()
		if st == nil || st.current == nil || now.UnixNano() < e.next.Load() {
			return true
		}
		select {
		case <-c.stop:
			return false
		default:
		}
		c.check(e, st)
		return true
	})
}

func (c *SupplierKeys) check(e *entry, st *state) {
	ctx, cancel := context.WithTimeout(context.Background(), c.o.FetchTimeout)
	defer cancel()
	now := c.o.Now()
	v, err := c.o.Fetcher.Version(ctx, e.slot.supplier, e.slot.provider)
	switch {
	case err == nil && v == st.current.Version() && v != "":
		next := *st
		next.checkedAt, next.lastErr = now, ""
		e.state.CompareAndSwap(st, &next)
		e.staleWarned.Store(false)
		c.schedule(e, now)
	case err == nil || errors.Is(err, ErrKeyMissing):
		// A new version (or a source without versions): read it.
		_, _ = c.load(ctx, e.slot)
		c.schedule(e, now)
	default:
		next := *st
		next.lastErr = err.Error()
		e.state.CompareAndSwap(st, &next)
		if now.Sub(st.checkedAt) > c.o.Refresh*2 && !e.staleWarned.Swap(true) {
			c.o.Audit.Warn("serving a cached supplier key while its source is unreachable",
				zap.String("supplier", e.slot.supplier), zap.String("provider", e.slot.provider),
				zap.Time("last_checked", st.checkedAt), zap.Duration("max_staleness", c.o.MaxStaleness), zap.Error(err))
		}
		// Retry sooner than a full interval while the source is down.
		e.next.Store(now.Add(min(c.o.Refresh, 5*time.Second)).UnixNano())
	}
}

// Status describes one cached key for the admin API; the key itself is a
// fingerprint only.
type Status struct {
	Supplier    string    `json:"supplier"`
	Provider    string    `json:"provider"`
	Version     string    `json:"version,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	FetchedAt   time.Time `json:"fetched_at"`
	CheckedAt   time.Time `json:"checked_at"`
	Stale       bool      `json:"stale"`
	Missing     bool      `json:"missing"`
	Previous    string    `json:"previous_fingerprint,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
}

// Snapshot lists every cached key, sorted by supplier and provider.
func (c *SupplierKeys) Snapshot() []Status {
	now := c.o.Now()
	var out []Status
	c.entries.Range(func(_, v any) bool {
		e := v.(*entry)
		st := e.state.Load()
		if st == nil {
			return true
		}
		s := Status{Supplier: e.slot.supplier, Provider: e.slot.provider, FetchedAt: st.fetchedAt, CheckedAt: st.checkedAt,
			Missing: st.current == nil, LastError: st.lastErr, Stale: now.Sub(st.checkedAt) > c.o.Refresh*2}
		if st.current != nil {
			s.Version, s.Fingerprint = st.current.Version(), st.current.Fingerprint()
		}
		if st.previous != nil && now.Before(st.previousUntil) {
			s.Previous = st.previous.Fingerprint()
		}
		out = append(out, s)
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Supplier != out[j].Supplier {
			return out[i].Supplier < out[j].Supplier
		}
		return out[i].Provider < out[j].Provider
	})
	return out
}
