// Package alert delivers the events operators watch (providers and
// suppliers' keys going down or coming back, migrations failing, rolling
// back, completing or switching): each one is a log line at once and, when
// a webhook is configured, a JSON POST, debounced per subject and retried
// with backoff, from a bounded queue that never blocks the caller.
package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/health"

	"github.com/wedsync/veil/internal/webhook"
)

// Defaults of Options.
const (
	DefaultTimeout   = 5 * time.Second
	DefaultAttempts  = 4
	DefaultBackoff   = time.Second
	DefaultQueueSize = 256
	// maxBackoff caps the wait between two tries.
	maxBackoff = 30 * time.Second
)

// Observer counts what happened to the alerts meant for the webhook.
type Observer interface {
	// AlertSent counts an alert the webhook accepted.
	AlertSent()
	// AlertFailed counts an alert the webhook did not accept after every
	// try, or that Close could not deliver before its deadline.
	AlertFailed()
	// AlertDropped counts an alert left out because the queue was full.
	AlertDropped()
}

// Options configure New.
type Options struct {
	// URL is the webhook alerts are POSTed to (http or https); empty means
	// alerts are log lines only.
	URL string
	// Headers are added to every POST, e.g. Authorization. Their values
	// are never logged.
	Headers map[string]string
	// Timeout bounds one POST; default 5s.
	Timeout time.Duration
	// Debounce holds a target's further changes while it changed within
	// Debounce of its last alert, and sends only its latest state once it
	// has been quiet that long (or after at most four periods of
	// flapping). The first change of a quiet target goes at once. Zero
	// sends every change at once.
	Debounce time.Duration
	// Attempts is how often one alert is tried before it counts as failed;
	// default 4. Network errors, 408, 429 and 5xx are tried again; other
	// answers are final.
	Attempts int
	// Backoff is the wait before the second try, doubling for each further
	// one (with jitter, at most 30s); default 1s.
	Backoff time.Duration
	// QueueSize bounds the alerts waiting to be debounced and to be sent;
	// an alert that finds its queue full is dropped and counted. Default
	// 256.
	QueueSize int
	// Instance names this veil in the payload (the pod's host name).
	Instance string
	// Client sends the POSTs; nil means a client of the notifier's own.
	// Redirects that would turn the POST into a GET are not followed.
	Client *http.Client
	// Log receives one line per alert and the webhook's delivery errors;
	// nil means none.
	Log *zap.Logger
	// Observer counts deliveries; nil means none.
	Observer Observer
	// Now is the clock of the debounce; nil means time.Now.
	Now func() time.Time
}

// Payload is the JSON body of one webhook POST.
type Payload struct {
	// Event is provider_down or provider_up, or, for one supplier's own
	// key, supplier_key_down or supplier_key_up.
	Event    string `json:"event"`
	Provider string `json:"provider"`
	// Supplier is the supplier whose own key a supplier_key event is about.
	Supplier string `json:"supplier,omitempty"`
	Up       bool   `json:"up"`
	// Source is probe, breaker or supplier_key: which of veil's checks saw
	// the change.
	Source string `json:"source"`
	// Breaker is the breaker's new state in a breaker alert.
	Breaker string `json:"breaker,omitempty"`
	// Cause says why the provider went down.
	Cause string    `json:"cause,omitempty"`
	At    time.Time `json:"at"`
	// Changes is how many state changes this alert stands for: more than
	// one when the provider flapped within the debounce and only its
	// latest state is sent.
	Changes  int    `json:"changes"`
	Instance string `json:"instance,omitempty"`
	// Text is the alert in one sentence, for chat webhooks.
	Text string `json:"text"`
}

// Notifier takes events from probes, breakers and migrations without
// blocking them, logs each one, and sends them to the webhook.
type Notifier struct {
	hook     *webhook.Poster
	instance string
	log      *zap.Logger
	obs      Observer
	now      func() time.Time
	deb      *debouncer

	in     chan Event
	outbox chan message
	stop   chan struct{}
	done   chan struct{}
	ctx    context.Context // ends when Close gives up on delivering
	cancel context.CancelFunc

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	// undelivered counts the alerts that Close could not deliver.
	undelivered atomic.Int64
}

