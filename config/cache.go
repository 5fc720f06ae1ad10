package config

import (
	"fmt"
	"time"
)

// Defaults of the cache section.
const (
	// DefaultCacheMaxCostBytes bounds the memory cached answers take.
	DefaultCacheMaxCostBytes = 256 << 20
	// DefaultCacheExpectedEntries is how many answers the cache is sized
	// for; ristretto keeps ten times as many admission counters.
	DefaultCacheExpectedEntries = 100_000
	// DefaultCacheTTL is how long a cached answer is served.
	DefaultCacheTTL = time.Hour
)

// Cache scopes of a route.
const (
	// CacheSupplier caches answers per supplier: suppliers never share one.
	CacheSupplier = "supplier"
	// CacheShared caches the route's answers once for every supplier.
	CacheShared = "shared"
	// CacheOff turns caching off.
	CacheOff = "off"
)

// Cache configures the response cache: deterministic calls (embeddings;
// chat completions and completions with temperature 0 or a seed, and one
// choice) are answered from memory when the same request was answered
// before.
type Cache struct {
	// Enabled turns the cache on; default true.
	Enabled *bool `yaml:"enabled"`
	// MaxCostBytes bounds the memory the cached answers take. Default 256
	// MiB.
	MaxCostBytes int64 `yaml:"max_cost_bytes"`
	// ExpectedEntries is how many answers the cache is sized for. Default
	// 100000.
	ExpectedEntries int64 `yaml:"expected_entries"`
	// TTL is how long an answer is served from the cache. Default 1h.
	TTL time.Duration `yaml:"ttl"`
	// SingleFlight makes identical requests that miss at the same time wait
	// for the first one's answer instead of each calling the provider.
	// Default true.
	SingleFlight *bool `yaml:"single_flight"`
}

// On reports whether the cache is enabled.
func (c Cache) On() bool { return c.Enabled == nil || *c.Enabled }

// Collapse reports whether identical concurrent misses share one call.
func (c Cache) Collapse() bool { return c.SingleFlight == nil || *c.SingleFlight }

func (c *Config) applyCacheDefaults() {
	ca := &c.Cache
	if ca.MaxCostBytes == 0 {
		ca.MaxCostBytes = DefaultCacheMaxCostBytes
	}
	if ca.ExpectedEntries == 0 {
		ca.ExpectedEntries = DefaultCacheExpectedEntries
	}
	setDuration(&ca.TTL, DefaultCacheTTL)
}

func (v *validator) cache() {
	ca := v.c.Cache
	if ca.MaxCostBytes < 0 {
		v.fail("cache.max_cost_bytes", "must be a positive number of bytes, got %d", ca.MaxCostBytes)
	}
	if ca.ExpectedEntries < 0 {
		v.fail("cache.expected_entries", "must be positive, got %d", ca.ExpectedEntries)
	}
	v.timeout("cache.ttl", ca.TTL, false)
	for i, r := range v.c.Routes {
		switch r.Cache {
		case "", CacheSupplier, CacheShared, CacheOff:
		default:
			v.fail(fmt.Sprintf("routes[%d].cache", i), "must be %s, %s or %s, got %q", CacheSupplier, CacheShared, CacheOff, r.Cache)
		}
	}
	for i, t := range v.c.Tiers {
		switch t.Cache {
		case "", "on", CacheOff:
		default:
			v.fail(fmt.Sprintf("tiers[%d].cache", i), "must be on or off, got %q", t.Cache)
		}
	}
}
