package health

import (
	"strings"
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	b := &Breaker{Failures: 3, Cooldown: 10 * time.Second}
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	for range 2 {
		b.Record(Failure, now)
	}
	b.Record(RateLimited, now) // not the target's failure
	if !b.Allow(now) || b.State() != Closed {
		t.Fatal("two failures and a 429 opened the breaker")
	}
	b.Record(Failure, now)
	if b.Allow(now) || b.State() != Open || b.Available(now.Add(9*time.Second)) {
		t.Fatal("three failures did not open it")
	}
	later := now.Add(10 * time.Second)
	if !b.Available(later) || !b.Allow(later) || b.State() != HalfOpen {
		t.Fatal("no half-open probe after the cooldown")
	}
	if b.Allow(later) {
		t.Error("a second probe was let through")
	}
	b.Record(Failure, later)
	if b.State() != Open || b.Allow(later.Add(time.Second)) {
		t.Error("a failed probe did not open it again")
	}
	again := later.Add(11 * time.Second)
	b.Allow(again)
	b.Record(Success, again)
	if b.State() != Closed || !b.Allow(again) {
		t.Error("a good probe did not close it")
	}
}

// play records outcomes on b at at: s success, f failure, r rate limited,
// k key refused.
func play(b *Breaker, outcomes string, at time.Time) {
	for _, c := range outcomes {
		switch c {
		case 's':
			b.Record(Success, at)
		case 'f':
			b.Record(Failure, at)
		case 'r':
			b.Record(RateLimited, at)
		case 'k':
			b.Record(KeyRejected, at)
		}
	}
}

