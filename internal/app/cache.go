package app

import (
	"context"
	"encoding/json"
	"net/http"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/cache"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/proxy"
)

// buildCache makes the response cache when the configuration turns it on,
// and exports its counters.
func (a *App) buildCache() error {
	c := a.cfg.Cache
	if !c.On() {
		return nil
	}
	st, err := cache.New(cache.Options{MaxCostBytes: c.MaxCostBytes, ExpectedEntries: c.ExpectedEntries, TTL: c.TTL})
	if err != nil {
		return err
	}
	a.cache = st
	a.metrics.WatchCache(st.Stats)
	return nil
}

// proxyCache is the cache as the proxy takes it: nil when there is none.
func (a *App) proxyCache() proxy.Cache {
	if a.cache == nil {
		return nil
	}
	return a.cache
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

// CachePurge is the document of POST /admin/cache/purge.
type CachePurge struct {
	// Purged is "all", or the supplier whose answers were dropped.
	Purged string      `json:"purged"`
	Stats  cache.Stats `json:"stats"`
}

// adminCachePurge drops cached answers: every one, or one supplier's
// (?supplier=ID or {"supplier":"ID"}).
func (a *App) adminCachePurge(_ context.Context, c admin.Call) (int, any) {
	if a.cache == nil {
		return http.StatusNotFound, map[string]any{"error": map[string]string{"code": "cache_disabled",
			"message": "the response cache is turned off in this configuration"}}
	}
	supplier := c.Query.Get("supplier")
	if supplier == "" && len(c.Body) > 0 {
		var body struct {
			Supplier string `json:"supplier"`
		}
		if err := json.Unmarshal(c.Body, &body); err != nil {
			return http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_json",
				"message": "the body must be a JSON object such as {\"supplier\":\"bella-photography\"}: " + err.Error()}}
		}
		supplier = body.Supplier
	}
	purged := "all"
	if supplier != "" {
		a.cache.Purge(supplier)
		purged = supplier
	} else {
		a.cache.PurgeAll()
	}
	a.audit.Info("cache purged", zap.String("scope", purged))
	return http.StatusOK, CachePurge{Purged: purged, Stats: a.cache.Stats()}
}
