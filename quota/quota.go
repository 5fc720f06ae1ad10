// Package quota enforces tiers on suppliers' platform usage: before a call
// it reserves the request, its estimated tokens and cost, and a concurrency
// slot in the store (atomically across replicas); after the call it settles
// the reservation with the real usage, or refunds it.
package quota

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"

	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/logging"
	"github.com/wedsync/veil/store"
)

// Limit names, the counters kept per supplier.
const (
	LimitRequests    = "rpm"
	LimitTokens      = "tpm"
	LimitMonthTokens = "month_tokens"
	LimitMonthCost   = "month_cost_micros"
	LimitConcurrent  = "concurrent"
)

// ErrUnavailable means the store could not be asked and the store is
// configured to fail closed.
var ErrUnavailable = errors.New("quota: the store is unavailable")

// Pricer estimates the cost of a call; see usage.PriceTable.
type Pricer interface {
	CostMicros(provider, model string, at time.Time, prompt, cached, completion int64) (int64, bool)
}

// Observer is told when the store could not be asked.
type Observer interface {
	QuotaStoreUnavailable()
}

// Options configure an Enforcer.
type Options struct {
	Store store.Store
	// Tiers by name; DefaultTier applies to suppliers not in SupplierTiers.
	Tiers         []config.Tier
	DefaultTier   string
	SupplierTiers map[string]string
	// Seasons replace tiers' limits in their calendar windows.
	Seasons []config.Season
	Prices  Pricer
	// Journal, when set, keeps the reservations this process holds, so
	// that a process killed before settling them has them settled when it
	// starts again.
	Journal Journal
	// FailClosed refuses requests when the store cannot be asked;
	// otherwise they are served without quota checks (counted and logged).
	FailClosed bool
	// Timeout bounds one store call on the request path.
	Timeout time.Duration
	// SlotTTL is how long a concurrency slot lives if its holder crashes;
	// it should be the longest a request can take.
	SlotTTL  time.Duration
	Log      *zap.Logger
	Observer Observer
	// Settles counts background settlements; share one between the
	// enforcers a reload replaces, so that a drain waits for all of them.
	// Nil means the enforcer's own.
	Settles *sync.WaitGroup
}

// Enforcer admits and settles platform calls against suppliers' tiers.
type Enforcer struct {
	o       Options
	tiers   map[string]*config.Tier
	settles *sync.WaitGroup
	// quiet writes the store's failures, which come once per request
	// while the store is down, once a minute each with a count.
	quiet *logging.Limiter

	// uncertain holds reservations whose Reserve failed without an
	// answer (a store stall): the store may still apply them. They are
	// given back (each once, and only if the store made it) once the
	// store answers again.
	mu        sync.Mutex
	uncertain []uncertainReservation
}

// uncertainReservation is a reservation the store may or may not have
// made.
type uncertainReservation struct {
	id  string // the request's, in the journal
	res store.Reservation
	at  time.Time
}

// maxUncertain bounds the reservations kept to give back after a stall.
const maxUncertain = 10000

