package store_test

import (
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

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

// TestEmbeddedReadsAggregatesWithoutBilled: aggregates written before
// billed and workflow were kept (keys of five parts) are read with the
// payer derived from the key source and no workflow, and summed with the
// newer aggregate they are.
func TestEmbeddedReadsAggregatesWithoutBilled(t *testing.T) {
	dir := t.TempDir()
	e, err := store.NewEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, time.June, 13, 0, 0, 0, 0, time.UTC)
	newer := store.Usage{Day: day, Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o",
		KeySource: "platform", Billed: "platform", Requests: 1, PromptTokens: 10, CostMicros: 7}
	if err := e.AddUsage(t.Context(), "new.0", newer); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	counts := func(n ...int64) []byte {
		var v []byte
		for _, x := range n {
			v = binary.BigEndian.AppendUint64(v, uint64(x))
		}
		return v
	}
	e = rewriteEmbedded(t, dir, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("usage"))
		for k, v := range map[string][]byte{
			"2026-06-13\x00bella-photography\x00openai\x00gpt-4o\x00platform": counts(2, 20, 4, 0, 14),
			"2026-06-13\x00bella-photography\x00openai\x00gpt-4o\x00client":   counts(3, 30, 6, 0, 0),
		} {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	t.Cleanup(func() { _ = e.Close() })
	rows, err := e.QueryUsage(t.Context(), store.UsageQuery{From: day, To: day})
	want := []store.Usage{
		{Day: day, Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o", KeySource: "client", Billed: "client",
			Requests: 3, PromptTokens: 30, CompletionTokens: 6},
		{Day: day, Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o", KeySource: "platform", Billed: "platform",
			Requests: 3, PromptTokens: 30, CompletionTokens: 4, CostMicros: 21},
	}
	if err != nil || !slices.Equal(rows, want) {
		t.Errorf("QueryUsage = %+v, %v; want %+v", rows, err, want)
	}
}

// TestEmbeddedKeepsMarksOnDisk: a spool run's marks survive a restart of
// the embedded store, as its aggregates do, so that records replayed
// after both were killed are not counted again.
func TestEmbeddedKeepsMarksOnDisk(t *testing.T) {
	dir := t.TempDir()
	day := time.Now().UTC()
	d := store.Usage{Day: day, Supplier: "bella", Provider: "openai", Model: "gpt-4o", KeySource: "platform",
		Billed: "platform", Requests: 3, PromptTokens: 30}
	seq := store.UsageSeq{Source: "run-a", First: 1, Last: 9}
	e, err := store.NewEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w, err := e.AddUsageSeq(t.Context(), "k.0", d, seq); err != nil || w != 0 {
		t.Fatalf("AddUsageSeq = %d, %v; want 0 (applied)", w, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = store.NewEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	for _, tc := range []struct {
		name        string
		first, last uint64
		want        uint64
	}{
		{"the same records under another id", 1, 9, 9},
		{"straddling the mark", 5, 12, 9},
	} {
		s := seq
		s.First, s.Last = tc.first, tc.last
		if w, err := e.AddUsageSeq(t.Context(), "k.1", d, s); err != nil || w != tc.want {
			t.Errorf("%s: AddUsageSeq = %d, %v; want %d", tc.name, w, err, tc.want)
		}
	}
	rows, err := e.QueryUsage(t.Context(), store.UsageQuery{From: day, To: day})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 3 {
		t.Errorf("QueryUsage = %+v, want one aggregate of 3 requests", rows)
	}
}

// TestEmbeddedMarksExpire: a mark past its expiry no longer holds a delta
// back, and the marks of days long gone are swept once expired; one moved
// lately is kept, however old its day.
func TestEmbeddedMarksExpire(t *testing.T) {
	dir := t.TempDir()
	e, err := store.NewEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := now.Add(-store.UsageMarkTTL).AddDate(0, 0, -3).UTC().Format(time.DateOnly)
	aggregate := "\x00bella\x00openai\x00gpt-4o\x00platform\x00platform\x00\x00run-a"
	mark := func(seq uint64, expiry time.Time) []byte {
		return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, seq), uint64(expiry.UnixNano()))
	}
	today := now.UTC().Format(time.DateOnly)
	keys := map[string][]byte{
		today + aggregate:          mark(9, now.Add(-time.Minute)), // expired
		old + aggregate:            mark(9, now.Add(-time.Minute)), // expired, of a day long gone
		old + aggregate + "-moved": mark(9, now.Add(time.Hour)),    // moved lately
	}
	e = rewriteEmbedded(t, dir, func(tx *bbolt.Tx) error {
		for k, v := range keys {
			if err := tx.Bucket([]byte("usage_marks")).Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	d := store.Usage{Day: now, Supplier: "bella", Provider: "openai", Model: "gpt-4o", KeySource: "platform",
		Billed: "platform", Requests: 1}
	if w, err := e.AddUsageSeq(t.Context(), "x.0", d, store.UsageSeq{Source: "run-a", First: 2, Last: 3}); err != nil || w != 0 {
		t.Errorf("AddUsageSeq under an expired mark = %d, %v; want 0 (applied)", w, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(filepath.Join(dir, "veil.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := map[string]uint64{}
	_ = db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("usage_marks")).ForEach(func(k, v []byte) error {
			got[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	want := map[string]uint64{today + aggregate: 3, old + aggregate + "-moved": 9}
	if !maps.Equal(got, want) {
		t.Errorf("marks %v, want %v", got, want)
	}
}

// rewriteEmbedded changes the data file of the closed embedded store in
// dir with update, as an older version or the passing of time would have
// left it, and opens the store again on it.
func rewriteEmbedded(t *testing.T, dir string, update func(tx *bbolt.Tx) error) *store.Embedded {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "veil.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(update)
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	e, err := store.NewEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
