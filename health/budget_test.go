package health

import (
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	b := &Budget{Ratio: 0.1, Floor: 2, Window: 10 * time.Second}
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	for range 100 {
		b.Request(now)
	}
	granted := 0
	for range 50 {
		if b.Retry(now) {
			granted++
		}
	}
	if granted != 12 || b.Denied() != 38 {
		t.Errorf("granted %d, denied %d; want 12 (10%% of 100 plus 2) and 38", granted, b.Denied())
	}
	if !b.Retry(now.Add(10 * time.Second)) {
		t.Error("a new window has its floor again")
	}
}
