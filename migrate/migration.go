package migrate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/wedsync/veil/billing"
)

// Statuses of a migration.
const (
	// StatusPlanned is a migration that was planned and changes nothing
	// yet.
	StatusPlanned Status = "planned"
	// StatusRamping is a migration moving a share of traffic, the current
	// stage's, to its target.
	StatusRamping Status = "ramping"
	// StatusCompleted is a migration whose target serves all traffic.
	StatusCompleted Status = "completed"
	// StatusRolledBack is a migration sent back to its source on request
	// (Rollback), or cancelled before it started.
	StatusRolledBack Status = "rolled_back"
	// StatusFailed is a migration a failing gate sent back to its source.
	StatusFailed Status = "failed"
)

// Event kinds in a migration's history.
const (
	EventPlanned    = "planned"
	EventStarted    = "started"
	EventAdvanced   = "advanced"
	EventCompleted  = "completed"
	EventRolledBack = "rolled_back"
	EventFailed     = "failed"
	EventSwitched   = "switched"
)

// Alert kinds given to Options.Alert.
const (
	// AlertFailed is a gate that failed and sent traffic back to the
	// source.
	AlertFailed = "migration_failed"
	// AlertRolledBack is a rollback on request.
	AlertRolledBack = "migration_rolled_back"
	// AlertCompleted is a migration whose target now serves all traffic.
	AlertCompleted = "migration_completed"
	// AlertSwitched is a supplier switched at once (Switch), such as when
	// its platform quota ran out.
	AlertSwitched = "migration_switched"
)

// Defaults of a plan.
const (
	DefaultDays         = 30
	DefaultDwell        = 10 * time.Minute
	DefaultMaxErrorRate = 0.05
	DefaultMaxP95Ratio  = 1.5
	DefaultMinSample    = 20
	// maxDays bounds PlanRequest.Days.
	maxDays = 366
	// maxStages bounds the stages of a plan.
	maxStages = 20
)

// DefaultShares are the shares of the default stages.
var DefaultShares = []float64{0.10, 0.50, 1}

var (
	// ErrNotFound means there is no migration with the ID given.
	ErrNotFound = errors.New("migration not found")
	// ErrActive means the supplier already has a planned or ramping
	// migration; at most one may be active per supplier.
	ErrActive = errors.New("supplier already has an active migration")
	// ErrState means the migration is not in a state that allows the
	// operation, such as starting one that is already ramping or rolling
	// back one that already was.
	ErrState = errors.New("migration is not in a state that allows this")
	// ErrProbeFailed means the live probe of the target key failed.
	ErrProbeFailed = errors.New("target key probe failed")
	// ErrInvalid means a request was invalid: an unknown mode, stages
	// that do not end at 100%, a negative gate.
	ErrInvalid = errors.New("invalid migration request")
	// ErrNoChange means the supplier already is on the target.
	ErrNoChange = errors.New("supplier already on the target")
	// ErrConflict means the supplier's migrations changed while the
	// operation ran, on another replica or by another call; trying again
	// decides on the new state.
	ErrConflict = errors.New("supplier's migrations changed concurrently")
	// ErrStale means a plan was made against a system the supplier is no
	// longer on, or a completed migration has been superseded by a newer
	// one.
	ErrStale = errors.New("migration is stale")
)

// Target is a system a supplier is on or moves to.
type Target struct {
	// Mode is billing.ModePlatform or billing.ModeClient.
	Mode billing.Mode `json:"mode"`
	// Provider is the provider that serves the supplier; empty means the
	// one its policy chooses.
	Provider string `json:"provider,omitempty"`
	// KeyRef names the key, such as a Vault path; empty means the
	// supplier's default key for the mode.
	KeyRef string `json:"key_ref,omitempty"`
}

// String returns the target as "mode", "mode/provider" or
// "mode/provider (key_ref)".
func (t Target) String() string {
	s := string(t.Mode)
	if t.Provider != "" {
		s += "/" + t.Provider
	}
	if t.KeyRef != "" {
		s += " (" + t.KeyRef + ")"
	}
	return s
}

// covers reports whether t satisfies want: the same mode, and the same
// provider and key reference where want names them.
func (t Target) covers(want Target) bool {
	return t.Mode == want.Mode && (want.Provider == "" || want.Provider == t.Provider) &&
		(want.KeyRef == "" || want.KeyRef == t.KeyRef)
}

func (t Target) validate(what string) error {
	if t.Mode != billing.ModePlatform && t.Mode != billing.ModeClient {
		return fmt.Errorf("%w: %s mode %q is neither %q nor %q", ErrInvalid, what, t.Mode, billing.ModePlatform, billing.ModeClient)
	}
	return nil
}

