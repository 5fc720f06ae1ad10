package app

import (
	"context"
	"fmt"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/keys/vault"
)

// resolve reads one secret reference.
func (a *App) resolve(ref config.SecretRef) (keys.Secret, error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Keys.FetchTimeout)
	defer cancel()
	return a.secrets.Resolve(ctx, string(ref))
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
	held := new(atomic.Bool)
	vlog := a.audit.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return heldCore{Core: c, open: held} }))
	a.vault, err = vault.New(vault.Options{Address: vc.Address, CACert: vc.CACert, ClientCert: vc.ClientCert,
		ClientKey: vc.ClientKey, TLSServerName: vc.TLSServerName, Namespace: vc.Namespace, Timeout: vc.Timeout,
		Auth: au, Log: vlog})
	if err != nil {
		return err // it names vault
	}
	a.secrets = vault.Sources{Base: base, Client: a.vault}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Keys.FetchTimeout)
	defer cancel()
	if err := a.vault.Start(ctx); err != nil {
		if configUsesVault(a.cfg) {
			return fmt.Errorf("vault login, needed for vault:// references in the config: %w", err)
		}
		a.log.Warn("vault login failed; retrying in the background, not ready until it succeeds", zap.Error(err))
	}
	held.Store(true)
	return nil
}

// heldCore passes only entries below warn level until open is set. The
// Vault client's background loop also logs the failure of the first login,
// which New reports itself: as its error, when veil cannot start without
// Vault, or as its own warning.
type heldCore struct {
	zapcore.Core
	open *atomic.Bool
}

func (c heldCore) With(fields []zapcore.Field) zapcore.Core {
	return heldCore{Core: c.Core.With(fields), open: c.open}
}

func (c heldCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Level >= zapcore.WarnLevel && !c.open.Load() {
		return ce
	}
	return c.Core.Check(e, ce)
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
	for _, t := range cfg.Admin.Operators() {
		if isVault(t.Token) {
			return true
		}
	}
	for _, r := range append(append([]config.SecretRef(nil), cfg.JWT.HS256Keys...), cfg.JWT.Ed25519PublicKeys...) {
		if isVault(r) {
			return true
		}
	}
	return false
}
