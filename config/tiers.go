package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wedsync/veil/billing"
)

// What a tier does when a platform limit is reached.
const (
	// ExhaustedReject answers 429 with Retry-After and X-RateLimit-* headers.
	ExhaustedReject = "reject"
	// ExhaustedSwitchToClient serves the request with the supplier's own key
	// when it has one, and rejects otherwise.
	ExhaustedSwitchToClient = "switch_to_client"
)

// Defaults of the tier and store sections.
const (
	// DefaultTierMaxTokens is the completion estimate reserved when a
	// request sets no max_tokens.
	DefaultTierMaxTokens = 1024
	// DefaultStoreType is the embedded store (memory and a bbolt file).
	DefaultStoreType = "embedded"
	// DefaultStoreOnUnavailable is what happens when the store cannot be
	// reached: fail_open serves without quota checks, fail_closed rejects.
	DefaultStoreOnUnavailable = "fail_open"
)

var (
	exhaustedActions = []string{ExhaustedReject, ExhaustedSwitchToClient}
	storeTypes       = []string{"embedded", "redis"}
	storeFailModes   = []string{"fail_open", "fail_closed"}
)

// Tier limits a supplier's use of WedSync's platform keys. Zero means no
// limit. Client-key usage is the supplier's own and is not limited.
type Tier struct {
	Name              string `yaml:"name"`
	RequestsPerMinute int    `yaml:"requests_per_minute"`
	TokensPerMinute   int    `yaml:"tokens_per_minute"`
	// Concurrent bounds requests in flight at once.
	Concurrent int `yaml:"concurrent"`
	// MonthlyTokens and MonthlyCostUSD bound a calendar month (UTC).
	MonthlyTokens  int     `yaml:"monthly_tokens"`
	MonthlyCostUSD float64 `yaml:"monthly_cost_usd"`
	// OnExhausted is reject (default) or switch_to_client.
	OnExhausted string `yaml:"on_exhausted"`
	// DefaultMaxTokens is the completion estimate reserved for a request
	// without max_tokens. Default 1024.
	DefaultMaxTokens int `yaml:"default_max_tokens"`
	// Cache is on (the default) or off: off answers the tier's suppliers
	// from their providers every time.
	Cache string `yaml:"cache"`
	// MaxN caps the choices (n) one platform call may ask for; a call
	// asking for more is refused with 400.
	MaxN int `yaml:"max_n"`
	// MaxTokens caps the output tokens one platform call may ask for
	// (max_tokens, max_completion_tokens, max_output_tokens): a call asking
	// for more is refused with 400, and a call asking for none is sent
	// with this limit.
	MaxTokens int `yaml:"max_tokens"`
	// FallbackTier names the tier whose limits hold a supplier's calls
	// that fall back from its own key to platform keys (its key refused,
	// failing or out of quota), counted apart from its platform calls;
	// empty: fallback calls are held to no tier, allow_platform_fallback
	// alone decides. A client-mode supplier's own platform tier is
	// usually too small to carry its traffic through an outage.
	FallbackTier string `yaml:"fallback_tier"`
	// UpstreamInFlight caps the calls one of the tier's suppliers may have
	// in flight to one provider, on any key; zero means
	// limits.supplier_in_flight.
	UpstreamInFlight int `yaml:"upstream_in_flight"`
}

// Store configures veil's shared state: the embedded store for a single
// replica, or Redis shared by many.
type Store struct {
	// Type is embedded (default) or redis.
	Type string `yaml:"type"`
	// DataDir keeps the embedded store's durable state (bbolt); empty
	// keeps everything in memory.
	DataDir string `yaml:"data_dir"`
	// Addr is the host:port of a single Redis server (a primary without
	// automatic failover). Exactly one of addr, addrs and sentinel is
	// required for the redis store.
	Addr string `yaml:"addr"`
	// Addrs are some nodes (host:port) of a Redis Cluster; veil learns
	// the others from them. Keys of one supplier share a hash slot.
	Addrs []string `yaml:"addrs"`
	// Sentinel finds the primary through Redis Sentinel and follows its
	// failovers.
	Sentinel RedisSentinel `yaml:"sentinel"`
	// Password references the Redis servers' password, if any.
	Password SecretRef `yaml:"password"`
	// DB is the database number; a Redis Cluster has only 0.
	DB int `yaml:"db"`
	// Prefix starts every key (default "veil:"); it must not contain '{'
	// or '}', which veil uses for Redis Cluster hash tags.
	Prefix string `yaml:"prefix"`
	// Timeout bounds one store call on the request path. Default 500ms.
	Timeout time.Duration `yaml:"timeout"`
	// OnUnavailable is fail_open (default: serve without quota checks,
	// counted and logged) or fail_closed (answer 503).
	OnUnavailable string `yaml:"on_unavailable"`
	// HeadroomInterval is how often each replica publishes what it saw of
	// providers' rate limits and 429s, and reads every replica's back
	// (ADR 0028). Default 1s; at least 100ms.
	HeadroomInterval time.Duration `yaml:"headroom_interval"`
}

