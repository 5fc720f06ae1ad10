package keys

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
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
	// ErrCredentialsRejected means the key source answered but refused
	// veil's own credentials (for Vault: permission denied, or a token that
	// is revoked or expired); a cached key keeps being served until it is
	// stale, as when the source is unreachable.
	ErrCredentialsRejected = errors.New("keys: the key source rejected veil's credentials")
	// ErrNotLoaded means no key of the supplier for the provider has been
	// loaded since veil started (or since the key was found missing), and
	// the key source failed when asked; the error also wraps why.
	ErrNotLoaded = errors.New("keys: the supplier's key is not loaded yet")
	// ErrStale means the source has not answered for longer than the
	// maximum staleness, so the cached key is no longer served; the error
	// also wraps the source's last failure.
	ErrStale = errors.New("keys: the cached key is older than the maximum staleness")
)

// UnavailableError is why a supplier's key cannot be served for now,
// although the supplier may have one: no key was loaded yet, or the one
// cached is stale. It matches its State (ErrNotLoaded or ErrStale) with
// errors.Is, and the key source's last failure, Cause, which wraps
// ErrUnreachable or ErrCredentialsRejected when that is what failed.
type UnavailableError struct {
	// Supplier and Provider name the key.
	Supplier, Provider string
	// State is ErrNotLoaded or ErrStale.
	State error
	// LastAnswer is when the key source last answered for this key; zero
	// when it never did.
	LastAnswer time.Time
	// Age is how long the source has been silent, for a stale key.
	Age time.Duration
	// MaxStaleness is the cache's maximum staleness, for a stale key.
	MaxStaleness time.Duration
	// Cause is the key source's last error; it may be nil for a stale key
	// whose source was never asked again.
	Cause error
}