// New compiles the tiers.
func New(o Options) (*Enforcer, error) {
	if o.Store == nil {
		return nil, errors.New("quota: a store is required")
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Timeout <= 0 {
		o.Timeout = 500 * time.Millisecond
	}
	if o.SlotTTL <= 0 {
		o.SlotTTL = 10 * time.Minute
	}
	e := &Enforcer{o: o, tiers: make(map[string]*config.Tier, len(o.Tiers)), settles: o.Settles,
		quiet: logging.NewLimiter(o.Log, logging.LimiterOptions{Every: time.Minute})}
	if e.settles == nil {
		e.settles = &sync.WaitGroup{}
	}
	for i := range o.Tiers {
		e.tiers[o.Tiers[i].Name] = &o.Tiers[i]
	}
	if o.DefaultTier != "" && e.tiers[o.DefaultTier] == nil {
		return nil, fmt.Errorf("quota: default tier %q is not defined", o.DefaultTier)
	}
	for s, t := range o.SupplierTiers {
		if t != "" && e.tiers[t] == nil {
			return nil, fmt.Errorf("quota: supplier %s: tier %q is not defined", s, t)
		}
	}
	return e, nil
}

// Tier returns the supplier's tier at now, with the limits of a season in
// force, or nil when it has no limits.
func (e *Enforcer) Tier(supplier []byte, now time.Time) *config.Tier {
	name := e.o.DefaultTier
	if n, ok := e.o.SupplierTiers[string(supplier)]; ok && n != "" {
		name = n
	}
	return e.TierNamed(name, now)
}

// TierNamed returns the named tier at now, with the limits of a season in
// force; nil when no tier has that name.
func (e *Enforcer) TierNamed(name string, now time.Time) *config.Tier {
	if name == "" {
		return nil
	}
	for i := range e.o.Seasons {
		se := &e.o.Seasons[i]
		if !se.Active(now) {
			continue
		}
		for j := range se.Tiers {
			if se.Tiers[j].Name == name {
				return &se.Tiers[j]
			}
		}
		break // the first season in force decides
	}
	return e.tiers[name]
}

// fallbackTier is the tier that holds a supplier's fallback calls at now,
// or nil when they are held to none.
func (e *Enforcer) fallbackTier(supplier []byte, now time.Time) *config.Tier {
	t := e.Tier(supplier, now)
	if t == nil || t.FallbackTier == "" {
		return nil
	}
	return e.tiers[t.FallbackTier]
}

// Request is what a call is expected to take.
type Request struct {
	Supplier []byte
	Provider string
	Model    string
	// Prompt is the estimated prompt tokens; MaxTokens the completion
	// limit the request set (0: the tier's default estimate).
	Prompt    int64
	MaxTokens int64
	// Completion reports whether the endpoint generates tokens
	// (embeddings do not).
	Completion bool
	// Fallback marks a call falling back from the supplier's own key to
	// platform keys: it is held to its tier's fallback_tier, counted apart.
	Fallback bool
	// ID is the request's ID, under which the journal keeps the
	// reservation.
	ID string
	// Later are the targets the call may fail over to on platform keys
	// after Provider and Model: the reservation is priced at the
	// costliest, so that a failover to a dearer provider cannot take a
	// budget past its limit by more than one call.
	Later []Target
	Now   time.Time
}

// Target is a provider and the model it is asked for.
type Target struct {
	Provider, Model string
}

// Ticket is an admitted call's reservation, settled after the call.
type Ticket struct {
	id     string // in the journal, when there is one
	res    store.Reservation
	slot   store.Slot
	active bool
	prompt int64
	tier   *config.Tier
}

// Active reports whether the ticket holds a reservation to settle.
func (t *Ticket) Active() bool { return t.active }

// Refusal says which limit refused a call and what the client is told.
type Refusal struct {
	Tier   *config.Tier
	Denial *store.Denial
	// Limits and Remaining give the X-RateLimit-* headers.
	RequestsLimit, RequestsRemaining int64
	TokensLimit, TokensRemaining     int64
}

// RetryAfterSeconds is the Retry-After value, at least 1.
func (r *Refusal) RetryAfterSeconds() int {
	if r.Denial == nil {
		return 1
	}
	return max(1, int(math.Ceil(r.Denial.RetryAfter.Seconds())))
}

// Admit reserves the call against the supplier's tier. It returns a ticket
// to settle, or a refusal, or an error wrapping ErrUnavailable when the
// store cannot be asked and the store fails closed. A supplier without a
// tier is admitted with an inactive ticket.
func (e *Enforcer) Admit(ctx context.Context, r Request) (Ticket, *Refusal, error) {
	tier, subject := e.Tier(r.Supplier, r.Now), "supplier:"+string(r.Supplier)
	if r.Fallback {
		tier, subject = e.fallbackTier(r.Supplier, r.Now), "fallback:"+string(r.Supplier)
	}
	if tier == nil {
		return Ticket{}, nil, nil
	}
	completion := int64(0)
	if r.Completion {
		completion = r.MaxTokens
		if completion <= 0 {
			completion = int64(tier.DefaultMaxTokens)
		}
	}
	estTokens := r.Prompt + completion
	cost := e.costMicros(r.Provider, r.Model, r.Now, r.Prompt, completion)
	for _, t := range r.Later {
		cost = max(cost, e.costMicros(t.Provider, t.Model, r.Now, r.Prompt, completion))
	}
	limits := e.limits(tier, estTokens, cost)
	ctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	defer cancel()

	var slot store.Slot
	if tier.Concurrent > 0 {
		s, ok, err := e.o.Store.AcquireSlot(ctx, subject, int64(tier.Concurrent), e.o.SlotTTL, r.Now)
		if err != nil {
			return e.unavailable(err, tier)
		}
		if !ok {
			return Ticket{}, &Refusal{Tier: tier, Denial: &store.Denial{Limit: LimitConcurrent, Max: int64(tier.Concurrent),
				Used: int64(tier.Concurrent), Amount: 1, RetryAfter: time.Second}}, nil
		}
		slot = s
	}
	resID := reservationID()
	journaled := e.o.Journal != nil && r.ID != ""
	if journaled {
		// Journaled before it is made: a kill at any moment leaves it
		// to be settled (or found never made) at the next start.
		e.o.Journal.Opened(r.ID, store.PlanReservation(resID, subject, limits, r.Now))
	}
	res, denial, err := e.o.Store.ReserveAs(ctx, resID, subject, limits, r.Now)
	switch {
	case err != nil:
		// The store may apply it when it answers again: give it back
		// then (it stays in the journal until it is).
		e.keepUncertain(r.ID, store.PlanReservation(resID, subject, limits, r.Now))
	case journaled && denial != nil:
		e.o.Journal.Closed(r.ID)
	default:
		e.giveBackUncertain()
	}
	if err != nil {
		e.release(slot)
		return e.unavailable(err, tier)
	}
	if denial != nil {
		e.release(slot)
		ref := &Refusal{Tier: tier, Denial: denial}
		if used, err := e.o.Store.Used(ctx, subject, limits[:2], r.Now); err == nil {
			ref.RequestsLimit, ref.RequestsRemaining = int64(tier.RequestsPerMinute), max(0, int64(tier.RequestsPerMinute)-used[0])
			ref.TokensLimit, ref.TokensRemaining = int64(tier.TokensPerMinute), max(0, int64(tier.TokensPerMinute)-used[1])
		}
		return Ticket{}, ref, nil
	}
	t := Ticket{res: res, slot: slot, active: true, prompt: r.Prompt, tier: tier}
	if journaled {
		t.id = r.ID
	}
	return t, nil, nil
}

// keepUncertain keeps a reservation whose Reserve got no answer.
func (e *Enforcer) keepUncertain(id string, res store.Reservation) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.uncertain) < maxUncertain {
		e.uncertain = append(e.uncertain, uncertainReservation{id: id, res: res, at: time.Now()})
	}
}

