//go:build !sidecar

package main

import (
	"slices"
	"testing"
)

func TestAccountFlags(t *testing.T) {
	var a accountFlags
	for _, v := range []string{"org-small=sk-a1,sk-a2:10", "org-large=sk-b"} {
		if err := a.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	if len(a) != 2 || a[0].Organization != "org-small" || !slices.Equal(a[0].Keys, []string{"sk-a1", "sk-a2"}) ||
		a[0].RequestLimit != 10 || a[1].Organization != "org-large" || !slices.Equal(a[1].Keys, []string{"sk-b"}) ||
		a[1].RequestLimit != 0 {
		t.Errorf("accounts %+v", a)
	}
	for _, bad := range []string{"", "org", "=sk-a", "org=", "org=sk-a:0", "org=sk-a:x", "org=sk-a,,sk-b"} {
		t.Run(bad, func(t *testing.T) {
			var b accountFlags
			if err := b.Set(bad); err == nil {
				t.Errorf("Set(%q) = %+v, want an error", bad, b)
			}
		})
	}
}
