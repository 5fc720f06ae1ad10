package keys

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/billing"
)

// failingFetcher serves one key, or fails with the error it is given.
type failingFetcher struct {
	mu  sync.Mutex
	key string
	err error
}

func (f *failingFetcher) set(key string, err error) {
	f.mu.Lock()
	f.key, f.err = key, err
	f.mu.Unlock()
}

func (f *failingFetcher) Fetch(_ context.Context, _, _ string) (*Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return NewKey(NewSecret(f.key), billing.ClientKey, "1"), nil
}

func (f *failingFetcher) Version(_ context.Context, _, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	return "1", nil
}

// The failures a key source can have, as fetchers report them.
var (
	errDown     = fmt.Errorf("vault: read secret/bella: unreachable: connection refused: %w", ErrUnreachable)
	errRejected = fmt.Errorf("vault: read secret/bella: permission denied (HTTP 403): %w", ErrCredentialsRejected)
	errOther    = errors.New(`env var "BELLA_OPENAI" is not set`)
)

// kinds are the sentinels a caller tells failures apart with.
var kinds = []error{ErrKeyMissing, ErrNotLoaded, ErrStale, ErrUnreachable, ErrCredentialsRejected}

// checkKinds fails t unless err matches exactly the sentinels in want.
func checkKinds(t *testing.T, err error, want ...error) {
	t.Helper()
	for _, k := range kinds {
		is, wanted := errors.Is(err, k), false
		for _, w := range want {
			wanted = wanted || errors.Is(w, k)
		}
		if is != wanted {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", err, k, is, wanted)
		}
	}
}

// TestGetNeverLoaded: a key that was never loaded fails with an error
// that says so and why the source failed; the source's failure is
// audited once, not once per request.
func TestGetNeverLoaded(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		want      []error
		audit     string // the one audit line of three failed requests
		typed     bool   // an *UnavailableError
		inMessage string
	}{
		{"source unreachable", errDown, []error{ErrNotLoaded, ErrUnreachable},
			"supplier key source unreachable; cached keys are served until they are stale", true, "no key loaded yet: vault:"},
		{"credentials rejected", errRejected, []error{ErrNotLoaded, ErrCredentialsRejected},
			"supplier key source rejected veil's credentials; cached keys are served until they are stale", true, "permission denied"},
		{"key missing", fmt.Errorf("supplier bella, provider openai: %w", ErrKeyMissing), []error{ErrKeyMissing},
			"supplier key missing", false, "has no key"},
		{"other failure", errOther, []error{ErrNotLoaded}, "supplier key fetch failed", true, "is not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &failingFetcher{err: tc.err}
			core, logs := observer.New(zap.InfoLevel)
			c := newTestCache(t, f, newClock(), zap.New(core))
			var err error
			for range 3 {
				_, err = c.Get(context.Background(), "bella", "openai")
			}
			checkKinds(t, err, tc.want...)
			var ue *UnavailableError
			if errors.As(err, &ue) != tc.typed {
				t.Fatalf("errors.As(%v, *UnavailableError) = %v, want %v", err, !tc.typed, tc.typed)
			}
			if tc.typed && (ue.Supplier != "bella" || ue.Provider != "openai" || !errors.Is(ue.State, ErrNotLoaded) || !ue.LastAnswer.IsZero()) {
				t.Errorf("error fields %+v", ue)
			}
			if !strings.Contains(err.Error(), tc.inMessage) || strings.Contains(err.Error(), "too long") {
				t.Errorf("message %q, want it to contain %q", err, tc.inMessage)
			}
			if n := logs.Len(); n != 1 || logs.All()[0].Message != tc.audit {
				t.Errorf("audit lines %v, want one %q", logs.All(), tc.audit)
			}
		})
	}
}

