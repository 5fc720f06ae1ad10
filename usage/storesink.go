package usage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/wedsync/veil/store"
)

// Retries of the store sink. StoreRetryBudget is well within
// store.AppliedTTL, how long the store remembers an applied delta.
const (
	// StoreRetryBudget bounds how long the store sink keeps trying the
	// deltas of one batch.
	StoreRetryBudget = 30 * time.Second
	// storeAttemptTimeout bounds one AddUsage.
	storeAttemptTimeout = 2 * time.Second
	// storeMinBackoff and storeMaxBackoff bound the wait between two
	// attempts of a delta, which doubles with jitter.
	storeMinBackoff = 100 * time.Millisecond
	storeMaxBackoff = 2 * time.Second
)

// NewStoreSink returns a sink that adds every record to the store's daily
// usage aggregates (per supplier, provider, model, key source, payer and
// workflow), which
// the admin usage report and monthly tier budgets read.
//
// Each record is counted at most once: a batch is folded into one delta
// per aggregate, each delta gets an id (a random id of the batch and the
// delta's index) that the store applies at most once, and a delta that
// fails, even by a timeout that may have reached the store, is tried
// again with the same id, for up to StoreRetryBudget. The records of the
// deltas still not applied then are reported in a *PartialError, and so
// counted as dropped for this sink: the aggregates plus the dropped count
// equal the records with a supplier. Records without a supplier have no
// aggregate and count as delivered.
//
// Records that come from a spool are also counted once when they are
// replayed after a crash, batched otherwise: their deltas carry the
// identity of the spool's run that appended them and their first and
// last sequence numbers, and the store applies a delta only above the
// highest number of that run it applied to the aggregate (its mark, see
// store.Aggregates.AddUsageSeq). A delta whose records were all applied
// before is skipped (and counts as delivered); one that straddles the
// mark is sent again with only the records above it. This holds because
// a run has one writer, the emitter queues records in the order of their
// numbers, and a batch is written whole before the next.
func NewStoreSink(s store.Aggregates) Sink {
	return &storeSink{s: s, budget: StoreRetryBudget, attemptTimeout: storeAttemptTimeout,
		minBackoff: storeMinBackoff, maxBackoff: storeMaxBackoff}
}

var _ Stopper = (*storeSink)(nil)

type storeSink struct {
	s store.Aggregates
	// stop is closed when the emitter closes: retries end at once. It is
	// made on first use (stopCh).
	stop             chan struct{}
	stopMake, stopDo sync.Once

	budget, attemptTimeout, minBackoff, maxBackoff time.Duration
}

func (k *storeSink) Name() string { return "aggregates" }

// storeDelta is the delta of one aggregate and the records folded in it.
// When the records come from a spool, source is the run that appended
// them and first and last their lowest and highest sequence numbers;
// otherwise these are empty and zero.
type storeDelta struct {
	u           store.Usage
	records     []*Record
	source      string
	first, last uint64
}

