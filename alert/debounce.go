package alert

import (
	"time"
)

// maxHoldPeriods bounds how long a target that keeps changing state is
// held back: its latest state goes out after at most this many debounce
// periods even if it never settles.
const maxHoldPeriods = 4

// message is one alert on its way to the webhook, with the number of state
// changes it stands for (more than one when the debounce folded a flap
// into its latest state).
type message struct {
	Event
	Changes int
}

// debouncer decides when a target's alerts go to the webhook. The first
// change of a quiet target goes at once; further changes within every of
// the last one sent are held, each replacing the one before, until the
// target has had no change for every (or has been held for maxHoldPeriods
// of them); then the latest goes. A target is one source's view of one
// provider: probes and the breaker are debounced separately. Times are
// passed in, so the decisions need no clock. It is not safe for
// concurrent use.
type debouncer struct {
	every   time.Duration
	targets map[key]*entry
}

type key struct{ source, subject, supplier string }

type entry struct {
	lastSent   time.Time // zero: never sent
	held       *message  // nil: nothing held
	firstHeld  time.Time
	lastChange time.Time
}

func newDebouncer(every time.Duration) *debouncer {
	return &debouncer{every: every, targets: make(map[key]*entry)}
}

// add takes a change seen at now and returns the message to send at once,
// if any.
func (d *debouncer) add(a Event, now time.Time) (message, bool) {
	k := key{a.Source, a.subject(), a.Supplier}
	e := d.targets[k]
	if e == nil {
		e = &entry{}
		d.targets[k] = e
	}
	quiet := e.held == nil && (e.lastSent.IsZero() || now.Sub(e.lastSent) >= d.every)
	if d.every <= 0 || quiet {
		e.lastSent = now
		return message{Event: a, Changes: 1}, true
	}
	if e.held == nil {
		e.held, e.firstHeld = &message{}, now
	}
	e.held.Event = a
	e.held.Changes++
	e.lastChange = now
	return message{}, false
}

// settles is when the entry's held message may go.
func (d *debouncer) settles(e *entry) time.Time {
	at := e.lastChange.Add(d.every)
	if limit := e.firstHeld.Add(maxHoldPeriods * d.every); limit.Before(at) {
		at = limit
	}
	return at
}

// due returns the held messages that have settled by now, and marks them
// sent.
func (d *debouncer) due(now time.Time) []message {
	var out []message
	for _, e := range d.targets {
		if e.held != nil && !now.Before(d.settles(e)) {
			out = append(out, *e.held)
			e.held, e.lastSent = nil, now
		}
	}
	return out
}

// next is the earliest time a held message settles; zero when none is
// held.
func (d *debouncer) next() time.Time {
	var at time.Time
	for _, e := range d.targets {
		if e.held == nil {
			continue
		}
		if s := d.settles(e); at.IsZero() || s.Before(at) {
			at = s
		}
	}
	return at
}

// flush returns every held message, settled or not, and marks them sent.
func (d *debouncer) flush(now time.Time) []message {
	var out []message
	for _, e := range d.targets {
		if e.held != nil {
			out = append(out, *e.held)
			e.held, e.lastSent = nil, now
		}
	}
	return out
}
