package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/store"
)

// observed is a headroom observed at at, with remaining requests left of
// 100 and the window whole again a minute later.
func observed(provider string, at time.Time, left int64) store.Headroom {
	return store.Headroom{Provider: provider, At: at, LimitRequests: 100, RemainingRequests: left,
		LimitTokens: -1, RemainingTokens: -1, ResetRequests: at.Add(time.Minute)}
}

// view reads the shared headroom at now, failing the test on an error.
func view(t *testing.T, s store.Store, now time.Time) []store.Headroom {
	t.Helper()
	hs, err := s.Headroom(t.Context(), now)
	if err != nil {
		t.Fatalf("Headroom: %v", err)
	}
	return hs
}

// publish publishes hs at now, failing the test on an error.
func publish(t *testing.T, s store.Store, now time.Time, hs ...store.Headroom) {
	t.Helper()
	if err := s.PublishHeadroom(t.Context(), hs, now); err != nil {
		t.Fatalf("PublishHeadroom(%+v): %v", hs, err)
	}
}

// sameHeadroom compares two views, times by their instants.
func sameHeadroom(t *testing.T, got, want []store.Headroom) {
	t.Helper()
	norm := func(hs []store.Headroom) []store.Headroom {
		out := make([]store.Headroom, len(hs))
		for i, h := range hs {
			for _, tp := range []*time.Time{&h.At, &h.ResetRequests, &h.ResetTokens, &h.CooldownUntil} {
				if !tp.IsZero() {
					*tp = tp.UTC()
				}
			}
			out[i] = h
		}
		return out
	}
	if !reflect.DeepEqual(norm(got), norm(want)) {
		t.Fatalf("headroom view\n got %+v\nwant %+v", got, want)
	}
}

// testHeadroom: what one replica publishes, every replica reads, sorted
// by provider; an invalid name is refused.
func testHeadroom(t *testing.T, open Open) {
	ss := open(t, 2)
	if got := view(t, ss[1], t0); len(got) != 0 {
		t.Fatalf("a new store's view: %+v", got)
	}
	openai, azure := observed("openai", t0, 40), observed("azure", t0.Add(-time.Second), 90)
	azure.LimitTokens, azure.RemainingTokens, azure.ResetTokens = 30000, 1200, t0.Add(6*time.Second)
	publish(t, ss[0], t0, openai, azure)
	sameHeadroom(t, view(t, ss[1], t0), []store.Headroom{azure, openai})
	publish(t, ss[0], t0) // an empty batch changes nothing
	sameHeadroom(t, view(t, ss[1], t0), []store.Headroom{azure, openai})
	for _, name := range []string{"", "a|b"} {
		err := ss[0].PublishHeadroom(t.Context(), []store.Headroom{{Provider: name, At: t0}}, t0)
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("provider %q: error %v, want ErrInvalid", name, err)
		}
	}
}

// testHeadroomMerge: replicas publishing in any order agree: the counts
// observed last win, and so does the later cooldown; a cooldown alone
// keeps the counts.
func testHeadroomMerge(t *testing.T, open Open) {
	ss := open(t, 2)
	newer, older := observed("openai", t0, 10), observed("openai", t0.Add(-2*time.Second), 80)
	publish(t, ss[0], t0, newer)
	publish(t, ss[1], t0, older)
	sameHeadroom(t, view(t, ss[0], t0), []store.Headroom{newer})

	cool := store.Headroom{Provider: "openai", CooldownUntil: t0.Add(30 * time.Second)}
	publish(t, ss[1], t0, cool)
	want := newer
	want.CooldownUntil = cool.CooldownUntil
	sameHeadroom(t, view(t, ss[0], t0), []store.Headroom{want})

	shorter := observed("openai", t0.Add(time.Second), 0)
	shorter.CooldownUntil = t0.Add(5 * time.Second)
	publish(t, ss[0], t0.Add(time.Second), shorter)
	want = shorter
	want.CooldownUntil = cool.CooldownUntil // the later cooldown stays
	sameHeadroom(t, view(t, ss[1], t0.Add(time.Second)), []store.Headroom{want})
}

