package app

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/store"
)

// overridesBucket is the store bucket of supplier overrides.
const overridesBucket = "suppliers"

// overrideStore keeps supplier overrides in the store, where every replica
// reads them.
type overrideStore struct {
	store store.Store
	log   *zap.Logger
}

var (
	_ admin.OverrideWriter  = overrideStore{}
	_ admin.OverrideApplier = (*App)(nil)
)

// Load reads every override from the store; one that does not decode is
// logged and left out.
func (s overrideStore) Load(ctx context.Context) (map[string]generation.Override, error) {
	docs, err := s.store.List(ctx, overridesBucket)
	if err != nil {
		return nil, err
	}
	ov := make(map[string]generation.Override, len(docs))
	for _, d := range docs {
		var o generation.Override
		if err := json.Unmarshal(d.Value, &o); err != nil {
			s.log.Warn("ignoring a supplier override that does not decode", zap.String("supplier", d.Key), zap.Error(err))
			continue
		}
		ov[d.Key] = o
	}
	return ov, nil
}

// PutOverride stores a supplier's override.
func (s overrideStore) PutOverride(ctx context.Context, supplier string, o generation.Override) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = s.store.Put(ctx, overridesBucket, supplier, b)
	return err
}

// DeleteOverride drops a supplier's override; none is no error.
func (s overrideStore) DeleteOverride(ctx context.Context, supplier string) error {
	if err := s.store.Delete(ctx, overridesBucket, supplier); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// ApplyOverrides rebuilds the runtime when the overrides in the store
// differ from the ones in force.
func (a *App) ApplyOverrides(ctx context.Context) error {
	ov, err := overrideStore{a.store, a.log}.Load(ctx)
	if err != nil {
		return err
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	cur := a.rt.Load()
	if reflect.DeepEqual(ov, cur.Overrides) || (len(ov) == 0 && len(cur.Overrides) == 0) {
		return nil
	}
	if err := a.install(cur.Base, ov); err != nil {
		return err
	}
	a.audit.Info("supplier overrides applied", zap.Int("suppliers", len(ov)))
	return nil
}

// watchOverrides follows the store's overrides, so that a change made on
// another replica applies here too.
func (a *App) watchOverrides(stop <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := a.ApplyOverrides(ctx); err != nil {
				a.log.Warn("supplier overrides not applied", zap.Error(err))
			}
			cancel()
		}
	}
}
