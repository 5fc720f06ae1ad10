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

// rate is a Price in integer picodollars per token (a dollar per million
// tokens is a million picodollars per token), so that costs add up
// exactly.
type rate struct {
	input, cachedInput, output int64
	effective                  time.Time
}

// picosPerToken converts a price per million tokens to picodollars per
// token, rounded to the nearest.
func picosPerToken(perMTok float64) int64 { return int64(math.Round(perMTok * 1e6)) }

// PriceTable prices calls by provider, model and time. It is safe for
// concurrent use.
type PriceTable struct {
	prices map[priceKey][]rate // each sorted by effective

	mu      sync.Mutex
	unknown map[priceKey]struct{}
}

// NewPriceTable returns a table of prices, refusing a negative or non-finite
// price, an empty provider or model, and two prices for the same provider
// and model with the same effective time. Provider and model names are
// matched exactly.
func NewPriceTable(prices []Price) (*PriceTable, error) {
	t := &PriceTable{
		prices:  make(map[priceKey][]rate),
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
		if max(p.InputPerMTok, p.CachedInputPerMTok, p.OutputPerMTok) > maxPerMTok {
			return nil, fmt.Errorf("price %d (%s/%s): over $%d per million tokens", i, p.Provider, p.Model, maxPerMTok)
		}
		k := priceKey{p.Provider, p.Model}
		r := rate{input: picosPerToken(p.InputPerMTok), cachedInput: picosPerToken(p.CachedInputPerMTok),
			output: picosPerToken(p.OutputPerMTok), effective: p.Effective}
		if r.cachedInput == 0 {
			r.cachedInput = r.input
		}
		t.prices[k] = append(t.prices[k], r)
	}
	for k, ps := range t.prices {
		slices.SortStableFunc(ps, func(a, b rate) int { return a.effective.Compare(b.effective) })
		for i := 1; i < len(ps); i++ {
			if ps[i].effective.Equal(ps[i-1].effective) {
				return nil, fmt.Errorf("prices of %s/%s: two take effect at %s", k.provider, k.model, ps[i].effective.Format(time.RFC3339))
			}
		}
	}
	return t, nil
}

// maxPerMTok bounds a price, so that a call's cost in picodollars cannot
// overflow: $1,000,000 per million tokens over three counts of maxTokens
// is still within int64.
const maxPerMTok = 1_000_000

// CostMicros returns the price in micro-dollars (millionths of a US
// dollar, rounded to the nearest) of a call made at time at: uncached
// prompt tokens (prompt-cached) at the input price, cached tokens at the
// cached input price (the input price when that is 0) and completion
// tokens at the output price. Costs are summed in integer picodollars, so
// they add up exactly. The price that applies is the latest whose
// Effective is not after at. ok is false for an unknown provider or model,
// or a time before its first price. Negative counts, and cached tokens
// beyond prompt, count as zero. CostMicros does not allocate.
func (t *PriceTable) CostMicros(provider, model string, at time.Time, prompt, cached, completion int64) (micros int64, ok bool) {
	if t == nil {
		return 0, false
	}
	ps := t.prices[priceKey{provider, model}]
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].effective.After(at) {
			continue
		}
		r := &ps[i]
		prompt, cached, completion = clampTokens(prompt), clampTokens(cached), clampTokens(completion)
		cached = min(cached, prompt)
		picos := (prompt-cached)*r.input + cached*r.cachedInput + completion*r.output
		return (picos + picosPerMicro/2) / picosPerMicro, true
	}
	return 0, false
}

// maxTokens bounds each token count priced (far above any model's
// window), so that the sum in picodollars cannot overflow.
const maxTokens = 8 << 20

func clampTokens(n int64) int64 { return min(max(n, 0), maxTokens) }

// picosPerMicro is how many picodollars make a micro-dollar.
const picosPerMicro = 1_000_000

// Cost is CostMicros in US dollars, for display.
func (t *PriceTable) Cost(provider, model string, at time.Time, prompt, cached, completion int64) (usd float64, ok bool) {
	micros, ok := t.CostMicros(provider, model, at, prompt, cached, completion)
	return MicrosToUSD(micros), ok
}

// MicrosToUSD converts micro-dollars to dollars, for display only.
func MicrosToUSD(micros int64) float64 { return float64(micros) / 1e6 }

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
