package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wedsync/veil/store"
)

// t0 is the tests' clock: Saturday 13 June 2026, 14:30:20 UTC.
var t0 = time.Date(2026, time.June, 13, 14, 30, 20, 0, time.UTC)

func TestEmbeddedReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := t.Context()
	limits := []store.Limit{
		{Name: "rpm", Window: time.Minute, Max: 100, Amount: 1},
		{Name: "month_cost_micros", Window: store.WindowMonth, Max: 50_000_000, Amount: 1_250_000},
	}
	usage := store.Usage{Day: t0, Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o",
		KeySource: "platform", Requests: 2, PromptTokens: 900, CompletionTokens: 100, CostMicros: 1_250_000}

	e, err := store.NewEmbedded(dir)
	if err != nil {
		t.Fatalf("NewEmbedded: %v", err)
	}
	vTier, err := e.Put(ctx, "overrides", "bella-photography", []byte(`{"tier":"gold"}`))
	if err != nil {
		t.Fatal(err)
	}
	vGone, err := e.Put(ctx, "overrides", "closed-business", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Delete(ctx, "overrides", "closed-business"); err != nil {
		t.Fatal(err)
	}
	vMig, ok, err := e.CompareAndSwap(ctx, "migrations", "0007", 0, []byte("done"))
	if err != nil || !ok {
		t.Fatalf("CompareAndSwap = %v, %v", ok, err)
	}
	for range 2 {
		if _, d, err := e.Reserve(ctx, "supplier:bella-photography", limits, t0); err != nil || d != nil {
			t.Fatalf("Reserve = %+v, %v", d, err)
		}
	}
	if err := e.AddUsage(ctx, "batch-1.0", usage); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.AcquireLease(ctx, "migration", "pod-a", time.Hour, t0); err != nil || !ok {
		t.Fatalf("AcquireLease = %v, %v", ok, err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	info, err := os.Stat(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("veil.db mode %v, want 0600", mode)
	}

	e, err = store.NewEmbedded(dir)
	if err != nil {
		t.Fatalf("NewEmbedded again: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })

	if v, ver, err := e.Get(ctx, "overrides", "bella-photography"); err != nil || string(v) != `{"tier":"gold"}` || ver != vTier {
		t.Errorf("Get after reopen = %q, %d, %v; want the document at version %d", v, ver, err, vTier)
	}
	if _, _, err := e.Get(ctx, "overrides", "closed-business"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted document after reopen: %v, want ErrNotFound", err)
	}
	if v, ver, err := e.Get(ctx, "migrations", "0007"); err != nil || string(v) != "done" || ver != vMig {
		t.Errorf("Get after reopen = %q, %d, %v; want done at version %d", v, ver, err, vMig)
	}
	if v, err := e.Put(ctx, "overrides", "closed-business", []byte(`{}`)); err != nil || v <= vGone {
		t.Errorf("Put after reopen = version %d, %v; want > %d (versions never reused)", v, err, vGone)
	}
	// The delta's id was saved with it: a retry after a restart does not
	// count again.
	if err := e.AddUsage(ctx, "batch-1.0", usage); err != nil {
		t.Fatal(err)
	}
	rows, err := e.QueryUsage(ctx, store.UsageQuery{From: t0, To: t0})
	usage.Day = time.Date(2026, time.June, 13, 0, 0, 0, 0, time.UTC)
	if err != nil || len(rows) != 1 || rows[0] != usage {
		t.Errorf("QueryUsage after reopen = %+v, %v; want [%+v]", rows, err, usage)
	}
	// Quota counters were saved by Close: the monthly budget survives a
	// deploy.
	used, err := e.Used(ctx, "supplier:bella-photography", limits, t0)
	if err != nil || !slices.Equal(used, []int64{2, 2_500_000}) {
		t.Errorf("Used after reopen = %v, %v; want [2 2500000]", used, err)
	}
	// Leases live in memory only.
	if ok, err := e.AcquireLease(ctx, "migration", "pod-b", time.Hour, t0); err != nil || !ok {
		t.Errorf("AcquireLease after reopen = %v, %v; want true", ok, err)
	}
}

func TestEmbeddedLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e, err := store.NewEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if other, err := store.NewEmbedded(dir); err == nil {
		_ = other.Close()
		t.Fatal("a second store opened the same data directory")
	}
}

func TestEmbeddedBadDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if e, err := store.NewEmbedded(file); err == nil {
		_ = e.Close()
		t.Fatal("NewEmbedded on a file succeeded")
	}
}
