package app

import (
	"github.com/wedsync/veil/cache"
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
