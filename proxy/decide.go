package proxy

import (
	"time"

	"github.com/wedsync/veil/health"
)

// action is what the run of a request does after one attempt.
type action uint8

const (
	// deliver gives the client this attempt's answer, or, when it got
	// none, veil's error for it.
	deliver action = iota
	// nextTarget drops the answer and moves on to the next planned target.
	nextTarget
	// retry drops the answer and tries the same target again after
	// verdict.wait.
	retry
	// swapKey drops the answer and sends the call again, to the same
	// target, with another key.
	swapKey
)

var actionNames = [...]string{deliver: "deliver", nextTarget: "next target", retry: "retry", swapKey: "swap key"}

func (a action) String() string { return actionNames[a] }

// failure says why an attempt has no upstream answer to judge.
type failure uint8

const (
	// answered: the provider gave a status.
	answered failure = iota
	// failTransport: the connection was refused, reset or timed out.
	failTransport
	// failRequest: the call could not be sent as asked (the provider's
	// schema cannot carry it, or it could not be prepared).
	failRequest
	// failKey: no key could be had for the attempt (none stored, or the
	// key store is unreachable).
	failKey
	// failStream: a stream held back from the client failed before its
	// first content.
	failStream
	// failOverload: no connection to the provider was free in time: veil
	// is at capacity there, the provider did nothing wrong.
	failOverload
)

// outcome is everything the decision looks at in one attempt.
type outcome struct {
	// status is the upstream status; 0 when failure says why there is none.
	status  int
	failure failure
	// client is set when the attempt used the supplier's own key.
	client bool
	// spareKey is set when another key may serve the call on the same
	// target: a refreshed supplier key (401), another platform key of the
	// pool (429).
	spareKey bool
	// swapped is set once the key was swapped in this try.
	swapped bool
	// last is set on the plan's last target.
	last bool
	// tries counts the earlier tries of this target.
	tries int
	// hint is how long the provider asked to wait (Retry-After); 0 when
	// it said nothing.
	hint time.Duration
	// exhausted is set on a 429 that says the key's account is used up
	// (insufficient_quota): waiting will not help, another key or target
	// may.
	exhausted bool
}

// verdict is the decision on one attempt.
type verdict struct {
	act  action
	wait time.Duration
}

// retrier grants a retry of the last planned target and says how long to
// wait first; it declines when the retries, the deadline or the target's
// retry budget are used up.
type retrier interface {
	retryWait(tries int, hint time.Duration) (time.Duration, bool)
}

// decide is the one place that maps an attempt's outcome to what happens
// next. Statuses are classified by health.Classify, the classification
// health itself records. A key at fault is swapped once when another may
// serve; the target's transient trouble (5xx, 408, 409, 429, no answer)
// moves the call to the next planned target, or, on the last one, retries
// it while r allows; everything else is delivered as it is.
func decide(o *outcome, r retrier) verdict {
	if o.failure != answered {
		switch {
		case !o.last:
			return verdict{act: nextTarget}
		case o.failure == failTransport:
			return retryOrDeliver(o, r)
		}
		return verdict{act: deliver}
	}
	class := health.Classify(o.status)
	if o.spareKey && !o.swapped && swappable(o.status, o.client) {
		return verdict{act: swapKey}
	}
	switch {
	case o.exhausted && o.spareKey && !o.swapped && !o.client:
		return verdict{act: swapKey}
	case o.exhausted && !o.last:
		return verdict{act: nextTarget}
	case o.exhausted:
		return verdict{act: deliver}
	case class == health.KeyRejected && o.client && !o.last:
		// The supplier's own key is refused even after a refresh: the
		// plan's later targets (platform keys, when allowed) take over.
		return verdict{act: nextTarget}
	case class.Transient() && !o.last:
		return verdict{act: nextTarget}
	case class.Transient():
		return retryOrDeliver(o, r)
	}
	return verdict{act: deliver}
}

// swappable reports whether a status asks for another key: a supplier's key
// refused (it may have been rotated in the key store), or a platform key
// rate-limited (the pool has others).
func swappable(status int, client bool) bool {
	if client {
		return status == 401
	}
	return status == 429
}

func retryOrDeliver(o *outcome, r retrier) verdict {
	if wait, ok := r.retryWait(o.tries, o.hint); ok {
		return verdict{act: retry, wait: wait}
	}
	return verdict{act: deliver}
}
