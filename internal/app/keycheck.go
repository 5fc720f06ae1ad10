package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"go.uber.org/zap"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/keys/vault"
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
	// Err is why the key could not be fetched or was refused.
	Err error
}

// CheckKeys fetches keys through the configured sources, without starting
// veil, and validates each live with GET /v1/models (which costs no
// tokens): the supplier's own key for each provider when supplier is set,
// otherwise every platform key. providers empty means all.
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
		if supplier != "" {
			c := KeyCheck{Supplier: supplier, Provider: pc.Name, Source: billing.ClientKey}
			fctx, cancel := context.WithTimeout(ctx, cfg.Keys.FetchTimeout)
			k, err := fetcher.Fetch(fctx, supplier, pc.Name)
			cancel()
			if err != nil {
				c.Err = err
			} else {
				c.Version, c.Fingerprint = k.Version(), k.Fingerprint()
				c.Models, c.Err = probe(ctx, pc.BaseURL, k)
			}
			out = append(out, c)
			continue
		}
		for i, ref := range pc.PlatformKeys() {
			c := KeyCheck{Provider: pc.Name, Source: billing.PlatformKey, Version: fmt.Sprintf("pool[%d]", i)}
			s, err := a.resolve(ref)
			if err != nil {
				c.Err = err
			} else {
				c.Fingerprint = s.Fingerprint()
				c.Models, c.Err = probe(ctx, pc.BaseURL, keys.NewKey(s, billing.PlatformKey, ""))
			}
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no provider named %v", providers)
	}
	return out, nil
}

// probe lists the provider's models with the key: a live check that costs
// no tokens.
func probe(ctx context.Context, baseURL string, k *keys.Key) (int, error) {
	c := openai.DefaultConfig(k.Secret().Reveal())
	c.BaseURL = baseURL
	c.OrgID = k.Organization
	c.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	models, err := openai.NewClientWithConfig(c).ListModels(ctx)
	if err != nil {
		return 0, fmt.Errorf("the provider refused the key: %w", err)
	}
	return len(models.Models), nil
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
