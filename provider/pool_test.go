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

// TestPoolRestsAnExhaustedAccount: an answer that used up its account's
// limit rests every key seen answering for that account, and only those;
// a key not yet seen for any account rests alone.
func TestPoolRestsAnExhaustedAccount(t *testing.T) {
	const small, large = 11, 22
	p := NewPool([]keys.Secret{keys.NewSecret("a1"), keys.NewSecret("a2"), keys.NewSecret("b"), keys.NewSecret("c")})
	a1, a2, b, c := p.keys[0], p.keys[1], p.keys[2], p.keys[3]
	now := time.Unix(1_800_000_000, 0)
	p.NoteAccount(a1, small)
	p.NoteAccount(a2, small)
	p.NoteAccount(b, large)
	p.Exhausted(a1, small, now, 10*time.Second)
	for range 12 {
		if k := p.Next(now); k == a1 || k == a2 {
			t.Fatalf("a key of the exhausted account was handed out: %s", k.Secret().Reveal())
		}
	}
	if o := p.Other(b, now); o != c {
		t.Errorf("other than b: %v, want c (a1 and a2 rest)", o)
	}
	if k := p.Next(now.Add(11 * time.Second)); k == nil {
		t.Fatal("nil key")
	}
	seen := map[*keys.Key]bool{}
	for range 8 {
		seen[p.Next(now.Add(11*time.Second))] = true
	}
	if !seen[a1] || !seen[a2] {
		t.Error("the account's keys do not come back after the rest")
	}

	// c has answered for no account yet: it rests alone.
	p.Exhausted(c, 0, now, time.Minute)
	if o := p.Other(a1, now.Add(11*time.Second)); o == c {
		t.Error("c handed out while it rests")
	}
	// A rest is bounded, and never shortens a longer one.
	p.Exhausted(b, large, now, time.Hour)
	p.Exhausted(b, large, now, time.Second)
	if u := time.Unix(0, p.until[2].Load()); !u.Equal(now.Add(MaxCooldown)) {
		t.Errorf("b rests until %v, want %v", u, now.Add(MaxCooldown))
	}

	one := NewPool([]keys.Secret{keys.NewSecret("solo")})
	one.Exhausted(one.keys[0], small, now, time.Minute)
	if one.until[0].Load() != 0 {
		t.Error("a pool of one key rested it: Next has no other to choose")
	}
	if a := testing.AllocsPerRun(100, func() { p.NoteAccount(b, large) }); a != 0 {
		t.Errorf("NoteAccount: %.1f allocations", a)
	}
}
