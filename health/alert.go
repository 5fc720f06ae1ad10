package health

import (
	"strconv"
	"time"
)

// Sources of an alert.
const (
	// SourceProbe marks an alert from active probes.
	SourceProbe = "probe"
	// SourceBreaker marks an alert from a target's circuit breaker.
	SourceBreaker = "breaker"
	// SourceSupplierKey marks an alert about one supplier's own key: the
	// provider refused it and the supplier's calls fall back to platform
	// keys (down), or it was accepted again (up).
	SourceSupplierKey = "supplier_key"
)

// Alert says that a target, or one supplier's own key on it, went down or
// came back, as active probes or a circuit breaker saw it. Package alert
// turns it into the event operators are told.
type Alert struct {
	Target string
	// Supplier is the supplier whose own key a SourceSupplierKey alert is
	// about; empty otherwise.
	Supplier string
	// Source is SourceProbe, SourceBreaker or SourceSupplierKey.
	Source string
	// Up is the target's new state.
	Up bool
	// Breaker is the breaker's new state (closed or open) in a breaker
	// alert; empty in a probe alert.
	Breaker string
	// Cause says why the target went down: the last probe's failure
	// ("status 503", a transport error) or what opened the breaker ("5
	// consecutive failures"); empty when the target came back.
	Cause string
	At    time.Time
}

// breakerAlert describes a breaker change of the named target. It runs
// only when the state changed, never for an ordinary outcome.
func breakerAlert(target string, c change, window time.Duration, at time.Time) Alert {
	a := Alert{Target: target, Source: SourceBreaker, Up: c.to == Closed, Breaker: c.to, At: at}
	switch c.trigger {
	case byConsecutive:
		a.Cause = strconv.Itoa(c.consecutive) + " consecutive failures"
	case byErrorRate:
		a.Cause = strconv.Itoa(c.failed) + " of " + strconv.Itoa(c.total) + " attempts failed within " + window.String()
	}
	return a
}
