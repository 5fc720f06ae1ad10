package policy

import (
	"math"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/provider"
)

// maxChoice is the most providers one weighted choice weighs; the rest of
// a longer list takes no part in it (they still follow in the plan).
const maxChoice = 16

// candidate is one provider of a weighted choice and what weighs it.
type candidate struct {
	provider *provider.Provider
	prior    int
	left     float64
	cooling  bool
	latency  time.Duration
	weight   float64
	// unsure is set for a supplier's own key that veil does not know it
	// holds.
	unsure bool
}

// choice is the candidates of one weighted choice, kept on the stack.
type choice struct {
	c     [maxChoice]candidate
	n     int
	total float64
	// byPrior is set when the weights are the priors alone: load-aware
	// routing is off, or it left every candidate at zero.
	byPrior bool
}

// keyState says what veil knows of a supplier's own key for a provider.
type keyState uint8

const (
	keyUnknown keyState = iota
	keyHeld
	keyMissing
)

// clientKey says whether the request's supplier has its own key for pr:
// config names one; config names none and keys come from config only; or
// what Request.Keys knows of the key store's answer.
func (p *Policy) clientKey(req *Request, pr *provider.Provider) keyState {
	if p.clientKeys[string(req.Supplier)][pr.Name()] {
		return keyHeld
	}
	if p.keysOnly {
		return keyMissing
	}
	if req.Keys == nil {
		return keyUnknown
	}
	switch has, known := req.Keys.ClientKey(req.Supplier, pr.Name()); {
	case !known:
		return keyUnknown
	case has:
		return keyHeld
	}
	return keyMissing
}

// weigh fills ch with the providers of ws that can serve model with keys
// of source for the request's supplier, placed in its region, and their
// weights: the prior weight, times, with load-aware routing on, the share
// of the provider's rate limits left (platform keys only: a supplier's own
// key says nothing of them) and the latency factor. A provider held out by
// a 429 or below the minimum headroom weighs nothing, unless all do, when
// the priors decide alone.
func (p *Policy) weigh(ch *choice, ws []weighted, req *Request, model []byte, rg *region, source billing.KeySource) {
	p.gather(ch, ws, req, model, rg, source)
	if p.loadAware && req.Load != nil {
		p.loadWeights(ch, req, source)
		if ch.total > 0 {
			return
		}
	}
	ch.byPrior, ch.total = true, 0
	for i := range ch.n {
		ch.c[i].weight = float64(ch.c[i].prior)
		ch.total += ch.c[i].weight
	}
}

// gather fills ch with the candidates of ws. A supplier's own key counts
// where veil holds it, or, when it holds none of them, where it is not
// known to be missing.
func (p *Policy) gather(ch *choice, ws []weighted, req *Request, model []byte, rg *region, source billing.KeySource) {
	held := false
	for _, w := range ws {
		pr, _ := rg.place(w.provider, source, "")
		if !pr.Serves(model) || !usable(pr, source) || !rg.admits(pr) {
			continue
		}
		ks := keyUnknown
		if source == billing.ClientKey {
			if ks = p.clientKey(req, pr); ks == keyMissing {
				continue
			}
			held = held || ks == keyHeld
		}
		if i := ch.index(pr); i >= 0 { // two providers placed on one deployment
			ch.c[i].prior += w.weight
			continue
		}
		if ch.n == maxChoice {
			break
		}
		ch.c[ch.n] = candidate{provider: pr, prior: w.weight, left: 1, unsure: source == billing.ClientKey && ks == keyUnknown}
		ch.n++
	}
	if !held {
		return
	}
	kept := 0 // where the key is held, not where it might be
	for i := range ch.n {
		if !ch.c[i].unsure {
			ch.c[kept] = ch.c[i]
			kept++
		}
	}
	ch.n = kept
}

// loadWeights weighs the candidates by their load.
func (p *Policy) loadWeights(ch *choice, req *Request, source billing.KeySource) {
	var best time.Duration
	for i := range ch.n {
		c := &ch.c[i]
		left, cooling, latency := req.Load.Load(c.provider.Name(), req.Now)
		if source == billing.PlatformKey {
			c.left, c.cooling = left, cooling
		}
		c.latency = latency
		if latency > 0 && (best == 0 || latency < best) {
			best = latency
		}
	}
	for i := range ch.n {
		c := &ch.c[i]
		if c.cooling || c.left < p.floor {
			continue
		}
		c.weight = float64(c.prior) * c.left
		if p.exponent > 0 && best > 0 && c.latency > 0 {
			f := float64(best) / float64(c.latency)
			if p.exponent != 1 {
				f = math.Pow(f, p.exponent)
			}
			c.weight *= f
		}
		ch.total += c.weight
	}
}

// index is the position of pr among the candidates, or -1.
func (ch *choice) index(pr *provider.Provider) int {
	for i := range ch.n {
		if ch.c[i].provider == pr {
			return i
		}
	}
	return -1
}

