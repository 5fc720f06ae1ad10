package keys

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/billing"
)

// memFetcher is an in-memory key source with versions, failures on demand
// and a gate to hold fetches.
type memFetcher struct {
	mu       sync.Mutex
	keys     map[string][]string // "supplier/provider" -> versions (index+1 = version)
	down     bool
	fetches  atomic.Int64
	versions atomic.Int64
	gate     chan struct{} // when non-nil, Fetch waits for it
}

func newMemFetcher() *memFetcher { return &memFetcher{keys: map[string][]string{}} }

func (m *memFetcher) put(supplier, provider, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[supplier+"/"+provider] = append(m.keys[supplier+"/"+provider], key)
}

func (m *memFetcher) setDown(down bool) {
	m.mu.Lock()
	m.down = down
	m.mu.Unlock()
}

func (m *memFetcher) Fetch(ctx context.Context, supplier, provider string) (*Key, error) {
	m.fetches.Add(1)
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, fmt.Errorf("dial vault: %w", ErrUnreachable)
	}
	vs := m.keys[supplier+"/"+provider]
	if len(vs) == 0 {
		return nil, ErrKeyMissing
	}
	return NewKey(NewSecret(vs[len(vs)-1]), billing.ClientKey, strconv.Itoa(len(vs))), nil
}

func (m *memFetcher) Version(ctx context.Context, supplier, provider string) (string, error) {
	m.versions.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return "", ErrUnreachable
	}
	vs := m.keys[supplier+"/"+provider]
	if len(vs) == 0 {
		return "", ErrKeyMissing
	}
	return strconv.Itoa(len(vs)), nil
}

// clock is a settable clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTestCache(t *testing.T, f Fetcher, clk *clock, audit *zap.Logger) *SupplierKeys {
	t.Helper()
	c, err := NewSupplierKeys(SupplierKeysOptions{Fetcher: f, Refresh: time.Hour, MaxStaleness: 3 * time.Hour, Grace: 30 * time.Minute,
		FetchTimeout: 5 * time.Second, Audit: audit, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestCacheFirstFetchIsShared(t *testing.T) {
	f := newMemFetcher()
	f.put("bella", "openai", "sk-bella-1")
	f.gate = make(chan struct{})
	c := newTestCache(t, f, newClock(), nil)
	var wg sync.WaitGroup
	keys := make([]*Key, 50)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := c.Get(context.Background(), "bella", "openai")
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	for f.fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // let the others join the flight; correctness does not depend on it
	close(f.gate)
	wg.Wait()
	if n := f.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for 50 concurrent first requests, want 1", n)
	}
	for _, k := range keys {
		if k == nil || k.Secret().Reveal() != "sk-bella-1" || k.Source() != billing.ClientKey {
			t.Fatalf("key %v", k)
		}
	}
	// Served from memory afterwards.
	if _, err := c.Get(context.Background(), "bella", "openai"); err != nil || f.fetches.Load() != 1 {
		t.Errorf("second get fetched again (%d) or failed: %v", f.fetches.Load(), err)
	}
}

func TestCacheRotation(t *testing.T) {
	f := newMemFetcher()
	f.put("bella", "openai", "sk-bella-1")
	clk := newClock()
	core, logs := observer.New(zap.InfoLevel)
	c := newTestCache(t, f, clk, zap.New(core))
	ctx := context.Background()
	k1, _ := c.Get(ctx, "bella", "openai")

	// Same version: the check costs one version call and no fetch.
	clk.advance(2 * time.Hour)
	c.checkDue()
	if f.fetches.Load() != 1 || f.versions.Load() != 1 {
		t.Errorf("fetches %d versions %d", f.fetches.Load(), f.versions.Load())
	}

	f.put("bella", "openai", "sk-bella-2")
	clk.advance(2 * time.Hour)
	c.checkDue()
	k2, _ := c.Get(ctx, "bella", "openai")
	if k2.Secret().Reveal() != "sk-bella-2" || k2.Version() != "2" {
		t.Fatalf("after rotation: %v", k2)
	}
	if p := c.Previous("bella", "openai"); p != k1 {
		t.Errorf("previous %v, want %v", p, k1)
	}
	clk.advance(31 * time.Minute)
	if p := c.Previous("bella", "openai"); p != nil {
		t.Errorf("previous after grace: %v", p)
	}
	if logs.FilterMessage("supplier key rotated").Len() != 1 {
		t.Errorf("rotation audit lines: %d", logs.FilterMessage("supplier key rotated").Len())
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.ContextMap()), "sk-bella") {
			t.Errorf("audit line shows a key: %v", e.ContextMap())
		}
	}
}

