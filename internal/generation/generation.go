// Package generation builds the runtime of one config generation: the
// providers, routing policy, caller authentication, prices and quota that a
// reload replaces as a whole.
package generation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wedsync/veil/billing"

	"go.uber.org/zap"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/auth/jwks"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/keys/vault"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/quota"
	"github.com/wedsync/veil/similarity"
	"github.com/wedsync/veil/store"
	"github.com/wedsync/veil/usage"
)

// Pricer prices calls; see usage.PriceTable.
type Pricer interface {
	CostMicros(provider, model string, at time.Time, prompt, cached, completion int64) (int64, bool)
	// Unknown reports true the first time an unpriced model is seen.
	Unknown(provider, model string) bool
}

// Runtime is what one config generation compiles to: who may call, how
// calls are planned, priced and limited, and the config they came from. A
// Runtime is never changed once built; a reload builds a new one, and a
// request keeps the Runtime it started with.
type Runtime struct {
	// Auth authenticates callers.
	Auth *auth.Authenticator
	// Policy plans each call's attempts.
	Policy *policy.Policy
	// Prices turns tokens into cost; nil leaves cost unknown.
	Prices Pricer
	// Quota enforces suppliers' tiers on platform calls; nil: no tiers.
	Quota *quota.Enforcer
	// Providers are the configured providers, in configuration order.
	Providers []*provider.Provider
	// Config is the config in force: Base with Overrides applied.
	Config *config.Config
	// Base is the config as loaded.
	Base *config.Config
	// Overrides are the supplier overrides from the store applied to Base.
	Overrides map[string]Override
	// Models are the model names Config lists (see ModelNames): the model
	// label values of the metrics while this generation is in force.
	Models []string
	// Similarity scores the answers of shadow comparisons, with the
	// methods of comparisons.similarity.
	Similarity *similarity.Set
}

// Provider is the named provider, or the default one when name is empty;
// nil when no provider has that name.
func (rt *Runtime) Provider(name string) *provider.Provider {
	for _, p := range rt.Providers {
		if p.Name() == name {
			return p
		}
	}
	if name == "" {
		return rt.Policy.DefaultProvider()
	}
	return nil
}

// Retire closes the providers' idle connections after grace, by when the
// requests still running on this runtime are done; a runtime that has been
// swapped out is retired once.
func (rt *Runtime) Retire(grace time.Duration) {
	time.AfterFunc(grace, func() {
		for _, p := range rt.Providers {
			p.Close()
		}
	})
}

// Deps are the long-lived dependencies a generation is built with; they
// outlive every generation.
type Deps struct {
	// Secrets resolves secret references.
	Secrets keys.Source
	// Vault reads Vault fields that hold lists of keys; nil without Vault.
	Vault *vault.Client
	// Store keeps the quota counters; required when tiers are configured.
	Store store.Store
	// Metrics observes quota store failures.
	Metrics *metrics.Metrics
	// Log receives operational logs; nil discards them.
	Log *zap.Logger
	// Audit receives the fingerprints of platform keys and caller refusals;
	// nil discards them.
	Audit *zap.Logger
	// Settles counts quota settlements of every generation, so that a drain
	// waits for old ones too; nil counts nothing.
	Settles *sync.WaitGroup
	// Journal keeps the open quota reservations of every generation; nil
	// keeps none.
	Journal quota.Journal
	// Issuers keeps the key sets of JWT issuers across generations;
	// required when jwt.issuers is configured.
	Issuers *jwks.Registry
	// Similarity counts the similarity scores and fallbacks of every
	// generation; nil: each generation counts on its own.
	Similarity *similarity.Counters
}

// upstreamReadBuffer is the read buffer of each upstream connection.
const upstreamReadBuffer = 8 << 10

