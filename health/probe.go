package health

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// CheckFunc probes one target before deadline and returns the status it
// answered; an error means it did not answer.
type CheckFunc func(deadline time.Time) (int, error)

// Prober runs active health checks: every Interval it probes each target
// it has a check for. Fails consecutive failed probes take a target out of
// Available; Passes consecutive good ones bring it back. Each change is
// sent to Alert. Rate limits and key refusals count as answers: the target
// is up, only busy or unwilling.
type Prober struct {
	Registry *Registry
	Checks   map[string]CheckFunc
	Interval time.Duration
	Timeout  time.Duration
	Fails    int
	Passes   int
	// Alert receives each change of a target's probed state; nil drops
	// them.
	Alert func(Alert)
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	streak map[string]int // >0: consecutive passes, <0: consecutive fails
}

// Run probes until ctx ends, once at once and then every Interval.
func (p *Prober) Run(ctx context.Context) {
	if p.Interval <= 0 || len(p.Checks) == 0 {
		return
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		p.ProbeAll()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ProbeAll probes every target once, concurrently, and applies the
// results.
func (p *Prober) ProbeAll() {
	var wg sync.WaitGroup
	for name, check := range p.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, err := check(p.now().Add(p.timeout()))
			p.apply(name, status, err)
		}()
	}
	wg.Wait()
}

func (p *Prober) apply(name string, status int, err error) {
	t := p.Registry.Target(name)
	if t == nil {
		return
	}
	cause := ""
	switch {
	case err != nil:
		cause = err.Error()
	case Classify(status) == Failure:
		cause = "status " + strconv.Itoa(status)
	}
	now := p.now()
	t.probed(status, cause, now)

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.streak == nil {
		p.streak = make(map[string]int)
	}
	s := p.streak[name]
	if cause == "" {
		s = max(s, 0) + 1
	} else {
		s = min(s, 0) - 1
	}
	p.streak[name] = s
	down := t.probeDown.Load()
	switch {
	case !down && -s >= max(p.Fails, 1):
		t.probeDown.Store(true)
		p.alert(Alert{Target: name, Source: SourceProbe, Up: false, Cause: cause, At: now})
	case down && s >= max(p.Passes, 1):
		t.probeDown.Store(false)
		p.alert(Alert{Target: name, Source: SourceProbe, Up: true, At: now})
	}
}

func (p *Prober) alert(a Alert) {
	if p.Alert != nil {
		p.Alert(a)
	}
}

func (p *Prober) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Prober) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return 5 * time.Second
}
