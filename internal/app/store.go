package app

import (
	"fmt"

	"github.com/wedsync/veil/keys"
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
			return fmt.Errorf("store.addr: %w", err)
		}
		a.store = r
	default:
		e, err := store.NewEmbedded(sc.DataDir)
		if err != nil {
			return fmt.Errorf("store.data_dir: %w", err)
		}
		a.store = e
	}
	return nil
}
