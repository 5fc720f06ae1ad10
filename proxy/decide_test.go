package proxy

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
)

// fixedRetrier grants retries while tries < max, always after wait.
type fixedRetrier struct {
	max   int
	wait  time.Duration
	asked int
}

func (r *fixedRetrier) retryWait(tries int, hint time.Duration) (time.Duration, bool) {
	r.asked++
	if tries >= r.max {
		return 0, false
	}
	if hint > 0 {
		return hint, true
	}
	return r.wait, true
}

// TestDecideStatuses runs every status class on a middle and on the last
// planned target, with platform and supplier keys, with and without a
// spare key.
func TestDecideStatuses(t *testing.T) {
	type want struct{ middle, last action }
	transient := want{nextTarget, retry}
	passes := want{deliver, deliver}
	statuses := map[int]want{
		200: passes, 201: passes, 204: passes, 301: passes,
		400: passes, 404: passes, 413: passes, 422: passes,
		408: transient, 409: transient, 429: transient,
		500: transient, 501: transient, 502: transient, 503: transient, 504: transient, 529: transient,
	}
	for status, w := range statuses {
		for _, client := range []bool{false, true} {
			for _, last := range []bool{false, true} {
				name := fmt.Sprintf("%d/client=%v/last=%v", status, client, last)
				t.Run(name, func(t *testing.T) {
					r := &fixedRetrier{max: 2, wait: time.Millisecond}
					want := w.middle
					if last {
						want = w.last
					}
					o := outcome{status: status, client: client, last: last}
					if got := decide(&o, r).act; got != want {
						t.Errorf("decide = %v, want %v", got, want)
					}
				})
			}
		}
	}
}

// TestDecideKeys covers refused and rate-limited keys: a spare key is
// tried once, a supplier's refused key moves on to the fallback, a
// platform key's refusal goes to the client.
func TestDecideKeys(t *testing.T) {
	cases := []struct {
		name string
		o    outcome
		want action
	}{
		{"supplier key refused, newer version may exist", outcome{status: 401, client: true, spareKey: true}, swapKey},
		{"supplier key refused after the swap, fallback planned", outcome{status: 401, client: true, spareKey: true, swapped: true}, nextTarget},
		{"supplier key refused after the swap, last target", outcome{status: 401, client: true, spareKey: true, swapped: true, last: true}, deliver},
		{"supplier key forbidden, fallback planned", outcome{status: 403, client: true}, nextTarget},
		{"supplier key forbidden, last target", outcome{status: 403, client: true, last: true}, deliver},
		{"supplier key rate-limited is the provider's, not swapped", outcome{status: 429, client: true, spareKey: true}, nextTarget},
		{"platform key refused", outcome{status: 401, spareKey: true}, deliver},
		{"platform key forbidden, fallback planned", outcome{status: 403}, deliver},
		{"platform key rate-limited, pool has another", outcome{status: 429, spareKey: true}, swapKey},
		{"platform key rate-limited, pool has another, already swapped", outcome{status: 429, spareKey: true, swapped: true, last: true}, retry},
		{"platform key rate-limited, single key, last", outcome{status: 429, last: true}, retry},
		{"server error with a spare key is not a key's fault", outcome{status: 500, spareKey: true, last: true}, retry},
		{"supplier's account used up, fallback planned", outcome{status: 429, client: true, exhausted: true}, nextTarget},
		{"supplier's account used up, last target: not retried", outcome{status: 429, client: true, exhausted: true, last: true}, deliver},
		{"platform account used up, pool has another", outcome{status: 429, spareKey: true, exhausted: true, last: true}, swapKey},
		{"platform account used up after the swap, last target", outcome{status: 429, spareKey: true, swapped: true, exhausted: true, last: true}, deliver},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := decide(&c.o, &fixedRetrier{max: 2}).act; got != c.want {
				t.Errorf("decide = %v, want %v", got, c.want)
			}
		})
	}
}

// TestDecideNoAnswer covers the attempts that got no status: transport
// failures are retried on the last target, every other kind moves on or
// is delivered as veil's error.
func TestDecideNoAnswer(t *testing.T) {
	cases := []struct {
		failure      failure
		middle, last action
	}{
		{failTransport, nextTarget, retry},
		{failRequest, nextTarget, deliver},
		{failKey, nextTarget, deliver},
		{failStream, nextTarget, deliver},
		{failOverload, nextTarget, deliver},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("failure=%d", c.failure), func(t *testing.T) {
			for _, last := range []bool{false, true} {
				want := c.middle
				if last {
					want = c.last
				}
				o := outcome{failure: c.failure, last: last}
				if got := decide(&o, &fixedRetrier{max: 1}).act; got != want {
					t.Errorf("last=%v: decide = %v, want %v", last, got, want)
				}
			}
		})
	}
}

