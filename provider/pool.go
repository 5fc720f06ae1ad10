package provider

import (
	"sync/atomic"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/keys"
)

// Pool is a provider's set of platform keys. Next spreads calls over the
// keys in turn, skipping keys that are cooling down after a 429.
type Pool struct {
	keys  []*keys.Key
	until []atomic.Int64 // unix nanoseconds until which keys[i] rests
	// account[i] is the account keys[i] last answered for (0: not yet
	// known), so that an account's limit used up rests all its keys.
	account []atomic.Uint64
	next    atomic.Uint64
}

// NewPool makes a pool of platform keys.
func NewPool(secrets []keys.Secret) *Pool {
	p := &Pool{keys: make([]*keys.Key, len(secrets)), until: make([]atomic.Int64, len(secrets)),
		account: make([]atomic.Uint64, len(secrets))}
	for i, s := range secrets {
		p.keys[i] = keys.NewKey(s, billing.PlatformKey, "")
	}
	return p
}

// Len is the number of keys in the pool.
func (p *Pool) Len() int { return len(p.keys) }

// Next returns the next key that is not cooling down; when every key is,
// the one that becomes available first.
func (p *Pool) Next(now time.Time) *keys.Key {
	n := uint64(len(p.keys))
	if n == 1 {
		return p.keys[0]
	}
	start := p.next.Add(1)
	ts := now.UnixNano()
	best, bestUntil := 0, int64(1<<63-1)
	for i := uint64(0); i < n; i++ {
		j := (start + i) % n
		u := p.until[j].Load()
		if u <= ts {
			return p.keys[j]
		}
		if u < bestUntil {
			best, bestUntil = int(j), u
		}
	}
	return p.keys[best]
}

// Other returns a key other than k that is not cooling down, or nil.
func (p *Pool) Other(k *keys.Key, now time.Time) *keys.Key {
	ts := now.UnixNano()
	for i, pk := range p.keys {
		if pk != k && p.until[i].Load() <= ts {
			return pk
		}
	}
	return nil
}

// MaxCooldown is the longest a key rests, whatever the provider's
// Retry-After says: a provider that asks for hours (or a hostile one) must
// not take a key out of a pool for longer.
const MaxCooldown = 5 * time.Minute

// Cooldown rests k until now+d, typically a 429's Retry-After; d is
// bounded to [0, MaxCooldown].
func (p *Pool) Cooldown(k *keys.Key, now time.Time, d time.Duration) {
	d = min(max(d, 0), MaxCooldown)
	for i, pk := range p.keys {
		if pk == k {
			p.until[i].Store(now.Add(d).UnixNano())
			return
		}
	}
}

// Fingerprints lists the pool's keys as fingerprints, for status output.
func (p *Pool) Fingerprints() []string {
	out := make([]string, len(p.keys))
	for i, k := range p.keys {
		out[i] = k.Fingerprint()
	}
	return out
}

// Exhausted notes an answer on k, made for account (nonzero; see
// proxy's rateLimitAccount), that used up the account's rate limit until
// now+d: k and every key last seen answering for the same account rest
// until then, as a 429 would have made them, so that the next calls go to
// the pool's other accounts without a refusal first. A pool of one key,
// or an account whose keys are all there is, leaves Next to choose the
// key that rests least, as ever. d is bounded as by Cooldown.
func (p *Pool) Exhausted(k *keys.Key, account uint64, now time.Time, d time.Duration) {
	if len(p.keys) < 2 {
		return
	}
	p.NoteAccount(k, account)
	until := now.Add(min(max(d, 0), MaxCooldown)).UnixNano()
	for i := range p.keys {
		if p.keys[i] == k || (account != 0 && p.account[i].Load() == account) {
			if p.until[i].Load() < until {
				p.until[i].Store(until)
			}
		}
	}
}

// NoteAccount records that k answered for account (0: unknown). It
// writes only when the account changed, so a call costs one atomic load.
func (p *Pool) NoteAccount(k *keys.Key, account uint64) {
	if len(p.keys) < 2 {
		return
	}
	for i, pk := range p.keys {
		if pk == k {
			if p.account[i].Load() != account {
				p.account[i].Store(account)
			}
			return
		}
	}
}