// Build compiles base with the supplier overrides ov into a Runtime. It
// touches nothing shared: on error nothing is left open, and whatever runs
// keeps running on its own Runtime.
func Build(base *config.Config, ov map[string]Override, d Deps) (rt *Runtime, err error) {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Audit == nil {
		d.Audit = zap.NewNop()
	}
	if d.Secrets == nil {
		return nil, errors.New("generation: a secret source is required")
	}
	cfg := WithOverrides(base, ov)
	if cfg != base {
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("with the supplier overrides: %w", err)
		}
	}
	b := builder{cfg: cfg, d: d}
	rt = &Runtime{Config: cfg, Base: base, Overrides: ov, Models: ModelNames(cfg)}
	defer func() {
		if err != nil {
			for _, p := range rt.Providers {
				p.Close()
			}
			rt = nil
		}
	}()
	if rt.Providers, err = b.providers(); err != nil {
		return rt, err
	}
	if rt.Policy, err = b.policy(rt.Providers); err != nil {
		return rt, err
	}
	if rt.Auth, err = b.auth(); err != nil {
		return rt, err
	}
	prices, err := b.prices()
	if err != nil {
		return rt, err
	}
	rt.Prices = prices
	if rt.Quota, err = b.quota(prices); err != nil {
		return rt, err
	}
	if rt.Similarity, err = b.similarity(rt.Providers, prices); err != nil {
		return rt, err
	}
	return rt, nil
}

// builder compiles one config with its dependencies.
type builder struct {
	cfg *config.Config
	d   Deps
}

// resolve reads one secret reference.
func (b builder) resolve(ref config.SecretRef) (keys.Secret, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Keys.FetchTimeout)
	defer cancel()
	return b.d.Secrets.Resolve(ctx, string(ref))
}

// resolveMany reads a reference that may name a list: a Vault field such
// as api_keys holding an array of keys becomes a pool.
func (b builder) resolveMany(ref config.SecretRef) ([]keys.Secret, error) {
	if b.d.Vault == nil || ref.Scheme() != config.SchemeVault {
		s, err := b.resolve(ref)
		if err != nil {
			return nil, err
		}
		return []keys.Secret{s}, nil
	}
	mount, path, field, err := vault.ParseRef(string(ref))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Keys.FetchTimeout)
	defer cancel()
	kv, err := b.d.Vault.ReadKV(ctx, mount, path)
	if err != nil {
		return nil, err
	}
	ss := kv.Secrets(field)
	if len(ss) == 0 {
		return nil, fmt.Errorf("vault %s/%s version %d has no field %q: %w", mount, path, kv.Version, field, vault.ErrNotFound)
	}
	return ss, nil
}

// providers resolves each provider's platform keys and builds it; on error
// the ones already built are returned too, to be closed.
func (b builder) providers() ([]*provider.Provider, error) {
	var out []*provider.Provider
	for _, pc := range b.cfg.Providers {
		var secrets []keys.Secret
		for i, ref := range pc.PlatformKeys() {
			ss, err := b.resolveMany(ref)
			if err != nil {
				return out, fmt.Errorf("provider %s: platform key %d: %w", pc.Name, i, err)
			}
			secrets = append(secrets, ss...)
		}
		p, err := provider.New(pc, secrets, provider.Options{
			MaxResponseBytes: b.cfg.Limits.MaxResponseBytes,
			// Held for a stream's whole life; bounds the provider's
			// response headers (OpenAI's are under 2 KiB).
			ReadBufferSize: upstreamReadBuffer,
		})
		if err != nil {
			return out, err
		}
		fps := []string{}
		if p.Platform() != nil {
			fps = p.Platform().Fingerprints()
		}
		b.d.Audit.Info("platform keys loaded", zap.String("provider", pc.Name), zap.Strings("fingerprints", fps))
		b.d.Log.Info("provider configured", zap.String("provider", pc.Name), zap.String("type", pc.Type),
			zap.String("base_url", pc.BaseURL), zap.Int("platform_keys", len(secrets)))
		out = append(out, p)
	}
	return out, nil
}

