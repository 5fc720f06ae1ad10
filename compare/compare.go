package compare

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	mathrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/internal/mix"
	"github.com/wedsync/veil/store"
)

// Bucket is the store bucket of comparisons. A comparison is kept
// under its ID; the comparison running for a supplier is named under
// "supplier/" and the supplier's ID.
const Bucket = "comparisons"

// Comparison statuses.
const (
	// Running is a comparison that still shadows requests.
	Running = "running"
	// Done is a comparison whose window or request count is used
	// up.
	Done = "done"
	// Stopped is a comparison stopped by Stop.
	Stopped = "stopped"
)

// Recommendations of a Report.
const (
	// Migrate recommends moving the supplier to the other system.
	Migrate = "migrate"
	// Stay recommends keeping the supplier on its current system.
	Stay = "stay"
	// CollectMore says the data is not enough to recommend either.
	CollectMore = "collect more data"
)

// Defaults and limits of comparisons.
const (
	// DefaultSample is the share of the supplier's requests
	// shadowed when a Request gives none.
	DefaultSample = 0.2
	// DefaultInterval is how often Run flushes and refreshes when
	// Options gives no Interval.
	DefaultInterval = 5 * time.Second
	// MaxSamples is the number of answer pairs each replica keeps
	// per comparison for percentiles (a uniform reservoir once more are
	// recorded). Counts, token and cost totals and the similarity mean are
	// exact whatever the number of pairs.
	MaxSamples = 1000
	// StaleAfter is how long a replica may go without renewing its
	// claim on part of a comparison's request count before the unused
	// part is written off as spent (the replica may have shadowed some of
	// it without flushing), so that the comparison can end. A replica that
	// has not used its claim for that long gives the rest back.
	StaleAfter = time.Minute
	// RecordGrace is how long after a comparison ended a replica
	// still accepts Record calls for it: the shadow answers of requests
	// sent before the end.
	RecordGrace = 15 * time.Minute
)

// Recommendation thresholds of a Report.
const (
	// MinPairs is the number of recorded answer pairs below which
	// the recommendation is to collect more data.
	MinPairs = 30
	// ErrorMargin is how far, as a share of requests, the other
	// system's error rate may exceed the primary's: 0.02 is two
	// percentage points. Beyond it the recommendation is to stay.
	ErrorMargin = 0.02
	// LatencyFactor is how many times the primary's p95 latency
	// the other system's may be. Beyond it the recommendation is to stay.
	LatencyFactor = 1.5
	// MinSimilarity is the least mean answer similarity. Below it
	// the recommendation is to stay.
	MinSimilarity = 0.8
	// SimilarThreshold is the similarity at or above which a pair
	// of answers counts as similar in SimilarityStats.Similar.
	SimilarThreshold = 0.8
	// CostMargin is how much more, as a share, the other system
	// may cost per 1,000 requests than the primary and still be
	// recommended. Beyond it the recommendation is to stay.
	CostMargin = 0.05
)

var (
	// ErrInvalid means a Request was not valid.
	ErrInvalid = errors.New("compare: invalid comparison")
	// ErrRunning means the supplier already has a running
	// comparison.
	ErrRunning = errors.New("compare: a comparison is already running for the supplier")
	// ErrNotFound means there is no comparison with the ID.
	ErrNotFound = errors.New("compare: comparison not found")
	// ErrConflict means a comparison's document kept changing
	// under concurrent writers; trying again is safe.
	ErrConflict = errors.New("compare: comparison changed concurrently")
)

// Request asks for a shadow comparison of one supplier's current
// system against the other.
type Request struct {
	// Supplier is the supplier compared.
	Supplier string `json:"supplier"`
	// Other is the system shadowed: platform or client. It must not be
	// the supplier's current system.
	Other billing.Mode `json:"other"`
	// Provider, when set, is the provider the shadow requests go to.
	Provider string `json:"provider,omitempty"`
	// Requests stops the comparison after that many shadowed requests,
	// across all replicas; zero means no count limit.
	Requests int `json:"requests,omitempty"`
	// Window stops the comparison that long after its start (in
	// nanoseconds in JSON); zero means no time limit. At least one of
	// Requests and Window must be set.
	Window time.Duration `json:"window,omitempty"`
	// Sample is the share of the supplier's requests shadowed, in (0, 1];
	// zero means DefaultSample.
	Sample float64 `json:"sample"`
	// Billed is who pays for the shadow requests: platform (the default)
	// or client. Their usage records are marked shadow.
	Billed billing.Payer `json:"billed"`
}

// Comparison is a shadow comparison and how far it has come.
type Comparison struct {
	// ID identifies the comparison.
	ID string `json:"id"`
	Request
	// Primary is the supplier's current system, whose answers the callers
	// get: platform, client or hybrid.
	Primary billing.Mode `json:"primary"`
	// Started is when the comparison started; Ends is when its window
	// ends (zero without a window).
	Started time.Time `json:"started"`
	Ends    time.Time `json:"ends,omitzero"`
	// Status is Running, Done or Stopped.
	Status string `json:"status"`
	// Ended is when the comparison stopped shadowing (zero while it
	// runs), and Reason why: "requests", "window" or "stopped".
	Ended  time.Time `json:"ended,omitzero"`
	Reason string    `json:"reason,omitempty"`
	// Shadowed is the number of requests sent to the other system, as
	// far as the replicas have flushed them.
	Shadowed int64 `json:"shadowed"`
	// Recorded is the number of pairs of answers, primary and shadow,
	// recorded.
	Recorded int64 `json:"recorded"`
}

// Options configure Comparisons.
type Options struct {
	// Store keeps the comparisons, in Bucket, shared by replicas.
	Store store.Documents
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives starts, stops, ends and failed flushes; nil discards
	// them.
	Log *zap.Logger
	// Holder names this replica in the comparisons' documents; it must be
	// unique among the replicas sharing Store. Empty means a random name.
	Holder string
	// Current returns the supplier's current system (platform, client or
	// hybrid). Nil, or an empty answer, takes the system
	// that is not Request.Other.
	Current func(supplier string) billing.Mode
	// Interval is how often Run flushes and refreshes; zero means
	// DefaultInterval.
	Interval time.Duration
}

// Comparisons runs shadow comparisons: for a supplier, for a number of
// requests or a time window, a sample of requests is also sent to the
// other system (by the caller, after the primary answer is complete),
// and both answers are recorded and compared. Its state lives in the
// store so that every replica shadows the running comparisons and a
// report covers all of them. Create it with New; its methods
// are safe for concurrent use.
type Comparisons struct {
	st       store.Documents
	now      func() time.Time
	log      *zap.Logger
	holder   string
	current  func(string) billing.Mode
	interval time.Duration

	// active is the set Shadow reads, replaced whole (copy on write).
	active atomic.Pointer[cmpSet]

	mu      sync.Mutex           // guards entries, seq and replacing active
	entries map[string]*cmpEntry // by comparison ID: running or recently ended here
	seq     uint64               // counts the entries created
}

