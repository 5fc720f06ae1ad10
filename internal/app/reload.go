package app

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/proxy"
)

// ReloadStatus is the outcome of the last reload, shown on /admin/status.
type ReloadStatus struct {
	Generation int       `json:"generation"`
	At         time.Time `json:"at,omitempty"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
}

// Reload compiles cfg into a new runtime (providers, routing, callers,
// suppliers' modes and tiers, routes, aliases, prices) and swaps it in at
// once; requests already running finish on the runtime they started with.
// Sections that shape the process itself (listeners, limits, logging,
// Vault, the key cache, the store, usage sinks, audit, alerts, suppliers'
// own key references) need a restart: a config that changes them is
// refused, and so is one whose secrets cannot be resolved. A refused
// config leaves the running one in place.
func (a *App) Reload(cfg *config.Config) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	return a.reloadLocked(cfg, nil)
}

// ReloadFile loads and validates the config file and reloads it; a file
// that does not load or validate is refused like any other bad config.
func (a *App) ReloadFile(path string) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	cfg, err := config.Load(path)
	return a.reloadLocked(cfg, err)
}

func (a *App) reloadLocked(cfg *config.Config, loadErr error) (err error) {
	defer func() {
		a.mu.Lock()
		a.reload.At = time.Now().UTC()
		a.reload.OK = err == nil
		a.reload.Error = ""
		if err != nil {
			a.reload.Error = err.Error()
			a.metrics.ConfigReloaded(false)
			a.log.Error("config reload refused; keeping the running config", zap.Error(err))
		} else {
			a.reload.Generation++
			a.metrics.ConfigReloaded(true)
			a.log.Info("config reloaded", zap.Int("generation", a.reload.Generation))
			a.audit.Info("config reloaded", zap.Int("generation", a.reload.Generation))
		}
		a.mu.Unlock()
	}()
	if loadErr != nil {
		return loadErr
	}
	a.mu.RLock()
	old, ov := a.base, a.overrides
	a.mu.RUnlock()
	if changed := restartOnly(old, cfg); len(changed) > 0 {
		return fmt.Errorf("%s changed; these need a restart", strings.Join(changed, ", "))
	}
	return a.compile(cfg, ov)
}

// compile builds the runtime of base with the supplier overrides ov and
// swaps it in. The caller holds reloadMu.
func (a *App) compile(base *config.Config, ov map[string]Override) (err error) {
	cfg := withOverrides(base, ov)
	if cfg != base {
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("with the supplier overrides: %w", err)
		}
	}
	b := &App{cfg: cfg, log: a.log, audit: a.audit, metrics: a.metrics, secrets: a.secrets, vault: a.vault,
		store: a.store, settles: a.settles, closeLog: func() {}}
	if err := b.buildProviders(); err != nil {
		return err
	}
	if b.policy, err = b.buildPolicy(); err != nil {
		return err
	}
	authn, err := b.buildAuth()
	if err != nil {
		return err
	}
	if err := b.buildPrices(); err != nil {
		return err
	}
	if err := b.buildQuota(); err != nil {
		return err
	}
	a.mu.Lock()
	oldProviders := a.providers
	a.base, a.overrides = base, ov
	a.cfg, a.providers, a.policy, a.prices, a.quota = cfg, b.providers, b.policy, b.prices, b.quota
	a.mu.Unlock()
	a.proxy.Swap(&proxy.Runtime{Auth: authn, Policy: b.policy, Prices: b.prices, Quota: b.quota})
	// Old providers' pools serve the requests still running on them; their
	// idle connections are closed once those are done.
	time.AfterFunc(cfg.Limits.RequestTimeout, func() {
		for _, p := range oldProviders {
			p.Close()
		}
	})
	return nil
}

// restartOnly lists the sections that differ between old and next and that
// only a restart applies.
func restartOnly(old, next *config.Config) []string {
	var changed []string
	check := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			changed = append(changed, name)
		}
	}
	check("listen", old.Listen, next.Listen)
	check("admin", old.Admin, next.Admin)
	check("limits", old.Limits, next.Limits)
	check("log", old.Log, next.Log)
	check("vault", old.Vault, next.Vault)
	check("keys", old.Keys, next.Keys)
	check("store", old.Store, next.Store)
	check("usage", old.Usage, next.Usage)
	check("audit", old.Audit, next.Audit)
	check("alerts", old.Alerts, next.Alerts)
	check("suppliers' own key references", supplierKeyRefs(old), supplierKeyRefs(next))
	return changed
}

func supplierKeyRefs(c *config.Config) map[string]map[string]config.SecretRef {
	out := map[string]map[string]config.SecretRef{}
	for _, e := range c.Suppliers.Entries {
		if len(e.Keys) > 0 {
			out[e.ID] = e.Keys
		}
	}
	return out
}
