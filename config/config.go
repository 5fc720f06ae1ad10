// Package config holds veil's serializable configuration: a YAML file plus a
// few VEIL_* environment overrides.
//
// A configuration never contains secrets. Provider keys, caller tokens and
// the admin token are given as references (see SecretRef) that are checked
// for syntax here and resolved elsewhere at runtime.
//
// Parse decodes strictly: unknown fields, type mismatches and malformed
// durations are reported as *FieldError values that name the field path
// (for example providers[1].base_url, with zero-based indexes) and the line
// of the YAML file.
package config

import (
	"strings"
	"time"
)

// ProxyDirect as a provider's proxy_url connects without a proxy, whatever
// the environment says.
const ProxyDirect = "direct"

// Default values applied by Config.ApplyDefaults and returned by Default.
const (
	// DefaultProxyListen is the default address of the OpenAI-compatible proxy listener.
	DefaultProxyListen = "127.0.0.1:8080"
	// DefaultAdminListen is the default address of the admin listener.
	DefaultAdminListen = "127.0.0.1:9090"

	// DefaultMaxBodyBytes is the default largest accepted request body (32 MiB).
	DefaultMaxBodyBytes = 32 << 20
	// DefaultMaxHeaderBytes is the default largest request header block.
	DefaultMaxHeaderBytes = 16384
	// DefaultReadTimeout is the default time allowed to read a client request.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout is the default client write timeout; zero means none.
	DefaultWriteTimeout time.Duration = 0
	// DefaultIdleTimeout is the default keep-alive idle time of a client connection.
	DefaultIdleTimeout = 90 * time.Second
	// DefaultRequestTimeout is the default overall deadline of one upstream call.
	DefaultRequestTimeout = 10 * time.Minute
	// DefaultStreamIdleTimeout is the default longest silence between two upstream SSE events.
	DefaultStreamIdleTimeout = 60 * time.Second
	// DefaultKeepAliveInterval is the default upstream silence after which an SSE comment is sent to the client.
	DefaultKeepAliveInterval = time.Second
	// DefaultMaxEventBytes is the default largest single upstream SSE event (4 MiB).
	DefaultMaxEventBytes = 4 << 20
	// DefaultMaxResponseBytes is the default largest buffered upstream response body (64 MiB).
	DefaultMaxResponseBytes = 64 << 20

	// DefaultLogLevel is the default log level.
	DefaultLogLevel = "info"
	// DefaultLogFormat is the default log format.
	DefaultLogFormat = "json"

	// DefaultBreakerWindow is the default span of a breaker's error-rate window.
	DefaultBreakerWindow = 30 * time.Second
	// DefaultBreakerMinRequests is the default number of answered attempts a breaker's window needs.
	DefaultBreakerMinRequests = 20
	// DefaultBreakerErrorRate is the default failure share that opens a breaker.
	DefaultBreakerErrorRate = 0.5

	// DefaultMaxConns is the default connection limit per provider: enough
	// for 10,000 slow streams at once.
	DefaultMaxConns = 10000
	// DefaultConnWait is how long a call waits for a free upstream
	// connection by default.
	DefaultConnWait = time.Second
	// DefaultSupplierInFlight is one supplier's default cap on calls in
	// flight to one provider.
	DefaultSupplierInFlight = 1000
	// DefaultDialTimeout is the default dial timeout per provider.
	DefaultDialTimeout = 5 * time.Second
)

// Names of the environment variables that override file settings. An
// override that is set to the empty string is ignored.
const (
	// EnvProxyListen overrides listen.proxy.
	EnvProxyListen = "VEIL_PROXY_LISTEN"
	// EnvAdminListen overrides listen.admin.
	EnvAdminListen = "VEIL_ADMIN_LISTEN"
	// EnvLogLevel overrides log.level.
	EnvLogLevel = "VEIL_LOG_LEVEL"
	// EnvLogFormat overrides log.format.
	EnvLogFormat = "VEIL_LOG_FORMAT"
)

// ProviderTypeOpenAI is the provider type of the OpenAI API and of servers
// that implement it without quirks.
const ProviderTypeOpenAI = "openai"

