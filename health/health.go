// Package health keeps passive health statistics of upstream targets: what
// every real attempt to a provider returned, how long it took, and how many
// failures came in a row. It is recorded on the request path without
// allocations and read by the admin status. Each target has a circuit
// breaker (consecutive failures or an error rate open it), active probes
// can take a target out, and both raise an Alert when a target goes down
// or comes back.
package health

import (
	"math"
	"sort"
	"sync/atomic"
	"time"
)

// Outcome classifies one upstream attempt.
type Outcome uint8

// Outcomes of an attempt.
const (
	// Success is a 2xx, or a 4xx that the client caused (the target is fine).
	Success Outcome = iota
	// Failure is a transport error, timeout, 5xx, 408, 409 or a cut
	// stream: the target failed this call, and another target, or the
	// same one later, may well succeed.
	Failure
	// RateLimited is a 429: the target is up but pushing back.
	RateLimited
	// KeyRejected is a 401 or 403: the key, not the target, is at fault.
	KeyRejected
)

// Classify maps an attempt's status (0 for a transport error) to an outcome.
// It is the one classification of upstream statuses: the proxy fails over
// and retries on the outcomes that are Transient, and health counts them.
func Classify(status int) Outcome {
	switch {
	case status == 0 || status >= 500 || status == 408 || status == 409:
		return Failure
	case status == 429:
		return RateLimited
	case status == 401 || status == 403:
		return KeyRejected
	default:
		return Success
	}
}

// Transient reports whether the outcome is the target's passing trouble
// (a failure or a rate limit) rather than the request's or the key's, so
// that the call may be sent to another target or tried again.
func (o Outcome) Transient() bool { return o == Failure || o == RateLimited }

// ewmaWeight is the weight of a new latency sample in the moving average.
const ewmaWeight = 0.1

// Target holds the statistics of one upstream target.
type Target struct {
	name           string
	breaker        *Breaker
	onChange       func(Alert)
	budget         *Budget
	successes      atomic.Uint64
	failures       atomic.Uint64
	rateLimited    atomic.Uint64
	keyRejected    atomic.Uint64
	keyFaults      atomic.Uint64
	consecutive    atomic.Uint64
	latencyEWMA    atomic.Uint64 // float64 bits, seconds
	ttftEWMA       atomic.Uint64 // float64 bits, seconds
	window         window
	lastFailureAt  atomic.Int64 // unix nanoseconds
	lastSuccessAt  atomic.Int64
	lastStatusSeen atomic.Int64
	// Capacity left as the provider last reported it (x-ratelimit-remaining-*),
	// -1 when it never said.
	remainingRequests atomic.Int64
	remainingTokens   atomic.Int64
	// The rest of the provider's last rate-limit report: its limits
	// (x-ratelimit-limit-*, stored +1 so that zero means never), when
	// each window resets (unix nanoseconds) and when it reported.
	limitRequests   atomic.Int64
	limitTokens     atomic.Int64
	resetRequestsAt atomic.Int64
	resetTokensAt   atomic.Int64
	limitsReportAt  atomic.Int64
	// Active probes: whether they took the target out, and the last one.
	probeDown atomic.Bool
	lastProbe atomic.Pointer[probeResult]
	// accounts hold the latest observation of each account of the
	// platform keys' rate limits, coolUntil when a 429 stops holding the
	// provider out (unix nanoseconds); pubCool is the cooldown Sharing
	// published last.
	accounts  accounts
	coolUntil atomic.Int64
	pubCool   atomic.Int64
}

type probeResult struct {
	at     time.Time
	status int
	cause  string
}

// probed keeps the last active probe's result.
func (t *Target) probed(status int, cause string, at time.Time) {
	t.lastProbe.Store(&probeResult{at: at, status: status, cause: cause})
}

// Capacity records what the provider said is left of its rate limits;
// negative values mean it did not say.
func (t *Target) Capacity(requests, tokens int64) {
	if requests >= 0 {
		t.remainingRequests.Store(requests + 1) // stored +1 so that zero means never
	}
	if tokens >= 0 {
		t.remainingTokens.Store(tokens + 1)
	}
}

// RateLimits is what a provider said of its rate limits on one answer
// (the x-ratelimit-* headers). A negative count or reset means it did not
// say.
type RateLimits struct {
	// RemainingRequests and RemainingTokens are what is left of the
	// current windows; LimitRequests and LimitTokens their size.
	RemainingRequests, RemainingTokens int64
	LimitRequests, LimitTokens         int64
	// ResetRequests and ResetTokens are the time until each window is
	// full again.
	ResetRequests, ResetTokens time.Duration
}

