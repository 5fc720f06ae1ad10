package health

import (
	"sync"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	cases := map[int]Outcome{0: Failure, 200: Success, 201: Success, 400: Success, 404: Success, 413: Success, 422: Success,
		401: KeyRejected, 403: KeyRejected, 408: Failure, 409: Failure, 429: RateLimited, 500: Failure, 501: Failure,
		502: Failure, 503: Failure, 504: Failure, 529: Failure}
	for status, want := range cases {
		if got := Classify(status); got != want {
			t.Errorf("Classify(%d) = %d, want %d", status, got, want)
		}
		if transient := want == Failure || want == RateLimited; Classify(status).Transient() != transient {
			t.Errorf("Classify(%d).Transient() = %v, want %v", status, !transient, transient)
		}
	}
}

func TestTargetRecord(t *testing.T) {
	r := NewRegistry("openai", "azure")
	tg := r.Target("openai")
	now := time.Date(2026, 6, 20, 14, 0, 0, 0, time.UTC)
	tg.Record(500, 100*time.Millisecond, now)
	tg.Record(0, 0, now)
	if got := tg.ConsecutiveFailures(); got != 2 {
		t.Fatalf("consecutive failures %d, want 2", got)
	}
	tg.Record(429, 10*time.Millisecond, now)
	if got := tg.ConsecutiveFailures(); got != 2 {
		t.Errorf("a 429 changed the failure streak to %d", got)
	}
	tg.Record(200, 200*time.Millisecond, now.Add(time.Second))
	s := tg.Snapshot()
	if s.ConsecutiveFailures != 0 || s.Successes != 1 || s.Failures != 2 || s.RateLimited != 1 || s.LastStatus != 200 {
		t.Errorf("snapshot %+v", s)
	}
	// EWMA: 100ms, then 10ms (weight 0.1) -> 91ms, then 200ms -> 101.9ms.
	if s.LatencyEWMAms < 101.8 || s.LatencyEWMAms > 102.0 {
		t.Errorf("latency EWMA %.3f ms", s.LatencyEWMAms)
	}
	if s.LastFailure == nil || !s.LastSuccess.After(*s.LastFailure) {
		t.Errorf("timestamps %v %v", s.LastSuccess, s.LastFailure)
	}
	if r.Target("unknown") != nil {
		t.Error("unknown target should be nil")
	}
	if snaps := r.Snapshot(); len(snaps) != 2 || snaps[0].Target != "azure" {
		t.Errorf("registry snapshot %+v", snaps)
	}
}

func TestRecordConcurrent(t *testing.T) {
	tg := NewRegistry("p").Target("p")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				tg.Record(200, time.Millisecond, time.Now())
			}
		}()
	}
	wg.Wait()
	if s := tg.Snapshot(); s.Successes != 8000 {
		t.Errorf("successes %d", s.Successes)
	}
}

func TestRecordAllocs(t *testing.T) {
	hook := func(Alert) {}
	tests := []struct {
		name string
		reg  *Registry
	}{
		{"no breakers", NewRegistry("p")},
		{"breakers with an error-rate window and a hook", NewRegistryWithBreakers(BreakerOptions{
			Failures: 100, Cooldown: time.Second, Window: 30 * time.Second, MinRequests: 20, ErrorRate: 0.9,
			OnChange: hook}, "p")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := tc.reg.Target("p")
			now := time.Now()
			i := 0
			a := testing.AllocsPerRun(100, func() {
				status := 200
				if i++; i%2 == 0 {
					status = 503 // a failure share of one half stays under 0.9
				}
				tg.Record(status, time.Millisecond, now)
			})
			if a != 0 {
				t.Errorf("%.1f allocations per Record", a)
			}
			if s := tg.Snapshot(); s.Breaker != Closed {
				t.Errorf("breaker %s, want it closed throughout", s.Breaker)
			}
		})
	}
}

func TestSuccessRateWindow(t *testing.T) {
	tg := NewRegistry("p").Target("p")
	start := time.Date(2026, 6, 20, 14, 0, 0, 0, time.UTC)
	if s := tg.SnapshotAt(start); s.SuccessRate != nil {
		t.Fatalf("success rate %v before any attempt", *s.SuccessRate)
	}
	for i := 0; i < 3; i++ {
		tg.Record(200, time.Millisecond, start)
	}
	tg.Record(503, time.Millisecond, start.Add(15*time.Second))
	tg.Record(429, time.Millisecond, start.Add(15*time.Second)) // not counted
	tests := []struct {
		name string
		at   time.Duration
		want float64 // -1: absent
	}{
		{"all in the minute", 20 * time.Second, 0.75},
		{"first slot aged out", 65 * time.Second, 0},
		{"everything aged out", 80 * time.Second, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tg.SnapshotAt(start.Add(tc.at))
			switch {
			case tc.want < 0 && s.SuccessRate != nil:
				t.Errorf("success rate %v, want none", *s.SuccessRate)
			case tc.want >= 0 && (s.SuccessRate == nil || *s.SuccessRate != tc.want):
				t.Errorf("success rate %v, want %v", s.SuccessRate, tc.want)
			}
		})
	}
	// A slot reused a minute later starts from zero.
	tg.Record(200, time.Millisecond, start.Add(60*time.Second))
	if s := tg.SnapshotAt(start.Add(61 * time.Second)); s.SuccessRate == nil || *s.SuccessRate != 0.5 {
		t.Errorf("after reuse: success rate %v, want 0.5", s.SuccessRate)
	}
}

func TestFirstToken(t *testing.T) {
	tg := NewRegistry("p").Target("p")
	if s := tg.Snapshot(); s.TTFTEWMAms != 0 {
		t.Fatalf("ttft %v before any stream", s.TTFTEWMAms)
	}
	tg.FirstToken(100 * time.Millisecond)
	tg.FirstToken(200 * time.Millisecond)
	if s := tg.Snapshot(); s.TTFTEWMAms != 110 {
		t.Errorf("ttft EWMA %v ms, want 110", s.TTFTEWMAms)
	}
}

func BenchmarkRecord(b *testing.B) {
	tg := NewRegistryWithBreakers(BreakerOptions{Failures: 5, Cooldown: time.Second,
		Window: 30 * time.Second, MinRequests: 20, ErrorRate: 0.5}, "p").Target("p")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		tg.Record(200, time.Millisecond, now)
	}
}
