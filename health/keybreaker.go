package health

import (
	"sync"
	"sync/atomic"
	"time"
)

// KeyBreakers holds a circuit breaker per supplier key identity: a
// provider and the supplier whose own key it is. When the provider refuses
// a supplier's key even after a fresh copy from the key store, the breaker
// opens and calls that may fall back go straight to platform keys for
// Cooldown, instead of each paying a refused attempt first; then one call
// tries the supplier's key again, and its success closes the breaker.
// Entries exist only while a key is in trouble.
type KeyBreakers struct {
	// Cooldown is how long an opened breaker keeps the key out.
	Cooldown time.Duration
	// OnChange, when set, is told when a supplier's key is first held out
	// and when it is accepted again (an Alert of SourceSupplierKey). It is
	// called outside the lock, only on those changes.
	OnChange func(Alert)

	mu      sync.Mutex
	byProv  map[string]map[string]*Breaker
	entries atomic.Int64
}

// Allow reports whether the supplier's key at provider may be tried at
// now, taking the half-open probe when the cooldown is over.
func (k *KeyBreakers) Allow(provider string, supplier []byte, now time.Time) bool {
	if k == nil || k.entries.Load() == 0 {
		return true
	}
	k.mu.Lock()
	b := k.byProv[provider][string(supplier)]
	k.mu.Unlock()
	return b == nil || b.Allow(now)
}

// Refused records that the provider refused the supplier's key.
func (k *KeyBreakers) Refused(provider string, supplier []byte, now time.Time) {
	if k == nil {
		return
	}
	k.mu.Lock()
	if k.byProv == nil {
		k.byProv = make(map[string]map[string]*Breaker)
	}
	m := k.byProv[provider]
	if m == nil {
		m = make(map[string]*Breaker)
		k.byProv[provider] = m
	}
	b := m[string(supplier)]
	opened := b == nil
	if opened {
		b = &Breaker{Failures: 1, Cooldown: k.Cooldown}
		m[string(supplier)] = b
		k.entries.Add(1)
	}
	k.mu.Unlock()
	b.Record(Failure, now)
	if opened && k.OnChange != nil {
		k.OnChange(Alert{Target: provider, Supplier: string(supplier), Source: SourceSupplierKey, Breaker: Open,
			Cause: "the provider refused the supplier's own key; calls fall back to platform keys", At: now})
	}
}

// Served records that the provider accepted the supplier's key, closing
// its breaker.
func (k *KeyBreakers) Served(provider string, supplier []byte) {
	if k == nil || k.entries.Load() == 0 {
		return
	}
	k.mu.Lock()
	_, ok := k.byProv[provider][string(supplier)]
	if ok {
		delete(k.byProv[provider], string(supplier))
		k.entries.Add(-1)
	}
	k.mu.Unlock()
	if ok && k.OnChange != nil {
		k.OnChange(Alert{Target: provider, Supplier: string(supplier), Source: SourceSupplierKey, Up: true, Breaker: Closed,
			At: time.Now()})
	}
}

// Open is the number of supplier keys currently held out or on probation.
func (k *KeyBreakers) Open() int { return int(k.entries.Load()) }
