package health

import (
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

func TestRegistryBreakers(t *testing.T) {
	r := NewRegistryWithBreakers(2, time.Minute, "openai")
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