// TestGetStaleAndRecovered: a cached key is served while its source
// fails, then refused past the maximum staleness with an error naming
// why the source failed; that and the source's recovery are audited once
// each per change.
func TestGetStaleAndRecovered(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		want      []error
		reason    string
		recovered bool // the source's recovery is audited
	}{
		{"source unreachable", errDown, []error{ErrStale, ErrUnreachable}, failUnreachable, true},
		{"credentials rejected", errRejected, []error{ErrStale, ErrCredentialsRejected}, failRejected, true},
		{"other failure", errOther, []error{ErrStale}, failOther, false},
	}
	const staleLine = "supplier key past its maximum staleness; no longer served"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &failingFetcher{key: "sk-bella-stale-0123456789"}
			clk := newClock()
			core, logs := observer.New(zap.InfoLevel)
			c := newTestCache(t, f, clk, zap.New(core))
			ctx := context.Background()
			k1, err := c.Get(ctx, "bella", "openai")
			if err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				f.set("", tc.err)
				clk.advance(2 * time.Hour)
				c.checkDue()
				if k, err := c.Get(ctx, "bella", "openai"); err != nil || k != k1 {
					t.Fatalf("round %d, within the maximum staleness: %v %v", round, k, err)
				}
				clk.advance(2 * time.Hour)
				for range 3 {
					_, err = c.Get(ctx, "bella", "openai")
					c.checkDue()
				}
				checkKinds(t, err, tc.want...)
				var ue *UnavailableError
				if !errors.As(err, &ue) || ue.Age < 4*time.Hour || ue.MaxStaleness != 3*time.Hour || !errors.Is(ue.Cause, tc.err) {
					t.Errorf("round %d: error %#v", round, ue)
				}
				if !strings.Contains(err.Error(), "longer than the maximum staleness of 3h0m0s") {
					t.Errorf("round %d: message %q", round, err)
				}
				stale := logs.FilterMessage(staleLine).All()
				if len(stale) != round+1 {
					t.Fatalf("round %d: %d staleness lines, want %d", round, len(stale), round+1)
				}
				m := stale[round].ContextMap()
				if m["reason"] != tc.reason || m["supplier"] != "bella" || m["key"] == nil {
					t.Errorf("round %d: staleness line %v", round, m)
				}

				f.set("sk-bella-stale-0123456789", nil)
				clk.advance(10 * time.Second)
				c.checkDue()
				c.checkDue()
				if k, err := c.Get(ctx, "bella", "openai"); err != nil || k != k1 {
					t.Fatalf("round %d, after recovery: %v %v", round, k, err)
				}
				want := 0
				if tc.recovered {
					want = round + 1
				}
				if got := logs.FilterMessage("supplier key source recovered").All(); len(got) != want {
					t.Errorf("round %d: %d recovery lines, want %d", round, len(got), want)
				} else if want > 0 && got[round].ContextMap()["after"] != tc.reason {
					t.Errorf("round %d: recovery line %v", round, got[round].ContextMap())
				}
			}
			for _, e := range logs.All() {
				if strings.Contains(fmt.Sprint(e.ContextMap()), "sk-bella") {
					t.Errorf("audit line shows the key: %v", e.ContextMap())
				}
			}
		})
	}
}

// TestSourceFailureChangeIsAudited: a source that stops refusing veil and
// becomes unreachable (or the other way) is audited again, once.
func TestSourceFailureChangeIsAudited(t *testing.T) {
	f := &failingFetcher{err: errDown}
	core, logs := observer.New(zap.InfoLevel)
	c := newTestCache(t, f, newClock(), zap.New(core))
	ctx := context.Background()
	for _, err := range []error{errDown, errDown, errRejected, errRejected, errDown} {
		f.set("", err)
		_, _ = c.Get(ctx, "bella", "openai")
		_, _ = c.Get(ctx, "rose", "openai")
	}
	var reasons []string
	for _, e := range logs.All() {
		reasons = append(reasons, fmt.Sprint(e.ContextMap()["reason"]))
	}
	if got := strings.Join(reasons, ","); got != "unreachable,credentials_rejected,unreachable" {
		t.Errorf("audited failures %s, want one per change", got)
	}
	f.set("sk-rose-0123456789", nil)
	if _, err := c.Get(ctx, "rose", "openai"); err != nil {
		t.Fatal(err)
	}
	got := logs.FilterMessage("supplier key source recovered").All()
	if len(got) != 1 || got[0].ContextMap()["failed_calls"] != int64(10) {
		t.Errorf("recovery lines %v", got)
	}
}