// cmpSet is an immutable set of the running comparisons of this replica.
type cmpSet struct {
	bySupplier map[string]*cmpEntry
	byID       map[string]*cmpEntry
}

// cmpEntry is a comparison as this replica runs it: what Shadow needs,
// read without a lock, and what Record collected.
type cmpEntry struct {
	id    string
	req   Request
	start time.Time
	ends  int64  // unix nanoseconds; 0: no window
	seq   uint64 // Comparisons.seq when it was created

	seed      uint64 // decorrelates the sample from other uses of spread
	threshold uint64 // mixed spread below it is sampled
	all       bool   // sample 1: every request
	capped    bool   // Requests > 0
	// state, when capped, packs the requests this replica may shadow (its
	// claim, high 32 bits) and those it shadowed (low 32 bits), so that
	// both change in one compare-and-swap.
	state  atomic.Uint64
	used   atomic.Int64 // requests this replica shadowed, when not capped
	denied atomic.Int64 // sampled requests refused for want of a claim

	mu          sync.Mutex // guards the fields below
	stats       cmpStats
	gen         uint64 // increases with every Record
	flushedGen  uint64
	flushedUsed int64
	lastUsed    int64     // used at the previous Sync, for the claim size
	active      time.Time // when this replica last shadowed or wanted to
	ended       time.Time // when this replica saw the comparison end
}

// cmpDoc is a comparison as stored.
type cmpDoc struct {
	ID       string                 `json:"id"`
	Request  Request                `json:"request"`
	Primary  billing.Mode           `json:"primary"`
	Started  time.Time              `json:"started"`
	Ends     time.Time              `json:"ends,omitzero"`
	Status   string                 `json:"status"`
	Ended    time.Time              `json:"ended,omitzero"`
	Reason   string                 `json:"reason,omitempty"`
	Replicas map[string]*cmpReplica `json:"replicas"`
}

// cmpReplica is one replica's part of a stored comparison. Every field is
// a running total, so writing it again is harmless.
type cmpReplica struct {
	// Claimed is the part of Requests this replica may shadow.
	Claimed  int64     `json:"claimed,omitempty"`
	Shadowed int64     `json:"shadowed"`
	Seen     time.Time `json:"seen"`
	cmpStats
}

// cmpStats are the recorded figures of one replica.
type cmpStats struct {
	Pairs   int64   `json:"pairs"`
	Primary cmpSide `json:"primary"`
	Shadow  cmpSide `json:"shadow"`
	// Compared counts the pairs with both answers, SimSum their
	// similarities and Similar those at or above SimilarThreshold.
	Compared int64       `json:"compared"`
	SimSum   float64     `json:"sim_sum"`
	Similar  int64       `json:"similar"`
	Samples  []cmpSample `json:"samples,omitempty"`
}