func TestCacheRejected(t *testing.T) {
	f := newMemFetcher()
	f.put("bella", "openai", "sk-bella-1")
	clk := newClock()
	c := newTestCache(t, f, clk, nil)
	ctx := context.Background()
	k1, _ := c.Get(ctx, "bella", "openai")
	if _, err := c.Rejected(ctx, "bella", "openai", k1); err == nil {
		t.Error("a rejected key with nothing newer must be an error")
	}
	// Until the key's version changes the source's answer is shared: a
	// flood of refused calls costs one read, not one each, however long
	// it lasts.
	n := f.fetches.Load()
	for range 100 {
		clk.advance(time.Minute)
		if _, err := c.Rejected(ctx, "bella", "openai", k1); err == nil {
			t.Fatal("a refusal of an unchanged key did not get the shared answer")
		}
	}
	if f.fetches.Load() != n {
		t.Errorf("100 refusals over 100 minutes read the source %d times", f.fetches.Load()-n)
	}
	// A new version, seen by a refresh (the loop's, every refresh
	// interval, or one asked for), replaces the refused key.
	f.put("bella", "openai", "sk-bella-2")
	if err := c.Refresh(ctx, "bella"); err != nil {
		t.Fatal(err)
	}
	k2, err := c.Rejected(ctx, "bella", "openai", k1)
	if err != nil || k2.Secret().Reveal() != "sk-bella-2" {
		t.Fatalf("after rejection: %v %v", k2, err)
	}
	// A second request that saw the old key rejected gets the new one
	// without another fetch.
	n = f.fetches.Load()
	if k, err := c.Rejected(ctx, "bella", "openai", k1); err != nil || k != k2 || f.fetches.Load() != n {
		t.Errorf("second rejection: %v %v, fetches %d -> %d", k, err, n, f.fetches.Load())
	}
}

func TestCacheUnreachableThenStaleThenBack(t *testing.T) {
	f := newMemFetcher()
	f.put("bella", "openai", "sk-bella-1")
	clk := newClock()
	c := newTestCache(t, f, clk, nil)
	ctx := context.Background()
	if _, err := c.Get(ctx, "bella", "openai"); err != nil {
		t.Fatal(err)
	}
	f.setDown(true)
	clk.advance(2 * time.Hour)
	c.checkDue()
	if k, err := c.Get(ctx, "bella", "openai"); err != nil || k == nil {
		t.Fatalf("within max staleness: %v %v", k, err)
	}
	clk.advance(2 * time.Hour) // 4h since the last answer > 3h
	if _, err := c.Get(ctx, "bella", "openai"); !errors.Is(err, ErrStale) {
		t.Fatalf("past max staleness: %v", err)
	}
	if st := c.Snapshot(); len(st) != 1 || !st[0].Stale || st[0].LastError == "" {
		t.Errorf("snapshot %+v", st)
	}
	f.setDown(false)
	c.checkDue()
	if k, err := c.Get(ctx, "bella", "openai"); err != nil || k.Secret().Reveal() != "sk-bella-1" {
		t.Fatalf("after recovery: %v %v", k, err)
	}
}

