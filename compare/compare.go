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

// Workflows of a comparison.
const (
	// MaxWorkflows is the number of workflows a comparison keeps figures
	// for, per replica and in a report; the pairs of any other workflow
	// are counted under OtherWorkflow.
	MaxWorkflows = 20
	// MaxWorkflowSamples is the number of answer pairs each replica keeps
	// per workflow for percentiles (a uniform reservoir beyond).
	MaxWorkflowSamples = 200
	// OtherWorkflow names the pairs of workflows beyond MaxWorkflows, and
	// those the proxy records as other (not built in nor configured).
	OtherWorkflow = "other"
	// NoWorkflow names the pairs of requests that named no workflow.
	NoWorkflow = "(none)"
	// maxWorkflowName is the longest workflow name kept as it is.
	maxWorkflowName = 64
	// maxMethods is the number of similarity methods named per workflow.
	maxMethods = 4
)

// Chart buckets of a Report.
const (
	// SimilarityBins is the number of bins of the similarity histogram,
	// each 1/SimilarityBins wide; a similarity of 1 is in the last.
	SimilarityBins = 10
)

// LatencyBucketsMS are the upper bounds, in milliseconds and exclusive,
// of the latency histogram's buckets; a last bucket holds the latencies
// from the last bound on. They are fixed: stored counts depend on them.
var LatencyBucketsMS = [...]int64{50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000, 60000}

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
	// MinSimilarity is the least mean answer similarity by the Lexical
	// method; below it the recommendation is to stay. Pairs scored by
	// another method are judged against the threshold their scores gave
	// (SimilarityStats.Threshold), which for Lexical is this.
	MinSimilarity = SimilarThreshold
	// SimilarThreshold is the similarity at or above which a pair
	// of answers counts as similar in SimilarityStats.Similar when its
	// Score names no threshold (the Lexical method's).
	SimilarThreshold = 0.8
	// MinSimilarShare is the least share of compared pairs at or above
	// their threshold. Below it the recommendation is to stay.
	MinSimilarShare = 0.8
	// MinorShare is the share of the pairs below which a workflow with
	// too few pairs to judge does not hold the whole recommendation back:
	// it is named, and is to be watched, but the others decide.
	MinorShare = 0.05
	// SamePriceMargin is how close, as a share, two costs per request
	// are to count as the same price: then only who pays changes.
	SamePriceMargin = 0.005
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
	// MaxP95Ratio is how many times the primary's p95 latency the other
	// system's may be before the advice is to stay; zero means
	// LatencyFactor.
	MaxP95Ratio float64 `json:"max_p95_ratio,omitempty"`
}

