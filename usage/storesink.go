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
type storeDelta struct {
	u       store.Usage
	records []*Record
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
		if err := k.add(batchID+"."+strconv.Itoa(i), d.u, deadline); err != nil {
			failed = append(failed, d.records...)
			errs = append(errs, fmt.Errorf("delta %d of %d (%d records): %w", i+1, len(deltas), len(d.records), err))
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

// add adds one delta under id, retrying with backoff until it is applied,
// fails for good (invalid, or the store closed) or deadline passes. An
// error means the delta was not applied, except when the last attempt
// timed out: that attempt may yet be applied, and the delta is still
// reported (the only way its records are counted twice, once in the
// aggregates and once dropped, is a store unreachable for the whole
// budget that then runs a stale attempt).
func (k *storeSink) add(id string, u store.Usage, deadline time.Time) error {
	backoff := k.minBackoff
	afterStop := 0
	for {
		end := time.Now().Add(k.attemptTimeout)
		if end.After(deadline) {
			end = deadline
		}
		ctx, cancel := context.WithDeadline(context.Background(), end)
		err := k.s.AddUsage(ctx, id, u)
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
// aggregate, in the order of their first records.
func foldDeltas(batch []*Record) []storeDelta {
	type key struct {
		day                                                    int64
		supplier, provider, model, keySource, billed, workflow string
	}
	index := map[key]int{}
	var deltas []storeDelta
	for _, r := range batch {
		if r == nil || r.Supplier == "" {
			continue
		}
		day := r.TS.UTC().Truncate(24 * time.Hour)
		k := key{day.Unix(), r.Supplier, r.Provider, r.Model, string(r.KeySource), string(r.Billed), r.Workflow}
		i, ok := index[k]
		if !ok {
			i = len(deltas)
			index[k] = i
			deltas = append(deltas, storeDelta{u: store.Usage{Day: day, Supplier: r.Supplier, Provider: r.Provider,
				Model: r.Model, KeySource: k.keySource, Billed: k.billed, Workflow: r.Workflow}})
		}
		d := &deltas[i]
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
