package app

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/keys/vault"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
)

// resolve reads one secret reference.
func (a *App) resolve(ref config.SecretRef) (keys.Secret, error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Keys.FetchTimeout)
	defer cancel()
	return a.secrets.Resolve(ctx, string(ref))
}

// resolveMany reads a reference that may name a list: a Vault field such
// as api_keys holding an array of keys becomes a pool.
func (a *App) resolveMany(ref config.SecretRef) ([]keys.Secret, error) {
	if a.vault == nil || ref.Scheme() != config.SchemeVault {
		s, err := a.resolve(ref)
		if err != nil {
			return nil, err
		}
		return []keys.Secret{s}, nil
	}
	mount, path, field, err := vault.ParseRef(string(ref))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Keys.FetchTimeout)
	defer cancel()
	kv, err := a.vault.ReadKV(ctx, mount, path)
	if err != nil {
		return nil, err
	}
	ss := kv.Secrets(field)
	if len(ss) == 0 {
		return nil, fmt.Errorf("vault %s/%s version %d has no field %q: %w", mount, path, kv.Version, field, vault.ErrNotFound)
	}
	return ss, nil
}

// buildProviders resolves each provider's platform keys and builds it.
func (a *App) buildProviders() error {
	for _, pc := range a.cfg.Providers {
		var secrets []keys.Secret
		for i, ref := range pc.PlatformKeys() {
			ss, err := a.resolveMany(ref)
			if err != nil {
				return fmt.Errorf("provider %s: platform key %d: %w", pc.Name, i, err)
			}
			secrets = append(secrets, ss...)
		}
		p, err := provider.New(pc, secrets, provider.Options{
			MaxResponseBytes: a.cfg.Limits.MaxResponseBytes,
			ReadBufferSize:   a.cfg.Limits.MaxHeaderBytes,
		})
		if err != nil {
			return err
		}
		fps := []string{}
		if p.Platform() != nil {
			fps = p.Platform().Fingerprints()
		}
		a.audit.Info("platform keys loaded", zap.String("provider", pc.Name), zap.Strings("fingerprints", fps))
		a.log.Info("provider configured", zap.String("provider", pc.Name), zap.String("type", pc.Type),
			zap.String("base_url", pc.BaseURL), zap.Int("platform_keys", len(secrets)))
		a.providers = append(a.providers, p)
	}
	return nil
}

// buildPolicy compiles routing and supplier modes.
func (a *App) buildPolicy() (*policy.Policy, error) {
	modes := make(map[string]billing.Mode, len(a.cfg.Suppliers.Entries))
	preferred := map[string]string{}
	fallback := map[string]bool{}
	tiers := map[string]string{}
	regionMaps := map[string]map[string]string{}
	for _, r := range a.cfg.Regions {
		regionMaps[r.Name] = r.Providers
	}
	regions := map[string]map[string]string{}
	for _, e := range a.cfg.Suppliers.Entries {
		modes[e.ID] = e.Mode
		if e.Tier != "" {
			tiers[e.ID] = e.Tier
		}
		if e.Region != "" {
			regions[e.ID] = regionMaps[e.Region]
		}
		if e.PreferredProvider != "" {
			preferred[e.ID] = e.PreferredProvider
		}
		if e.AllowPlatformFallback {
			fallback[e.ID] = true
		}
	}
	p, err := policy.New(policy.Options{Providers: a.providers, DefaultProvider: a.cfg.Routing.DefaultProvider,
		DefaultMode: a.cfg.Suppliers.DefaultMode, Modes: modes, Preferred: preferred, PlatformFallback: fallback,
		Routes: a.cfg.Routes, Aliases: a.cfg.Aliases, Seasons: a.cfg.Seasons, Tiers: tiers,
		DefaultTier: a.cfg.Suppliers.DefaultTier, Regions: regions, CacheOffTiers: cacheOffTiers(a.cfg)})
	if err != nil {
		return nil, fmt.Errorf("routing: %w", err)
	}
	return p, nil
}

// buildAuth makes the caller authenticator: static tokens and, when
// configured, signed supplier tokens.
func (a *App) buildAuth() (*auth.Authenticator, error) {
	specs := make([]auth.CallerSpec, 0, len(a.cfg.Callers))
	for _, c := range a.cfg.Callers {
		var hash [32]byte
		var err error
		if c.TokenSHA256 != "" {
			if hash, err = auth.ParseTokenHash(c.TokenSHA256); err != nil {
				return nil, fmt.Errorf("caller %s: token_sha256: %w", c.Name, err)
			}
		} else {
			tok, err := a.resolve(c.Token)
			if err != nil {
				return nil, fmt.Errorf("caller %s: token: %w", c.Name, err)
			}
			hash = auth.HashToken(tok.Reveal())
		}
		specs = append(specs, auth.CallerSpec{Name: c.Name, TokenHash: hash, Suppliers: c.Suppliers})
	}
	o := auth.Options{Callers: specs, Audit: a.audit}
	if j := a.cfg.JWT; j.Enabled() {
		jo := &auth.JWTOptions{Issuer: j.Issuer, Audience: j.Audience, SupplierClaim: j.SupplierClaim,
			CallerClaim: j.CallerClaim, Leeway: j.Leeway, MaxTTL: j.MaxTTL}
		for i, ref := range j.HS256Keys {
			s, err := a.resolve(ref)
			if err != nil {
				return nil, fmt.Errorf("jwt.hs256_keys[%d]: %w", i, err)
			}
			jo.HS256Keys = append(jo.HS256Keys, s)
		}
		for i, ref := range j.Ed25519PublicKeys {
			s, err := a.resolve(ref)
			if err != nil {
				return nil, fmt.Errorf("jwt.ed25519_public_keys[%d]: %w", i, err)
			}
			pub, err := ParseEd25519PublicKey(s.Reveal())
			if err != nil {
				return nil, fmt.Errorf("jwt.ed25519_public_keys[%d]: %w", i, err)
			}
			jo.Ed25519Keys = append(jo.Ed25519Keys, pub)
		}
		o.JWT = jo
	}
	au, err := auth.New(o)
	if err != nil {
		return nil, fmt.Errorf("callers: %w", err)
	}
	return au, nil
}

