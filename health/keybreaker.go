package health

import (
	"sync"
	"sync/atomic"
	"time"
)

// KeyFault says why a supplier's own key, rather than its provider,
// failed a call.
type KeyFault string

// Faults of a supplier's own key.
const (
	// KeyRefused is a 401 or 403, even after a fresh copy of the key from
	// the key store.
	KeyRefused KeyFault = "refused"
	// KeyOutOfQuota is a 429 whose code says the supplier's own account
	// is used up (insufficient_quota): waiting will not help.
	KeyOutOfQuota KeyFault = "out_of_quota"
	// KeyFailing is a server error, reset or timeout seen with the
	// supplier's key: the provider may well be serving everyone else.
	KeyFailing KeyFault = "failing"
)

// KeyBreakers holds a circuit breaker per supplier key identity: a
// provider and the supplier whose own key it is. Failures seen with a
// supplier's own key are that key's, not the provider's: a refusal or a
// used-up account opens the key's breaker at once, Failures consecutive
// server errors, resets or timeouts open it too. Open, calls that may fall
// back go straight to the fallback for Cooldown, instead of each paying a
// failed attempt first; then one call tries the supplier's key again, and
// its success closes the breaker. Entries exist only while a key is in
// trouble.
type KeyBreakers struct {
	// Cooldown is how long an opened breaker keeps the key out.
	Cooldown time.Duration
	// Failures is how many consecutive KeyFailing faults open a key's
	// breaker; below one means one.
	Failures int
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
	k.Failed(provider, supplier, KeyRefused, now)
}

// Failed records a fault of the supplier's own key at provider; the
// key's breaker opens at once for a refusal or a used-up account, after
// Failures in a row for the rest.
func (k *KeyBreakers) Failed(provider string, supplier []byte, fault KeyFault, now time.Time) {
	if k == nil {
		return
	}
	threshold := 1
	if fault == KeyFailing {
		threshold = max(k.Failures, 1)
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
	switch {
	case b == nil:
		b = &Breaker{Failures: threshold, Cooldown: k.Cooldown}
		m[string(supplier)] = b
		k.entries.Add(1)
	case threshold < b.Failures && b.State() == Closed:
		// A refusal after server errors: out at once.
		b = &Breaker{Failures: threshold, Cooldown: k.Cooldown}
		m[string(supplier)] = b
	}
	k.mu.Unlock()
	if c := b.record(Failure, now); c.alerting() && k.OnChange != nil {
		k.OnChange(Alert{Target: provider, Supplier: string(supplier), Source: SourceSupplierKey, Breaker: Open,
			Cause: faultCauses[fault], At: now})
	}
}

// faultCauses are the alerts' causes per fault.
var faultCauses = map[KeyFault]string{
	KeyRefused:    "refused: the provider refused the supplier's own key",
	KeyOutOfQuota: "out_of_quota: the supplier's own account with the provider is used up",
	KeyFailing:    "failing: calls with the supplier's own key fail while the provider serves other keys",
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
