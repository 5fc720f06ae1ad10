package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wedsync/veil/billing"

	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/keys/vault"
	"github.com/wedsync/veil/provider"
)

// KeyCheck is the result of checking one key: where it came from, which
// version, its fingerprint, and what the provider said of it.
type KeyCheck struct {
	Supplier    string
	Provider    string
	Source      billing.KeySource
	Version     string
	Fingerprint string
	// Models is how many models the provider listed for the key.
	Models int
	// Err is why the key could not be fetched or did not pass the check;
	// it wraps ErrKeyRefused when the provider refused the key.
	Err error
}

// ErrKeyRefused is what a KeyCheck's Err wraps when the provider refused
// the key itself (401 or 403).
var ErrKeyRefused = errors.New("the provider refused the key")

// keyProbeTimeout bounds one key's probe.
const keyProbeTimeout = 15 * time.Second

// CheckKeys fetches keys through the configured sources, without starting
// veil, and validates each live by asking its provider for the model list
// (which costs no tokens), with the probe veil's health checks and
// migrations use, so each provider type is asked as it expects: the
// supplier's own key for each provider when supplier is set, otherwise
// every platform key. providers empty means all.
func CheckKeys(ctx context.Context, cfg *config.Config, o Options, supplier string, providers []string) ([]KeyCheck, error) {
	a := &App{cfg: cfg, log: zap.NewNop(), audit: zap.NewNop(), closeLog: func() {}}
	if o.Audit != nil {
		a.audit = o.Audit
	}
	if err := a.buildSecrets(o.Secrets); err != nil {
		return nil, err
	}
	defer func() {
		if a.vault != nil {
			a.vault.Close()
		}
	}()
	if a.vault != nil {
		if err := a.vault.Ready(); err != nil {
			return nil, fmt.Errorf("vault: %w", err)
		}
	}
	var next keys.Fetcher
	if a.vault != nil {
		next = &vault.SupplierFetcher{Client: a.vault, Mount: cfg.Vault.KVMount, PathTemplate: cfg.Vault.SupplierPath}
	}
	fetcher := &keys.RefFetcher{Refs: supplierRefs(cfg), Sources: a.secrets, Next: next}
	var out []KeyCheck
	for _, pc := range cfg.Providers {
		if len(providers) > 0 && !contains(providers, pc.Name) {
			continue
		}
		checks, err := a.checkProviderKeys(ctx, pc, fetcher, supplier)
		if err != nil {
			return nil, err
		}
		out = append(out, checks...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no provider named %v", providers)
	}
	return out, nil
}

// checkProviderKeys checks the supplier's own key for pc when supplier is
// set, otherwise each of pc's platform keys.
func (a *App) checkProviderKeys(ctx context.Context, pc config.Provider, fetcher keys.Fetcher, supplier string) ([]KeyCheck, error) {
	p, err := provider.New(pc, nil, provider.Options{
		MaxResponseBytes: a.cfg.Limits.MaxResponseBytes,
		ReadBufferSize:   a.cfg.Limits.MaxHeaderBytes,
	})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if supplier != "" {
		c := KeyCheck{Supplier: supplier, Provider: pc.Name, Source: billing.ClientKey}
		fctx, cancel := context.WithTimeout(ctx, a.cfg.Keys.FetchTimeout)
		k, err := fetcher.Fetch(fctx, supplier, pc.Name)
		cancel()
		if err != nil {
			c.Err = err
		} else {
			c.Version, c.Fingerprint = k.Version(), k.Fingerprint()
			c.Models, c.Err = checkKey(ctx, p, k)
		}
		return []KeyCheck{c}, nil
	}
	var out []KeyCheck
	for i, ref := range pc.PlatformKeys() {
		c := KeyCheck{Provider: pc.Name, Source: billing.PlatformKey, Version: fmt.Sprintf("pool[%d]", i)}
		s, err := a.resolve(ref)
		if err != nil {
			c.Err = err
		} else {
			c.Fingerprint = s.Fingerprint()
			c.Models, c.Err = checkKey(ctx, p, keys.NewKey(s, billing.PlatformKey, ""))
		}
		out = append(out, c)
	}
	return out, nil
}

// checkKey asks p for its model list with k and returns how many models it
// listed, or why the key did not pass: ErrKeyRefused when the provider
// refused it.
func checkKey(ctx context.Context, p *provider.Provider, k *keys.Key) (int, error) {
	deadline := time.Now().Add(keyProbeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	r, err := p.CheckKey(k, deadline)
	switch {
	case err != nil:
		return 0, fmt.Errorf("the provider did not answer the probe: %w", err)
	case r.OK():
		return r.Models, nil
	case r.Refused():
		return 0, fmt.Errorf("%w (%s)", ErrKeyRefused, statusText(r))
	}
	return 0, fmt.Errorf("the provider answered the probe with %s", statusText(r))
}

// statusText is a probe's status and the provider's message, if any.
func statusText(r provider.KeyProbe) string {
	s := fmt.Sprintf("%d %s", r.Status, http.StatusText(r.Status))
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

func supplierRefs(cfg *config.Config) map[string]map[string]string {
	refs := map[string]map[string]string{}
	for _, e := range cfg.Suppliers.Entries {
		for prov, ref := range e.Keys {
			if refs[e.ID] == nil {
				refs[e.ID] = map[string]string{}
			}
			refs[e.ID][prov] = string(ref)
		}
	}
	return refs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