// latencyFactor is the request's MaxP95Ratio, or LatencyFactor.
func (r *Request) latencyFactor() float64 {
	if r.MaxP95Ratio > 0 {
		return r.MaxP95Ratio
	}
	return LatencyFactor
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
	// Usage gives the suppliers' daily usage, the history a report's
	// projection starts from; nil leaves the projection out.
	Usage UsageSource
	// Season returns the peak season a report's projection uses: a
	// description and which days are in it. Nil, or a nil day function,
	// means March to October (DefaultSeason).
	Season func() (name string, peak func(day time.Time) bool)
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
	usage    UsageSource
	seasonFn func() (string, func(time.Time) bool)

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

// cmpStats are the recorded figures of one replica: of all its pairs, and
// in Workflows of each workflow's. Every figure is a running total (or a
// bounded sample), so that replicas' figures add up.
type cmpStats struct {
	Pairs   int64   `json:"pairs"`
	Primary cmpSide `json:"primary"`
	Shadow  cmpSide `json:"shadow"`
	// Compared counts the pairs with both answers, SimSum their
	// similarities, Similar those at or above their score's threshold and
	// SimBins them by similarity, in SimilarityBins bins of equal width.
	Compared int64   `json:"compared"`
	SimSum   float64 `json:"sim_sum"`
	Similar  int64   `json:"similar"`
	SimBins  []int64 `json:"sim_bins,omitempty"`
	// Methods are the similarity methods that scored the compared pairs
	// (at most maxMethods, in the order first seen), and Threshold the
	// highest threshold they gave.
	Methods   []string    `json:"methods,omitempty"`
	Threshold float64     `json:"threshold,omitempty"`
	Samples   []cmpSample `json:"samples,omitempty"`
	// Workflows are the figures of each workflow's pairs, in the figures
	// of all pairs only: at most MaxWorkflows names, the rest under
	// OtherWorkflow. Documents written before veil kept them have none.
	Workflows map[string]*cmpStats `json:"workflows,omitempty"`
}

// cmpSide are the totals of one side of the pairs.
type cmpSide struct {
	Requests         int64 `json:"requests"`
	Errors           int64 `json:"errors"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// CostMicros is the cost in millionths of a US dollar, an integer so
	// that sums are exact, the unit of the usage records.
	CostMicros int64 `json:"cost_micros"`
	// Latency counts the answers that did not fail by their latency, in
	// the buckets of LatencyBucketsMS (the last one open).
	Latency []int64 `json:"latency_buckets,omitempty"`
}

// UnmarshalJSON reads a side, converting the cost in billionths of a
// dollar (cost_nanos) of documents written before the cost was kept in
// micro-dollars, rounded to the nearest micro-dollar.
func (s *cmpSide) UnmarshalJSON(b []byte) error {
	type plain cmpSide
	var v struct {
		plain
		CostNanos int64 `json:"cost_nanos"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = cmpSide(v.plain)
	if v.CostNanos != 0 && s.CostMicros == 0 {
		s.CostMicros = (v.CostNanos + 500) / 1000
	}
	return nil
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
		usage:    o.Usage,
		seasonFn: o.Season,
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
	case r.MaxP95Ratio < 0 || math.IsNaN(r.MaxP95Ratio) || math.IsInf(r.MaxP95Ratio, 0):
		return fmt.Errorf("%w: max p95 ratio %v is not a positive number", ErrInvalid, r.MaxP95Ratio)
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
	score := p.Score
	if s.Both {
		if score.Method == "" {
			score = Score{Value: Similarity(primary.Text, shadow.Text), Method: Lexical, Threshold: SimilarThreshold}
		}
		if !(score.Value >= 0) { // NaN too
			score.Value = 0
		}
		score.Value = min(score.Value, 1)
		if !(score.Threshold > 0 && score.Threshold <= 1) {
			score.Threshold = SimilarThreshold
		}
		s.Sim = score.Value
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.record(&s, &primary, &shadow, score, MaxSamples)
	e.stats.workflow(p.Workflow).record(&s, &primary, &shadow, score, MaxWorkflowSamples)
	e.gen++
}

// workflow returns the figures of a workflow's pairs, creating them: a
// request that named none is counted under NoWorkflow, and a workflow
// beyond the MaxWorkflows already kept (or with an overlong name) under
// OtherWorkflow.
func (s *cmpStats) workflow(name string) *cmpStats {
	switch {
	case name == "":
		name = NoWorkflow
	case len(name) > maxWorkflowName:
		name = OtherWorkflow
	}
	if w := s.Workflows[name]; w != nil {
		return w
	}
	if s.Workflows == nil {
		s.Workflows = make(map[string]*cmpStats)
	}
	if name != OtherWorkflow && s.namedWorkflows() >= MaxWorkflows {
		name = OtherWorkflow
		if w := s.Workflows[name]; w != nil {
			return w
		}
	}
	w := &cmpStats{}
	s.Workflows[name] = w
	return w
}

// namedWorkflows returns the number of workflows kept, other than
// OtherWorkflow.
func (s *cmpStats) namedWorkflows() int {
	n := len(s.Workflows)
	if s.Workflows[OtherWorkflow] != nil {
		n--
	}
	return n
}

// record adds one pair: its sample sm (Sim set when both answered), both
// answers and the score of their similarity. It keeps at most maxSamples
// samples, a uniform reservoir of the pairs.
func (s *cmpStats) record(sm *cmpSample, primary, shadow *billing.Outcome, score Score, maxSamples int) {
	s.Pairs++
	s.Primary.add(primary, sm.PE)
	s.Shadow.add(shadow, sm.SE)
	if sm.Both {
		s.Compared++
		s.SimSum += sm.Sim
		if sm.Sim >= score.Threshold {
			s.Similar++
		}
		if len(s.SimBins) != SimilarityBins {
			s.SimBins = make([]int64, SimilarityBins)
		}
		s.SimBins[simBin(sm.Sim)]++
		s.addMethod(score.Method, score.Threshold)
	}
	if len(s.Samples) < maxSamples {
		s.Samples = append(s.Samples, *sm)
	} else if i := mathrand.Int64N(s.Pairs); i < int64(maxSamples) { //nolint:gosec // G404: reservoir sampling, not a secret
		s.Samples[i] = *sm
	}
}

// addMethod notes a similarity method and its threshold.
func (s *cmpStats) addMethod(method string, threshold float64) {
	s.Threshold = max(s.Threshold, threshold)
	if method == "" || slices.Contains(s.Methods, method) || len(s.Methods) >= maxMethods {
		return
	}
	s.Methods = append(s.Methods, method)
}

// simBin returns the similarity histogram's bin of v, in [0, 1].
func simBin(v float64) int {
	return min(max(int(v*SimilarityBins), 0), SimilarityBins-1)
}

// latencyBucket returns the latency histogram's bucket of d.
func latencyBucket(d int64) int {
	ms := d / int64(time.Millisecond)
	for i, bound := range LatencyBucketsMS {
		if ms < bound {
			return i
		}
	}
	return len(LatencyBucketsMS)
}

// add adds one answer to the totals of a side: tokens and latency of
// answers that did not fail (the means are per answer), costs of all.
func (s *cmpSide) add(o *billing.Outcome, failed bool) {
	s.Requests++
	if failed {
		s.Errors++
	} else {
		s.PromptTokens += o.PromptTokens
		s.CompletionTokens += o.CompletionTokens
		if len(s.Latency) != len(LatencyBucketsMS)+1 {
			s.Latency = make([]int64, len(LatencyBucketsMS)+1)
		}
		s.Latency[latencyBucket(int64(max(o.Latency, 0)))]++
	}
	micros := o.CostMicros
	if micros == 0 && o.CostUSD > 0 && o.CostUSD < 1e6 { // not NaN, not absurd
		micros = int64(math.Round(o.CostUSD * 1e6))
	}
	if micros > 0 && micros < 1e12 {
		s.CostMicros += micros
	}
}

// merge adds the figures of o to s, workflows included, keeping its
// samples.
func (s *cmpStats) merge(o *cmpStats) {
	s.Pairs += o.Pairs
	s.Primary.merge(&o.Primary)
	s.Shadow.merge(&o.Shadow)
	s.Compared += o.Compared
	s.SimSum += o.SimSum
	s.Similar += o.Similar
	s.SimBins = addCounts(s.SimBins, o.SimBins)
	for _, m := range o.Methods {
		s.addMethod(m, 0)
	}
	s.Threshold = max(s.Threshold, o.Threshold)
	s.Samples = append(s.Samples, o.Samples...)
	for name, ow := range o.Workflows {
		if s.Workflows == nil {
			s.Workflows = make(map[string]*cmpStats)
		}
		w := s.Workflows[name]
		if w == nil {
			w = &cmpStats{}
			s.Workflows[name] = w
		}
		w.merge(ow)
	}
}

// merge adds the totals of o to s.
func (s *cmpSide) merge(o *cmpSide) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.PromptTokens += o.PromptTokens
	s.CompletionTokens += o.CompletionTokens
	s.CostMicros += o.CostMicros
	s.Latency = addCounts(s.Latency, o.Latency)
}

// addCounts adds the counts of b to a, growing a to b's length.
func addCounts(a, b []int64) []int64 {
	if len(b) > len(a) {
		a = append(a, make([]int64, len(b)-len(a))...)
	}
	for i, n := range b {
		a[i] += n
	}
	return a
}

// clone returns a deep copy of s, for writing it out of the lock.
func (s *cmpStats) clone() cmpStats {
	c := *s
	c.Primary.Latency = slices.Clone(s.Primary.Latency)
	c.Shadow.Latency = slices.Clone(s.Shadow.Latency)
	c.SimBins = slices.Clone(s.SimBins)
	c.Methods = slices.Clone(s.Methods)
	c.Samples = slices.Clone(s.Samples)
	if s.Workflows != nil {
		c.Workflows = make(map[string]*cmpStats, len(s.Workflows))
		for name, w := range s.Workflows {
			wc := w.clone()
			c.Workflows[name] = &wc
		}
	}
	return c
}

// foldWorkflows keeps the MaxWorkflows workflows with the most pairs (the
// replicas of a comparison may have seen different ones) and counts the
// others under OtherWorkflow.
func (s *cmpStats) foldWorkflows() {
	if s.namedWorkflows() <= MaxWorkflows {
		return
	}
	names := make([]string, 0, len(s.Workflows))
	for name := range s.Workflows {
		if name != OtherWorkflow {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if n := cmpInt(s.Workflows[b].Pairs, s.Workflows[a].Pairs); n != 0 {
			return n
		}
		return strings.Compare(a, b)
	})
	other := s.Workflows[OtherWorkflow]
	if other == nil {
		other = &cmpStats{}
		s.Workflows[OtherWorkflow] = other
	}
	for _, name := range names[MaxWorkflows:] {
		other.merge(s.Workflows[name])
		delete(s.Workflows, name)
	}
}

// cmpInt compares two integers as cmp.Compare does.
func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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
	stats := e.stats.clone()
	e.mu.Unlock()
	own := d.Replicas[c.holder]
	// A replica of an earlier version, writing the document, drops the
	// fields it does not know of the others' parts: they are written
	// again.
	if own != nil && !dirty && own.Shadowed == used && own.Pairs == stats.Pairs &&
		own.Primary.CostMicros == stats.Primary.CostMicros && len(own.Workflows) == len(stats.Workflows) {
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
		stats.merge(s)
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
	stats.foldWorkflows()
	return shadowed, stats
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