func TestCacheMissingIsRemembered(t *testing.T) {
	f := newMemFetcher()
	clk := newClock()
	c := newTestCache(t, f, clk, nil)
	ctx := context.Background()
	for range 5 {
		if _, err := c.Get(ctx, "nokey", "openai"); !errors.Is(err, ErrKeyMissing) {
			t.Fatalf("err %v", err)
		}
	}
	if n := f.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for a missing key, want 1 until the miss expires", n)
	}
	f.put("nokey", "openai", "sk-new")
	clk.advance(2 * time.Hour)
	if k, err := c.Get(ctx, "nokey", "openai"); err != nil || k.Secret().Reveal() != "sk-new" {
		t.Errorf("after the miss expired: %v %v", k, err)
	}
}

func TestCacheSnapshotShowsFingerprintsOnly(t *testing.T) {
	f := newMemFetcher()
	f.put("bella", "openai", "sk-bella-secret-value")
	c := newTestCache(t, f, newClock(), nil)
	_, _ = c.Get(context.Background(), "bella", "openai")
	st := c.Snapshot()
	if len(st) != 1 || st[0].Fingerprint != Fingerprint("sk-bella-secret-value") || st[0].Version != "1" {
		t.Fatalf("snapshot %+v", st)
	}
	if strings.Contains(fmt.Sprintf("%+v %#v", st, st), "sk-bella") {
		t.Error("snapshot shows the key")
	}
}

func TestKeyNeverPrints(t *testing.T) {
	k := NewKey(NewSecret("sk-do-not-print"), billing.PlatformKey, "3")
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v %#v %s %q %x", k, k, k, k, k), fmt.Sprintf("%v", []*Key{k})} {
		if strings.Contains(s, "sk-do-not") || strings.Contains(s, "6b2d646f") {
			t.Errorf("printed %q", s)
		}
	}
}

// TestCacheBackgroundLoop checks the real loop picks up a new version by
// itself (short refresh, real clock).
func TestCacheBackgroundLoop(t *testing.T) {
	f := newMemFetcher()
	f.put("bella", "openai", "sk-1")
	c, err := NewSupplierKeys(SupplierKeysOptions{Fetcher: f, Refresh: 100 * time.Millisecond, MaxStaleness: time.Minute, FetchTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(context.Background(), "bella", "openai"); err != nil {
		t.Fatal(err)
	}
	f.put("bella", "openai", "sk-2")
	deadline := time.Now().Add(20 * time.Second) // failure guard only
	for {
		k, _ := c.Get(context.Background(), "bella", "openai")
		if k.Secret().Reveal() == "sk-2" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the new version was never picked up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCacheFollowsRewrittenFile: a supplier key referenced as a file is
// re-read at each refresh, so rewriting the file (as Kubernetes does for a
// mounted secret) rotates the key.
func TestCacheFollowsRewrittenFile(t *testing.T) {
	path := t.TempDir() + "/bella-openai"
	if err := os.WriteFile(path, []byte("sk-file-v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &RefFetcher{Refs: map[string]map[string]string{"bella": {"openai": "file://" + path}}, Sources: DefaultSources()}
	clk := newClock()
	c := newTestCache(t, f, clk, nil)
	ctx := context.Background()
	k1, err := c.Get(ctx, "bella", "openai")
	if err != nil || k1.Secret().Reveal() != "sk-file-v1" || k1.Source() != billing.ClientKey {
		t.Fatalf("first read: %v %v", k1, err)
	}
	if err := os.WriteFile(path, []byte("sk-file-v2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Hour)
	c.checkDue()
	if k2, _ := c.Get(ctx, "bella", "openai"); k2.Secret().Reveal() != "sk-file-v2" {
		t.Errorf("after rewrite: %v", k2)
	}
	if _, err := c.Get(ctx, "rose", "openai"); !errors.Is(err, ErrKeyMissing) {
		t.Errorf("a supplier without a reference and no next fetcher: %v", err)
	}
}
