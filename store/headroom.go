package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// HeadroomTTL is how long a provider's shared headroom is kept after the
// later of its observation and its cooldown: Headroom leaves older entries
// out, and the stores drop them.
const HeadroomTTL = 10 * time.Minute

// Headroom is what a replica last saw of the rate limits of one account of
// a provider's platform keys (the x-ratelimit-* headers of its answers),
// or of the provider as a whole, and how long a 429 holds the provider
// out, shared so that every replica routes by it (ADR 0028).
type Headroom struct {
	// Provider names the provider; it must not be empty or contain '|'.
	Provider string
	// Account names one account of the provider's platform keys (an
	// organisation, or a key where the provider names none), whose limits
	// are its own; it must not contain '|'. Empty is the provider's own
	// entry: its cooldown, and the counts of a report that named no
	// account (all an entry held before accounts were told apart).
	Account string
	// At is when the answer the counts come from arrived; the zero time
	// when the entry carries a cooldown only.
	At time.Time
	// LimitRequests and RemainingRequests are the provider's request limit
	// and what was left of it; LimitTokens and RemainingTokens the same for
	// tokens. Negative: the provider did not say.
	LimitRequests, RemainingRequests int64
	LimitTokens, RemainingTokens     int64
	// ResetRequests and ResetTokens are when each limit is whole again;
	// the zero time when the provider did not say.
	ResetRequests, ResetTokens time.Time
	// CooldownUntil is when a 429 stops holding the provider out; the zero
	// time for none.
	CooldownUntil time.Time
}

// Headrooms shares providers' rate-limit headroom and 429 cooldowns
// between replicas. Each replica publishes one small batch of what changed
// at most once an interval and reads the whole view back as often; neither
// is on the request path.
type Headrooms interface {
	// PublishHeadroom merges hs into the shared view: per provider and
	// account, the counts observed last (the later At) win, and so does
	// the later cooldown, so that replicas publishing in any order agree.
	// Entries older than HeadroomTTL at now are dropped.
	PublishHeadroom(ctx context.Context, hs []Headroom, now time.Time) error
	// Headroom returns the shared view at now, one entry per provider and
	// account, sorted by provider then account (the provider's own entry
	// first), leaving out entries older than HeadroomTTL.
	Headroom(ctx context.Context, now time.Time) ([]Headroom, error)
}

// checkHeadroom validates a batch to publish.
func checkHeadroom(hs []Headroom) error {
	for _, h := range hs {
		if h.Provider == "" || strings.ContainsAny(h.Provider, "|\x00") {
			return fmt.Errorf("%w: headroom of provider %q: the name must not be empty or contain '|'", ErrInvalid, h.Provider)
		}
		if strings.ContainsAny(h.Account, "|\x00") {
			return fmt.Errorf("%w: headroom of provider %q, account %q: the account must not contain '|'", ErrInvalid,
				h.Provider, h.Account)
		}
	}
	return nil
}

// field is the name of h's entry: the provider, then '|' and the account
// when it names one. An entry written before accounts were told apart is
// the provider's own.
func (h Headroom) field() string {
	if h.Account == "" {
		return h.Provider
	}
	return h.Provider + "|" + h.Account
}

// splitField is the provider and account of an entry's name.
func splitField(f string) (provider, account string) {
	provider, account, _ = strings.Cut(f, "|")
	return provider, account
}

// latest is the later of a headroom's observation and its cooldown.
func (h Headroom) latest() time.Time {
	if h.CooldownUntil.After(h.At) {
		return h.CooldownUntil
	}
	return h.At
}

// stale reports whether h is past HeadroomTTL at now.
func (h Headroom) stale(now time.Time) bool {
	return h.latest().Add(HeadroomTTL).Before(now)
}

// mergeHeadroom merges an observation into the one held: the later
// observation's counts, the later cooldown.
func mergeHeadroom(held, next Headroom) Headroom {
	out := held
	if next.At.After(held.At) {
		cool := out.CooldownUntil
		out = next
		out.CooldownUntil = cool
	}
	if next.CooldownUntil.After(out.CooldownUntil) {
		out.CooldownUntil = next.CooldownUntil
	}
	return out
}

// sortHeadroom sorts a view by provider, then account.
func sortHeadroom(hs []Headroom) []Headroom {
	slices.SortFunc(hs, func(a, b Headroom) int {
		if c := strings.Compare(a.Provider, b.Provider); c != 0 {
			return c
		}
		return strings.Compare(a.Account, b.Account)
	})
	return hs
}
