package health

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// maxAccounts is how many accounts a target tells apart. A provider's pool
// rarely spans more organisations than this; beyond it, an account takes
// the cell of one that stopped counting, or shares the cell its number
// picks with the account there (the later report wins in it, as a single
// observation did before accounts were told apart).
const maxAccounts = 8

// Account numbers, from the 64-bit FNV-1a hash of a kind byte and a name.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashAccount is the account number of a name of one kind; never 0, which
// is the unnamed account.
func hashAccount[T string | []byte](kind byte, name T) uint64 {
	h := uint64(fnvOffset)
	h = (h ^ uint64(kind)) * fnvPrime
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * fnvPrime
	}
	if h == 0 {
		h = 1
	}
	return h
}

// OrgAccount is the account of the organisation an answer names (OpenAI's
// OpenAI-Organization header): keys of one organisation share its rate
// limits, and report the same numbers. It is the same number on every
// replica and does not allocate.
func OrgAccount(org []byte) uint64 { return hashAccount('o', org) }

// KeyAccount is the account of a platform key, by its fingerprint, for a
// provider whose answers do not name an organisation. It is the same number
// on every replica and does not allocate.
func KeyAccount(fingerprint string) uint64 { return hashAccount('k', fingerprint) }

// accountCell is a target's cell for one account of its platform keys.
type accountCell struct {
	// owner is the account the cell was claimed for (lookups); the
	// observation names the account that wrote it last.
	owner atomic.Uint64
	limitCell
	// pubSeq is the sequence count Sharing published last.
	pubSeq atomic.Uint64
}

// accounts are a target's account cells; the first n are in use.
type accounts struct {
	cells [maxAccounts]accountCell
	n     atomic.Int32
	claim sync.Mutex
}

// cell is the cell of account acct, claimed at now (unix nanoseconds) if
// it has none. Finding it is a few atomic loads; claiming one, on an
// account's first report, takes a lock.
func (a *accounts) cell(acct uint64, now int64) *accountCell {
	n := int(a.n.Load())
	for i := range n {
		if a.cells[i].owner.Load() == acct {
			return &a.cells[i]
		}
	}
	a.claim.Lock()
	defer a.claim.Unlock()
	n = int(a.n.Load())
	for i := range n {
		if a.cells[i].owner.Load() == acct {
			return &a.cells[i]
		}
	}
	if n < maxAccounts {
		c := &a.cells[n]
		c.owner.Store(acct)
		a.n.Store(int32(n + 1))
		return c
	}
	// Full: the cell of an account that stopped counting, the oldest first.
	var free *accountCell
	oldest := int64(math.MaxInt64)
	for i := range a.cells {
		o, _ := a.cells[i].load()
		if !o.live(now) && o.at < oldest {
			free, oldest = &a.cells[i], o.at
		}
	}
	if free != nil {
		free.owner.Store(acct)
		return free
	}
	return &a.cells[acct%maxAccounts]
}

// accountSet is what is known of a provider's accounts: per account, the
// newest of this replica's observation and every replica's, shared through
// the store. It lives on its reader's stack.
type accountSet struct {
	obs [maxAccounts]observation
	n   int
}

// put adds an observation, unless the set holds a newer one of its account
// or, full, tells apart as many accounts as a target does (the shared view
// lists each provider's newest first).
func (s *accountSet) put(o *observation) {
	if o.at == 0 {
		return
	}
	for i := range s.n {
		if s.obs[i].acct == o.acct {
			if o.at > s.obs[i].at {
				s.obs[i] = *o
			}
			return
		}
	}
	if s.n < maxAccounts {
		s.obs[s.n] = *o
		s.n++
	}
}

// poolSum is a provider's headroom over the accounts of its platform keys.
type poolSum struct {
	req, tok kindSum
	// accounts is how many accounts are counted; at is the newest
	// observation among them (0: none).
	accounts int
	at       int64
}

// kindSum sums one kind of limit (requests or tokens) over accounts.
type kindSum struct {
	// n is how many accounts tell what is left of it now; weight is
	// their limits (1 for an account that gave none), left the part of
	// weight left now, each account refilled towards its own reset, and
	// only the share of the one account when n is 1 (exactly as a single
	// observation says it).
	n            int
	weight, left float64
	only         float64
	// What the accounts reported, summed: limits and what was left of
	// them (-1 when none said), and the latest reset (0: none said).
	limit, remaining int64
	reset            int64
}