// ParseEd25519PublicKey reads an Ed25519 public key in PEM (PKIX) form or
// as the base64 of its 32 raw bytes.
func ParseEd25519PublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if block, _ := pem.Decode([]byte(s)); block != nil {
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("the PEM key is not an Ed25519 public key")
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(s)
	}
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("want a PEM public key or the base64 of 32 raw bytes")
	}
	return ed25519.PublicKey(raw), nil
}

// buildKeyCache makes the supplier key cache: references from supplier
// entries first, then Vault's supplier path when Vault is on.
func (a *App) buildKeyCache(next keys.Fetcher) (*keys.SupplierKeys, error) {
	if !a.cfg.UsesSupplierKeys() {
		return nil, nil
	}
	refs := supplierRefs(a.cfg)
	k := a.cfg.Keys
	return keys.NewSupplierKeys(keys.SupplierKeysOptions{
		Fetcher:      &keys.RefFetcher{Refs: refs, Sources: a.secrets, Next: next},
		Refresh:      k.RefreshInterval,
		MaxStaleness: k.MaxStaleness,
		Grace:        k.GracePeriod,
		FetchTimeout: k.FetchTimeout,
		Audit:        a.audit,
		Observer:     a.metrics,
	})
}

// buildSecrets sets up secret resolution: the given source (tests, demo)
// or env:// and file:///; plus vault:// through a logged-in Vault client
// when Vault is enabled.
func (a *App) buildSecrets(override keys.Source) error {
	base := override
	if base == nil {
		base = keys.DefaultSources()
	}
	a.secrets = base
	vc := a.cfg.Vault
	if !vc.Enabled {
		return nil
	}
	au := vault.Auth{Method: vc.Auth.Method, Role: vc.Auth.Role, TokenFile: vc.Auth.TokenFile, Mount: vc.Auth.Mount}
	var err error
	ref := func(r config.SecretRef) keys.Secret {
		if r.IsZero() || err != nil {
			return keys.Secret{}
		}
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Keys.FetchTimeout)
		defer cancel()
		var s keys.Secret
		s, err = base.Resolve(ctx, string(r))
		return s
	}
	au.Token, au.RoleID, au.SecretID = ref(vc.Auth.Token), ref(vc.Auth.RoleID), ref(vc.Auth.SecretID)
	if err != nil {
		return fmt.Errorf("vault auth: %w", err)
	}
	a.vault, err = vault.New(vault.Options{Address: vc.Address, CACert: vc.CACert, ClientCert: vc.ClientCert,
		ClientKey: vc.ClientKey, TLSServerName: vc.TLSServerName, Namespace: vc.Namespace, Timeout: vc.Timeout,
		Auth: au, Log: a.audit})
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	a.secrets = withVault{base: base, vault: a.vault}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Keys.FetchTimeout)
	defer cancel()
	if err := a.vault.Start(ctx); err != nil {
		if configUsesVault(a.cfg) {
			return fmt.Errorf("vault login, needed for vault:// references in the config: %w", err)
		}
		a.log.Warn("vault login failed; retrying in the background, not ready until it succeeds", zap.Error(err))
	}
	return nil
}

// withVault resolves vault:// references with Vault and the rest with base.
type withVault struct {
	base  keys.Source
	vault *vault.Client
}

func (w withVault) Resolve(ctx context.Context, ref string) (keys.Secret, error) {
	if strings.HasPrefix(ref, "vault://") {
		return w.vault.Resolve(ctx, ref)
	}
	return w.base.Resolve(ctx, ref)
}

// configUsesVault reports whether a secret the config names directly (not a
// supplier's key) lives in Vault.
func configUsesVault(cfg *config.Config) bool {
	isVault := func(r config.SecretRef) bool { return r.Scheme() == config.SchemeVault }
	for _, p := range cfg.Providers {
		for _, r := range p.PlatformKeys() {
			if isVault(r) {
				return true
			}
		}
	}
	for _, c := range cfg.Callers {
		if isVault(c.Token) {
			return true
		}
	}
	for _, r := range append(append([]config.SecretRef{cfg.Admin.Token}, cfg.JWT.HS256Keys...), cfg.JWT.Ed25519PublicKeys...) {
		if isVault(r) {
			return true
		}
	}
	return false
}