// New returns a notifier; with a URL it starts the goroutines that Close
// stops.
func New(o Options) (*Notifier, error) {
	n := &Notifier{log: o.Log, obs: o.Observer, now: o.Now, instance: o.Instance}
	if n.log == nil {
		n.log = zap.NewNop()
	}
	if n.obs == nil {
		n.obs = nopObserver{}
	}
	if n.now == nil {
		n.now = time.Now
	}
	if o.URL == "" {
		return n, nil
	}
	timeout, attempts, backoff := o.Timeout, o.Attempts, o.Backoff
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	if backoff <= 0 {
		backoff = DefaultBackoff
	}
	hook, err := webhook.New(webhook.Options{Name: "alert webhook", URL: o.URL, Headers: o.Headers,
		ContentType: "application/json", Timeout: timeout, Client: o.Client,
		Attempts: attempts, Backoff: backoff, MaxBackoff: maxBackoff})
	if err != nil {
		return nil, err
	}
	n.hook = hook
	size := o.QueueSize
	if size <= 0 {
		size = DefaultQueueSize
	}
	n.deb = newDebouncer(o.Debounce)
	n.in = make(chan Event, size)
	n.outbox = make(chan message, size)
	n.stop, n.done = make(chan struct{}), make(chan struct{})
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.debounceLoop()
	go n.sendLoop()
	return n, nil
}

// Notify logs a and queues it for the webhook. It never blocks: when the
// queue is full, or after Close, the webhook does not get a, which is
// counted as dropped; the log line is written either way.
func (n *Notifier) Notify(a Event) {
	n.logAlert(a)
	if n.in == nil {
		return
	}
	if n.closed.Load() {
		n.obs.AlertDropped()
		return
	}
	select {
	case n.in <- a:
	default:
		n.obs.AlertDropped()
	}
}

// logAlert writes the alert's line: "alert: provider is down" at error
// level with its cause, "alert: provider is back" at warn level.
func (n *Notifier) logAlert(a Event) {
	fields := make([]zap.Field, 0, 6)
	fields = append(fields, zap.String("provider", a.Provider), zap.String("source", a.Source))
	if a.Source == SourceMigration {
		n.log.Warn("alert: "+strings.ReplaceAll(a.Kind, "_", " "), zap.String("event", a.Kind),
			zap.String("supplier", a.Supplier), zap.String("message", a.Cause), zap.Time("at", a.At))
		return
	}
	if a.Source == SourceSupplierKey {
		fields = append(fields, zap.String("supplier", a.Supplier), zap.Time("at", a.At))
		if a.Up {
			n.log.Warn("alert: supplier key is accepted again", fields...)
			return
		}
		if keyFault(a.Cause) != string(health.KeyRefused) {
			n.log.Error("alert: supplier key is out", append(fields, zap.String("cause", a.Cause))...)
			return
		}
		n.log.Error("alert: supplier key refused; falling back to platform keys", fields...)
		return
	}
	if a.Breaker != "" {
		fields = append(fields, zap.String("breaker", a.Breaker))
	}
	if a.Up {
		n.log.Warn("alert: provider is back", append(fields, zap.Time("at", a.At))...)
		return
	}
	n.log.Error("alert: provider is down", append(fields, zap.String("cause", a.Cause), zap.Time("at", a.At))...)
}

// debounceLoop holds alerts per target and hands the ones due to the
// sender, until Close; then it hands over everything still held.
func (n *Notifier) debounceLoop() {
	defer close(n.outbox)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var wake <-chan time.Time
		if at := n.deb.next(); !at.IsZero() {
			timer.Reset(max(at.Sub(n.now()), 0))
			wake = timer.C
		}
		select {
		case a := <-n.in:
			n.take(a)
		case <-wake:
			for _, m := range n.deb.due(n.now()) {
				n.post(m)
			}
		case <-n.stop:
			for len(n.in) > 0 {
				n.take(<-n.in)
			}
			for _, m := range n.deb.flush(n.now()) {
				n.post(m)
			}
			return
		}
		timer.Stop()
	}
}

// take runs a through the debounce.
func (n *Notifier) take(a Event) {
	if m, ok := n.deb.add(a, n.now()); ok {
		n.post(m)
	}
}

// post hands m to the sender, or drops it when the sender is that far
// behind.
func (n *Notifier) post(m message) {
	select {
	case n.outbox <- m:
	default:
		n.obs.AlertDropped()
	}
}

func (n *Notifier) sendLoop() {
	defer close(n.done)
	for m := range n.outbox {
		if n.ctx.Err() != nil {
			n.undelivered.Add(1)
			n.obs.AlertFailed()
			continue
		}
		n.deliver(m)
	}
}