// policy compiles routing and supplier modes.
func (b builder) policy(providers []*provider.Provider) (*policy.Policy, error) {
	cfg := b.cfg
	modes := make(map[string]billing.Mode, len(cfg.Suppliers.Entries))
	preferred := map[string]string{}
	fallback := map[string]bool{}
	tiers := map[string]string{}
	regionMaps := map[string]map[string]string{}
	for _, r := range cfg.Regions {
		regionMaps[r.Name] = r.Providers
	}
	regions := map[string]policy.Region{}
	clientKeys := map[string]map[string]bool{}
	for i, e := range cfg.Suppliers.Entries {
		modes[e.ID] = e.Mode
		if e.Tier != "" {
			tiers[e.ID] = e.Tier
		}
		if e.Region != "" {
			regions[e.ID] = policy.Region{Name: e.Region, Providers: regionMaps[e.Region], Strict: cfg.RegionStrict(&cfg.Suppliers.Entries[i])}
		}
		for p := range e.Keys {
			if clientKeys[e.ID] == nil {
				clientKeys[e.ID] = map[string]bool{}
			}
			clientKeys[e.ID][p] = true
		}
		if e.PreferredProvider != "" {
			preferred[e.ID] = e.PreferredProvider
		}
		if e.AllowPlatformFallback {
			fallback[e.ID] = true
		}
	}
	p, err := policy.New(policy.Options{Providers: providers, DefaultProvider: cfg.Routing.DefaultProvider,
		DefaultMode: cfg.Suppliers.DefaultMode, Modes: modes, Preferred: preferred, PlatformFallback: fallback,
		Routes: cfg.Routes, Aliases: cfg.Aliases, Seasons: cfg.Seasons, Tiers: tiers,
		DefaultTier: cfg.Suppliers.DefaultTier, Regions: regions, CacheOffTiers: cacheOffTiers(cfg),
		LoadAware: cfg.Routing.LoadAware, ClientKeys: clientKeys, ConfigKeysOnly: !cfg.Vault.Enabled})
	if err != nil {
		return nil, fmt.Errorf("routing: %w", err)
	}
	return p, nil
}

// cacheOffTiers lists the tiers whose suppliers the cache never answers.
func cacheOffTiers(cfg *config.Config) map[string]bool {
	off := map[string]bool{}
	for _, t := range cfg.Tiers {
		if t.Cache == config.CacheOff {
			off[t.Name] = true
		}
	}
	return off
}

// auth makes the caller authenticator: static tokens and, when configured,
// signed supplier tokens.
func (b builder) auth() (*auth.Authenticator, error) {
	cfg := b.cfg
	specs := make([]auth.CallerSpec, 0, len(cfg.Callers))
	for _, c := range cfg.Callers {
		var hash [32]byte
		var err error
		if c.TokenSHA256 != "" {
			if hash, err = auth.ParseTokenHash(c.TokenSHA256); err != nil {
				return nil, fmt.Errorf("caller %s: token_sha256: %w", c.Name, err)
			}
		} else {
			tok, err := b.resolve(c.Token)
			if err != nil {
				return nil, fmt.Errorf("caller %s: token: %w", c.Name, err)
			}
			hash = auth.HashToken(tok.Reveal())
		}
		specs = append(specs, auth.CallerSpec{Name: c.Name, TokenHash: hash, Suppliers: c.Suppliers})
	}
	o := auth.Options{Callers: specs, Audit: b.d.Audit}
	if j := cfg.JWT; j.Enabled() {
		jo := &auth.JWTOptions{Issuer: j.Issuer, Audience: j.Audience, SupplierClaim: j.SupplierClaim,
			CallerClaim: j.CallerClaim, Leeway: j.Leeway, MaxTTL: j.MaxTTL}
		for i, ref := range j.HS256Keys {
			s, err := b.resolve(ref)
			if err != nil {
				return nil, fmt.Errorf("jwt.hs256_keys[%d]: %w", i, err)
			}
			jo.HS256Keys = append(jo.HS256Keys, s)
		}
		for i, ref := range j.Ed25519PublicKeys {
			s, err := b.resolve(ref)
			if err != nil {
				return nil, fmt.Errorf("jwt.ed25519_public_keys[%d]: %w", i, err)
			}
			pub, err := ParseEd25519PublicKey(s.Reveal())
			if err != nil {
				return nil, fmt.Errorf("jwt.ed25519_public_keys[%d]: %w", i, err)
			}
			jo.Ed25519Keys = append(jo.Ed25519Keys, pub)
		}
		for i, is := range j.Issuers {
			io, err := b.issuer(is)
			if err != nil {
				return nil, fmt.Errorf("jwt.issuers[%d]: %w", i, err)
			}
			jo.Issuers = append(jo.Issuers, io)
		}
		o.JWT = jo
	}
	au, err := auth.New(o)
	if err != nil {
		return nil, fmt.Errorf("callers: %w", err)
	}
	return au, nil
}