// giveBackUncertain refunds, in the background, the reservations kept by
// keepUncertain at least one store timeout ago, now that the store
// answers: a reservation the store applied late is given back, one it
// never made is left alone (its ID).
func (e *Enforcer) giveBackUncertain() {
	e.mu.Lock()
	if len(e.uncertain) == 0 || time.Since(e.uncertain[0].at) < e.o.Timeout {
		e.mu.Unlock()
		return
	}
	batch := e.uncertain
	e.uncertain = nil
	e.mu.Unlock()
	if e.settles != nil {
		e.settles.Add(1)
	}
	go func() {
		if e.settles != nil {
			defer e.settles.Done()
		}
		for i, u := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), e.o.Timeout)
			err := e.o.Store.Refund(ctx, u.res)
			cancel()
			if err != nil { // unreachable again: try with the next answer
				e.mu.Lock()
				e.uncertain = append(batch[i:], e.uncertain...)
				e.mu.Unlock()
				return
			}
			if e.o.Journal != nil && u.id != "" {
				e.o.Journal.Closed(u.id)
			}
		}
	}()
}

// reservationID is a new reservation's ID: 64 random bits.
func reservationID() string {
	return strconv.FormatUint(rand.Uint64(), 36) //nolint:gosec // G404: an ID, not a secret
}