// NoRateLimits is a RateLimits that says nothing, to fill in from an
// answer's headers.
var NoRateLimits = RateLimits{RemainingRequests: -1, RemainingTokens: -1, LimitRequests: -1, LimitTokens: -1,
	ResetRequests: -1, ResetTokens: -1}

// ReportRateLimits records a provider's rate-limit report received at
// now, of no account in particular (the unnamed account: whichever key
// answered); see ReportAccountRateLimits.
func (t *Target) ReportRateLimits(l RateLimits, now time.Time) {
	t.ReportAccountRateLimits(0, l, now)
}

// ReportAccountRateLimits records a rate-limit report received at now on
// a platform key of account acct (OrgAccount, KeyAccount; 0 for none in
// particular): for the capacity overview, as the provider's last report
// (what it did not say keeps its last value), and, as the account's latest
// observation, for load-aware routing (Registry.Load), which sums the
// accounts of the pool. It does not allocate.
func (t *Target) ReportAccountRateLimits(acct uint64, l RateLimits, now time.Time) {
	t.Capacity(l.RemainingRequests, l.RemainingTokens)
	said := l.RemainingRequests >= 0 || l.RemainingTokens >= 0
	if l.LimitRequests >= 0 {
		t.limitRequests.Store(l.LimitRequests + 1)
		said = true
	}
	if l.LimitTokens >= 0 {
		t.limitTokens.Store(l.LimitTokens + 1)
		said = true
	}
	if l.ResetRequests >= 0 {
		t.resetRequestsAt.Store(now.Add(l.ResetRequests).UnixNano())
	}
	if l.ResetTokens >= 0 {
		t.resetTokensAt.Store(now.Add(l.ResetTokens).UnixNano())
	}
	if said {
		t.limitsReportAt.Store(now.UnixNano())
	}
	if l.said() {
		o := observe(l, now)
		o.acct = acct
		t.accounts.cell(acct, o.at).store(o) // for routing: Registry.Load, shared by Sharing
	}
}

// Record adds one attempt's outcome and time to response headers.
func (t *Target) Record(status int, latency time.Duration, now time.Time) {
	t.lastStatusSeen.Store(int64(status))
	outcome := Classify(status)
	if c := t.breaker.record(outcome, now); c.alerting() && t.onChange != nil {
		t.onChange(breakerAlert(t.name, c, t.breaker.Window, now))
	}
	t.window.add(outcome, now)
	switch outcome {
	case Success:
		t.successes.Add(1)
		t.consecutive.Store(0)
		t.lastSuccessAt.Store(now.UnixNano())
	case Failure:
		t.failures.Add(1)
		t.consecutive.Add(1)
		t.lastFailureAt.Store(now.UnixNano())
	case RateLimited:
		t.rateLimited.Add(1)
	case KeyRejected:
		t.keyRejected.Add(1)
	}
	if status == 0 {
		return // no answer: no latency sample
	}
	addEWMA(&t.latencyEWMA, latency.Seconds())
}

// RecordKeyFault adds one attempt that failed with a supplier's own key:
// it is counted and timed, but moves neither the target's breaker nor its
// success rate, as it says nothing about the provider's other keys.
func (t *Target) RecordKeyFault(status int, latency time.Duration, now time.Time) {
	t.lastStatusSeen.Store(int64(status))
	t.keyFaults.Add(1)
	if status != 0 {
		addEWMA(&t.latencyEWMA, latency.Seconds())
	}
}

// FirstToken adds one stream's time from the start of the attempt that
// served it to its first content event.
func (t *Target) FirstToken(d time.Duration) {
	if d > 0 {
		addEWMA(&t.ttftEWMA, d.Seconds())
	}
}