// issuer returns the options of a JWT issuer, with its key set from the
// registry (fetched once when it is new).
func (b builder) issuer(is config.JWTIssuer) (auth.IssuerOptions, error) {
	if b.d.Issuers == nil {
		return auth.IssuerOptions{}, errors.New("no key set registry")
	}
	set, err := b.d.Issuers.Set(jwks.Options{Issuer: is.Issuer, JWKSURL: is.JWKSURL, CAFile: is.CAFile,
		TokenFile: is.TokenFile, Refresh: is.RefreshInterval, MinRefresh: is.UnknownKeyInterval})
	if err != nil {
		return auth.IssuerOptions{}, err
	}
	io := auth.IssuerOptions{Issuer: is.Issuer, Audience: is.Audience, Keys: set,
		SupplierClaim: cmp.Or(is.SupplierClaim, b.cfg.JWT.SupplierClaim), CallerClaim: cmp.Or(is.CallerClaim, b.cfg.JWT.CallerClaim)}
	if is.Kubernetes != nil {
		io.ServiceAccounts = is.Kubernetes.ServiceAccounts
	}
	return io, nil
}

// prices compiles the price table.
func (b builder) prices() (*usage.PriceTable, error) {
	prices := make([]usage.Price, 0, len(b.cfg.Prices))
	for _, p := range b.cfg.Prices {
		at, _ := p.EffectiveTime() // checked by Validate
		prices = append(prices, usage.Price{Provider: p.Provider, Model: p.Model, InputPerMTok: p.InputPerMTok,
			CachedInputPerMTok: p.CachedInputPerMTok, OutputPerMTok: p.OutputPerMTok, Effective: at})
	}
	pt, err := usage.NewPriceTable(prices)
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	return pt, nil
}

// quota makes the tier enforcer when tiers are configured.
func (b builder) quota(prices *usage.PriceTable) (*quota.Enforcer, error) {
	cfg := b.cfg
	if len(cfg.Tiers) == 0 {
		return nil, nil
	}
	supplierTiers := map[string]string{}
	for _, e := range cfg.Suppliers.Entries {
		if e.Tier != "" {
			supplierTiers[e.ID] = e.Tier
		}
	}
	o := quota.Options{Store: b.d.Store, Tiers: cfg.Tiers, DefaultTier: cfg.Suppliers.DefaultTier,
		SupplierTiers: supplierTiers, Seasons: cfg.Seasons, Prices: prices, FailClosed: cfg.Store.OnUnavailable == "fail_closed",
		Timeout: cfg.Store.Timeout, SlotTTL: cfg.Limits.RequestTimeout, Log: b.d.Log, Settles: b.d.Settles}
	if b.d.Journal != nil {
		o.Journal = b.d.Journal
	}
	if b.d.Metrics != nil {
		o.Observer = b.d.Metrics
	}
	return quota.New(o) // its errors name the quota already
}

// similarity compiles comparisons.similarity with the providers it calls.
func (b builder) similarity(providers []*provider.Provider, prices Pricer) (*similarity.Set, error) {
	s, err := similarity.New(similarity.Options{Config: b.cfg.Comparisons.Similarity, Providers: providers,
		Prices: prices, Counters: b.d.Similarity, Log: b.d.Log})
	if err != nil {
		return nil, fmt.Errorf("comparisons.similarity: %w", err)
	}
	return s, nil
}

// BuildScorer compiles only cfg's comparisons.similarity, with the
// providers it names (their platform keys resolved through d) and the
// price table, for scoring outside a running veil (veil compare
// calibrate). Close the returned providers when done.
func BuildScorer(cfg *config.Config, d Deps) (*similarity.Set, []*provider.Provider, error) {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Audit == nil {
		d.Audit = zap.NewNop()
	}
	if d.Secrets == nil {
		return nil, nil, errors.New("generation: a secret source is required")
	}
	s := cfg.Comparisons.Similarity
	used := map[string]bool{s.Default.Provider: true}
	for _, m := range s.Workflows {
		used[m.Provider] = true
	}
	only := *cfg
	only.Providers = nil
	for _, pc := range cfg.Providers {
		if used[pc.Name] {
			only.Providers = append(only.Providers, pc)
		}
	}
	b := builder{cfg: &only, d: d}
	providers, err := b.providers()
	if err == nil {
		var prices *usage.PriceTable
		if prices, err = b.prices(); err == nil {
			var set *similarity.Set
			if set, err = b.similarity(providers, prices); err == nil {
				return set, providers, nil
			}
		}
	}
	for _, p := range providers {
		p.Close()
	}
	return nil, nil, err
}