// limits are the tier's limits for a call taking tokens and cost.
func (e *Enforcer) limits(t *config.Tier, tokens, costMicros int64) []store.Limit {
	return []store.Limit{
		{Name: LimitRequests, Window: time.Minute, Max: int64(t.RequestsPerMinute), Amount: 1},
		{Name: LimitTokens, Window: time.Minute, Max: int64(t.TokensPerMinute), Amount: tokens},
		{Name: LimitMonthTokens, Window: store.WindowMonth, Max: int64(t.MonthlyTokens), Amount: tokens},
		{Name: LimitMonthCost, Window: store.WindowMonth, Max: int64(math.Round(t.MonthlyCostUSD * 1e6)), Amount: costMicros},
	}
}

func (e *Enforcer) costMicros(provider, model string, at time.Time, prompt, completion int64) int64 {
	if e.o.Prices == nil {
		return 0
	}
	micros, ok := e.o.Prices.CostMicros(provider, model, at, prompt, 0, completion)
	if !ok {
		return 0
	}
	return micros
}

func (e *Enforcer) unavailable(err error, tier *config.Tier) (Ticket, *Refusal, error) {
	if e.o.Observer != nil {
		e.o.Observer.QuotaStoreUnavailable()
	}
	if e.o.FailClosed {
		return Ticket{}, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	e.quiet.Warn("quota_fail_open", "quota store unavailable; serving without a quota check (fail_open)",
		zap.String("tier", tier.Name), zap.Error(err))
	return Ticket{}, nil, nil
}

func (e *Enforcer) release(s store.Slot) {
	if s.ID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Timeout)
	defer cancel()
	if err := e.o.Store.ReleaseSlot(ctx, s); err != nil {
		e.quiet.Warn("quota_release_failed", "quota slot release failed; it expires by itself", zap.Error(err))
	}
}

// Settle replaces the reservation with what the call used: its real tokens
// and cost when it succeeded, nothing but the request itself otherwise; and
// frees the concurrency slot.
func (e *Enforcer) Settle(t *Ticket, ok bool, promptTokens, completionTokens, costMicros int64) {
	if !t.active {
		return
	}
	t.active = false
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Timeout)
	defer cancel()
	tokens := promptTokens + completionTokens
	cost := costMicros
	if !ok {
		tokens, cost = 0, 0
	}
	actual := map[string]int64{LimitTokens: tokens, LimitMonthTokens: tokens, LimitMonthCost: cost}
	if err := e.o.Store.Settle(ctx, t.res, actual); err != nil {
		e.quiet.Warn("quota_settle_failed", "quota settlement failed; the reservation stands",
			zap.String("subject", t.res.Subject), zap.Error(err))
	}
	if e.o.Journal != nil && t.id != "" {
		// After the store: a kill in between leaves the reservation in
		// the journal, and settling it again applies once (its ID).
		e.o.Journal.Closed(t.id)
	}
	e.release(t.slot)
}

// Used is what a call used, as its usage record says.
type Used struct {
	// OK is set when the call succeeded (a 2xx answer and no error).
	OK                             bool
	PromptTokens, CompletionTokens int64
	CostMicros                     int64
}

// Reconcile settles reservations a killed process left open: each with
// what its call used, as found by used (from the call's usage record),
// or, when its call has no record (it was never answered), by giving the
// estimate back. It returns how many were settled from records and how
// many refunded.
func (e *Enforcer) Reconcile(ctx context.Context, left []OpenReservation, used func(id string) (Used, bool)) (settled, refunded int, err error) {
	for _, o := range left {
		u, found := used(o.ID)
		tokens, cost := int64(0), int64(0)
		if found && u.OK {
			tokens, cost = u.PromptTokens+u.CompletionTokens, u.CostMicros
		}
		cctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
		if found {
			err = e.o.Store.Settle(cctx, o.Reservation, map[string]int64{LimitTokens: tokens, LimitMonthTokens: tokens, LimitMonthCost: cost})
			settled++
		} else {
			err = e.o.Store.Refund(cctx, o.Reservation)
			refunded++
		}
		cancel()
		if err != nil {
			return settled, refunded, fmt.Errorf("quota: reconcile reservation of %s: %w", o.ID, err)
		}
	}
	return settled, refunded, nil
}