// Stage is one step of a ramp.
type Stage struct {
	// Share is the fraction of the supplier's traffic the target serves
	// during the stage, in (0, 1].
	Share float64 `json:"share"`
	// Dwell is how long the stage lasts at least before the next one.
	Dwell time.Duration `json:"dwell"`
}

// Gates are the health conditions a stage must meet to advance. They are
// checked continuously: a gate that fails with its minimum sample ends the
// migration at once, without waiting for the dwell.
type Gates struct {
	// MaxErrorRate is the highest share of failed requests on the target
	// path, such as 0.05.
	MaxErrorRate float64 `json:"max_error_rate"`
	// MaxP95Ratio is the highest ratio of the target path's p95 latency to
	// the source path's, such as 1.5.
	MaxP95Ratio float64 `json:"max_p95_ratio"`
	// MinSample is the fewest requests a path needs within a stage before
	// its gates count.
	MinSample int `json:"min_sample"`
}

// withDefaults fills zero gates with the defaults and checks the rest.
func (g Gates) withDefaults() (Gates, error) {
	orDefault(&g.MaxErrorRate, DefaultMaxErrorRate)
	orDefault(&g.MaxP95Ratio, DefaultMaxP95Ratio)
	orDefault(&g.MinSample, DefaultMinSample)
	switch {
	case !(g.MaxErrorRate > 0 && g.MaxErrorRate <= 1):
		return g, fmt.Errorf("%w: max error rate %v is not in (0, 1]", ErrInvalid, g.MaxErrorRate)
	case !(g.MaxP95Ratio > 0) || math.IsInf(g.MaxP95Ratio, 0):
		return g, fmt.Errorf("%w: max p95 ratio %v is not positive", ErrInvalid, g.MaxP95Ratio)
	case g.MinSample < 1:
		return g, fmt.Errorf("%w: min sample %d is not positive", ErrInvalid, g.MinSample)
	}
	return g, nil
}

// defaultStages returns the default ramp, each stage dwelling for dwell.
func defaultStages(dwell time.Duration) []Stage {
	st := make([]Stage, len(DefaultShares))
	for i, s := range DefaultShares {
		st[i] = Stage{Share: s, Dwell: dwell}
	}
	return st
}

// checkStages fills zero dwells with dwell and checks that shares rise
// strictly and end at 1.
func checkStages(stages []Stage, dwell time.Duration) ([]Stage, error) {
	if len(stages) == 0 {
		return defaultStages(dwell), nil
	}
	if len(stages) > maxStages {
		return nil, fmt.Errorf("%w: %d stages, at most %d", ErrInvalid, len(stages), maxStages)
	}
	out := slices.Clone(stages)
	prev := 0.0
	for i := range out {
		s := &out[i]
		if !(s.Share > prev && s.Share <= 1) {
			return nil, fmt.Errorf("%w: stage %d: share %v must be above the previous (%v) and at most 1", ErrInvalid, i+1, s.Share, prev)
		}
		if s.Dwell < 0 {
			return nil, fmt.Errorf("%w: stage %d: negative dwell %v", ErrInvalid, i+1, s.Dwell)
		}
		if s.Dwell == 0 {
			s.Dwell = dwell
		}
		prev = s.Share
	}
	if prev != 1 {
		return nil, fmt.Errorf("%w: the last stage has share %v; it must be 1", ErrInvalid, prev)
	}
	return out, nil
}

// ProbeResult is the outcome of a live check of a target's key, such as
// GET /v1/models, that spends no tokens.
type ProbeResult struct {
	// OK is true when the provider accepted the key.
	OK bool `json:"ok"`
	// Status is the HTTP status the provider answered, 0 when none.
	Status int `json:"status,omitempty"`
	// Error says why the probe failed.
	Error string `json:"error,omitempty"`
	// Fingerprint identifies the key probed (never the key itself).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Models is how many models the provider listed.
	Models int `json:"models,omitempty"`
	// Latency is how long the probe took.
	Latency time.Duration `json:"latency,omitempty"`
	// At is when the probe ran.
	At time.Time `json:"at"`
}

