package app

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/generation"
)

// Reload compiles cfg into a new runtime (providers, routing, callers,
// suppliers' modes and tiers, routes, aliases, prices) and swaps it in at
// once; requests already running finish on the runtime they started with.
// Sections that shape the process itself (listeners, limits, logging,
// Vault, the key cache, the store, usage sinks, audit, alerts, tracing,
// suppliers' own key references) need a restart: a config that changes them is
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
		st := admin.ReloadStatus{Generation: a.reloads, At: time.Now().UTC(), OK: err == nil}
		if err != nil {
			st.Error = err.Error()
			a.metrics.ConfigReloaded(false)
			a.log.Error("config reload refused; keeping the running config", zap.Error(err))
		} else {
			a.reloads++
			st.Generation = a.reloads
			a.metrics.ConfigReloaded(true)
			a.log.Info("config reloaded", zap.Int("generation", a.reloads))
			a.audit.Info("config reloaded", zap.Int("generation", a.reloads))
		}
		a.lastReload.Store(&st)
	}()
	if loadErr != nil {
		return loadErr
	}
	cur := a.rt.Load()
	if changed := restartOnly(cur.Base, cfg); len(changed) > 0 {
		return fmt.Errorf("%s changed; these need a restart", strings.Join(changed, ", "))
	}
	return a.install(cfg, cur.Overrides)
}

// install builds the generation of base with the supplier overrides ov
// and swaps it in: the one place the runtime changes. A generation that
// does not build leaves the running one in place. The caller holds
// reloadMu.
func (a *App) install(base *config.Config, ov map[string]generation.Override) error {
	rt, err := generation.Build(base, ov, a.deps())
	if err != nil {
		return err
	}
	// The model labels follow the config in force: a model it no longer
	// names is reported as other from now on, whichever runtime serves it.
	a.metrics.SetModels(rt.Models)
	a.metrics.Declare(rt.Config)
	// Old providers' pools serve the requests still running on them; their
	// idle connections are closed once those are done.
	a.rt.Swap(rt).Retire(a.cfg.Limits.RequestTimeout)
	return nil
}

// deps are the long-lived dependencies every generation is built with.
func (a *App) deps() generation.Deps {
	return generation.Deps{Secrets: a.secrets, Vault: a.vault, Store: a.store, Metrics: a.metrics,
		Log: a.log, Audit: a.audit, Settles: a.settles, Journal: a.journalOrNil(), Issuers: a.issuers,
		Similarity: a.similarity}
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
	check("tracing", old.Tracing, next.Tracing)
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
