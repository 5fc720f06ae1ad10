//go:build linux

package load

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	d := make([]time.Duration, 1000)
	for i := range d {
		d[i] = time.Duration(i+1) * time.Millisecond
	}
	rand.Shuffle(len(d), func(i, j int) { d[i], d[j] = d[j], d[i] })
	got := ComputePercentiles(d)
	want := Percentiles{P50: 500 * time.Millisecond, P90: 900 * time.Millisecond, P99: 990 * time.Millisecond, P999: 999 * time.Millisecond, Max: time.Second}
	if got != want {
		t.Errorf("1..1000ms: got %+v, want %+v", got, want)
	}

	if got := ComputePercentiles(nil); got != (Percentiles{}) {
		t.Errorf("empty: %+v", got)
	}
	one := []time.Duration{7}
	if got := ComputePercentiles(one); got != (Percentiles{7, 7, 7, 7, 7}) {
		t.Errorf("single: %+v", got)
	}
	ten := []time.Duration{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	if got := ComputePercentiles(ten); got != (Percentiles{P50: 5, P90: 9, P99: 10, P999: 10, Max: 10}) {
		t.Errorf("1..10: %+v", got)
	}
}

func TestPaceHandsOutEverySlotInOrder(t *testing.T) {
	slots := make(chan int64, 100)
	Pace(context.Background(), time.Now(), float64(time.Microsecond), 100, slots)
	var want int64
	for i := range slots {
		if i != want {
			t.Fatalf("slot %d, want %d", i, want)
		}
		want++
	}
	if want != 100 {
		t.Errorf("%d slots, want 100", want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slots = make(chan int64) // nobody receives: pace must give up on ctx
	Pace(ctx, time.Now(), float64(time.Microsecond), 100, slots)
	if _, ok := <-slots; ok {
		t.Error("slot handed out after cancel")
	}
}