// CostEstimate is what a supplier's recent traffic would have cost on its
// current system and on the target, at today's prices.
type CostEstimate struct {
	// Days is the length of the period, ending today (UTC) included;
	// From and To are its first and last days.
	Days int       `json:"days"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`

	Requests         int64 `json:"requests"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	CachedTokens     int64 `json:"cached_tokens"`

	// RecordedUSD is what the usage records priced the traffic at when it
	// happened.
	RecordedUSD float64 `json:"recorded_usd"`
	// CurrentUSD is the traffic at today's prices on the providers that
	// served it.
	CurrentUSD float64 `json:"current_usd"`
	// TargetUSD is the traffic at today's prices on the target's provider
	// (the same providers when the target names none).
	TargetUSD float64 `json:"target_usd"`
	// DeltaUSD is TargetUSD - CurrentUSD.
	DeltaUSD float64 `json:"delta_usd"`
	// Unpriced counts requests of models without a price today (current
	// or target): those are counted at their recorded cost.
	Unpriced int64 `json:"unpriced_requests"`
	// UnpricedModels names the provider/model pairs without a price
	// today, on either side, sorted.
	UnpricedModels []string `json:"unpriced_models,omitempty"`

	// BilledNow and BilledAfter are who pays, before and after:
	// "platform" (WedSync) or "client" (the supplier).
	BilledNow   billing.Payer `json:"billed_now"`
	BilledAfter billing.Payer `json:"billed_after"`
	// PlatformDeltaUSD and ClientDeltaUSD are the change in what WedSync
	// and the supplier pay over the period; negative is a saving.
	PlatformDeltaUSD float64 `json:"platform_delta_usd"`
	ClientDeltaUSD   float64 `json:"client_delta_usd"`

	// Models breaks the estimate down by provider and model, the most
	// expensive first.
	Models []ModelEstimate `json:"models,omitempty"`

	// Projection is the supplier's cost a year forward, month by month
	// with the wedding season, now and after the migration; nil for a
	// switch, which estimates nothing.
	Projection *CostProjection `json:"projection,omitempty"`
}

// CostProjection is a supplier's daily cost of the last ProjectionDays
// days (today left out), at today's prices on its current system and on
// the target, projected twelve months forward by package forecast: peak
// days (March to October) and off-peak days each at their own daily rate.
type CostProjection struct {
	// Basis says in one sentence how the daily rates were found, and
	// HistoryDays how many days of history they came from.
	Basis       string `json:"basis"`
	HistoryDays int    `json:"history_days"`
	// Season names the wedding peak the projection used.
	Season string `json:"season"`
	// PeakFactor is how many times an off-peak day a peak day costs, and
	// Measured whether the history measured it (at least forecast.MinDays
	// days of each kind) rather than the default.
	PeakFactor float64 `json:"peak_factor"`
	Measured   bool    `json:"peak_factor_measured"`
	// Months are the twelve months after the plan's.
	Months []MonthProjection `json:"months"`
	// NowUSD and AfterUSD are the year's totals on the current system and
	// on the target; PlatformDeltaUSD and ClientDeltaUSD how what WedSync
	// and the supplier pay over the year would change.
	NowUSD           float64 `json:"now_usd"`
	AfterUSD         float64 `json:"after_usd"`
	PlatformDeltaUSD float64 `json:"platform_delta_usd"`
	ClientDeltaUSD   float64 `json:"client_delta_usd"`
	// Busiest is the month (YYYY-MM) projected to cost the most now.
	Busiest string `json:"busiest_month"`
}

// MonthProjection is one projected month, now and after, by who pays.
type MonthProjection struct {
	// Month is YYYY-MM; PeakDays how many of its days are in the season.
	Month    string `json:"month"`
	PeakDays int    `json:"peak_days"`
	// NowUSD and AfterUSD are the month on the current system and on the
	// target.
	NowUSD   float64 `json:"now_usd"`
	AfterUSD float64 `json:"after_usd"`
	// The same, by who pays: WedSync (platform) and the supplier
	// (client).
	PlatformNowUSD   float64 `json:"platform_now_usd"`
	ClientNowUSD     float64 `json:"client_now_usd"`
	PlatformAfterUSD float64 `json:"platform_after_usd"`
	ClientAfterUSD   float64 `json:"client_after_usd"`
}

// ModelEstimate is the part of a CostEstimate for one provider and model.
type ModelEstimate struct {
	Provider         string `json:"provider"`
	Model            string `json:"model"`
	Requests         int64  `json:"requests"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	CachedTokens     int64  `json:"cached_tokens"`
	// TargetProvider and TargetModel are what serves the model after the
	// migration, as routing plans it: the target's provider when it lists
	// or maps the model, asked for its model_map name.
	TargetProvider string  `json:"target_provider"`
	TargetModel    string  `json:"target_model"`
	RecordedUSD    float64 `json:"recorded_usd"`
	CurrentUSD     float64 `json:"current_usd"`
	TargetUSD      float64 `json:"target_usd"`
	// Priced is false when today's price of the model on its provider, or
	// of the target model on the target provider, is unknown.
	Priced bool `json:"priced"`
}

