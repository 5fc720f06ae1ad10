package provider

import (
	"testing"
	"time"

	"github.com/wedsync/veil/keys"
)

func TestPoolSpreadsAndCoolsDown(t *testing.T) {
	p := NewPool([]keys.Secret{keys.NewSecret("a"), keys.NewSecret("b"), keys.NewSecret("c")})
	now := time.Unix(1_800_000_000, 0)
	seen := map[string]int{}
	for range 30 {
		seen[p.Next(now).Secret().Reveal()]++
	}
	if seen["a"] != 10 || seen["b"] != 10 || seen["c"] != 10 {
		t.Errorf("spread %v", seen)
	}
	b := p.keys[1]
	p.Cooldown(b, now, 30*time.Second)
	for range 10 {
		if p.Next(now) == b {
			t.Fatal("a cooling key was handed out")
		}
	}
	if o := p.Other(b, now); o == nil || o == b {
		t.Errorf("other %v", o)
	}
	if p.Next(now.Add(31*time.Second)) == nil {
		t.Fatal("nil key")
	}
	// All cooling: the earliest available one.
	p.Cooldown(p.keys[0], now, time.Minute)
	p.Cooldown(p.keys[2], now, 2*time.Minute)
	if got := p.Next(now); got != b {
		t.Errorf("all cooling: got %v, want the one back first", got)
	}
	if p.Other(b, now) != nil {
		t.Error("other should be nil when the rest are cooling")
	}
}

func TestPoolAllocs(t *testing.T) {
	p := NewPool([]keys.Secret{keys.NewSecret("a"), keys.NewSecret("b")})
	now := time.Now()
	if a := testing.AllocsPerRun(100, func() { _ = p.Next(now) }); a != 0 {
		t.Errorf("%.1f allocations", a)
	}
}
