package app

import (
	"fmt"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/store"
)

// buildStore opens the shared state: the embedded store, or Redis,
// unless Options gave one.
func (a *App) buildStore() error {
	if a.store != nil {
		return nil
	}
	sc := a.cfg.Store
	switch sc.Type {
	case "redis":
		o, err := RedisStoreOptions(sc, a.resolve)
		if err != nil {
			return err
		}
		r, err := store.NewRedis(o)
		if err != nil {
			return fmt.Errorf("store: %w", err)
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

// RedisStoreOptions returns the options of the Redis store that sc
// configures, with its passwords resolved by resolve; its errors name the
// field of the reference that failed.
func RedisStoreOptions(sc config.Store, resolve func(config.SecretRef) (keys.Secret, error)) (store.RedisOptions, error) {
	pw, err := resolveOptional(sc.Password, resolve)
	if err != nil {
		return store.RedisOptions{}, fmt.Errorf("store.password: %w", err)
	}
	spw, err := resolveOptional(sc.Sentinel.Password, resolve)
	if err != nil {
		return store.RedisOptions{}, fmt.Errorf("store.sentinel.password: %w", err)
	}
	return store.RedisOptions{
		Addr:             sc.Addr,
		Addrs:            sc.Addrs,
		SentinelMaster:   sc.Sentinel.Master,
		SentinelAddrs:    sc.Sentinel.Addrs,
		SentinelPassword: spw,
		Password:         pw,
		DB:               sc.DB,
		Prefix:           sc.Prefix,
		Timeout:          sc.Timeout,
	}, nil
}

// resolveOptional resolves ref with resolve, unless it is empty.
func resolveOptional(ref config.SecretRef, resolve func(config.SecretRef) (keys.Secret, error)) (keys.Secret, error) {
	if ref.IsZero() {
		return keys.Secret{}, nil
	}
	return resolve(ref)
}