// add counts one account's report of this kind at now.
func (k *kindSum) add(limit, remaining, at, reset, now int64) {
	if limit >= 0 {
		k.limit = max(k.limit, 0) + limit
	}
	if remaining >= 0 {
		k.remaining = max(k.remaining, 0) + remaining
	}
	k.reset = max(k.reset, reset)
	f, ok := fraction(limit, remaining, at, reset, now)
	if !ok {
		return
	}
	w := 1.0
	if limit > 0 {
		w = float64(limit)
	}
	k.n++
	k.weight += w
	k.left += w * f
	k.only = f
}

// share is the part of the kind's limits left now, and whether any
// account tells it.
func (k *kindSum) share() (float64, bool) {
	switch k.n {
	case 0:
		return 1, false
	case 1:
		return k.only, true
	}
	return min(k.left/k.weight, 1), true
}

// left is the provider's headroom: per kind, what its accounts have left
// over their limits; then the tighter kind. It is 1 when nothing tells.
func (p *poolSum) left() (float64, bool) {
	fr, okR := p.req.share()
	ft, okT := p.tok.share()
	if !okR && !okT {
		return 1, false
	}
	return min(fr, ft), true
}

// add counts one account's observation.
func (p *poolSum) add(o *observation, now int64) {
	p.accounts++
	p.at = max(p.at, o.at)
	p.req.add(o.limReq, o.remReq, o.at, o.resetReq, now)
	p.tok.add(o.limTok, o.remTok, o.at, o.resetT, now)
}

// idleSpread is how long before a provider's newest report its other
// accounts' reports still count once none counts by itself any more (an
// idle pool): as long as the store keeps a shared entry.
const idleSpread = 10 * time.Minute

// sum is the provider's headroom at now over the set: each account while
// its observation counts (see observation.live); the unnamed account (a
// report that named none) only while no named one counts, as it stands for
// whichever key answered. When no account counts any more (the provider
// has been idle), those heard from within idleSpread of the newest report
// do, aging as they always have (whole again past their resets): so an
// idle pool keeps its accounts' limits, and one account is exactly as a
// single observation was.
func (s *accountSet) sum(now int64) poolSum {
	p := poolSum{req: kindSum{limit: -1, remaining: -1}, tok: kindSum{limit: -1, remaining: -1}}
	var newest int64
	live := false
	for i := range s.n {
		o := &s.obs[i]
		newest = max(newest, o.at)
		live = live || o.live(now)
	}
	from := newest - int64(idleSpread)
	named := false
	for i := range s.n {
		o := &s.obs[i]
		named = named || o.acct != 0 && o.counts(now, live, from)
	}
	for i := range s.n {
		if o := &s.obs[i]; o.counts(now, live, from) && (o.acct != 0 || !named) {
			p.add(o, now)
		}
	}
	return p
}

// counts reports whether an account's observation is summed at now: while
// it is live when any is (live), else when it came at from or later.
func (o *observation) counts(now int64, live bool, from int64) bool {
	if live {
		return o.live(now)
	}
	return o.at >= from
}

// sharedView is every replica's headroom as the store last gave it, by
// provider; it is replaced whole, never changed.
type sharedView struct {
	byProvider map[string]sharedEntry
}

// sharedEntry is one provider's shared headroom: its accounts' latest
// observations (at most maxAccounts, the newest) and its cooldown.
type sharedEntry struct {
	accounts []observation
	cool     int64 // unix nanoseconds; 0: none
}

// gather fills s with what is known of the named provider (t, nil when it
// is not a target), and returns the later cooldown.
func (r *Registry) gather(s *accountSet, t *Target, name string) int64 {
	var cool int64
	if t != nil {
		n := int(t.accounts.n.Load())
		for i := range n {
			o, _ := t.accounts.cells[i].load()
			s.put(&o)
		}
		cool = t.coolUntil.Load()
	}
	if v := r.shared.Load(); v != nil && len(v.byProvider) > 0 {
		if e, ok := v.byProvider[name]; ok {
			for i := range e.accounts {
				s.put(&e.accounts[i])
			}
			cool = max(cool, e.cool)
		}
	}
	return cool
}