// UsedFallback is Used for the supplier's fallback tier: its calls on
// platform keys while its own key is out, counted apart. The tier is nil
// when there is none.
func (e *Enforcer) UsedFallback(ctx context.Context, supplier []byte, now time.Time) (*config.Tier, map[string]int64, error) {
	t := e.fallbackTier(supplier, now)
	if t == nil {
		return nil, nil, nil
	}
	used, err := e.used(ctx, t, "fallback:"+string(supplier), now)
	return t, used, err
}

// Used reports the supplier's current use of its tier's per-minute and
// monthly limits, by limit name.
func (e *Enforcer) Used(ctx context.Context, supplier []byte, now time.Time) (map[string]int64, error) {
	t := e.Tier(supplier, now)
	if t == nil {
		return nil, nil
	}
	return e.used(ctx, t, "supplier:"+string(supplier), now)
}

// used reads the counters of subject under tier t.
func (e *Enforcer) used(ctx context.Context, t *config.Tier, subject string, now time.Time) (map[string]int64, error) {
	limits := e.limits(t, 0, 0)
	ctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	defer cancel()
	used, err := e.o.Store.Used(ctx, subject, limits, now)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(limits))
	for i, l := range limits {
		out[l.Name] = used[i]
	}
	return out, nil
}

// SettleAsync settles in the background, so that a remote store's round
// trip does not delay the answer; Wait waits for every such settlement.
func (e *Enforcer) SettleAsync(t Ticket, ok bool, promptTokens, completionTokens, costMicros int64) {
	if !t.active {
		return
	}
	e.settles.Add(1)
	go func() {
		defer e.settles.Done()
		e.Settle(&t, ok, promptTokens, completionTokens, costMicros)
	}()
}

// Wait blocks until every SettleAsync has finished (before the store is
// closed).
func (e *Enforcer) Wait() { e.settles.Wait() }

// Remaining reports the remaining requests and tokens of the current minute
// after an admitted reservation, for X-RateLimit-* headers.
func (t *Ticket) Remaining() (reqLimit, reqLeft, tokLimit, tokLeft int64) {
	if t.tier == nil {
		return 0, 0, 0, 0
	}
	reqLimit, tokLimit = int64(t.tier.RequestsPerMinute), int64(t.tier.TokensPerMinute)
	for _, it := range t.res.Items {
		switch it.Name {
		case LimitRequests:
			reqLeft = max(0, reqLimit-it.Used)
		case LimitTokens:
			tokLeft = max(0, tokLimit-it.Used)
		}
	}
	return reqLimit, reqLeft, tokLimit, tokLeft
}

// Headroom is what a supplier has left of its tier in one window.
type Headroom struct {
	// Limit is the window's size; zero when the tier sets no such limit.
	Limit int64
	// Remaining is what is left of it after the call's reservation.
	Remaining int64
	// Reset is when the window ends, and the next one starts empty.
	Reset time.Time
}

// Headroom reports what the supplier has left of its tier after the
// admitted call's reservation, from what the store answered to it:
// requests in the current minute, and tokens in the window with the less
// left, the minute's or the month's. Both are zero when the ticket holds
// no reservation or the tier sets no such limit.
func (t *Ticket) Headroom() (requests, tokens Headroom) {
	if !t.active || t.tier == nil {
		return Headroom{}, Headroom{}
	}
	for _, it := range t.res.Items {
		var limit int64
		switch it.Name {
		case LimitRequests:
			limit = int64(t.tier.RequestsPerMinute)
		case LimitTokens:
			limit = int64(t.tier.TokensPerMinute)
		case LimitMonthTokens:
			limit = int64(t.tier.MonthlyTokens)
		default:
			continue
		}
		if limit <= 0 {
			continue
		}
		h := Headroom{Limit: limit, Remaining: max(0, limit-it.Used), Reset: it.End}
		switch {
		case it.Name == LimitRequests:
			requests = h
		case tokens.Limit == 0 || h.Remaining < tokens.Remaining:
			tokens = h
		}
	}
	return requests, tokens
}
