package app

import (
	"fmt"

	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/quota"
	"github.com/wedsync/veil/store"
)

// buildStore opens the shared state: the embedded store, or Redis.
func (a *App) buildStore() error {
	sc := a.cfg.Store
	switch sc.Type {
	case "redis":
		var pw keys.Secret
		if !sc.Password.IsZero() {
			s, err := a.resolve(sc.Password)
			if err != nil {
				return fmt.Errorf("store.password: %w", err)
			}
			pw = s
		}
		r, err := store.NewRedis(store.RedisOptions{Addr: sc.Addr, Password: pw, DB: sc.DB, Prefix: sc.Prefix, Timeout: sc.Timeout})
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		a.store = r
	default:
		e, err := store.NewEmbedded(sc.DataDir)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		a.store = e
	}
	return nil
}

// buildQuota makes the tier enforcer when tiers are configured.
func (a *App) buildQuota() error {
	if len(a.cfg.Tiers) == 0 {
		return nil
	}
	supplierTiers := map[string]string{}
	for _, e := range a.cfg.Suppliers.Entries {
		if e.Tier != "" {
			supplierTiers[e.ID] = e.Tier
		}
	}
	q, err := quota.New(quota.Options{Store: a.store, Tiers: a.cfg.Tiers, DefaultTier: a.cfg.Suppliers.DefaultTier,
		SupplierTiers: supplierTiers, Seasons: a.cfg.Seasons, Prices: a.prices, FailClosed: a.cfg.Store.OnUnavailable == "fail_closed",
		Timeout: a.cfg.Store.Timeout, SlotTTL: a.cfg.Limits.RequestTimeout, Log: a.log, Observer: a.metrics,
		Settles: a.settles})
	if err != nil {
		return err
	}
	a.quota = q
	return nil
}