// choose is the provider a weighted choice among ws picks for the request,
// by its spread number; nil when none of ws can serve it.
func (p *Policy) choose(ws []weighted, req *Request, model []byte, rg *region, source billing.KeySource) *provider.Provider {
	var ch choice
	p.weigh(&ch, ws, req, model, rg, source)
	if ch.total <= 0 {
		return nil
	}
	if ch.byPrior && !p.loadAware {
		// Whole weights, as before load-aware routing: the spread number
		// modulo their sum.
		pick := int(req.Spread % uint64(ch.total))
		for i := range ch.n {
			if w := ch.c[i].prior; pick < w {
				return ch.c[i].provider
			}
			pick -= ch.c[i].prior
		}
		return nil
	}
	// A uniform number in [0, 1) from the spread number's high bits,
	// mixed once more so that small counters spread too.
	u := float64((req.Spread*0x9E3779B97F4A7C15)>>11) / (1 << 53)
	pick := u * ch.total
	for i := range ch.n {
		if w := ch.c[i].weight; w > 0 {
			if pick < w {
				return ch.c[i].provider
			}
			pick -= w
		}
	}
	for i := ch.n - 1; i >= 0; i-- { // rounding left pick at the very end
		if ch.c[i].weight > 0 {
			return ch.c[i].provider
		}
	}
	return nil
}

// saturated says why load-aware routing sends a provider's platform-key
// attempts last: a 429 holds it out, or its headroom is below the minimum;
// "" when neither.
func (p *Policy) saturated(req *Request, pr *provider.Provider) string {
	left, cooling, _ := req.Load.Load(pr.Name(), req.Now)
	switch {
	case cooling:
		return ReasonRateLimited
	case left < p.floor:
		return ReasonLowHeadroom
	}
	return ""
}

// maxDemoted is the most attempts demote moves in one plan.
const maxDemoted = 8

// demote moves, with load-aware routing on, the platform-key attempts from
// n on whose provider is held out by a 429 or low on headroom to the end
// of the plan, keeping their order, unless every attempt would move.
func (p *Policy) demote(dst []Attempt, n int, req *Request) []Attempt {
	if !p.loadAware || req.Load == nil || len(dst)-n < 2 {
		return dst
	}
	var moved [maxDemoted]Attempt
	m, kept := 0, n
	for i := n; i < len(dst); i++ {
		a := dst[i]
		if a.Source == billing.PlatformKey && m < maxDemoted {
			if why := p.saturated(req, a.Provider); why != "" {
				a.Reason = why
				moved[m] = a
				m++
				continue
			}
		}
		dst[kept] = a
		kept++
	}
	if kept == n { // every attempt would move: the order stays
		return dst
	}
	copy(dst[kept:], moved[:m])
	return dst
}

// withoutMissingKeys drops, in place, the attempts from n on that would
// use a supplier's own key that is known to be missing, unless every
// attempt would go: the call then fails with the missing key's answer.
func (p *Policy) withoutMissingKeys(dst []Attempt, n int, req *Request) []Attempt {
	kept := n
	for i := n; i < len(dst); i++ {
		if dst[i].Source != billing.ClientKey || p.clientKey(req, dst[i].Provider) != keyMissing {
			dst[kept] = dst[i]
			kept++
		}
	}
	if kept == n {
		return dst
	}
	return dst[:kept]
}

// Choice is one provider of a weighted choice, as an explanation shows it.
type Choice struct {
	Provider string `json:"provider"`
	// Prior is the configured weight (a season's spread, a route's
	// weights).
	Prior int `json:"prior_weight"`
	// Headroom is the share of the provider's rate limits left (1 when
	// nothing tells, and for a supplier's own key).
	Headroom float64 `json:"headroom"`
	// RateLimited is set while a 429 holds the provider out.
	RateLimited bool `json:"rate_limited,omitempty"`
	// LatencyMS is the provider's recent time to response headers.
	LatencyMS float64 `json:"latency_ewma_ms,omitempty"`
	// Weight is what the choice weighs it with, Share its chance of being
	// tried first.
	Weight float64 `json:"weight"`
	Share  float64 `json:"share"`
}

// Choices explains the weighted choice that picks the first attempt of
// req's plan: each candidate's prior weight, headroom, latency and share.
// It is nil when the plan makes no such choice (no season spread or route
// weights apply, or a migration's or the supplier's preferred provider
// goes first).
func (p *Policy) Choices(req *Request) []Choice {
	if !req.Understood {
		return nil
	}
	first, _ := p.sources(req)
	se := p.activeSeason(req.Now)
	r := p.route(se, req.Workflow)
	model := p.model(req.Model, r)
	if len(model) == 0 {
		return nil
	}
	var ws []weighted
	switch moved := p.migrationProvider(req.Provider, model); {
	case r != nil && len(r.providers) > 0:
		ws = r.weighted
	case moved != nil && usable(moved, first), preferred(p.preferred[string(req.Supplier)], model, first):
	default:
		ws = p.spreading(se, req.Supplier)
	}
	if len(ws) == 0 {
		return nil
	}
	var ch choice
	p.weigh(&ch, ws, req, model, p.regions[string(req.Supplier)], first)
	if ch.total <= 0 {
		return nil
	}
	out := make([]Choice, ch.n)
	for i := range ch.n {
		c := ch.c[i]
		out[i] = Choice{Provider: c.provider.Name(), Prior: c.prior, Headroom: round4(c.left), RateLimited: c.cooling,
			LatencyMS: round4(float64(c.latency) / float64(time.Millisecond)), Weight: round4(c.weight),
			Share: round4(c.weight / ch.total)}
	}
	return out
}

// round4 rounds to four decimals, for explanations.
func round4(f float64) float64 { return math.Round(f*1e4) / 1e4 }

// preferred reports whether a supplier's preferred provider pr goes first.
func preferred(pr *provider.Provider, model []byte, source billing.KeySource) bool {
	return pr != nil && pr.Serves(model) && usable(pr, source)
}