// Plan is what a migration will do. A plan changes nothing until it is
// started.
type Plan struct {
	// ID is "mig-" and 8 hex digits.
	ID       string `json:"id"`
	Supplier string `json:"supplier"`
	// From is the supplier's system when the plan was made, To the one it
	// moves to.
	From Target `json:"from"`
	To   Target `json:"to"`
	// Stages is the ramp; the last stage has share 1.
	Stages []Stage `json:"stages"`
	Gates  Gates   `json:"gates"`
	// Estimate is the cost impact.
	Estimate CostEstimate `json:"estimate"`
	// Probe is the last live check of the target's key.
	Probe ProbeResult `json:"probe"`
	// Reason says why, such as "supplier request" or "quota_exhausted".
	Reason string `json:"reason,omitempty"`
	// Base is the completed migration that put the supplier on From, if
	// any; rolling this one back returns the supplier to it.
	Base      string    `json:"base,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Status is where a migration is in its life: planned, ramping,
// completed, rolled_back or failed.
type Status string

// Final reports whether a migration in status s no longer moves.
func (s Status) Final() bool {
	return s == StatusCompleted || s == StatusRolledBack || s == StatusFailed
}

// Active reports whether s is planned or ramping: at most one migration
// per supplier is active.
func (s Status) Active() bool {
	return s == StatusPlanned || s == StatusRamping
}

// Event is one entry of a migration's history.
type Event struct {
	At time.Time `json:"at"`
	// Kind is one of the Event constants, such as "advanced".
	Kind string `json:"kind"`
	// Stage is the stage index the event concerns.
	Stage   int    `json:"stage"`
	Message string `json:"message"`
}

// Migration is a plan and where it stands.
type Migration struct {
	Plan
	Status Status `json:"status"`
	// Stage is the index in Stages of the current stage (the last one once
	// completed).
	Stage int `json:"stage"`
	// StageStarted is when the current stage began: its dwell counts from
	// here, across restarts.
	StageStarted time.Time `json:"stage_started"`
	// FinishedAt is when the migration completed, rolled back or failed.
	FinishedAt time.Time `json:"finished_at"`
	// Deferred is a switch (a tier's switch_to_client out of platform
	// quota) that arrived while this migration owned the supplier; see
	// DeferredSwitch.
	Deferred  *DeferredSwitch `json:"deferred_switch,omitempty"`
	Events    []Event         `json:"events"`
	UpdatedAt time.Time       `json:"updated_at"`

	// version is the store document's version, for CompareAndSwap.
	version int64
}

// Share returns the fraction of traffic the target serves now: the
// current stage's while ramping, 1 once completed, 0 otherwise.
func (m *Migration) Share() float64 {
	switch m.Status {
	case StatusRamping:
		return m.Stages[m.Stage].Share
	case StatusCompleted:
		return 1
	}
	return 0
}

// clone returns a deep copy, so that callers never share slices with the
// Manager's view.
func (m *Migration) clone() *Migration {
	c := *m
	c.Stages = slices.Clone(m.Stages)
	c.Events = slices.Clone(m.Events)
	c.Estimate.Models = slices.Clone(m.Estimate.Models)
	c.Estimate.UnpricedModels = slices.Clone(m.Estimate.UnpricedModels)
	if m.Deferred != nil {
		d := *m.Deferred
		c.Deferred = &d
	}
	if p := m.Estimate.Projection; p != nil {
		cp := *p
		cp.Months = slices.Clone(p.Months)
		c.Estimate.Projection = &cp
	}
	return &c
}

// event appends an event to the history and stamps the update.
func (m *Migration) event(at time.Time, kind, msg string) {
	m.Events = append(m.Events, Event{At: at, Kind: kind, Stage: m.Stage, Message: msg})
	m.UpdatedAt = at
}

// check validates a migration read from the store, so that a damaged
// document cannot make the hot path index out of range.
func (m *Migration) check() error {
	if m.ID == "" || m.Supplier == "" {
		return errors.New("no id or supplier")
	}
	if len(m.Stages) == 0 || m.Stage < 0 || m.Stage >= len(m.Stages) {
		return fmt.Errorf("stage %d of %d", m.Stage, len(m.Stages))
	}
	switch m.Status {
	case StatusPlanned, StatusRamping, StatusCompleted, StatusRolledBack, StatusFailed:
		return nil
	}
	return fmt.Errorf("unknown status %q", m.Status)
}

// orDefault sets a zero *v to def.
func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