// single is the newest observation of the named provider (t, nil when it
// is not a target) and its later cooldown, when no more than one account
// is known of it here and in the shared view; false when more are, for
// gather and sum. For one account they come to the same, without copying
// cells that are not used.
func (r *Registry) single(t *Target, name string) (observation, int64, bool) {
	obs, cool := noObservation, int64(0)
	if t != nil {
		switch t.accounts.n.Load() {
		case 0:
		case 1:
			obs, _ = t.accounts.cells[0].load()
		default:
			return obs, 0, false
		}
		cool = t.coolUntil.Load()
	}
	if v := r.shared.Load(); v != nil && len(v.byProvider) > 0 {
		if e, ok := v.byProvider[name]; ok {
			switch {
			case len(e.accounts) > 1:
				return obs, 0, false
			case len(e.accounts) == 1:
				o := &e.accounts[0]
				if obs.at != 0 && o.at != 0 && o.acct != obs.acct {
					return obs, 0, false
				}
				if o.at > obs.at {
					obs = *o
				}
			}
			cool = max(cool, e.cool)
		}
	}
	return obs, cool, true
}

// Load reports, for the named provider at now, the fraction of its platform
// keys' tightest rate limit that is left (1 when nothing tells), whether a
// 429 holds it out, and the moving average of its time to response
// headers (0 before its first answer). The fraction is over the accounts
// of its pool: per kind of limit, what each account has left, refilled
// towards its own reset, over their limits summed; keys of one
// organisation are one account. It merges this replica's observations with
// every replica's, shared through the store: per account the newer
// observation counts, and the later cooldown. It reads atomics only and
// allocates nothing, for the request path.
func (r *Registry) Load(name string, now time.Time) (left float64, coolingDown bool, latency time.Duration) {
	ns := now.UnixNano()
	t := r.targets[name]
	var cool int64
	if o, c, ok := r.single(t, name); ok {
		// One account, as most providers have: its newest observation.
		left, _ = o.left(ns)
		cool = c
	} else {
		var s accountSet
		cool = r.gather(&s, t, name)
		p := s.sum(ns)
		left, _ = p.left()
	}
	if t != nil {
		latency = time.Duration(loadSeconds(&t.latencyEWMA) * float64(time.Second))
	}
	return left, cool > ns, latency
}

// PoolLimits is a provider's rate limits over the accounts of its platform
// keys that its headroom counts, as this replica and, through the store,
// every replica last saw them.
type PoolLimits struct {
	// Accounts is how many accounts are counted: organisations, or keys
	// where the provider names none.
	Accounts int `json:"accounts"`
	// At is when the newest of their reports arrived.
	At time.Time `json:"at"`
	// Requests and Tokens are each kind of limit summed over them.
	Requests PoolWindow `json:"requests"`
	Tokens   PoolWindow `json:"tokens"`
}

// PoolWindow is one kind of rate limit summed over a pool's accounts.
type PoolWindow struct {
	// Limit and Remaining are the limits and what was left of them, as
	// each account last reported; absent when none said.
	Limit     *int64 `json:"limit,omitempty"`
	Remaining *int64 `json:"remaining,omitempty"`
	// Reset is when the last of the accounts' windows is whole again.
	Reset *time.Time `json:"reset,omitempty"`
	// Left is the share of the limits left now, each account refilled
	// towards its reset; absent when no account tells.
	Left *float64 `json:"left,omitempty"`
}

// window is one kind's PoolWindow.
func (k *kindSum) window() PoolWindow {
	var w PoolWindow
	if k.limit >= 0 {
		v := k.limit
		w.Limit = &v
	}
	if k.remaining >= 0 {
		v := k.remaining
		w.Remaining = &v
	}
	w.Reset = unixTime(k.reset)
	if f, ok := k.share(); ok {
		f = float64(int(f*1e4)) / 1e4
		w.Left = &f
	}
	return w
}

// headroomOf is the merged headroom of a target for its snapshot: the
// fraction left, when something tells, the end of a cooldown still running
// at now, and the pool's limits (nil before any report).
func (r *Registry) headroomOf(name string, now time.Time) (*float64, *time.Time, *PoolLimits) {
	var s accountSet
	cool := r.gather(&s, r.targets[name], name)
	p := s.sum(now.UnixNano())
	var left *float64
	if f, ok := p.left(); ok {
		f = float64(int(f*1e4)) / 1e4
		left = &f
	}
	var until *time.Time
	if cool > now.UnixNano() {
		u := time.Unix(0, cool).UTC()
		until = &u
	}
	var pool *PoolLimits
	if p.accounts > 0 {
		pool = &PoolLimits{Accounts: p.accounts, At: time.Unix(0, p.at).UTC(), Requests: p.req.window(), Tokens: p.tok.window()}
	}
	return left, until, pool
}