// Write folds a batch into one delta per aggregate and adds each, retried
// until it is applied or the retry budget is spent.
func (k *storeSink) Write(batch []*Record) error {
	deltas := foldDeltas(batch)
	if len(deltas) == 0 {
		return nil
	}
	batchID := rand.Text() // 130 random bits, 26 characters
	deadline := time.Now().Add(k.budget)
	var (
		failed  []*Record
		errs    []error
		untried int
		closed  bool
	)
	for i, d := range deltas {
		if closed || !time.Now().Before(deadline) {
			// Never sent: certainly not applied.
			failed = append(failed, d.records...)
			untried++
			continue
		}
		id := batchID + "." + strconv.Itoa(i)
		var err error
		notApplied := d.records
		if d.first == 0 {
			err = k.add(deadline, func(ctx context.Context) error { return k.s.AddUsage(ctx, id, d.u) })
		} else {
			notApplied, err = k.addSeq(id, d, deadline)
		}
		if err != nil {
			failed = append(failed, notApplied...)
			errs = append(errs, fmt.Errorf("delta %d of %d (%d records): %w", i+1, len(deltas), len(notApplied), err))
			closed = errors.Is(err, store.ErrClosed)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	if untried > 0 {
		errs = append(errs, fmt.Errorf("%d more deltas not tried: retry budget of %v spent or store closed", untried, k.budget))
	}
	return &PartialError{Failed: failed, Err: errors.Join(errs...)}
}

// addSeq adds a delta of numbered records under id and the spool's mark,
// as add does. When the mark straddles the delta (a replay after a
// crash, batched otherwise), the records up to it were applied before:
// the others are folded again and sent under an id of their own. On an
// error it returns the records not applied.
func (k *storeSink) addSeq(id string, d storeDelta, deadline time.Time) ([]*Record, error) {
	base := id
	// Each round drops at least the delta's first record: it ends.
	for {
		var w uint64
		err := k.add(deadline, func(ctx context.Context) error {
			var err error
			w, err = k.s.AddUsageSeq(ctx, id, d.u, store.UsageSeq{Source: d.source, First: d.first, Last: d.last})
			return err
		})
		if err != nil {
			return d.records, err
		}
		if w < d.first || w >= d.last {
			return nil, nil // applied now, or before
		}
		var above []*Record
		for _, r := range d.records {
			if r.SpoolSeq > w {
				above = append(above, r)
			}
		}
		refolded := foldDeltas(above)
		if len(refolded) != 1 {
			return above, fmt.Errorf("records above mark %d fold into %d deltas, want 1", w, len(refolded))
		}
		d, id = refolded[0], base+"~"+strconv.FormatUint(w, 10)
	}
}

// add calls try, which adds one delta under its id, retrying with backoff
// until it is applied, fails for good (invalid, or the store closed) or
// deadline passes. An error means the delta was not applied, except when
// the last attempt timed out: that attempt may yet be applied, and the
// delta is still reported (the only way its records are counted twice,
// once in the aggregates and once dropped, is a store unreachable for the
// whole budget that then runs a stale attempt).
func (k *storeSink) add(deadline time.Time, try func(ctx context.Context) error) error {
	backoff := k.minBackoff
	afterStop := 0
	for {
		end := time.Now().Add(k.attemptTimeout)
		if end.After(deadline) {
			end = deadline
		}
		ctx, cancel := context.WithDeadline(context.Background(), end)
		err := try(ctx)
		cancel()
		if err == nil || errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrClosed) {
			return err
		}
		if k.stopping() {
			// veil is stopping: a few more tries at once, no waits, then
			// what is not applied is reported.
			if afterStop++; afterStop > stopTries {
				return err
			}
			continue
		}
		wait := jitter(backoff)
		if !time.Now().Add(wait).Before(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-k.stopCh():
			t.Stop()
		}
		backoff = min(2*backoff, k.maxBackoff)
	}
}

// foldDeltas folds the records with a supplier into one delta per
// aggregate and spool run, in the order of their first records. Records
// of a spool's run fold apart from those without one (no spool, or one
// that could not keep them, or of a version before runs), and their
// deltas carry their first and last numbers.
func foldDeltas(batch []*Record) []storeDelta {
	type key struct {
		day                                                            int64
		supplier, provider, model, keySource, billed, workflow, source string
	}
	index := map[key]int{}
	var deltas []storeDelta
	for _, r := range batch {
		if r == nil || r.Supplier == "" {
			continue
		}
		day := r.TS.UTC().Truncate(24 * time.Hour)
		source := r.spoolSource
		if r.SpoolSeq == 0 {
			source = ""
		}
		k := key{day.Unix(), r.Supplier, r.Provider, r.Model, string(r.KeySource), string(r.Billed), r.Workflow, source}
		i, ok := index[k]
		if !ok {
			i = len(deltas)
			index[k] = i
			deltas = append(deltas, storeDelta{u: store.Usage{Day: day, Supplier: r.Supplier, Provider: r.Provider,
				Model: r.Model, KeySource: k.keySource, Billed: k.billed, Workflow: r.Workflow}, source: source})
		}
		d := &deltas[i]
		if source != "" {
			if d.first == 0 || r.SpoolSeq < d.first {
				d.first = r.SpoolSeq
			}
			d.last = max(d.last, r.SpoolSeq)
		}
		d.records = append(d.records, r)
		d.u.Requests++
		d.u.PromptTokens += r.PromptTokens
		d.u.CompletionTokens += r.CompletionTokens
		d.u.CachedTokens += r.CachedTokens
		if r.CostMicros != nil {
			d.u.CostMicros += *r.CostMicros
		} else if r.CostUSD != nil { // a record made before costs were kept in micro-dollars
			d.u.CostMicros += int64(math.Round(*r.CostUSD * 1e6))
		}
	}
	return deltas
}

func (k *storeSink) Close() error { return nil }

// Stop ends the retries of a store that does not answer: veil is stopping.
func (k *storeSink) Stop() { ch := k.stopCh(); k.stopDo.Do(func() { close(ch) }) }

// stopTries is how many more tries a delta gets once veil is stopping.
const stopTries = 2

func (k *storeSink) stopping() bool {
	select {
	case <-k.stopCh():
		return true
	default:
		return false
	}
}

func (k *storeSink) stopCh() chan struct{} {
	k.stopMake.Do(func() { k.stop = make(chan struct{}) })
	return k.stop
}