// Config is the complete veil configuration.
//
// A Config returned by Parse or Load has its defaults applied and has been
// validated. It remembers the file name and the line of every field so that
// a later call to Validate reports the same positions.
type Config struct {
	// Listen holds the listener addresses.
	Listen Listen `yaml:"listen"`
	// Admin configures the admin endpoints.
	Admin Admin `yaml:"admin"`
	// Limits bounds sizes and durations of client and upstream traffic.
	Limits Limits `yaml:"limits"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// Providers lists the upstream providers; at least one is required.
	Providers []Provider `yaml:"providers"`
	// Routing selects a provider for each request.
	Routing Routing `yaml:"routing"`
	// Callers lists the clients allowed to use the proxy; at least one is
	// required because veil never runs open.
	Callers []Caller `yaml:"callers"`
	// Vault configures the Vault client; off unless enabled.
	Vault Vault `yaml:"vault"`
	// Keys configures the supplier key cache.
	Keys Keys `yaml:"keys"`
	// Suppliers holds per-supplier settings.
	Suppliers Suppliers `yaml:"suppliers"`
	// JWT configures signed supplier tokens.
	JWT JWT `yaml:"jwt"`
	// Audit configures the audit log.
	Audit Audit `yaml:"audit"`
	// Usage configures where usage records go.
	Usage Usage `yaml:"usage"`
	// Prices are the per-model prices that cost_usd is computed from.
	Prices []Price `yaml:"prices"`
	// Tiers limit suppliers' platform usage.
	Tiers []Tier `yaml:"tiers"`
	// Routes send workflows (X-Workflow) to their models and providers.
	Routes []Route `yaml:"routes"`
	// Aliases map model names apps may use (wedsync-fast) to real ones.
	Aliases map[string]string `yaml:"aliases"`
	// Seasons change routes and tier limits in calendar windows.
	Seasons []Season `yaml:"seasons"`
	// Regions map providers to regional deployments.
	Regions []Region `yaml:"regions"`
	// Store configures shared state (quotas, aggregates).
	Store Store `yaml:"store"`
	// Alerts configures where health alerts go besides the log.
	Alerts Alerts `yaml:"alerts"`
	// Cache configures the response cache.
	Cache Cache `yaml:"cache"`
	// Comparisons configures shadow comparisons: how answers are scored.
	Comparisons Comparisons `yaml:"comparisons"`
	// Tracing configures OpenTelemetry tracing; off by default.
	Tracing Tracing `yaml:"tracing"`

	// source is the name given to Parse, used in error messages.
	source string
	// lines maps a field path such as "providers[1].base_url" to its line.
	lines map[string]int
	// envs maps a field path to the environment variable that set it.
	envs map[string]string
}

// Listen holds the listener addresses in host:port form.
type Listen struct {
	// Proxy is the address of the OpenAI-compatible proxy listener. It
	// defaults to DefaultProxyListen and is overridden by VEIL_PROXY_LISTEN.
	Proxy string `yaml:"proxy"`
	// Admin is the address of the admin listener (/admin/*, health and
	// metrics). It defaults to DefaultAdminListen and is overridden by
	// VEIL_ADMIN_LISTEN.
	Admin string `yaml:"admin"`
}

// Admin configures the admin endpoints.
type Admin struct {
	// Token references one bearer token for the /admin/* endpoints: the
	// operator named "admin" with the admin role. Token or Tokens is
	// required when Listen.Admin is not a loopback address.
	Token SecretRef `yaml:"token"`
	// Tokens are named operators' bearer tokens, each with a role.
	Tokens []AdminToken `yaml:"tokens"`
}

// AdminToken is one operator's admin bearer token and role.
type AdminToken struct {
	// Name identifies the operator in the audit log; it is required,
	// unique and matches [A-Za-z0-9_.-]+.
	Name string `yaml:"name"`
	// Role is viewer (every GET), operator (also the operational POSTs)
	// or admin (everything).
	Role string `yaml:"role"`
	// Token references the operator's bearer token.
	Token SecretRef `yaml:"token"`
}

// The admin roles, from least to most allowed.
const (
	AdminRoleViewer   = "viewer"
	AdminRoleOperator = "operator"
	AdminRoleAdmin    = "admin"
)

// LegacyAdminName is the operator name of the single admin.token.
const LegacyAdminName = "admin"

// Operators returns every configured admin token: Token, when set, as the
// operator LegacyAdminName with the admin role, then Tokens.
func (a Admin) Operators() []AdminToken {
	var out []AdminToken
	if !a.Token.IsZero() {
		out = append(out, AdminToken{Name: LegacyAdminName, Role: AdminRoleAdmin, Token: a.Token})
	}
	return append(out, a.Tokens...)
}

// Limits bounds sizes and durations. A zero or absent value selects the
// default; negative values are errors.
type Limits struct {
	// MaxBodyBytes is the largest accepted request body; larger requests
	// are answered with 413. Default 32 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxHeaderBytes is the largest request header block, used as the
	// fasthttp ReadBufferSize. Default 16384.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ReadTimeout is the time allowed to read a client request. Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout is the time allowed to write a response to the client.
	// The default, zero, means no timeout, because a streamed response can
	// legitimately last as long as RequestTimeout; streams are instead
	// bounded by RequestTimeout and StreamIdleTimeout.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout is how long an idle keep-alive client connection is kept.
	// Default 90s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// RequestTimeout is the overall deadline of one upstream call, including
	// the whole stream. Default 10m.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// StreamIdleTimeout is the longest silence allowed between two upstream
	// SSE events. Default 60s.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
	// KeepAliveInterval is the upstream silence after which veil writes an
	// SSE comment to the client so that a gone client is noticed. Default 1s.
	KeepAliveInterval time.Duration `yaml:"keepalive_interval"`
	// MaxEventBytes is the largest single upstream SSE event. Default 4 MiB.
	MaxEventBytes int `yaml:"max_event_bytes"`
	// MaxResponseBytes is the largest buffered (non-stream) upstream
	// response body. Default 64 MiB.
	MaxResponseBytes int `yaml:"max_response_bytes"`
	// TTFTTimeout is how long veil waits for a stream's first token before
	// it tries the next planned provider instead. Default 30s.
	TTFTTimeout time.Duration `yaml:"ttft_timeout"`
	// AttemptTimeout is how long one upstream attempt may wait for the
	// provider's response headers before it counts as timed out and the
	// next planned provider (or a retry) takes over. An answer that is not
	// streamed comes with its headers, so this bounds the whole attempt.
	// Every attempt also ends by RequestTimeout. Default 2m.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	// StreamResume continues a chat completion stream that broke after its
	// first token on the next planned provider (or the same one when it is
	// the last): the text already sent is given to it as the start of the
	// answer, and its continuation is stitched into the client's stream
	// under the id, created and model the client already saw. Off by
	// default; see docs/adr/0009-stream-resume.md for its limits.
	StreamResume bool `yaml:"stream_resume"`
	// MaxRetries is how often the last target left is tried again after a
	// retryable failure (connection error, timeout, 408, 409, 429, 5xx,
	// 529). Default 2; 0 turns retries off; each retry also needs the
	// provider's retry budget. Use Retries to read it.
	MaxRetries *int `yaml:"max_retries"`
	// RetryBackoff is the first backoff ceiling (full jitter, doubling).
	// Default 100ms.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// MaxRetryWait is the longest veil waits before a retry; a provider
	// asking for longer (Retry-After) gets no retry. Default 5s.
	MaxRetryWait time.Duration `yaml:"max_retry_wait"`
	// BreakerFailures is how many consecutive failures (connection errors,
	// timeouts, 5xx) open a provider's circuit breaker. Default 5.
	BreakerFailures int `yaml:"breaker_failures"`
	// SupplierInFlight caps one supplier's calls in flight to one provider
	// (streams included), so that its slow or stalled calls cannot take
	// more than its share of the provider's connections; a tier's
	// upstream_in_flight overrides it. Default 1000, a tenth of a
	// provider's default max_conns.
	SupplierInFlight int `yaml:"supplier_in_flight"`
	// MaxInFlight caps the requests the proxy listener serves at once
	// (streams count until they end). A request that arrives while that
	// many are in flight is answered at once, before its body is parsed,
	// with 503 overloaded and Retry-After: 1, and counted in
	// veil_overloaded_total{reason="listener"}. It bounds veil's memory
	// and CPU under a flood that the upstream pools and per-supplier caps
	// would let queue. 0 or absent: no cap. Must not be negative.
	MaxInFlight int `yaml:"max_in_flight"`
	// BreakerCooldown is how long an open breaker refuses the provider
	// before one probe may try it. Default 30s.
	BreakerCooldown time.Duration `yaml:"breaker_cooldown"`
	// BreakerWindow is the sliding window over which a provider's failure
	// share is measured for its breaker. Default 30s.
	BreakerWindow time.Duration `yaml:"breaker_window"`
	// BreakerMinRequests is how many answered attempts (rate limits and
	// key refusals left out) the window needs before its failure share may
	// open the breaker. Default 20.
	BreakerMinRequests int `yaml:"breaker_min_requests"`
	// BreakerErrorRate is the failure share, from 0 to 1, within
	// BreakerWindow that opens a provider's breaker, besides
	// BreakerFailures in a row. Absent means the default, 0.5; 0 turns
	// the error-rate trigger off. Use ErrorRate to read it.
	BreakerErrorRate *float64 `yaml:"breaker_error_rate"`
	// ProbeInterval is how often veil actively probes each provider that
	// has platform keys (GET /v1/models, no tokens spent). Default 30s.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// ProbeFailures is how many consecutive failed probes take a provider
	// out of the plan until one probe succeeds again. Default 2.
	ProbeFailures int `yaml:"probe_failures"`
	// DisableProbes turns active probes off; breakers and passive
	// statistics still apply.
	DisableProbes bool `yaml:"disable_probes"`
}

// DefaultMaxRetries is how often the last target is retried by default.
const DefaultMaxRetries = 2

// Retries is MaxRetries, with absent read as the default.
func (l Limits) Retries() int {
	if l.MaxRetries == nil {
		return DefaultMaxRetries
	}
	return *l.MaxRetries
}

// ErrorRate is BreakerErrorRate, with absent read as the default.
func (l Limits) ErrorRate() float64 {
	if l.BreakerErrorRate == nil {
		return DefaultBreakerErrorRate
	}
	return *l.BreakerErrorRate
}

// Log configures logging.
type Log struct {
	// Level is one of debug, info, warn or error. Default info. It is
	// lowercased by ApplyDefaults and overridden by VEIL_LOG_LEVEL.
	Level string `yaml:"level"`
	// Format is json or console. Default json. It is lowercased by
	// ApplyDefaults and overridden by VEIL_LOG_FORMAT.
	Format string `yaml:"format"`
}

// Provider is an upstream API that veil forwards requests to.
type Provider struct {
	// Name identifies the provider; it is unique and matches [a-z0-9_-]+.
	Name string `yaml:"name"`
	// Type selects the wire protocol; see SupportedProviderTypes.
	Type string `yaml:"type"`
	// BaseURL is the absolute http or https URL that API paths are appended
	// to, for example https://api.openai.com/v1. It has no user
	// information, query or fragment. ApplyDefaults trims trailing slashes.
	BaseURL string `yaml:"base_url"`
	// APIKey references the platform key sent to the provider.
	APIKey SecretRef `yaml:"api_key"`
	// APIKeys references a pool of platform keys, used in turn; a key that
	// got 429 rests for its Retry-After. Set either APIKey or APIKeys.
	APIKeys []SecretRef `yaml:"api_keys"`
	// Models lists the models this provider serves; empty means any model.
	Models []string `yaml:"models"`
	// ModelMap serves a model other providers know by one of this
	// provider's own, for example gpt-4o-mini by claude-haiku-4-5, so
	// that a call can fail over across providers: the provider is then a
	// candidate for the mapped model and is asked for its own.
	ModelMap map[string]string `yaml:"model_map"`
	// MaxConns limits the connections to the provider. Default 10000, so
	// that as many slow streams can run at once.
	MaxConns int `yaml:"max_conns"`
	// ConnWait bounds how long a call waits for a free connection when
	// MaxConns are busy, before it is answered 503 overloaded (or moves to
	// the next planned provider). Default 1s.
	ConnWait time.Duration `yaml:"conn_wait"`
	// DialTimeout bounds connection establishment. Default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ProxyURL is the http:// proxy that connections to the provider go
	// through (a CONNECT tunnel), overriding HTTPS_PROXY, HTTP_PROXY and
	// NO_PROXY, which apply otherwise; "direct" goes without one.
	ProxyURL string `yaml:"proxy_url"`
	// Azure holds the settings of type azure.
	Azure *Azure `yaml:"azure"`
	// Anthropic holds the settings of type anthropic.
	Anthropic *Anthropic `yaml:"anthropic"`
	// Compat holds the quirks of type openaicompat.
	Compat *Compat `yaml:"compat"`
}

// Routing selects a provider for each request.
type Routing struct {
	// DefaultProvider names the provider used when no other rule applies.
	// It defaults to the first provider.
	DefaultProvider string `yaml:"default_provider"`
	// LoadAware weighs choices among providers by their rate-limit
	// headroom and latency.
	LoadAware LoadAware `yaml:"load_aware"`
}

// Caller is a client allowed to use the proxy. Exactly one of TokenSHA256
// and Token identifies its bearer token.
type Caller struct {
	// Name identifies the caller in logs and metrics; it is required,
	// unique and matches [A-Za-z0-9_.-]+.
	Name string `yaml:"name"`
	// TokenSHA256 is the hex SHA-256 digest of the caller's bearer token.
	// Both cases are accepted; ApplyDefaults lowercases it.
	TokenSHA256 string `yaml:"token_sha256"`
	// Token references the caller's bearer token itself.
	Token SecretRef `yaml:"token"`
	// Suppliers lists the supplier IDs the caller may act for, or "*" for
	// all of them. Required: a caller's scope is always explicit.
	Suppliers []string `yaml:"suppliers"`
}

// PlatformKeys returns the provider's platform key references: APIKey or
// the APIKeys pool.
func (p Provider) PlatformKeys() []SecretRef {
	if !p.APIKey.IsZero() {
		return []SecretRef{p.APIKey}
	}
	return p.APIKeys
}

// Default returns a configuration with every default applied and no
// providers or callers. It does not pass Validate on its own.
func Default() *Config {
	c := &Config{}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults replaces zero values with their defaults and normalizes
// values: log level and format and caller token digests are lowercased,
// trailing slashes are trimmed from provider base URLs, and an empty
// routing.default_provider becomes the name of the first provider.
// Parse calls it; call it yourself on a Config built in code before
// Validate.
func (c *Config) ApplyDefaults() {
	setDefault(&c.Listen.Proxy, DefaultProxyListen)
	setDefault(&c.Listen.Admin, DefaultAdminListen)

	l := &c.Limits
	setInt(&l.MaxBodyBytes, DefaultMaxBodyBytes)
	setInt(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDuration(&l.ReadTimeout, DefaultReadTimeout)
	setDuration(&l.WriteTimeout, DefaultWriteTimeout)
	setDuration(&l.IdleTimeout, DefaultIdleTimeout)
	setDuration(&l.RequestTimeout, DefaultRequestTimeout)
	setDuration(&l.StreamIdleTimeout, DefaultStreamIdleTimeout)
	setDuration(&l.KeepAliveInterval, DefaultKeepAliveInterval)
	setInt(&l.MaxEventBytes, DefaultMaxEventBytes)
	setInt(&l.MaxResponseBytes, DefaultMaxResponseBytes)
	setInt(&l.BreakerFailures, 5)
	setInt(&l.SupplierInFlight, DefaultSupplierInFlight)
	setDuration(&l.TTFTTimeout, 30*time.Second)
	setDuration(&l.AttemptTimeout, 2*time.Minute)
	setDuration(&l.RetryBackoff, 100*time.Millisecond)
	setDuration(&l.MaxRetryWait, 5*time.Second)
	setDuration(&l.BreakerCooldown, 30*time.Second)
	setDuration(&l.BreakerWindow, DefaultBreakerWindow)
	setInt(&l.BreakerMinRequests, DefaultBreakerMinRequests)
	if l.BreakerErrorRate == nil {
		rate := DefaultBreakerErrorRate
		l.BreakerErrorRate = &rate
	}
	setDuration(&l.ProbeInterval, 30*time.Second)
	setInt(&l.ProbeFailures, 2)

	c.Log.Level = strings.ToLower(c.Log.Level)
	c.Log.Format = strings.ToLower(c.Log.Format)
	setDefault(&c.Log.Level, DefaultLogLevel)
	setDefault(&c.Log.Format, DefaultLogFormat)

	for i := range c.Providers {
		c.Providers[i].applyDefaults()
	}
	if c.Routing.DefaultProvider == "" && len(c.Providers) > 0 {
		c.Routing.DefaultProvider = c.Providers[0].Name
	}
	for i := range c.Callers {
		c.Callers[i].TokenSHA256 = strings.ToLower(c.Callers[i].TokenSHA256)
	}
	c.applyKeyDefaults()
	c.applyUsageDefaults()
	c.applyTierDefaults()
	c.applyAlertDefaults()
	c.applyCacheDefaults()
	c.applySimilarityDefaults()
	c.applyTracingDefaults()
}

// Provider returns the provider with the given name.
func (c *Config) Provider(name string) (*Provider, bool) {
	return find(c.Providers, func(p *Provider) string { return p.Name }, name)
}

// find returns the first of items whose key is want.
func find[T any](items []T, key func(*T) string, want string) (*T, bool) {
	for i := range items {
		if key(&items[i]) == want {
			return &items[i], true
		}
	}
	return nil, false
}

// trimTrailingSlashes removes trailing slashes but keeps the scheme's "//".
func trimTrailingSlashes(s string) string {
	t := strings.TrimRight(s, "/")
	if strings.HasSuffix(t, ":") {
		return s
	}
	return t
}

// setDefault sets an empty string value to def.
func setDefault[T ~string](v *T, def T) {
	if *v == "" {
		*v = def
	}
}

func setInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

func setDuration(v *time.Duration, def time.Duration) {
	if *v == 0 {
		*v = def
	}
}