// addEWMA folds sample into the moving average held as float64 bits in v.
func addEWMA(v *atomic.Uint64, sample float64) {
	for {
		old := v.Load()
		avg := math.Float64frombits(old)
		next := sample
		if old != 0 {
			next = avg + ewmaWeight*(sample-avg)
		}
		if v.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// ConsecutiveFailures is the number of failures since the last success.
func (t *Target) ConsecutiveFailures() uint64 { return t.consecutive.Load() }

// Snapshot is a point-in-time copy of a target's statistics.
type Snapshot struct {
	Target      string `json:"target"`
	Successes   uint64 `json:"successes"`
	Failures    uint64 `json:"failures"`
	RateLimited uint64 `json:"rate_limited"`
	KeyRejected uint64 `json:"key_rejected"`
	// KeyFaults counts attempts that failed with a supplier's own key and
	// were charged to that key, not to the target.
	KeyFaults           uint64  `json:"supplier_key_faults"`
	ConsecutiveFailures uint64  `json:"consecutive_failures"`
	LatencyEWMAms       float64 `json:"latency_ewma_ms"`
	// TTFTEWMAms is the moving average of the time to first token of the
	// streams the target served; zero before its first stream.
	TTFTEWMAms float64 `json:"ttft_ewma_ms,omitempty"`
	// SuccessRate is the share of answered attempts in the last minute
	// that succeeded (rate limits and key rejections left out); absent
	// when there were none.
	SuccessRate *float64   `json:"success_rate_1m,omitempty"`
	LastStatus  int        `json:"last_status"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastFailure *time.Time `json:"last_failure,omitempty"`
	Breaker     string     `json:"breaker"`
	// RemainingRequests and RemainingTokens are the provider's last
	// x-ratelimit-remaining-* values; absent when it never sent them.
	RemainingRequests *int64 `json:"remaining_requests,omitempty"`
	RemainingTokens   *int64 `json:"remaining_tokens,omitempty"`
	// LimitRequests and LimitTokens are its last x-ratelimit-limit-*
	// values, the windows' sizes; absent when it never sent them.
	LimitRequests *int64 `json:"limit_requests,omitempty"`
	LimitTokens   *int64 `json:"limit_tokens,omitempty"`
	// RequestsReset and TokensReset are when the windows of its last
	// report are full again (x-ratelimit-reset-*, from the time of the
	// answer); RateLimitsAt is when it last reported any of them.
	RequestsReset *time.Time `json:"requests_reset,omitempty"`
	TokensReset   *time.Time `json:"tokens_reset,omitempty"`
	RateLimitsAt  *time.Time `json:"rate_limits_at,omitempty"`
	// ProbedDown is true while active probes hold the target out.
	ProbedDown bool `json:"probed_down"`
	// LastProbe is the time of the last active probe, LastProbeStatus its
	// status (0: no answer) and LastProbeError why it failed.
	LastProbe       *time.Time `json:"last_probe,omitempty"`
	LastProbeStatus int        `json:"last_probe_status,omitempty"`
	LastProbeError  string     `json:"last_probe_error,omitempty"`
	// Headroom is the fraction of the platform keys' tightest rate limit
	// left, over the accounts of the pool (organisations, or keys where
	// the provider names none), as this replica and, through the store,
	// every replica last saw them, each refilled towards its reset time;
	// absent when nothing tells.
	Headroom *float64 `json:"headroom,omitempty"`
	// Pool is the rate limits Headroom is made of, summed over the
	// accounts it counts; absent before any report.
	Pool *PoolLimits `json:"pool,omitempty"`
	// RateLimitedUntil is when a 429, seen by any replica, stops holding
	// the provider out; absent when none does.
	RateLimitedUntil *time.Time `json:"rate_limited_until,omitempty"`
}

// Snapshot copies the target's statistics.
func (t *Target) Snapshot() Snapshot {
	return t.SnapshotAt(time.Now())
}

// SnapshotAt copies the target's statistics, with the rolling success
// rate as of now.
func (t *Target) SnapshotAt(now time.Time) Snapshot {
	s := Snapshot{
		Target:              t.name,
		Successes:           t.successes.Load(),
		Failures:            t.failures.Load(),
		RateLimited:         t.rateLimited.Load(),
		KeyRejected:         t.keyRejected.Load(),
		KeyFaults:           t.keyFaults.Load(),
		ConsecutiveFailures: t.consecutive.Load(),
		LatencyEWMAms:       toMS(t.latencyEWMA.Load()),
		TTFTEWMAms:          toMS(t.ttftEWMA.Load()),
		LastStatus:          int(t.lastStatusSeen.Load()),
		Breaker:             t.breaker.State(),
		ProbedDown:          t.probeDown.Load(),
	}
	if p := t.lastProbe.Load(); p != nil {
		at := p.at.UTC()
		s.LastProbe, s.LastProbeStatus, s.LastProbeError = &at, p.status, p.cause
	}
	if ok, failed := t.window.sum(now); ok+failed > 0 {
		rate := math.Round(float64(ok)/float64(ok+failed)*1e4) / 1e4
		s.SuccessRate = &rate
	}
	if v := t.remainingRequests.Load(); v > 0 {
		v--
		s.RemainingRequests = &v
	}
	if v := t.remainingTokens.Load(); v > 0 {
		v--
		s.RemainingTokens = &v
	}
	if v := t.limitRequests.Load(); v > 0 {
		v--
		s.LimitRequests = &v
	}
	if v := t.limitTokens.Load(); v > 0 {
		v--
		s.LimitTokens = &v
	}
	s.RequestsReset = unixTime(t.resetRequestsAt.Load())
	s.TokensReset = unixTime(t.resetTokensAt.Load())
	s.RateLimitsAt = unixTime(t.limitsReportAt.Load())
	if ns := t.lastSuccessAt.Load(); ns != 0 {
		ts := time.Unix(0, ns).UTC()
		s.LastSuccess = &ts
	}
	if ns := t.lastFailureAt.Load(); ns != 0 {
		ts := time.Unix(0, ns).UTC()
		s.LastFailure = &ts
	}
	return s
}

// unixTime is the UTC time of unix nanoseconds, or nil for zero.
func unixTime(ns int64) *time.Time {
	if ns == 0 {
		return nil
	}
	ts := time.Unix(0, ns).UTC()
	return &ts
}

// loadSeconds reads a moving average of seconds held as float64 bits.
func loadSeconds(v *atomic.Uint64) float64 { return math.Float64frombits(v.Load()) }

// toMS turns float64 bits of seconds into milliseconds with three decimals.
func toMS(bits uint64) float64 { return math.Round(math.Float64frombits(bits)*1e6) / 1e3 }

// Registry holds the targets known at start-up. It is read-only after
// construction, so lookups need no lock.
type Registry struct {
	targets map[string]*Target
	// shared is every replica's headroom, as Sharing last read it.
	shared atomic.Pointer[sharedView]
}

// NewRegistry creates a registry with one target per name and no
// breakers.
func NewRegistry(names ...string) *Registry {
	return NewRegistryWithBreakers(BreakerOptions{}, names...)
}

// BreakerOptions configure the circuit breakers of a registry's targets;
// see Breaker for what each trigger does.
type BreakerOptions struct {
	// Failures is how many consecutive failures open a breaker; zero
	// turns this trigger off.
	Failures int
	// Cooldown is how long an open breaker refuses its target.
	Cooldown time.Duration
	// Window, MinRequests and ErrorRate make the error-rate trigger: a
	// failure share of at least ErrorRate among at least MinRequests
	// answered attempts within Window opens a breaker. A zero ErrorRate or
	// Window turns it off.
	Window      time.Duration
	MinRequests int
	ErrorRate   float64
	// OnChange, when set, receives an Alert each time a breaker opens from
	// closed or closes again. It is called on the goroutine that recorded
	// the outcome, outside the breaker's lock, and only on such a change;
	// it must not block.
	OnChange func(Alert)
}

// NewRegistryWithBreakers creates a registry whose targets have circuit
// breakers configured by o.
func NewRegistryWithBreakers(o BreakerOptions, names ...string) *Registry {
	r := &Registry{targets: make(map[string]*Target, len(names))}
	for _, n := range names {
		r.targets[n] = &Target{name: n, onChange: o.OnChange,
			breaker: &Breaker{Failures: o.Failures, Cooldown: o.Cooldown, Window: o.Window,
				MinRequests: o.MinRequests, ErrorRate: o.ErrorRate},
			budget: &Budget{Ratio: 0.2, Floor: 5, Window: 10 * time.Second}}
	}
	return r
}

// Available reports whether the named target may take calls at now: its
// active probes have not taken it out and its breaker lets calls through.
// Unknown targets are available.
func (r *Registry) Available(name string, now time.Time) bool {
	t := r.targets[name]
	return t == nil || !t.probeDown.Load() && t.breaker.Available(now)
}

// Allow is Available that also takes the breaker's half-open probe.
func (r *Registry) Allow(name string, now time.Time) bool {
	t := r.targets[name]
	return t == nil || !t.probeDown.Load() && t.breaker.Allow(now)
}

// Target returns the named target, or nil when it is unknown.
func (r *Registry) Target(name string) *Target { return r.targets[name] }

// Budget is the target's retry budget (nil for an unknown target, which
// allows every retry).
func (r *Registry) Budget(name string) *Budget {
	if t := r.targets[name]; t != nil {
		return t.budget
	}
	return nil
}

// Snapshot copies every target's statistics, sorted by name, with its
// headroom as every replica saw it.
func (r *Registry) Snapshot() []Snapshot {
	now := time.Now()
	out := make([]Snapshot, 0, len(r.targets))
	for name, t := range r.targets {
		s := t.SnapshotAt(now)
		s.Headroom, s.RateLimitedUntil, s.Pool = r.headroomOf(name, now)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out
}
