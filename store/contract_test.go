package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/store"
	"github.com/wedsync/veil/store/storetest"
)

// openEmbedded returns a storetest.Open of embedded stores, on disk in a
// new directory or in memory: one store, given n times.
func openEmbedded(onDisk bool) storetest.Open {
	return func(t testing.TB, n int) []store.Store {
		t.Helper()
		dir := ""
		if onDisk {
			dir = t.TempDir()
		}
		e, err := store.NewEmbedded(dir)
		if err != nil {
			t.Fatalf("NewEmbedded: %v", err)
		}
		t.Cleanup(func() {
			if err := e.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		stores := make([]store.Store, n)
		for i := range stores {
			stores[i] = e
		}
		return stores
	}
}

// prefixes makes the key prefix of each state on a shared Redis server
// unique.
var prefixes atomic.Int64

// openRedis returns a storetest.Open of Redis stores on the server at
// addr: n clients, as n replicas, under a prefix of their own.
func openRedis(addr string) storetest.Open {
	return openRedisWith(store.RedisOptions{Addr: addr})
}

// openRedisWith returns a storetest.Open of Redis stores with options o:
// n clients, as n replicas, under a prefix of their own.
func openRedisWith(o store.RedisOptions) storetest.Open {
	return func(t testing.TB, n int) []store.Store {
		t.Helper()
		o := o
		o.Prefix = fmt.Sprintf("test%d:", prefixes.Add(1))
		stores := make([]store.Store, n)
		for i := range stores {
			stores[i] = newRedis(t, o)
		}
		return stores
	}
}

// newRedis returns a Redis store closed when the test ends.
func newRedis(t testing.TB, o store.RedisOptions) *store.Redis {
	t.Helper()
	r, err := store.NewRedis(o)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func TestContract(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, openEmbedded(false))
	})
	t.Run("embedded on disk", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, openEmbedded(true))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, openRedis(redistest.Start(t).Addr))
	})
}
