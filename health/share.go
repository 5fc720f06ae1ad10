package health

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/wedsync/veil/store"
)

// DefaultShareInterval is how often Sharing publishes and reads by default.
const DefaultShareInterval = time.Second

// Sharing shares providers' headroom between replicas through the store
// (ADR 0028): every Interval it publishes, in one small batch, the
// observations and 429 cooldowns of this replica's targets that changed
// since the last round, and reads every replica's back into the registry's
// shared view, which Registry.Load reads without locks. Nothing of it is
// on the request path: a replica writes at most once an interval, whatever
// its traffic.
type Sharing struct {
	// Registry holds the targets whose observations are published, and
	// the shared view read back.
	Registry *Registry
	// Store is where replicas meet.
	Store store.Headrooms
	// Interval is the time between two rounds; DefaultShareInterval when
	// zero.
	Interval time.Duration
	// Timeout bounds each store call; Interval when zero.
	Timeout time.Duration
	// OnError is told of a round that failed; nil ignores failures. The
	// view read last stays in force meanwhile, aging as its reset times
	// pass.
	OnError func(error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run syncs every Interval until ctx ends.
func (s *Sharing) Run(ctx context.Context) {
	t := time.NewTicker(s.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sync(ctx); err != nil && s.OnError != nil && ctx.Err() == nil {
				s.OnError(err)
			}
		}
	}
}

func (s *Sharing) interval() time.Duration {
	if s.Interval > 0 {
		return s.Interval
	}
	return DefaultShareInterval
}

func (s *Sharing) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Sync makes one round: it publishes what changed, then reads the shared
// view.
func (s *Sharing) Sync(ctx context.Context) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = s.interval()
	}
	now := s.now()
	if err := s.publish(ctx, timeout, now); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hs, err := s.Store.Headroom(cctx, now)
	if err != nil {
		return fmt.Errorf("health: reading the shared headroom: %w", err)
	}
	v := &sharedView{byProvider: make(map[string]sharedEntry, len(hs))}
	for _, h := range hs {
		acct, ok := parseAccount(h.Account)
		if !ok {
			continue // not an account this version names: left out
		}
		e := v.byProvider[h.Provider]
		if o := fromHeadroom(h, acct); o.at != 0 {
			e.accounts = append(e.accounts, o)
		}
		e.cool = max(e.cool, nanos(h.CooldownUntil))
		v.byProvider[h.Provider] = e
	}
	for name, e := range v.byProvider {
		if len(e.accounts) > maxAccounts {
			// The newest count; the rest are old news of a pool larger
			// than a target tells apart.
			slices.SortFunc(e.accounts, func(a, b observation) int { return cmp.Compare(b.at, a.at) })
			e.accounts = e.accounts[:maxAccounts]
			v.byProvider[name] = e
		}
	}
	s.Registry.shared.Store(v)
	return nil
}

// publish writes the observations and cooldowns that changed since they
// were last published: per provider, one entry per account that reported,
// and the cooldown on the provider's own entry (the unnamed account's).
func (s *Sharing) publish(ctx context.Context, timeout time.Duration, now time.Time) error {
	type mark struct {
		c   *accountCell
		seq uint64
	}
	type coolMark struct {
		t    *Target
		cool int64
	}
	var batch []store.Headroom
	var marks []mark
	var cools []coolMark
	for name, t := range s.Registry.targets {
		cool := t.coolUntil.Load()
		coolChanged := cool != t.pubCool.Load()
		unnamed := false
		for i := range int(t.accounts.n.Load()) {
			c := &t.accounts.cells[i]
			obs, seq := c.load()
			if seq == 0 || seq == c.pubSeq.Load() && !(obs.acct == 0 && coolChanged) {
				continue
			}
			h := toHeadroom(name, obs, 0)
			if obs.acct == 0 {
				h.CooldownUntil, unnamed = fromNanos(cool), true
			}
			batch = append(batch, h)
			marks = append(marks, mark{c, seq})
		}
		if coolChanged {
			if !unnamed {
				batch = append(batch, toHeadroom(name, noObservation, cool))
			}
			cools = append(cools, coolMark{t, cool})
		}
	}
	if len(batch) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.Store.PublishHeadroom(cctx, batch, now); err != nil {
		return fmt.Errorf("health: publishing headroom: %w", err)
	}
	for _, m := range marks {
		m.c.pubSeq.Store(m.seq)
	}
	for _, m := range cools {
		m.t.pubCool.Store(m.cool)
	}
	return nil
}

// toHeadroom is an observation and a cooldown as the store keeps them.
func toHeadroom(provider string, o observation, cool int64) store.Headroom {
	return store.Headroom{Provider: provider, Account: accountName(o.acct), At: fromNanos(o.at), LimitRequests: o.limReq,
		RemainingRequests: o.remReq, LimitTokens: o.limTok, RemainingTokens: o.remTok, ResetRequests: fromNanos(o.resetReq),
		ResetTokens: fromNanos(o.resetT), CooldownUntil: fromNanos(cool)}
}

// fromHeadroom is the observation of account acct a shared headroom holds.
func fromHeadroom(h store.Headroom, acct uint64) observation {
	if h.At.IsZero() {
		return noObservation
	}
	return observation{acct: acct, at: nanos(h.At), limReq: h.LimitRequests, remReq: h.RemainingRequests, limTok: h.LimitTokens,
		remTok: h.RemainingTokens, resetReq: nanos(h.ResetRequests), resetT: nanos(h.ResetTokens)}
}

// accountName is an account number as the store names it: 16 hex
// digits; empty for the unnamed account, the provider's own entry.
func accountName(acct uint64) string {
	if acct == 0 {
		return ""
	}
	var b [16]byte
	const digits = "0123456789abcdef"
	for i := range b {
		b[i] = digits[acct>>(60-4*i)&0xf]
	}
	return string(b[:])
}

// parseAccount reads an account name of the store; false for one this
// version does not write.
func parseAccount(s string) (uint64, bool) {
	if s == "" {
		return 0, true
	}
	if len(s) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 16, 64)
	return n, err == nil && n != 0
}

// nanos is t in unix nanoseconds; 0 for the zero time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is the time of unix nanoseconds ns; the zero time for 0.
func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