func TestBreakerErrorRate(t *testing.T) {
	start := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	type step struct {
		at       time.Duration
		outcomes string
	}
	tests := []struct {
		name     string
		failures int     // consecutive trigger; 0 means 100 (out of the way)
		rate     float64 // -1 means 0.5
		min      int
		steps    []step
		want     string
	}{
		{name: "below the minimum of answered attempts", rate: -1, min: 20,
			steps: []step{{0, strings.Repeat("sf", 9)}}, want: Closed},
		{name: "the share reaches the rate at the minimum", rate: -1, min: 20,
			steps: []step{{0, strings.Repeat("sf", 10)}}, want: Open},
		{name: "a share under the rate", rate: -1, min: 20,
			steps: []step{{0, strings.Repeat("ssf", 10)}}, want: Closed},
		{name: "rate limits and key refusals are not counted", rate: -1, min: 20,
			steps: []step{{0, strings.Repeat("rk", 30) + strings.Repeat("sf", 9)}}, want: Closed},
		{name: "rate limits do not dilute the failures either", rate: -1, min: 4,
			steps: []step{{0, strings.Repeat("r", 40) + "sfsf"}}, want: Open},
		{name: "attempts within the window add up", rate: -1, min: 20,
			steps: []step{{0, strings.Repeat("sf", 9)}, {20 * time.Second, "sf"}}, want: Open},
		{name: "attempts older than the window age out", rate: -1, min: 20,
			steps: []step{{0, strings.Repeat("sf", 9)}, {31 * time.Second, "sf"}}, want: Closed},
		{name: "zero rate turns the trigger off", rate: 0, min: 20,
			steps: []step{{0, strings.Repeat("f", 50)}}, want: Closed},
		{name: "a rate of one needs every attempt failed", rate: 1, min: 5,
			steps: []step{{0, "s" + strings.Repeat("f", 30)}}, want: Closed},
		{name: "the consecutive trigger still applies", failures: 3, rate: -1, min: 20,
			steps: []step{{0, "sfff"}}, want: Open},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &Breaker{Failures: 100, Cooldown: 10 * time.Second, Window: 30 * time.Second,
				MinRequests: tc.min, ErrorRate: tc.rate}
			if tc.failures > 0 {
				b.Failures = tc.failures
			}
			if tc.rate < 0 {
				b.ErrorRate = 0.5
			}
			for _, st := range tc.steps {
				play(b, st.outcomes, start.Add(st.at))
			}
			if got := b.State(); got != tc.want {
				t.Errorf("state %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBreakerErrorRateHalfOpen(t *testing.T) {
	b := &Breaker{Cooldown: 10 * time.Second, Window: time.Minute, MinRequests: 4, ErrorRate: 0.5}
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	play(b, "sfsf", now)
	steps := []struct {
		name  string
		at    time.Duration
		do    func(at time.Time)
		allow bool
		state string
	}{
		{"opened by the error rate alone", 0, func(time.Time) {}, false, Open},
		{"one probe after the cooldown", 10 * time.Second, func(at time.Time) { b.Allow(at) }, false, HalfOpen},
		{"a failed probe opens it again", 10 * time.Second, func(at time.Time) { b.Record(Failure, at) }, false, Open},
		{"a good probe closes it", 20 * time.Second, func(at time.Time) { b.Allow(at); b.Record(Success, at) }, true, Closed},
		// The window before the opening is gone: one failure among two
		// attempts is under the minimum of four.
		{"a closed breaker starts a fresh window", 21 * time.Second, func(at time.Time) { b.Record(Failure, at) }, true, Closed},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			at := now.Add(st.at)
			st.do(at)
			if got := b.State(); got != st.state {
				t.Errorf("state %s, want %s", got, st.state)
			}
			if got := b.Available(at); got != st.allow {
				t.Errorf("available %v, want %v", got, st.allow)
			}
		})
	}
}

func TestRegistryBreakers(t *testing.T) {
	r := NewRegistryWithBreakers(BreakerOptions{Failures: 2, Cooldown: time.Minute}, "openai")
	now := time.Now()
	tg := r.Target("openai")
	tg.Record(503, time.Millisecond, now)
	tg.Record(0, 0, now)
	if r.Available("openai", now) || !r.Available("unknown", now) {
		t.Error("availability")
	}
	if s := tg.Snapshot(); s.Breaker != Open {
		t.Errorf("snapshot breaker %q", s.Breaker)
	}
}

func TestBreakerAlerts(t *testing.T) {
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	var alerts []Alert
	var r *Registry
	r = NewRegistryWithBreakers(BreakerOptions{Failures: 2, Cooldown: 10 * time.Second,
		Window: 30 * time.Second, MinRequests: 4, ErrorRate: 0.5,
		OnChange: func(a Alert) {
			// Reading the breaker here would deadlock if the hook ran
			// under its lock.
			if s := r.Target(a.Target).Snapshot(); s.Breaker != a.Breaker {
				t.Errorf("hook saw breaker %q, alert says %q", s.Breaker, a.Breaker)
			}
			alerts = append(alerts, a)
		}}, "openai", "azure")
	openai, azure := r.Target("openai"), r.Target("azure")

	steps := []struct {
		name   string
		do     func()
		alerts int
	}{
		{"one failure is no news", func() { openai.Record(503, 0, now) }, 0},
		{"the second in a row opens it", func() { openai.Record(503, 0, now) }, 1},
		{"failing while open is no news", func() { openai.Record(0, 0, now) }, 1},
		{"a failed half-open probe is no news", func() {
			at := now.Add(10 * time.Second)
			r.Allow("openai", at)
			openai.Record(503, 0, at)
		}, 1},
		{"a good probe closes it", func() {
			at := now.Add(20 * time.Second)
			r.Allow("openai", at)
			openai.Record(200, 0, at)
		}, 2},
		{"an error rate opens another target", func() {
			for _, s := range []int{200, 503, 429, 200, 503} {
				azure.Record(s, 0, now)
			}
		}, 3},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do()
			if len(alerts) != st.alerts {
				t.Fatalf("%d alerts, want %d: %+v", len(alerts), st.alerts, alerts)
			}
		})
	}
	want := []Alert{
		{Target: "openai", Source: SourceBreaker, Up: false, Breaker: Open, Cause: "2 consecutive failures", At: now},
		{Target: "openai", Source: SourceBreaker, Up: true, Breaker: Closed, At: now.Add(20 * time.Second)},
		{Target: "azure", Source: SourceBreaker, Up: false, Breaker: Open, Cause: "2 of 4 attempts failed within 30s", At: now},
	}
	for i, w := range want {
		if i < len(alerts) && alerts[i] != w {
			t.Errorf("alert %d = %+v, want %+v", i, alerts[i], w)
		}
	}
}