// testHeadroomExpiry: an entry is left out, and dropped, once the later of
// its observation and its cooldown is HeadroomTTL old.
func testHeadroomExpiry(t *testing.T, open Open) {
	s := one(t, open)
	old := observed("azure", t0, 50)
	cooling := store.Headroom{Provider: "openai", At: t0, CooldownUntil: t0.Add(5 * time.Minute), LimitRequests: -1,
		RemainingRequests: -1, LimitTokens: -1, RemainingTokens: -1}
	publish(t, s, t0, old, cooling)
	late := t0.Add(store.HeadroomTTL + time.Second)
	sameHeadroom(t, view(t, s, late), []store.Headroom{cooling})
	publish(t, s, late, observed("vllm", late, 1))
	sameHeadroom(t, view(t, s, t0), []store.Headroom{cooling, observed("vllm", late, 1)})
	if got := view(t, s, t0.Add(5*time.Minute+store.HeadroomTTL+time.Second)); len(got) != 1 || got[0].Provider != "vllm" {
		t.Fatalf("after the cooldown's TTL: %+v", got)
	}
}

// account is an observation of one account of a provider.
func account(provider, acct string, at time.Time, left int64) store.Headroom {
	h := observed(provider, at, left)
	h.Account = acct
	return h
}

// testHeadroomAccounts: the accounts of a provider's pool are entries of
// their own, merged, read and dropped apart from each other and from the
// provider's own entry (its cooldown, and the counts of a report that named
// no account, as entries were before accounts were told apart).
func testHeadroomAccounts(t *testing.T, open Open) {
	ss := open(t, 2)
	const orgA, orgB = "0123456789abcdef", "fedcba9876543210"
	a, b := account("openai", orgA, t0, 2), account("openai", orgB, t0.Add(-time.Second), 90)
	own := observed("openai", t0.Add(-2*time.Second), 50) // an older version's entry
	cool := store.Headroom{Provider: "openai", CooldownUntil: t0.Add(20 * time.Second), LimitRequests: -1, RemainingRequests: -1,
		LimitTokens: -1, RemainingTokens: -1}
	azure := account("azure", orgA, t0, 7) // the same account name at another provider
	publish(t, ss[0], t0, own, b)
	publish(t, ss[1], t0, a, cool, azure)
	ownCooling := own
	ownCooling.CooldownUntil = cool.CooldownUntil
	sameHeadroom(t, view(t, ss[0], t0), []store.Headroom{azure, ownCooling, a, b})

	// Per account, the later observation wins; the others stay.
	olderA := account("openai", orgA, t0.Add(-time.Minute), 80)
	newerB := account("openai", orgB, t0.Add(time.Second), 60)
	publish(t, ss[0], t0.Add(time.Second), olderA, newerB)
	sameHeadroom(t, view(t, ss[1], t0.Add(time.Second)), []store.Headroom{azure, ownCooling, a, newerB})

	// Each entry expires on its own: the provider's own with its cooldown.
	sameHeadroom(t, view(t, ss[0], t0.Add(store.HeadroomTTL+500*time.Millisecond)), []store.Headroom{ownCooling, newerB})
	late := cool.CooldownUntil.Add(store.HeadroomTTL + time.Millisecond)
	fresh := account("openai", orgA, late, 33)
	publish(t, ss[1], late, fresh)
	sameHeadroom(t, view(t, ss[0], late), []store.Headroom{fresh})

	for _, acct := range []string{"a|b", "a\x00"} {
		err := ss[0].PublishHeadroom(t.Context(), []store.Headroom{account("openai", acct, t0, 1)}, t0)
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("account %q: error %v, want ErrInvalid", acct, err)
		}
	}
}

// testConcurrentHeadroom: replicas publishing at once end with the counts
// of the last observation and the latest cooldown.
func testConcurrentHeadroom(t *testing.T, open Open) {
	const replicas, rounds = 4, 25
	ss := open(t, replicas)
	var wg sync.WaitGroup
	errs := make(chan error, replicas*rounds)
	for r, s := range ss {
		wg.Go(func() {
			for i := range rounds {
				at := t0.Add(time.Duration(i*replicas+r) * time.Millisecond)
				h := observed("openai", at, int64(1000-i*replicas-r))
				h.CooldownUntil = at.Add(time.Duration(r) * time.Second)
				if err := s.PublishHeadroom(t.Context(), []store.Headroom{h}, at); err != nil {
					errs <- fmt.Errorf("replica %d: %w", r, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	lastAt := t0.Add(time.Duration(rounds*replicas-1) * time.Millisecond)
	want := observed("openai", lastAt, int64(1000-rounds*replicas+1))
	// The latest cooldown: replica 3's last, 3 s after its last observation.
	want.CooldownUntil = t0.Add(time.Duration((rounds-1)*replicas+replicas-1)*time.Millisecond + (replicas-1)*time.Second)
	sameHeadroom(t, view(t, ss[0], lastAt), []store.Headroom{want})
}
