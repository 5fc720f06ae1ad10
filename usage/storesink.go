package usage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/wedsync/veil/store"
)

// NewStoreSink returns a sink that adds every record to the store's daily
// usage aggregates (per supplier, provider, model and key source), which
// the admin usage report and monthly tier budgets read.
func NewStoreSink(s store.Aggregates) Sink { return &storeSink{s: s} }

type storeSink struct{ s store.Aggregates }

func (k *storeSink) Name() string { return "aggregates" }

// Write folds a batch into one delta per aggregate before adding it.
func (k *storeSink) Write(batch []*Record) error {
	type key struct {
		day                                  int64
		supplier, provider, model, keySource string
	}
	deltas := map[key]*store.Usage{}
	for _, r := range batch {
		if r == nil || r.Supplier == "" {
			continue
		}
		day := r.TS.UTC().Truncate(24 * time.Hour)
		k := key{day.Unix(), r.Supplier, r.Provider, r.Model, string(r.KeySource)}
		d := deltas[k]
		if d == nil {
			d = &store.Usage{Day: day, Supplier: r.Supplier, Provider: r.Provider, Model: r.Model, KeySource: string(r.KeySource)}
			deltas[k] = d
		}
		d.Requests++
		d.PromptTokens += r.PromptTokens
		d.CompletionTokens += r.CompletionTokens
		d.CachedTokens += r.CachedTokens
		if r.CostUSD != nil {
			d.CostMicros += int64(math.Round(*r.CostUSD * 1e6))
		}
	}
	// Each delta is tried a few times on its own: retrying the whole batch
	// would give its deltas new ids. What still fails is reported as
	// permanent (counted as dropped for this sink).
	// Each delta has an id, the batch's and its index, that the store
	// applies at most once: a retry after a timeout that had reached the
	// store does not count twice.
	batchID := rand.Text()
	var errs []error
	i := 0
	for _, d := range deltas {
		id := batchID + "." + strconv.Itoa(i)
		i++
		var err error
		for attempt := range 3 {
			if attempt > 0 {
				time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = k.s.AddUsage(ctx, id, *d)
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	return nil
}

func (k *storeSink) Close() error { return nil }
