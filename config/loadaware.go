package config

import (
	"fmt"
	"time"
)

// Defaults of load-aware routing (ADR 0028).
const (
	// DefaultMinHeadroom is the share of a provider's rate limit below
	// which load-aware routing sends it only calls nobody else can take.
	DefaultMinHeadroom = 0.1
	// DefaultLatencyWeight is the exponent of the latency factor.
	DefaultLatencyWeight = 1.0
	// DefaultHeadroomInterval is how often each replica shares headroom.
	DefaultHeadroomInterval = time.Second
)

// LoadAware weighs a choice among providers by what is left of their
// platform keys' rate limits and by how fast they answer, as every replica
// sees them through the store (ADR 0028).
type LoadAware struct {
	// Enabled turns load-aware choice on: a season's spread and a route's
	// weights are multiplied by each provider's headroom and latency
	// factors, and a provider low on headroom or held out by a 429 goes to
	// the end of every plan with platform keys. Off by default.
	Enabled bool `yaml:"enabled"`
	// MinHeadroom is the share of a provider's tightest rate limit, from 0
	// to 1, below which it takes only calls no other provider can: it
	// weighs nothing in a choice and goes last in a plan. Absent means
	// DefaultMinHeadroom (0.1); use Floor to read it.
	MinHeadroom *float64 `yaml:"min_headroom"`
	// LatencyWeight is the exponent of the latency factor (the fastest
	// candidate's moving average over the provider's): 1 halves the
	// weight of a provider twice as slow, 0 ignores latency. Absent means
	// DefaultLatencyWeight (1); use Exponent to read it.
	LatencyWeight *float64 `yaml:"latency_weight"`
}

// Floor is MinHeadroom, with absent read as the default.
func (l LoadAware) Floor() float64 {
	if l.MinHeadroom == nil {
		return DefaultMinHeadroom
	}
	return *l.MinHeadroom
}

// Exponent is LatencyWeight, with absent read as the default.
func (l LoadAware) Exponent() float64 {
	if l.LatencyWeight == nil {
		return DefaultLatencyWeight
	}
	return *l.LatencyWeight
}

// RegionStrict reports whether a supplier's calls must stay in its
// region: its own region_strict, or its region's strict.
func (c *Config) RegionStrict(e *Supplier) bool {
	if e.Region == "" {
		return false
	}
	if e.RegionStrict {
		return true
	}
	r, ok := find(c.Regions, func(r *Region) string { return r.Name }, e.Region)
	return ok && r.Strict
}

// loadAware checks load-aware routing, route weights and strict regions.
func (v *validator) loadAware() {
	la := v.c.Routing.LoadAware
	if f := la.Floor(); !(f >= 0 && f < 1) {
		v.fail("routing.load_aware.min_headroom", "must be at least 0 and below 1, got %v", f)
	}
	if e := la.Exponent(); !(e >= 0 && e <= 10) {
		v.fail("routing.load_aware.latency_weight", "must be between 0 and 10, got %v", e)
	}
	v.timeout("store.headroom_interval", v.c.Store.HeadroomInterval, false)
	if d := v.c.Store.HeadroomInterval; d > 0 && d < 100*time.Millisecond {
		v.fail("store.headroom_interval", "must be at least 100ms, got %s", d)
	}
	for i, r := range v.c.Routes {
		v.routeWeights(fmt.Sprintf("routes[%d]", i), r)
	}
	for i, s := range v.c.Seasons {
		for j, r := range s.Routes {
			v.routeWeights(fmt.Sprintf("seasons[%d].routes[%d]", i, j), r)
		}
	}
	for i, r := range v.c.Regions {
		if r.Strict && len(r.Providers) == 0 {
			v.fail(fmt.Sprintf("regions[%d].strict", i), "needs providers: a strict region without any would refuse every call")
		}
	}
	for i, e := range v.c.Suppliers.Entries {
		if e.RegionStrict && e.Region == "" {
			v.fail(fmt.Sprintf("suppliers.entries[%d].region_strict", i), "needs a region to keep the supplier's calls in")
		}
	}
}

// routeWeights checks a route's weights: each names one of its providers
// and is not negative, and one at least is positive.
func (v *validator) routeWeights(path string, r Route) {
	if len(r.Weights) == 0 {
		return
	}
	if len(r.Providers) == 0 {
		v.fail(path+".weights", "needs providers to weigh")
		return
	}
	total := 0
	for p, w := range r.Weights {
		known := false
		for _, rp := range r.Providers {
			known = known || rp == p
		}
		if !known {
			v.fail(path+".weights."+p, "%q is not among the route's providers", p)
		}
		if w < 0 {
			v.fail(path+".weights."+p, "must not be negative, got %d", w)
		}
		total += max(w, 0)
	}
	if total == 0 {
		v.fail(path+".weights", "must give one provider at least a positive weight")
	}
}
