package keys

import (
	"testing"
	"time"
)

// TestClientKey: ClientKey answers from memory, fetching a key it does
// not know yet in the background, once, so that a later call knows.
func TestClientKey(t *testing.T) {
	f := newMemFetcher()
	f.put("bella", "openai", "sk-bella-1")
	clk := newClock()
	c := newTestCache(t, f, clk, nil)
	// eventually waits for the background fetches of a slot.
	eventually := func(supplier, provider string, want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			has, known := c.ClientKey([]byte(supplier), provider)
			if known {
				if has != want {
					t.Fatalf("%s/%s: has %v, want %v", supplier, provider, has, want)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/%s: still not known", supplier, provider)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	eventually("bella", "openai", true)
	eventually("bella", "anthropic", false)
	fetches := f.fetches.Load()
	for range 100 {
		if has, known := c.ClientKey([]byte("bella"), "anthropic"); has || !known {
			t.Fatalf("a remembered miss: %v %v", has, known)
		}
	}
	if n := f.fetches.Load() - fetches; n != 0 {
		t.Errorf("answering from memory fetched %d times", n)
	}
	// The miss expires: the key source is asked again, in the background.
	f.put("bella", "anthropic", "sk-bella-2")
	clk.advance(2 * time.Hour)
	if has, known := c.ClientKey([]byte("bella"), "anthropic"); has || !known {
		t.Fatalf("an expired miss is still missing meanwhile: %v %v", has, known)
	}
	deadline := time.Now().Add(5 * time.Second)
	for has, _ := c.ClientKey([]byte("bella"), "anthropic"); !has; has, _ = c.ClientKey([]byte("bella"), "anthropic") {
		if time.Now().After(deadline) {
			t.Fatal("the new key was not fetched")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