// cmpSide are the totals of one side of the pairs.
type cmpSide struct {
	Requests         int64 `json:"requests"`
	Errors           int64 `json:"errors"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// CostNanos is the cost in billionths of a US dollar, an integer so
	// that sums are exact.
	CostNanos int64 `json:"cost_nanos"`
}

// cmpSample is one pair kept for percentiles. Latencies and TTFTs are in
// nanoseconds; a failed side has none.
type cmpSample struct {
	PL   int64   `json:"pl,omitempty"`
	PT   int64   `json:"pt,omitempty"`
	PE   bool    `json:"pe,omitempty"`
	SL   int64   `json:"sl,omitempty"`
	ST   int64   `json:"st,omitempty"`
	SE   bool    `json:"se,omitempty"`
	Sim  float64 `json:"sim,omitempty"`
	Both bool    `json:"both,omitempty"`
}

// cmpSupplierKey is the key naming a supplier's running comparison.
func cmpSupplierKey(supplier string) string { return "supplier/" + supplier }

// cmpIsID reports whether key may be a comparison's ID rather than a
// supplier's name.
func cmpIsID(key string) bool { return key != "" && !strings.HasPrefix(key, "supplier/") }

// New returns the comparisons kept in o.Store. Call Run to
// flush and follow them.
func New(o Options) *Comparisons {
	c := &Comparisons{
		st:       o.Store,
		now:      o.Now,
		log:      o.Log,
		holder:   o.Holder,
		current:  o.Current,
		interval: o.Interval,
		entries:  make(map[string]*cmpEntry),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if c.holder == "" {
		c.holder = "replica-" + strings.ToLower(rand.Text()[:10])
	}
	if c.interval <= 0 {
		c.interval = DefaultInterval
	}
	c.active.Store(&cmpSet{})
	return c
}

// normalize fills in the defaults of r and validates it.
func (r *Request) normalize() error {
	if r.Sample == 0 {
		r.Sample = DefaultSample
	}
	if r.Billed == "" {
		r.Billed = billing.PaidByPlatform
	}
	switch {
	case r.Supplier == "":
		return fmt.Errorf("%w: no supplier", ErrInvalid)
	case r.Other != billing.ModePlatform && r.Other != billing.ModeClient:
		return fmt.Errorf("%w: other system %q is neither platform nor client", ErrInvalid, r.Other)
	case r.Requests < 0 || r.Requests > math.MaxInt32:
		return fmt.Errorf("%w: request count %d is not in [0, %d]", ErrInvalid, r.Requests, math.MaxInt32)
	case r.Window < 0:
		return fmt.Errorf("%w: negative window %v", ErrInvalid, r.Window)
	case r.Requests == 0 && r.Window == 0:
		return fmt.Errorf("%w: neither a request count nor a window", ErrInvalid)
	case !(r.Sample > 0 && r.Sample <= 1):
		return fmt.Errorf("%w: sample %v is not in (0, 1]", ErrInvalid, r.Sample)
	case !r.Billed.Valid():
		return fmt.Errorf("%w: billed %q is neither platform nor client", ErrInvalid, r.Billed)
	}
	return nil
}

// Start starts a comparison: from now on, this replica shadows r.Sample
// of the supplier's requests, and the others do from their next refresh.
// A supplier has one running comparison at a time: a second Start fails
// with ErrRunning. An invalid request fails with
// ErrInvalid.
func (c *Comparisons) Start(ctx context.Context, r Request) (*Comparison, error) {
	if err := r.normalize(); err != nil {
		return nil, err
	}
	var primary billing.Mode
	if c.current != nil {
		primary = c.current(r.Supplier)
	}
	if primary == "" {
		primary = billing.ModePlatform
		if r.Other == billing.ModePlatform {
			primary = billing.ModeClient
		}
	}
	if primary == r.Other {
		return nil, fmt.Errorf("%w: supplier %s already uses %s", ErrInvalid, r.Supplier, r.Other)
	}
	now := c.now()
	d := &cmpDoc{
		ID:       "cmp_" + strings.ToLower(rand.Text()[:12]),
		Request:  r,
		Primary:  primary,
		Started:  now,
		Status:   Running,
		Replicas: map[string]*cmpReplica{},
	}
	if r.Window > 0 {
		d.Ends = now.Add(r.Window)
	}
	if r.Requests > 0 {
		n := int64(r.Requests)
		d.Replicas[c.holder] = &cmpReplica{Claimed: min(cmpWant(n, n, 0), n), Seen: now}
	}
	if err := c.claimSupplier(ctx, r.Supplier, d.ID, now); err != nil {
		return nil, err
	}
	value, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("compare: encoding comparison: %w", err)
	}
	if _, ok, err := c.st.CompareAndSwap(ctx, Bucket, d.ID, 0, value); err != nil {
		return nil, fmt.Errorf("compare: storing comparison: %w", err)
	} else if !ok {
		return nil, fmt.Errorf("%w: comparison ID %s taken", ErrConflict, d.ID)
	}
	c.mu.Lock()
	e := c.entryLocked(d)
	e.mu.Lock()
	e.active = now
	e.mu.Unlock()
	c.setClaimLocked(e, d)
	c.publishLocked(now)
	c.mu.Unlock()
	c.log.Info("comparison started", zap.String("comparison", d.ID), zap.String("supplier", r.Supplier),
		zap.String("primary", string(primary)), zap.String("other", string(r.Other)), zap.Int("requests", r.Requests),
		zap.Duration("window", r.Window), zap.Float64("sample", r.Sample), zap.String("billed", string(r.Billed)))
	return c.view(d, now), nil
}

// claimSupplier names id the supplier's running comparison, unless
// another still runs.
func (c *Comparisons) claimSupplier(ctx context.Context, supplier, id string, now time.Time) error {
	key := cmpSupplierKey(supplier)
	for range 5 {
		old, version, err := c.st.Get(ctx, Bucket, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			version = 0
		case err != nil:
			return fmt.Errorf("compare: reading the supplier's comparison: %w", err)
		default:
			value, _, err := c.st.Get(ctx, Bucket, string(old))
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("compare: reading the supplier's comparison: %w", err)
			}
			if err == nil {
				var prev cmpDoc
				if json.Unmarshal(value, &prev) == nil && prev.Status == Running && prev.endedBy(now) == "" {
					return fmt.Errorf("%w: %s", ErrRunning, prev.ID)
				}
			}
		}
		_, ok, err := c.st.CompareAndSwap(ctx, Bucket, key, version, []byte(id))
		if err != nil {
			return fmt.Errorf("compare: naming the supplier's comparison: %w", err)
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("%w: supplier %s", ErrConflict, supplier)
}

// endedBy returns why d, running, is over at now ("window" or
// "requests"), or "" if it is not. The request count is used up when the
// replicas shadowed it, counting as spent the unused claims of replicas
// that have not renewed them for StaleAfter.
func (d *cmpDoc) endedBy(now time.Time) string {
	if !d.Ends.IsZero() && !now.Before(d.Ends) {
		return "window"
	}
	if d.Request.Requests > 0 {
		var n int64
		for _, r := range d.Replicas {
			n += r.Shadowed
			if r.Claimed > r.Shadowed && now.Sub(r.Seen) > StaleAfter {
				n += r.Claimed - r.Shadowed
			}
		}
		if n >= int64(d.Request.Requests) {
			return "requests"
		}
	}
	return ""
}

// Stop stops a running comparison at once on this replica and, from
// their next refresh, on the others. Stopping a comparison that is no
// longer running returns it unchanged.
func (c *Comparisons) Stop(ctx context.Context, id string) (*Comparison, error) {
	if !cmpIsID(id) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	now := c.now()
	d, err := c.update(ctx, id, nil, 0, func(d *cmpDoc) bool {
		changed := c.flushOwn(d, now)
		if d.Status == Running {
			d.Status, d.Ended, d.Reason = Stopped, now, "stopped"
			if why := d.endedBy(now); why != "" {
				d.Status, d.Reason = Done, why
				if why == "window" {
					d.Ended = d.Ends
				}
			}
			changed = true
		}
		return changed
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if e := c.entries[id]; e != nil {
		c.flushedLocked(e, d)
		c.endLocked(e, now)
	}
	c.publishLocked(now)
	c.mu.Unlock()
	c.log.Info("comparison stopped", zap.String("comparison", id), zap.String("supplier", d.Request.Supplier),
		zap.String("status", d.Status))
	return c.view(d, now), nil
}

// Get returns a comparison, with what this replica recorded and has not
// flushed yet.
func (c *Comparisons) Get(ctx context.Context, id string) (*Comparison, error) {
	d, err := c.load(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.view(d, c.now()), nil
}

// List returns every comparison, newest first.
func (c *Comparisons) List(ctx context.Context) ([]*Comparison, error) {
	docs, err := c.st.List(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("compare: listing comparisons: %w", err)
	}
	now := c.now()
	var out []*Comparison
	for _, doc := range docs {
		if strings.HasPrefix(doc.Key, "supplier/") {
			continue
		}
		var d cmpDoc
		if err := json.Unmarshal(doc.Value, &d); err != nil {
			c.log.Warn("unreadable comparison", zap.String("comparison", doc.Key), zap.Error(err))
			continue
		}
		out = append(out, c.view(&d, now))
	}
	slices.SortFunc(out, func(a, b *Comparison) int {
		if n := b.Started.Compare(a.Started); n != 0 {
			return n
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Begin takes one of a running comparison's requests for a shadow call
// about to be made, and returns where it goes (empty: the other system's
// first planned provider) and who pays for it. It is the count's only
// step: a request Shadow chose is counted as shadowed here, when its
// shadow call is actually made, not when it was chosen, so a chosen
// request that is not shadowed after all (its answer failed, or it was
// already planned on the other system) never counts. It reports false
// when the comparison no longer runs on this replica or, capped, this
// replica's claim on its count is used up; the caller then makes no call.
func (c *Comparisons) Begin(id string) (provider string, billed billing.Payer, ok bool) {
	e := c.active.Load().byID[id]
	if e == nil {
		return "", "", false
	}
	if !e.take() {
		return "", "", false
	}
	return e.req.Provider, e.req.Billed, true
}

// take counts one shadow call of e on this replica, within its claim when
// capped. It reports false when the claim is used up.
func (e *cmpEntry) take() bool {
	if !e.capped {
		e.used.Add(1)
		return true
	}
	for {
		w := e.state.Load()
		if uint32(w) >= uint32(w>>32) {
			e.denied.Add(1) // tells the next pass to claim more
			return false
		}
		if e.state.CompareAndSwap(w, w+1) {
			return true
		}
	}
}

// Shadow reports whether this request of supplier is to be shadowed, and
// if so the comparison's ID and the other system. spread is any
// well-mixed number that varies per request (such as a request counter
// times an odd constant) or per conversation, for a stable choice; Sample
// of the values are chosen. Choosing does not count: the caller counts
// the request with Begin when it makes the shadow call, so that a request
// it skips after all (already planned on the other system, or whose
// answer failed) is not counted as shadowed. A comparison with Requests
// chooses at most that many across all replicas: each replica shadows
// within the part of the count it claimed at its passes (the replica
// that started the comparison claims a part at once; the others claim
// theirs at the pass after their first sampled request), and only while
// its passes renew the claim; Shadow chooses none while this replica's
// claim is used up. One with a Window chooses none from its end on.
// Shadow is lock-free and allocation-free.
func (c *Comparisons) Shadow(supplier []byte, spread uint64) (id string, other billing.KeySource, ok bool) {
	e := c.active.Load().bySupplier[string(supplier)]
	if e == nil {
		return "", "", false
	}
	if e.ends != 0 && c.now().UnixNano() >= e.ends {
		return "", "", false
	}
	if !e.all && mix.Mix64(spread^e.seed) >= e.threshold {
		return "", "", false
	}
	if e.capped {
		if w := e.state.Load(); uint32(w) >= uint32(w>>32) {
			e.denied.Add(1) // tells the next pass to claim more
			return "", "", false
		}
	}
	return e.id, e.req.Other.First(), true
}

// shadowed returns the number of requests e shadowed on this replica.
func (e *cmpEntry) shadowed() int64 {
	if e.capped {
		return int64(uint32(e.state.Load()))
	}
	return e.used.Load()
}

// setClaim sets the requests e may shadow on this replica.
func (e *cmpEntry) setClaim(claimed int64) {
	for {
		w := e.state.Load()
		if e.state.CompareAndSwap(w, uint64(claimed)<<32|uint64(uint32(w))) {
			return
		}
	}
}

// freeze lowers e's claim to what it shadowed, so that it shadows no
// more, and returns that.
func (e *cmpEntry) freeze() int64 {
	for {
		w := e.state.Load()
		used := uint64(uint32(w))
		if e.state.CompareAndSwap(w, used<<32|used) {
			return int64(used)
		}
	}
}

// Score is the similarity of one pair of answers, from 0 (unrelated)
// to 1 (alike), with the method that measured it and the threshold at or
// above which that method's scores count as similar for the workflow.
type Score struct {
	Value     float64 `json:"value"`
	Method    string  `json:"method"`
	Threshold float64 `json:"threshold"`
}

// Lexical is the name of the word-overlap method (see Similarity).
const Lexical = "lexical"

// Pair is the two answers to one shadowed request: the primary's, which
// the caller got, and the shadow's, with the request's workflow and, when
// both answered, their similarity. A zero Score is measured with
// Similarity (Lexical) and SimilarThreshold.
type Pair struct {
	Workflow string
	Primary  billing.Outcome
	Shadow   billing.Outcome
	Score    Score
}

// Record records the two answers to one shadowed request. Call it once
// both are complete, off the request's path. Answers of a comparison this
// replica no longer knows (ended more than RecordGrace ago) are dropped.
func (c *Comparisons) Record(id string, p Pair) {
	c.mu.Lock()
	e := c.entries[id]
	c.mu.Unlock()
	if e == nil {
		c.log.Debug("answers of an unknown comparison dropped", zap.String("comparison", id))
		return
	}
	primary, shadow := p.Primary, p.Shadow
	pe, se := primary.Failed(), shadow.Failed()
	s := cmpSample{PE: pe, SE: se, Both: !pe && !se}
	if !pe {
		s.PL, s.PT = int64(primary.Latency), int64(primary.TTFT)
	}
	if !se {
		s.SL, s.ST = int64(shadow.Latency), int64(shadow.TTFT)
	}
	if s.Both {
		if p.Score.Method == "" {
			p.Score = Score{Value: Similarity(primary.Text, shadow.Text), Method: Lexical, Threshold: SimilarThreshold}
		}
		s.Sim = p.Score.Value
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &e.stats
	st.Pairs++
	st.Primary.add(primary, pe)
	st.Shadow.add(shadow, se)
	if s.Both {
		st.Compared++
		st.SimSum += s.Sim
		if s.Sim >= p.Score.Threshold {
			st.Similar++
		}
	}
	if len(st.Samples) < MaxSamples {
		st.Samples = append(st.Samples, s)
	} else if i := mathrand.Int64N(st.Pairs); i < MaxSamples { //nolint:gosec // G404: reservoir sampling, not a secret
		st.Samples[i] = s
	}
	e.gen++
}

// add adds one answer to the totals of a side: tokens of answers that
// did not fail (the means are per answer), costs of all.
func (s *cmpSide) add(o billing.Outcome, failed bool) {
	s.Requests++
	if failed {
		s.Errors++
	} else {
		s.PromptTokens += o.PromptTokens
		s.CompletionTokens += o.CompletionTokens
	}
	if o.CostUSD > 0 && o.CostUSD < 1e6 { // not NaN, not absurd
		s.CostNanos += int64(math.Round(o.CostUSD * 1e9))
	}
}

// Run flushes this replica's counts and answers to the store, ends the
// comparisons whose window or request count is used up, and refreshes
// the running set from the store, once at once and then every Interval
// until ctx ends; then it flushes a last time.
func (c *Comparisons) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		if err := c.Sync(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("comparisons not synced with the store", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := c.Sync(fctx)
			cancel()
			if err != nil {
				c.log.Warn("comparisons not flushed on shutdown", zap.Error(err))
			}
			return
		case <-t.C:
		}
	}
}

// Sync is one pass of Run: it flushes, ends, claims request counts and
// refreshes the running set.
func (c *Comparisons) Sync(ctx context.Context) error {
	c.mu.Lock()
	before := c.seq // entries created after the listing may be missing from it
	c.mu.Unlock()
	docs, err := c.st.List(ctx, Bucket)
	if err != nil {
		return fmt.Errorf("compare: listing comparisons: %w", err)
	}
	now := c.now()
	var errs []error
	seen := make(map[string]bool, len(docs))
	for _, doc := range docs {
		if strings.HasPrefix(doc.Key, "supplier/") {
			continue
		}
		var d cmpDoc
		if err := json.Unmarshal(doc.Value, &d); err != nil {
			errs = append(errs, fmt.Errorf("compare: reading comparison %s: %w", doc.Key, err))
			continue
		}
		seen[d.ID] = true
		c.mu.Lock()
		e := c.entries[d.ID]
		if e == nil && d.Status == Running && d.endedBy(now) == "" {
			e = c.entryLocked(&d)
		}
		c.mu.Unlock()
		if e == nil && d.Status != Running {
			continue
		}
		var dm cmpDemand
		if e != nil {
			dm = e.demand(now)
		}
		// Without an entry, the pass only marks an ended comparison so.
		nd, err := c.update(ctx, d.ID, doc.Value, doc.Version, func(d *cmpDoc) bool {
			return c.syncDoc(d, e, dm, now)
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if e == nil {
			continue
		}
		c.mu.Lock()
		c.flushedLocked(e, nd)
		if nd.Status == Running {
			c.setClaimLocked(e, nd)
		} else {
			if e.ended.IsZero() {
				c.log.Info("comparison ended", zap.String("comparison", nd.ID),
					zap.String("supplier", nd.Request.Supplier), zap.String("status", nd.Status),
					zap.String("reason", nd.Reason))
			}
			c.endLocked(e, now)
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	for id, e := range c.entries {
		e.mu.Lock()
		idle := e.gen == e.flushedGen && e.shadowed() == e.flushedUsed
		e.mu.Unlock()
		switch {
		case !seen[id] && e.seq <= before:
			delete(c.entries, id) // deleted from the store
		case !e.ended.IsZero() && now.Sub(e.ended) > RecordGrace && idle:
			delete(c.entries, id)
		}
	}
	c.publishLocked(now)
	c.mu.Unlock()
	return errors.Join(errs...)
}

// cmpDemand is how much a replica shadowed, or wanted to, since its last
// pass.
type cmpDemand struct {
	recent, denied int64
	active         time.Time // when it last did
}

// demand returns e's demand since the last pass, and starts the next.
func (e *cmpEntry) demand(now time.Time) cmpDemand {
	used := e.shadowed()
	e.mu.Lock()
	defer e.mu.Unlock()
	dm := cmpDemand{recent: used - e.lastUsed, denied: e.denied.Swap(0)}
	e.lastUsed = used
	if dm.recent > 0 || dm.denied > 0 {
		e.active = now
	}
	dm.active = e.active
	return dm
}

// syncDoc applies this replica's pass to d: its part, the end and the
// request claims. A replica claims part of the request count when it
// shadows or wants to, renews its claim while it holds some, and gives
// the unused part back when it has had no use for it for
// StaleAfter and nothing is left unclaimed. It never takes another
// replica's claim: what that replica shadowed since its last write is
// unknown. e is nil when this replica does not run the comparison. It
// reports whether d changed.
func (c *Comparisons) syncDoc(d *cmpDoc, e *cmpEntry, dm cmpDemand, now time.Time) bool {
	changed := c.flushOwn(d, now)
	if d.Status != Running {
		return changed
	}
	if why := d.endedBy(now); why != "" {
		d.Status, d.Reason, d.Ended = Done, why, now
		if why == "window" {
			d.Ended = d.Ends
		}
		return true
	}
	if e == nil || d.Request.Requests <= 0 || (dm == (cmpDemand{}) && d.Replicas[c.holder] == nil) {
		return changed
	}
	own := d.Replicas[c.holder]
	if own == nil {
		own = &cmpReplica{Seen: now}
		d.Replicas[c.holder] = own
	}
	total := int64(d.Request.Requests)
	unclaimed := total
	for _, r := range d.Replicas {
		unclaimed -= r.Claimed
	}
	unclaimed = max(unclaimed, 0)
	remaining := own.Claimed - own.Shadowed
	demand := dm.recent + dm.denied
	want := cmpWant(total, unclaimed, demand)
	switch {
	case demand == 0 && remaining > 0 && unclaimed == 0 && now.Sub(dm.active) >= StaleAfter:
		// Idle: leave the rest to replicas with traffic. Freezing first
		// keeps a request arriving now within what is written.
		own.Shadowed = max(own.Shadowed, e.freeze())
		own.Claimed = own.Shadowed
		return true
	case demand == 0 || remaining >= (want+1)/2:
		if remaining > 0 && now.Sub(own.Seen) > StaleAfter/4 {
			own.Seen = now // still holding a claim
			changed = true
		}
		return changed
	}
	if grant := min(want, unclaimed); grant > 0 {
		own.Claimed += grant
		own.Seen = now
		changed = true
	}
	return changed
}

// cmpWant returns how many requests a replica wants to claim at once: a
// tenth of the total, a quarter of what is unclaimed or twice what it
// shadowed since its last pass, whichever is most. It claims no more than
// is unclaimed, and claims again once less than half of that is left.
func cmpWant(total, unclaimed, recent int64) int64 {
	return max((total+9)/10, (unclaimed+3)/4, 2*recent, 1)
}

// flushOwn writes this replica's counts into d. It reports whether d
// changed.
func (c *Comparisons) flushOwn(d *cmpDoc, now time.Time) bool {
	c.mu.Lock()
	e := c.entries[d.ID]
	c.mu.Unlock()
	if e == nil {
		return false
	}
	used := e.shadowed()
	e.mu.Lock()
	dirty := e.gen != e.flushedGen || used != e.flushedUsed
	stats := e.stats
	stats.Samples = slices.Clone(e.stats.Samples)
	e.mu.Unlock()
	own := d.Replicas[c.holder]
	if own != nil && !dirty && own.Shadowed == used && own.Pairs == stats.Pairs {
		return false
	}
	if own == nil {
		if used == 0 && stats.Pairs == 0 {
			return false
		}
		own = &cmpReplica{}
		if d.Replicas == nil {
			d.Replicas = map[string]*cmpReplica{}
		}
		d.Replicas[c.holder] = own
	}
	own.Shadowed = max(own.Shadowed, used)
	own.Seen = now
	own.cmpStats = stats
	return true
}

// flushedLocked notes what of e the stored d holds.
func (c *Comparisons) flushedLocked(e *cmpEntry, d *cmpDoc) {
	own := d.Replicas[c.holder]
	if own == nil {
		return
	}
	e.mu.Lock()
	if own.Pairs == e.stats.Pairs {
		e.flushedGen = e.gen
	}
	e.flushedUsed = own.Shadowed
	e.mu.Unlock()
}

// update reads comparison id (or takes value and version when version is
// set), applies fn, and writes the result if fn reports a change,
// retrying on concurrent writes. It returns the document as stored.
func (c *Comparisons) update(ctx context.Context, id string, value []byte, version int64, fn func(*cmpDoc) bool) (*cmpDoc, error) {
	for range 10 {
		if version == 0 {
			v, ver, err := c.st.Get(ctx, Bucket, id)
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
			}
			if err != nil {
				return nil, fmt.Errorf("compare: reading comparison %s: %w", id, err)
			}
			value, version = v, ver
		}
		d := new(cmpDoc)
		if err := json.Unmarshal(value, d); err != nil {
			return nil, fmt.Errorf("compare: reading comparison %s: %w", id, err)
		}
		if d.Replicas == nil {
			d.Replicas = map[string]*cmpReplica{}
		}
		if !fn(d) {
			return d, nil
		}
		next, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("compare: encoding comparison %s: %w", id, err)
		}
		_, ok, err := c.st.CompareAndSwap(ctx, Bucket, id, version, next)
		if err != nil {
			return nil, fmt.Errorf("compare: writing comparison %s: %w", id, err)
		}
		if ok {
			return d, nil
		}
		version = 0
	}
	return nil, fmt.Errorf("%w: %s", ErrConflict, id)
}

// load reads comparison id.
func (c *Comparisons) load(ctx context.Context, id string) (*cmpDoc, error) {
	if !cmpIsID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	value, _, err := c.st.Get(ctx, Bucket, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("compare: reading comparison %s: %w", id, err)
	}
	d := new(cmpDoc)
	if err := json.Unmarshal(value, d); err != nil {
		return nil, fmt.Errorf("compare: reading comparison %s: %w", id, err)
	}
	return d, nil
}

// entryLocked returns the entry of d, creating it.
func (c *Comparisons) entryLocked(d *cmpDoc) *cmpEntry {
	if e := c.entries[d.ID]; e != nil {
		return e
	}
	h := fnv.New64a()
	h.Write([]byte(d.ID))
	e := &cmpEntry{
		id:     d.ID,
		req:    d.Request,
		start:  d.Started,
		seed:   h.Sum64(),
		all:    d.Request.Sample >= 1,
		capped: d.Request.Requests > 0,
	}
	if !e.all {
		e.threshold = uint64(math.Ldexp(d.Request.Sample, 64))
	}
	if !d.Ends.IsZero() {
		e.ends = d.Ends.UnixNano()
	}
	if own := d.Replicas[c.holder]; own != nil {
		// This replica's earlier life: carry on from what it flushed.
		if e.capped {
			e.state.Store(uint64(own.Claimed)<<32 | uint64(own.Shadowed))
		} else {
			e.used.Store(own.Shadowed)
		}
		e.stats = own.cmpStats
		e.flushedUsed, e.lastUsed = own.Shadowed, own.Shadowed
	}
	c.seq++
	e.seq = c.seq
	c.entries[d.ID] = e
	return e
}

// setClaimLocked sets the requests e may shadow from the stored d.
func (c *Comparisons) setClaimLocked(e *cmpEntry, d *cmpDoc) {
	if !e.capped {
		return
	}
	var claimed int64
	if own := d.Replicas[c.holder]; own != nil {
		claimed = own.Claimed
	}
	e.setClaim(claimed)
}

// endLocked stops e shadowing, keeping it for late answers.
func (c *Comparisons) endLocked(e *cmpEntry, now time.Time) {
	if e.ended.IsZero() {
		e.ended = now
	}
}

// publishLocked replaces the set Shadow reads with the running entries.
func (c *Comparisons) publishLocked(now time.Time) {
	set := &cmpSet{
		bySupplier: make(map[string]*cmpEntry),
		byID:       make(map[string]*cmpEntry),
	}
	for _, e := range c.entries {
		if !e.ended.IsZero() || (e.ends != 0 && now.UnixNano() >= e.ends) {
			continue
		}
		if prev := set.bySupplier[e.req.Supplier]; prev == nil || e.start.After(prev.start) {
			set.bySupplier[e.req.Supplier] = e
		}
		set.byID[e.id] = e
	}
	c.active.Store(set)
}

// merged returns the figures of d, this replica's part taken live.
func (c *Comparisons) merged(d *cmpDoc) (shadowed int64, stats cmpStats) {
	c.mu.Lock()
	e := c.entries[d.ID]
	c.mu.Unlock()
	add := func(used int64, s *cmpStats) {
		shadowed += used
		stats.Pairs += s.Pairs
		stats.Primary.merge(s.Primary)
		stats.Shadow.merge(s.Shadow)
		stats.Compared += s.Compared
		stats.SimSum += s.SimSum
		stats.Similar += s.Similar
		stats.Samples = append(stats.Samples, s.Samples...)
	}
	for h, r := range d.Replicas {
		if h == c.holder && e != nil {
			continue
		}
		add(r.Shadowed, &r.cmpStats)
	}
	if e != nil {
		used := e.shadowed()
		if own := d.Replicas[c.holder]; own != nil {
			used = max(used, own.Shadowed)
		}
		e.mu.Lock()
		add(used, &e.stats)
		e.mu.Unlock()
	}
	return shadowed, stats
}

// merge adds the totals of o to s.
func (s *cmpSide) merge(o cmpSide) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.PromptTokens += o.PromptTokens
	s.CompletionTokens += o.CompletionTokens
	s.CostNanos += o.CostNanos
}

// view returns the Comparison of d at now.
func (c *Comparisons) view(d *cmpDoc, now time.Time) *Comparison {
	shadowed, stats := c.merged(d)
	v := &Comparison{
		ID:       d.ID,
		Request:  d.Request,
		Primary:  d.Primary,
		Started:  d.Started,
		Ends:     d.Ends,
		Status:   d.Status,
		Ended:    d.Ended,
		Reason:   d.Reason,
		Shadowed: shadowed,
		Recorded: stats.Pairs,
	}
	if v.Status == Running {
		// Over but not yet marked so by a replica's pass.
		switch why := d.endedBy(now); {
		case why == "window":
			v.Status, v.Reason, v.Ended = Done, why, d.Ends
		case why != "" || (d.Request.Requests > 0 && shadowed >= int64(d.Request.Requests)):
			v.Status, v.Reason = Done, "requests"
		}
	}
	return v
}

// Similarity returns how alike two answers' texts are: the cosine
// similarity of their term-frequency vectors, where the terms are the
// lowercased words (maximal runs of Unicode letters and digits; anything
// else separates words). It is 1 for texts with the same words in the
// same numbers, whatever their order, punctuation and case, and 0 for
// texts without a word in common; two texts without words are alike (1),
// a text without words and one with some are not (0).
func Similarity(a, b string) float64 {
	ta, tb := cmpTerms(a), cmpTerms(b)
	if len(ta) == 0 || len(tb) == 0 {
		if len(ta) == len(tb) {
			return 1
		}
		return 0
	}
	var dot, na, nb int64
	for w, n := range ta {
		na += n * n
		dot += n * tb[w]
	}
	for _, n := range tb {
		nb += n * n
	}
	if dot == 0 {
		return 0
	}
	s := float64(dot) / math.Sqrt(float64(na)*float64(nb))
	return min(s, 1)
}

// cmpTerms returns the term frequencies of s.
func cmpTerms(s string) map[string]int64 {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	tf := make(map[string]int64, len(words))
	for _, w := range words {
		tf[w]++
	}
	return tf
}

// Report is the outcome of a comparison: each side's figures over
// the recorded pairs, their answers' similarity and a recommendation.
type Report struct {
	Comparison Comparison `json:"comparison"`
	// Primary is the supplier's current system, Shadow the other.
	Primary Side `json:"primary"`
	Shadow  Side `json:"shadow"`
	// Similarity compares the pairs where both sides answered.
	Similarity SimilarityStats `json:"similarity"`
	// Recommendation is Migrate, Stay or CollectMore,
	// and Reasons say why, as sentences.
	Recommendation string   `json:"recommendation"`
	Reasons        []string `json:"reasons"`
}

// Side are one system's figures in a Report. Percentiles are
// nearest-rank over the answers that did not fail (over a uniform sample
// of MaxSamples pairs per replica when there were more).
type Side struct {
	// System is platform, client or hybrid.
	System billing.Mode `json:"system"`
	// Requests is the number of recorded requests, Errors those that
	// failed and ErrorRate their share.
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// LatencyP50 and LatencyP95 are the latency to the complete answer
	// (in nanoseconds in JSON); TTFTP50 the time to the first token of
	// streamed answers, zero without any.
	LatencyP50 time.Duration `json:"latency_p50_ns"`
	LatencyP95 time.Duration `json:"latency_p95_ns"`
	TTFTP50    time.Duration `json:"ttft_p50_ns,omitempty"`
	// MeanPromptTokens and MeanCompletionTokens are the tokens per
	// request that did not fail.
	MeanPromptTokens     float64 `json:"mean_prompt_tokens"`
	MeanCompletionTokens float64 `json:"mean_completion_tokens"`
	// CostUSD is the total cost and CostPer1K the cost per 1,000
	// requests.
	CostUSD   float64 `json:"cost_usd"`
	CostPer1K float64 `json:"cost_per_1k_usd"`
}

// SimilarityStats is the similarity (see Similarity) of the pairs of
// answers where both sides answered.
type SimilarityStats struct {
	// Pairs is the number of pairs compared.
	Pairs int64 `json:"pairs"`
	// Mean is their mean similarity and P10 the worst decile's bound (the
	// nearest-rank 10th percentile).
	Mean float64 `json:"mean"`
	P10  float64 `json:"p10"`
	// Similar is the share of pairs at or above Threshold
	// (SimilarThreshold).
	Similar   float64 `json:"similar"`
	Threshold float64 `json:"threshold"`
}

// Report returns the figures and the recommendation of a comparison so
// far, with what this replica recorded and has not flushed yet.
func (c *Comparisons) Report(ctx context.Context, id string) (Report, error) {
	d, err := c.load(ctx, id)
	if err != nil {
		return Report{}, err
	}
	now := c.now()
	_, stats := c.merged(d)
	r := Report{Comparison: *c.view(d, now)}
	var pl, pt, sl, st []int64
	var simf []float64
	for _, s := range stats.Samples {
		if !s.PE {
			pl = append(pl, s.PL)
			if s.PT > 0 {
				pt = append(pt, s.PT)
			}
		}
		if !s.SE {
			sl = append(sl, s.SL)
			if s.ST > 0 {
				st = append(st, s.ST)
			}
		}
		if s.Both {
			simf = append(simf, s.Sim)
		}
	}
	r.Primary = cmpSideReport(d.Primary, stats.Primary, pl, pt)
	r.Shadow = cmpSideReport(d.Request.Other, stats.Shadow, sl, st)
	r.Similarity = SimilarityStats{Pairs: stats.Compared, Threshold: SimilarThreshold}
	if stats.Compared > 0 {
		r.Similarity.Mean = stats.SimSum / float64(stats.Compared)
		r.Similarity.Similar = float64(stats.Similar) / float64(stats.Compared)
		slices.Sort(simf)
		r.Similarity.P10 = cmpRank(simf, 0.10)
	}
	r.Recommendation, r.Reasons = cmpRecommend(&r)
	return r, nil
}

// cmpSideReport returns a side's figures from its totals and latency
// samples.
func cmpSideReport(system billing.Mode, s cmpSide, lat, ttft []int64) Side {
	out := Side{System: system, Requests: s.Requests, Errors: s.Errors}
	if s.Requests > 0 {
		out.ErrorRate = float64(s.Errors) / float64(s.Requests)
		out.CostPer1K = float64(s.CostNanos) * 1000 / float64(s.Requests) / 1e9
	}
	if ok := s.Requests - s.Errors; ok > 0 {
		out.MeanPromptTokens = float64(s.PromptTokens) / float64(ok)
		out.MeanCompletionTokens = float64(s.CompletionTokens) / float64(ok)
	}
	out.CostUSD = float64(s.CostNanos) / 1e9
	slices.Sort(lat)
	slices.Sort(ttft)
	out.LatencyP50 = time.Duration(cmpRank(lat, 0.50))
	out.LatencyP95 = time.Duration(cmpRank(lat, 0.95))
	out.TTFTP50 = time.Duration(cmpRank(ttft, 0.50))
	return out
}

// cmpRank returns the nearest-rank p-quantile of sorted values: the
// smallest value with at least p of the values at or below it; zero for
// none.
func cmpRank[T int64 | float64](sorted []T, p float64) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// cmpRecommend decides a report's recommendation and gives its reasons.
func cmpRecommend(r *Report) (string, []string) {
	p, s, sim := r.Primary, r.Shadow, r.Similarity
	pn, sn := p.System, s.System
	if r.Comparison.Recorded < MinPairs {
		reasons := []string{fmt.Sprintf("Only %d pairs of answers were recorded; at least %d are needed.",
			r.Comparison.Recorded, MinPairs)}
		if r.Comparison.Status == Running {
			reasons = append(reasons, "The comparison is still running.")
		}
		return CollectMore, reasons
	}
	var stay, good []string
	if s.ErrorRate > p.ErrorRate+ErrorMargin {
		stay = append(stay, fmt.Sprintf("%s failed %s of requests against %s on %s, more than %s points above.",
			sn, cmpPct(s.ErrorRate), cmpPct(p.ErrorRate), pn, cmpNum(ErrorMargin*100)))
	} else {
		good = append(good, fmt.Sprintf("%s failed %s of requests against %s on %s, within %s points.",
			sn, cmpPct(s.ErrorRate), cmpPct(p.ErrorRate), pn, cmpNum(ErrorMargin*100)))
	}
	if p.LatencyP95 > 0 && s.LatencyP95 > 0 {
		ratio := float64(s.LatencyP95) / float64(p.LatencyP95)
		if ratio > LatencyFactor {
			stay = append(stay, fmt.Sprintf("%s's p95 latency is %s, %.2f times %s's %s, more than %s times.",
				sn, cmpDur(s.LatencyP95), ratio, pn, cmpDur(p.LatencyP95), cmpNum(LatencyFactor)))
		} else {
			good = append(good, fmt.Sprintf("%s's p95 latency is %s against %s's %s, within %s times.",
				sn, cmpDur(s.LatencyP95), pn, cmpDur(p.LatencyP95), cmpNum(LatencyFactor)))
		}
	}
	if sim.Pairs >= MinPairs {
		if sim.Mean < MinSimilarity {
			stay = append(stay, fmt.Sprintf("The answers' mean similarity is %.2f, below %.2f.", sim.Mean, MinSimilarity))
		} else {
			good = append(good, fmt.Sprintf("The answers' mean similarity is %.2f, at least %.2f.", sim.Mean, MinSimilarity))
		}
	}
	switch {
	case s.CostPer1K > p.CostPer1K*(1+CostMargin):
		more := "more"
		if p.CostPer1K > 0 {
			more = fmt.Sprintf("%s more", cmpPct(s.CostPer1K/p.CostPer1K-1))
		}
		stay = append(stay, fmt.Sprintf("%s costs %s per 1,000 requests against %s on %s, %s, beyond the %s margin.",
			sn, cmpUSD(s.CostPer1K), cmpUSD(p.CostPer1K), pn, more, cmpPct(CostMargin)))
	case s.CostPer1K < p.CostPer1K:
		good = append(good, fmt.Sprintf("%s costs %s per 1,000 requests against %s on %s, %s less.",
			sn, cmpUSD(s.CostPer1K), cmpUSD(p.CostPer1K), pn, cmpPct(1-s.CostPer1K/p.CostPer1K)))
	default:
		good = append(good, fmt.Sprintf("%s costs %s per 1,000 requests against %s on %s, within the %s margin.",
			sn, cmpUSD(s.CostPer1K), cmpUSD(p.CostPer1K), pn, cmpPct(CostMargin)))
	}
	if len(stay) > 0 {
		return Stay, stay
	}
	if sim.Pairs < MinPairs {
		return CollectMore, []string{fmt.Sprintf("Only %d pairs had two answers to compare; at least %d are needed.",
			sim.Pairs, MinPairs)}
	}
	return Migrate, good
}

// cmpPct formats a share as a percentage.
func cmpPct(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" }

// cmpNum formats a threshold without needless decimals.
func cmpNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// cmpUSD formats a cost in US dollars.
func cmpUSD(f float64) string { return "$" + strconv.FormatFloat(f, 'f', 4, 64) }

// cmpDur formats a latency in milliseconds, or seconds from 10 s.
func cmpDur(d time.Duration) string {
	if d >= 10*time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64) + "ms"
}

// Text renders the report as a readable table with fixed-width columns,
// followed by the recommendation and its reasons.
func (r Report) Text() string {
	var b strings.Builder
	c := r.Comparison
	fmt.Fprintf(&b, "Comparison %s for %s: %s (primary) against %s (shadow), %s",
		c.ID, c.Supplier, c.Primary, c.Other, c.Status)
	if c.Reason != "" && c.Status != Running {
		fmt.Fprintf(&b, " (%s)", c.Reason)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Started %s", c.Started.UTC().Format("2006-01-02 15:04 UTC"))
	if c.Window > 0 {
		fmt.Fprintf(&b, ", window %v", c.Window)
	}
	if c.Requests > 0 {
		fmt.Fprintf(&b, ", %d of %d requests shadowed", c.Shadowed, c.Requests)
	} else {
		fmt.Fprintf(&b, ", %d requests shadowed", c.Shadowed)
	}
	fmt.Fprintf(&b, ", %s of requests sampled, shadow billed to %s", cmpPct(c.Sample), c.Billed)
	if c.Provider != "" {
		fmt.Fprintf(&b, ", shadow provider %s", c.Provider)
	}
	b.WriteString("\n\n")
	const row = "%-26s %20s %20s\n"
	fmt.Fprintf(&b, row, "", r.Primary.System+" (primary)", r.Shadow.System+" (shadow)")
	side := func(name string, f func(Side) string) {
		fmt.Fprintf(&b, row, name, f(r.Primary), f(r.Shadow))
	}
	side("requests", func(s Side) string { return strconv.FormatInt(s.Requests, 10) })
	side("errors", func(s Side) string {
		return fmt.Sprintf("%d (%s)", s.Errors, cmpPct(s.ErrorRate))
	})
	lat := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return cmpDur(d)
	}
	side("latency p50", func(s Side) string { return lat(s.LatencyP50) })
	side("latency p95", func(s Side) string { return lat(s.LatencyP95) })
	if r.Primary.TTFTP50 > 0 || r.Shadow.TTFTP50 > 0 {
		side("time to first token p50", func(s Side) string { return lat(s.TTFTP50) })
	}
	side("mean prompt tokens", func(s Side) string { return strconv.FormatFloat(s.MeanPromptTokens, 'f', 1, 64) })
	side("mean completion tokens", func(s Side) string {
		return strconv.FormatFloat(s.MeanCompletionTokens, 'f', 1, 64)
	})
	side("total cost", func(s Side) string { return cmpUSD(s.CostUSD) })
	side("cost per 1,000 requests", func(s Side) string { return cmpUSD(s.CostPer1K) })
	b.WriteString("\n")
	if sim := r.Similarity; sim.Pairs > 0 {
		fmt.Fprintf(&b, "Answer similarity over %d pairs: mean %.2f, p10 %.2f, %s at or above %.2f\n",
			sim.Pairs, sim.Mean, sim.P10, cmpPct(sim.Similar), sim.Threshold)
	} else {
		b.WriteString("Answer similarity: no pairs with two answers yet\n")
	}
	fmt.Fprintf(&b, "\nRecommendation: %s\n", r.Recommendation)
	for _, reason := range r.Reasons {
		fmt.Fprintf(&b, "  - %s\n", reason)
	}
	return b.String()
}