// deliver POSTs m, trying again after retryable failures.
func (n *Notifier) deliver(m message) {
	body, err := json.Marshal(payload(m, n.instance))
	if err != nil {
		n.obs.AlertFailed()
		n.log.Error("alert webhook: encoding the alert failed", zap.String("provider", m.Provider), zap.Error(err))
		return
	}
	if err = n.hook.Send(n.ctx, body); err == nil {
		n.obs.AlertSent()
		return
	}
	if n.ctx.Err() != nil {
		n.undelivered.Add(1)
	}
	n.obs.AlertFailed()
	n.log.Error("alert webhook: delivery failed", zap.String("provider", m.Provider), zap.String("source", m.Source),
		zap.Bool("up", m.Up), zap.Error(err))
}

// StatusError is a webhook answer other than 2xx.
type StatusError = webhook.StatusError

// Close stops taking alerts for the webhook and delivers the ones queued
// or held by the debounce, until ctx ends; what is left then is counted as
// failed and reported in the error. It is idempotent.
func (n *Notifier) Close(ctx context.Context) error {
	if n.in == nil {
		return nil
	}
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		close(n.stop)
		select {
		case <-n.done:
		case <-ctx.Done():
			n.cancel() // ends the POST in flight and the waits between tries
			<-n.done
		}
		n.cancel()
		if k := n.undelivered.Load(); k > 0 {
			n.closeErr = fmt.Errorf("alert webhook: %d alerts not delivered: %w", k, context.Cause(ctx))
		}
		n.hook.Close()
	})
	return n.closeErr
}

// payload is the webhook body of m.
func payload(m message, instance string) Payload {
	p := Payload{Event: "provider_down", Provider: m.Provider, Supplier: m.Supplier, Up: m.Up, Source: m.Source,
		Breaker: m.Breaker, Cause: m.Cause, At: m.At.UTC(), Changes: m.Changes, Instance: instance}
	state := "down"
	if m.Up {
		p.Event, state = "provider_up", "back"
	}
	p.Text = "veil: provider " + m.Provider + " is " + state
	if m.Source == SourceMigration {
		p.Event, p.Provider, p.Up = m.Kind, "", true
		p.Text = "veil: supplier " + m.Supplier + ": " + m.Cause
		if instance != "" {
			p.Text += " (on " + instance + ")"
		}
		return p
	}
	if m.Source == SourceSupplierKey {
		p.Event, state = "supplier_key_down", keyState(m.Provider, m.Cause)
		if m.Up {
			p.Event, state = "supplier_key_up", "accepted by "+m.Provider+" again"
		}
		p.Text = "veil: supplier " + m.Supplier + "'s own key is " + state
		if instance != "" {
			p.Text += " on " + instance
		}
		return p
	}
	if instance != "" {
		p.Text += " on " + instance
	}
	switch {
	case m.Source == SourceBreaker && m.Cause != "":
		p.Text += " (breaker " + m.Breaker + ": " + m.Cause + ")"
	case m.Source == SourceBreaker:
		p.Text += " (breaker " + m.Breaker + ")"
	case m.Cause != "":
		p.Text += " (" + m.Source + ": " + m.Cause + ")"
	default:
		p.Text += " (" + m.Source + ")"
	}
	if m.Changes > 1 {
		p.Text += fmt.Sprintf(", after %d changes", m.Changes)
	}
	return p
}

type nopObserver struct{}

func (nopObserver) AlertSent()    {}
func (nopObserver) AlertFailed()  {}
func (nopObserver) AlertDropped() {}

// keyFault is the fault a supplier key's cause starts with ("refused",
// "out_of_quota", "failing"); "refused" when it names none.
func keyFault(cause string) string {
	for _, f := range [...]health.KeyFault{health.KeyOutOfQuota, health.KeyFailing} {
		if strings.HasPrefix(cause, string(f)) {
			return string(f)
		}
	}
	return string(health.KeyRefused)
}

// keyState says what happened to a supplier's own key, for the payload's
// text.
func keyState(provider, cause string) string {
	switch keyFault(cause) {
	case string(health.KeyOutOfQuota):
		return "out of quota at " + provider + "; its calls fall back to platform keys where allowed"
	case string(health.KeyFailing):
		return "failing at " + provider + " while other keys are served; its calls fall back to platform keys where allowed"
	}
	return "refused by " + provider + "; its calls fall back to platform keys"
}