// Error says which key is unavailable, why and since when, without any
// part of a key.
func (e *UnavailableError) Error() string {
	var b strings.Builder
	b.WriteString("supplier ")
	b.WriteString(e.Supplier)
	b.WriteString(", provider ")
	b.WriteString(e.Provider)
	b.WriteString(": ")
	if errors.Is(e.State, ErrStale) {
		b.WriteString("key source silent for ")
		b.WriteString(e.Age.Round(time.Second).String())
		b.WriteString(", longer than the maximum staleness of ")
		b.WriteString(e.MaxStaleness.String())
	} else {
		b.WriteString("no key loaded yet")
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the error's State and Cause.
func (e *UnavailableError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.State != nil {
		errs = append(errs, e.State)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// Fetcher reads suppliers' keys from where they live (Vault, or references
// in config). Errors wrap ErrKeyMissing, ErrUnreachable or
// ErrCredentialsRejected where they apply and never contain a key.
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
	// Audit receives fetches, rotations, staleness warnings and the key
	// source's failures and recoveries, one line per change (with
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
	source  sourceHealth
	// warming counts the fetches ClientKey started in the background;
	// warmMu guards adding to it against Close waiting for it.
	warming sync.WaitGroup
	warmMu  sync.Mutex
	closing bool
}

// sourceHealth follows whether the key source answers, so that its
// failures and its recovery are audited once per change rather than once
// per request or per key.
type sourceHealth struct {
	failing  atomic.Bool // read without the lock on every answer
	mu       sync.Mutex
	kind     string    // what fails: failUnreachable or failRejected
	since    time.Time // the first failure
	failures int       // failed calls since
}

// What a failure of the key source is, in audit lines.
const (
	failUnreachable = "unreachable"
	failRejected    = "credentials_rejected"
	failOther       = "error"
)

type slot struct{ supplier, provider string }

// entry is one supplier and provider; its state is swapped atomically.
type entry struct {
	slot  slot
	state atomic.Pointer[state]
	// next is when the background loop checks it next (unix nanoseconds).
	next         atomic.Int64
	staleWarned  atomic.Bool
	missingUntil atomic.Int64
	// expired is set once the key is past the maximum staleness, so that
	// this is audited once; an answer of the source clears it.
	expired atomic.Bool
	// failing is set while fetches of this key fail for a reason other
	// than the source's being unreachable or refusing veil, so that each
	// such failure is audited once.
	failing atomic.Bool
	// refused is the fingerprint of the key a provider refused when the
	// source had no other: until the source's version changes (which the
	// refresh loop sees), later refusals of that key are answered without
	// asking the source again.
	refused atomic.Pointer[string]
	// warming is set while ClientKey's background fetch of the entry runs.
	warming atomic.Bool
}

// state is an immutable snapshot of one entry.
type state struct {
	current       *Key // nil when missing
	previous      *Key
	previousUntil time.Time
	fetchedAt     time.Time // the current key was read
	checkedAt     time.Time // the source last answered
	lastErr       error     // the source's last failure, nil after an answer
	missing       bool      // the source answered that there is no key
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

// Close stops the refresh loop and waits for the fetches ClientKey
// started.
func (c *SupplierKeys) Close() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
	c.warmMu.Lock()
	c.closing = true
	c.warmMu.Unlock()
	c.warming.Wait()
}

// ClientKey reports, without waiting for the key source, whether the
// supplier's own key for the provider is held (has), and whether that is
// known: known is false until the source has been asked, and a key not
// asked for yet (or a remembered miss that expired) is then fetched in the
// background, once at a time, so that a later call knows. Routing uses it
// to send a supplier's calls only where it has a key (policy.KeyPresence).
func (c *SupplierKeys) ClientKey(supplier []byte, provider string) (has, known bool) {
	s := slot{string(supplier), provider}
	v, ok := c.entries.Load(s)
	if !ok {
		c.warm(c.entry(s))
		return false, false
	}
	e := v.(*entry)
	st := e.state.Load()
	switch {
	case st == nil:
		c.warm(e)
		return false, false
	case st.current != nil:
		return true, true
	case c.o.Now().UnixNano() >= e.missingUntil.Load():
		c.warm(e) // ask again, and say missing meanwhile
	}
	return false, true
}

// warm fetches e's key in the background unless a fetch ClientKey started
// is still running or the cache is closed.
func (c *SupplierKeys) warm(e *entry) {
	if !e.warming.CompareAndSwap(false, true) {
		return
	}
	c.warmMu.Lock()
	if c.closing {
		c.warmMu.Unlock()
		e.warming.Store(false)
		return
	}
	c.warming.Add(1)
	c.warmMu.Unlock()
	go func() {
		defer c.warming.Done()
		defer e.warming.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), c.o.FetchTimeout)
		defer cancel()
		_, _ = c.load(ctx, e.slot)
	}()
}

// Get returns the supplier's current key for the provider. A cached key is
// returned without I/O, also while its source fails, up to the maximum
// staleness. The first request for a supplier waits for one fetch, shared
// by every request that asks at the same time.
//
// Errors match ErrKeyMissing when the source has no key; otherwise they
// are an *UnavailableError matching ErrNotLoaded (no key loaded yet and
// the source failed) or ErrStale (past the maximum staleness), and
// ErrCredentialsRejected or ErrUnreachable when that is why the source
// failed.
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
		if !e.expired.Load() {
			c.expire(e, st, age)
		}
		return nil, true, &UnavailableError{Supplier: e.slot.supplier, Provider: e.slot.provider, State: ErrStale,
			LastAnswer: st.checkedAt, Age: age, MaxStaleness: c.o.MaxStaleness, Cause: st.lastErr}
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
	e := c.entry(s)
	if st := e.state.Load(); st != nil && st.current != nil && st.current != key {
		return st.current, nil // someone already moved on
	}
	fp := key.Fingerprint()
	if r := e.refused.Load(); r != nil && *r == fp {
		// The source said it has no other key than this refused one, and
		// its version has not changed since (the refresh loop, which
		// checks it every refresh interval, would have replaced the
		// current key above): however many calls are refused, the source
		// is read once.
		return nil, noOtherKey(supplier, provider, fp)
	}
	k, err := c.load(ctx, s)
	if err != nil {
		return nil, err
	}
	if k == key || k.Fingerprint() == fp {
		e.refused.Store(&fp)
		return nil, noOtherKey(supplier, provider, fp)
	}
	return k, nil
}

