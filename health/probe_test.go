package health

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// script is a check that answers from a list, one answer per probe.
type script struct {
	mu      sync.Mutex
	answers []error // nil: 200, errUnavailable: 503, others: no answer
}

var errUnavailable = errors.New("503")

func (s *script) check(time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.answers[0]
	if len(s.answers) > 1 {
		s.answers = s.answers[1:]
	}
	switch {
	case a == nil:
		return 200, nil
	case errors.Is(a, errUnavailable):
		return 503, nil
	default:
		return 0, a
	}
}

func TestProberTakesTargetsOutAndBack(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	openai := &script{answers: []error{nil, errUnavailable, refused, refused, nil, nil}}
	azure := &script{answers: []error{nil}}
	r := NewRegistry("openai", "azure")
	now := time.Date(2026, 6, 20, 14, 0, 0, 0, time.UTC)
	var alerts []Alert
	var mu sync.Mutex
	p := &Prober{Registry: r, Checks: map[string]CheckFunc{"openai": openai.check, "azure": azure.check},
		Fails: 2, Passes: 1, Now: func() time.Time { return now },
		Alert: func(a Alert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() }}

	steps := []struct {
		name      string
		available bool
		alerts    int
	}{
		{"healthy", true, 0},
		{"one 503 is not enough", true, 0},
		{"second failure in a row takes it out", false, 1},
		{"still failing, no new alert", false, 1},
		{"one success brings it back", true, 2},
		{"stays up", true, 2},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			p.ProbeAll()
			if got := r.Available("openai", now); got != st.available {
				t.Errorf("available %v, want %v", got, st.available)
			}
			if !r.Available("azure", now) {
				t.Error("the healthy target was taken out")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(alerts) != st.alerts {
				t.Errorf("%d alerts, want %d: %+v", len(alerts), st.alerts, alerts)
			}
		})
	}
	if alerts[0].Up || alerts[0].Target != "openai" || alerts[0].Cause != refused.Error() || !alerts[1].Up {
		t.Errorf("alerts %+v", alerts)
	}
	s := r.Target("openai").Snapshot()
	if s.ProbedDown || s.LastProbe == nil || s.LastProbeStatus != 200 || s.LastProbeError != "" {
		t.Errorf("snapshot %+v", s)
	}
}

func TestProberCountsRateLimitsAsUp(t *testing.T) {
	r := NewRegistry("openai")
	p := &Prober{Registry: r, Fails: 1, Checks: map[string]CheckFunc{
		"openai": func(time.Time) (int, error) { return 429, nil }}}
	p.ProbeAll()
	if !r.Available("openai", time.Now()) {
		t.Error("a rate-limited provider was taken out")
	}
}

func TestProberRunStopsWithContext(t *testing.T) {
	r := NewRegistry("openai")
	probes := make(chan struct{}, 16)
	p := &Prober{Registry: r, Interval: time.Millisecond, Checks: map[string]CheckFunc{
		"openai": func(time.Time) (int, error) {
			select {
			case probes <- struct{}{}:
			default:
			}
			return 200, nil
		}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	<-probes
	<-probes
	cancel()
	<-done
}