// TestDecideRetries checks that a retry carries the wait the retrier
// gives (the provider's hint first), and that a retrier that declines
// turns the retry into delivery.
func TestDecideRetries(t *testing.T) {
	r := &fixedRetrier{max: 2, wait: 40 * time.Millisecond}
	o := outcome{status: 503, last: true, hint: 3 * time.Second}
	if v := decide(&o, r); v.act != retry || v.wait != 3*time.Second {
		t.Errorf("with a hint: %+v, want a retry after 3s", v)
	}
	o = outcome{status: 503, last: true, tries: 1}
	if v := decide(&o, r); v.act != retry || v.wait != 40*time.Millisecond {
		t.Errorf("backoff: %+v, want a retry after 40ms", v)
	}
	o = outcome{status: 503, last: true, tries: 2}
	if v := decide(&o, r); v.act != deliver {
		t.Errorf("retries used up: %+v, want deliver", v)
	}
	o = outcome{failure: failTransport, last: true, tries: 2}
	if v := decide(&o, r); v.act != deliver {
		t.Errorf("transport, retries used up: %+v, want deliver", v)
	}
	// Only transient outcomes on the last target ask the retrier, so that
	// its budget is spent on nothing else.
	r = &fixedRetrier{max: 2}
	for _, o := range []outcome{{status: 200, last: true}, {status: 400, last: true}, {status: 503}, {status: 401, client: true, spareKey: true, last: true}} {
		decide(&o, r)
	}
	if r.asked != 0 {
		t.Errorf("the retrier was asked %d times for outcomes that are not retried", r.asked)
	}
}

// TestWaitEnds: a wait ends on what it waits for, its timer, the request's
// end or veil's drain, so a drain never waits out a backoff.
func TestWaitEnds(t *testing.T) {
	s := &Server{stop: make(chan struct{})}
	x := &exchange{s: s}
	done := make(chan waitEnd)
	go func() { done <- x.wait(nil, nil, time.Hour, nil) }()
	s.EndStreams()
	if got := <-done; got != waitCut {
		t.Errorf("a wait during a drain ended with %d, want cut", got)
	}
	s2 := &Server{stop: make(chan struct{})}
	x2 := &exchange{s: s2}
	if got := x2.wait(nil, nil, time.Millisecond, nil); got != waitTimeout {
		t.Errorf("a short wait without a drain ended with %d, want its timeout", got)
	}
	ready := make(chan struct{})
	close(ready)
	if got := x2.wait(nil, ready, time.Hour, nil); got != waitReady {
		t.Errorf("a wait for something done ended with %d, want ready", got)
	}
	cancelled := make(chan struct{})
	close(cancelled)
	if got := x2.wait(cancelled, nil, time.Hour, nil); got != waitCut {
		t.Errorf("a wait of a finished request ended with %d, want cut", got)
	}
	var left atomic.Bool
	go func() { time.Sleep(10 * time.Millisecond); left.Store(true) }()
	if got := x2.wait(nil, nil, time.Hour, left.Load); got != waitCut {
		t.Errorf("a wait whose client left ended with %d, want cut", got)
	}
}

// TestRefusedKeyNamesTheRefusedVersion: a supplier key refused, then its
// other version refused too, is answered with the fingerprint of the one
// refused first, the key to replace, and the other one tried.
func TestRefusedKeyNamesTheRefusedVersion(t *testing.T) {
	p, err := provider.New(config.Provider{Name: "openai", Type: config.ProviderTypeOpenAI, BaseURL: "http://127.0.0.1:1/v1"},
		[]keys.Secret{keys.NewSecret("sk-platform-test")}, provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := &policy.Attempt{Provider: p}
	current := keys.NewKey(keys.NewSecret("sk-current-version-0123456789"), billing.ClientKey, "3")
	previous := keys.NewKey(keys.NewSecret("sk-previous-version-0123456789"), billing.ClientKey, "2")
	e := refusedKey(a, current, previous)
	if !strings.Contains(e.Message, current.Fingerprint()+", and the other version tried, "+previous.Fingerprint()) {
		t.Errorf("message %q does not name the refused key first", e.Message)
	}
	if e := refusedKey(a, nil, current); !strings.Contains(e.Message, "fingerprint "+current.Fingerprint()+")") ||
		strings.Contains(e.Message, "sk-") {
		t.Errorf("message %q", e.Message)
	}
}
