package usage

import (
	"slices"
	"sync"
	"testing"
)

// depthObserver keeps the queue depths reported, by sink.
type depthObserver struct {
	countObserver
	mu     sync.Mutex
	depths map[string][]int
}

func (o *depthObserver) QueueDepth(sink string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.depths[sink] = append(o.depths[sink], n)
}

// TestEmitterReportsEachSinkAtStart: every sink's queue depth is reported,
// empty, as the emitter starts, so that its metrics exist before the first
// record.
func TestEmitterReportsEachSinkAtStart(t *testing.T) {
	obs := &depthObserver{countObserver: *newCountObserver(), depths: map[string][]int{}}
	e := NewEmitter(Options{Observer: obs}, &testSink{name: "a"}, nil, &testSink{name: "b"})
	obs.mu.Lock()
	got := map[string][]int{}
	for k, v := range obs.depths {
		got[k] = slices.Clone(v)
	}
	obs.mu.Unlock()
	closeEmitter(t, e)
	if len(got) != 2 || !slices.Equal(got["a"], []int{0}) || !slices.Equal(got["b"], []int{0}) {
		t.Errorf("depths reported before the first record %v, want a and b at 0, once each", got)
	}
}
