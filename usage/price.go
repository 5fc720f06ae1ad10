package usage

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// maxUnknown caps how many unknown provider/model pairs a PriceTable
// remembers for Unknown.
const maxUnknown = 1024

// Price is what a provider charges for a model from Effective on, in US
// dollars per million tokens.
type Price struct {
	Provider string
	Model    string
	// InputPerMTok is the price of prompt tokens that were not cached.
	InputPerMTok float64
	// CachedInputPerMTok is the price of cached prompt tokens; 0 means the
	// provider has no cached price and InputPerMTok applies.
	CachedInputPerMTok float64
	// OutputPerMTok is the price of completion tokens.
	OutputPerMTok float64
	// Effective is when the price starts to apply.
	Effective time.Time
}

type priceKey struct {
	provider, model string
}

// PriceTable prices calls by provider, model and time. It is safe for
// concurrent use.
type PriceTable struct {
	prices map[priceKey][]Price // each sorted by Effective

	mu      sync.Mutex
	unknown map[priceKey]struct{}
}

// NewPriceTable returns a table of prices, refusing a negative or non-finite
// price, an empty provider or model, and two prices for the same provider
// and model with the same effective time. Provider and model names are
// matched exactly.
func NewPriceTable(prices []Price) (*PriceTable, error) {
	t := &PriceTable{
		prices:  make(map[priceKey][]Price),
		unknown: make(map[priceKey]struct{}),
	}
	for i, p := range prices {
		if p.Provider == "" || p.Model == "" {
			return nil, fmt.Errorf("price %d: empty provider or model", i)
		}
		for _, v := range []struct {
			name string
			usd  float64
		}{{"input", p.InputPerMTok}, {"cached input", p.CachedInputPerMTok}, {"output", p.OutputPerMTok}} {
			if v.usd < 0 || math.IsNaN(v.usd) || math.IsInf(v.usd, 0) {
				return nil, fmt.Errorf("price %d (%s/%s): %s price %v is not a non-negative number", i, p.Provider, p.Model, v.name, v.usd)
			}
		}
		k := priceKey{p.Provider, p.Model}
		t.prices[k] = append(t.prices[k], p)
	}
	for k, ps := range t.prices {
		slices.SortStableFunc(ps, func(a, b Price) int { return a.Effective.Compare(b.Effective) })
		for i := 1; i < len(ps); i++ {
			if ps[i].Effective.Equal(ps[i-1].Effective) {
				return nil, fmt.Errorf("prices of %s/%s: two take effect at %s", k.provider, k.model, ps[i].Effective.Format(time.RFC3339))
			}
		}
	}
	return t, nil
}

// Cost returns the price in US dollars of a call made at time at:
// uncached prompt tokens (prompt-cached) at the input price, cached tokens
// at the cached input price (the input price when that is 0) and completion
// tokens at the output price, all per million tokens. The price that applies
// is the latest whose Effective is not after at. ok is false for an unknown
// provider or model, or a time before its first price. Negative counts, and
// cached tokens beyond prompt, count as zero. Cost does not allocate.
func (t *PriceTable) Cost(provider, model string, at time.Time, prompt, cached, completion int64) (usd float64, ok bool) {
	if t == nil {
		return 0, false
	}
	ps := t.prices[priceKey{provider, model}]
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].Effective.After(at) {
			continue
		}
		p := &ps[i]
		prompt, cached, completion = max(prompt, 0), max(cached, 0), max(completion, 0)
		cached = min(cached, prompt)
		cachedPrice := p.CachedInputPerMTok
		if cachedPrice == 0 {
			cachedPrice = p.InputPerMTok
		}
		usd = float64(prompt-cached)*p.InputPerMTok + float64(cached)*cachedPrice + float64(completion)*p.OutputPerMTok
		return usd / 1e6, true
	}
	return 0, false
}

// Unknown reports whether the caller should warn about a provider/model
// pair with no price: it returns true the first time a pair the table has
// no price for is reported, and false after that, so that each such model
// is warned about once. A pair the table knows (priced from a later date)
// gives false. Only the first 1024 pairs are remembered; later ones give
// false, so that a client sending made-up model names cannot grow memory
// or the log without bound.
func (t *PriceTable) Unknown(provider, model string) bool {
	if t == nil {
		return false
	}
	k := priceKey{provider, model}
	if _, known := t.prices[k]; known {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.unknown[k]; seen || len(t.unknown) >= maxUnknown {
		return false
	}
	t.unknown[k] = struct{}{}
	return true
}