// noOtherKey is Rejected's answer when the source has no other key than
// the refused one.
func noOtherKey(supplier, provider, fingerprint string) error {
	return fmt.Errorf("supplier %s, provider %s: the provider refused key %s and the source has no other", supplier, provider, fingerprint)
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
			c.answered(e)
			c.o.Audit.Warn("supplier key missing", zap.String("supplier", s.supplier), zap.String("provider", s.provider))
			e.missingUntil.Store(now.Add(c.o.MissingTTL).UnixNano())
			e.state.Store(&state{checkedAt: now, missing: true})
			return nil, err
		}
		c.failed(e, err)
		if old != nil && old.current != nil {
			st := *old
			st.lastErr = err
			e.state.Store(&st)
			// Serve what we have until it is stale.
			if k, ok, uerr := c.usable(e); ok {
				return k, uerr
			}
		}
		ue := &UnavailableError{Supplier: s.supplier, Provider: s.provider, State: ErrNotLoaded, Cause: err}
		if old != nil {
			ue.LastAnswer = old.checkedAt
		}
		return nil, ue
	}
	c.answered(e)
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
		c.answered(e)
		next := *st
		next.checkedAt, next.lastErr = now, nil
		e.state.CompareAndSwap(st, &next)
		e.staleWarned.Store(false)
		c.schedule(e, now)
	case err == nil || errors.Is(err, ErrKeyMissing):
		// A new version (or a source without versions): read it.
		_, _ = c.load(ctx, e.slot)
		c.schedule(e, now)
	default:
		c.failed(e, err)
		next := *st
		next.lastErr = err
		e.state.CompareAndSwap(st, &next)
		if age := now.Sub(st.checkedAt); age > c.o.MaxStaleness {
			if !e.expired.Load() {
				c.expire(e, &next, age)
			}
		} else if age > c.o.Refresh*2 && !e.staleWarned.Swap(true) {
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
			Missing: st.current == nil, Stale: now.Sub(st.checkedAt) > c.o.Refresh*2}
		switch {
		case st.lastErr != nil:
			s.LastError = st.lastErr.Error()
		case st.missing:
			s.LastError = "missing"
		}
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

// failKind says what kind of failure of the key source err is.
func failKind(err error) string {
	switch {
	case errors.Is(err, ErrCredentialsRejected):
		return failRejected
	case errors.Is(err, ErrUnreachable), errors.Is(err, context.DeadlineExceeded):
		return failUnreachable
	}
	return failOther
}

// failed records a failed call of the source for e. The source's being
// unreachable or refusing veil is audited when it starts and when it
// changes from one to the other; any other failure once per key until the
// key is read again.
func (c *SupplierKeys) failed(e *entry, err error) {
	kind := failKind(err)
	if kind == failOther {
		if !e.failing.Swap(true) {
			c.o.Audit.Warn("supplier key fetch failed", zap.String("supplier", e.slot.supplier),
				zap.String("provider", e.slot.provider), zap.Error(err))
		}
		return
	}
	h := &c.source
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	if h.failing.Load() && h.kind == kind {
		return
	}
	if !h.failing.Load() {
		h.since = c.o.Now()
	}
	h.kind = kind
	h.failing.Store(true)
	msg := "supplier key source unreachable; cached keys are served until they are stale"
	if kind == failRejected {
		msg = "supplier key source rejected veil's credentials; cached keys are served until they are stale"
	}
	c.o.Audit.Warn(msg, zap.String("reason", kind), zap.String("supplier", e.slot.supplier),
		zap.String("provider", e.slot.provider), zap.Duration("max_staleness", c.o.MaxStaleness), zap.Error(err))
}

// answered records an answer of the source for e (a key, a version, or
// "missing"), auditing the source's recovery after failures.
func (c *SupplierKeys) answered(e *entry) {
	e.expired.Store(false)
	e.failing.Store(false)
	h := &c.source
	if !h.failing.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing.Load() {
		return
	}
	h.failing.Store(false)
	c.o.Audit.Info("supplier key source recovered", zap.String("after", h.kind),
		zap.Duration("failing_for", c.o.Now().Sub(h.since)), zap.Int("failed_calls", h.failures))
	h.kind, h.since, h.failures = "", time.Time{}, 0
}

// expire audits, once until the source answers again, that e's key is past
// the maximum staleness and no longer served.
func (c *SupplierKeys) expire(e *entry, st *state, age time.Duration) {
	if e.expired.Swap(true) {
		return
	}
	fields := []zap.Field{zap.String("supplier", e.slot.supplier), zap.String("provider", e.slot.provider),
		zap.Object("key", st.current), zap.Time("last_answer", st.checkedAt),
		zap.Duration("silent_for", age.Round(time.Second)), zap.Duration("max_staleness", c.o.MaxStaleness)}
	if st.lastErr != nil {
		fields = append(fields, zap.String("reason", failKind(st.lastErr)), zap.Error(st.lastErr))
	}
	c.o.Audit.Warn("supplier key past its maximum staleness; no longer served", fields...)
}