// Tier returns the named tier.
func (c *Config) Tier(name string) (*Tier, bool) {
	return find(c.Tiers, func(t *Tier) string { return t.Name }, name)
}

// Default window of a season named "peak" that sets no dates: the wedding
// peak, March to October.
const (
	DefaultPeakFrom = "03-01"
	DefaultPeakTo   = "10-31"
)

func (c *Config) applyTierDefaults() {
	for i := range c.Seasons {
		if s := &c.Seasons[i]; s.Name == "peak" && s.From == "" && s.To == "" {
			s.From, s.To = DefaultPeakFrom, DefaultPeakTo
		}
	}
	for i := range c.Tiers {
		t := &c.Tiers[i]
		setDefault(&t.OnExhausted, ExhaustedReject)
		setInt(&t.DefaultMaxTokens, DefaultTierMaxTokens)
	}
	s := &c.Store
	setDefault(&s.Type, DefaultStoreType)
	setDefault(&s.OnUnavailable, DefaultStoreOnUnavailable)
	setDuration(&s.Timeout, 500*time.Millisecond)
	setDuration(&s.HeadroomInterval, DefaultHeadroomInterval)
}

func (v *validator) tiers() {
	names := map[string]int{}
	for i, t := range v.c.Tiers {
		path := fmt.Sprintf("tiers[%d]", i)
		v.uniqueName(path+".name", t.Name, i, providerNames, names, "duplicate tier %q, also tiers[%d]")
		if t.RequestsPerMinute < 0 || t.TokensPerMinute < 0 || t.Concurrent < 0 || t.MonthlyTokens < 0 || t.MonthlyCostUSD < 0 || t.DefaultMaxTokens < 0 ||
			t.MaxN < 0 || t.MaxTokens < 0 || t.UpstreamInFlight < 0 {
			v.fail(path, "limits must not be negative")
		}
		if !slices.Contains(exhaustedActions, t.OnExhausted) {
			v.fail(path+".on_exhausted", "must be one of %s, got %q", strings.Join(exhaustedActions, ", "), t.OnExhausted)
		}
		if t.OnExhausted == ExhaustedSwitchToClient && !v.c.UsesSupplierKeys() {
			v.fail(path+".on_exhausted", "switch_to_client needs suppliers' own keys: enable Vault or give suppliers keys")
		}
	}
	tierRef := func(path, name string) {
		if name == "" {
			return
		}
		if _, ok := names[name]; !ok {
			v.fail(path, "%q does not name a tier", name)
		}
	}
	tierRef("suppliers.default_tier", v.c.Suppliers.DefaultTier)
	for i, t := range v.c.Tiers {
		tierRef(fmt.Sprintf("tiers[%d].fallback_tier", i), t.FallbackTier)
	}
	for i, e := range v.c.Suppliers.Entries {
		tierRef(fmt.Sprintf("suppliers.entries[%d].tier", i), e.Tier)
	}
	s := v.c.Store
	if !slices.Contains(storeTypes, s.Type) {
		v.fail("store.type", "must be one of %s, got %q", strings.Join(storeTypes, ", "), s.Type)
	}
	if !slices.Contains(storeFailModes, s.OnUnavailable) {
		v.fail("store.on_unavailable", "must be one of %s, got %q", strings.Join(storeFailModes, ", "), s.OnUnavailable)
	}
	if s.Type == "redis" {
		v.redisServers("store", redisServers{addr: s.Addr, addrs: s.Addrs, sentinel: s.Sentinel, db: s.DB})
	}
	if strings.ContainsAny(s.Prefix, "{}") {
		v.fail("store.prefix", "must not contain '{' or '}': veil puts Redis Cluster hash tags in its keys, got %q", s.Prefix)
	}
	if s.DB < 0 {
		v.fail("store.db", "must not be negative, got %d", s.DB)
	}
	if s.DataDir != "" && !strings.HasPrefix(s.DataDir, "/") {
		v.fail("store.data_dir", "must be an absolute directory, got %q", s.DataDir)
	}
	v.optionalRef("store.password", s.Password)
	v.timeout("store.timeout", s.Timeout, false)
}

// UsesSupplierKeys reports whether any supplier can use its own keys: a
// client default mode, Vault enabled, or a supplier in client mode or with
// keys of its own.
func (c *Config) UsesSupplierKeys() bool {
	if c.Suppliers.DefaultMode != billing.ModePlatform || c.Vault.Enabled {
		return true
	}
	for _, e := range c.Suppliers.Entries {
		if e.Mode != billing.ModePlatform || len(e.Keys) > 0 {
			return true
		}
	}
	return false
}
