//go:build !race

package cache

import "testing"

// The race detector makes sync.Pool drop items at random, so allocations
// are only checked without it.
func TestNewKeyAllocations(t *testing.T) {
	for _, size := range []int{1 << 10, 16 << 10} {
		body := chatBody(size)
		if _, err := NewKey("s", body); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := NewKey("s", body); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("NewKey on %d bytes: %v allocations, want 0", len(body), allocs)
		}
	}
}
