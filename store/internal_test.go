package store

import (
	"strconv"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

func TestWindow(t *testing.T) {
	utc := func(y int, m time.Month, d, h, minute, s int) time.Time {
		return time.Date(y, m, d, h, minute, s, 0, time.UTC)
	}
	for _, tc := range []struct {
		name       string
		w          time.Duration
		now        time.Time
		start, end time.Time
	}{
		{"minute", time.Minute, utc(2026, 6, 13, 14, 30, 20), utc(2026, 6, 13, 14, 30, 0), utc(2026, 6, 13, 14, 31, 0)},
		{"minute boundary", time.Minute, utc(2026, 6, 13, 14, 31, 0), utc(2026, 6, 13, 14, 31, 0), utc(2026, 6, 13, 14, 32, 0)},
		{"last nanosecond", time.Minute, utc(2026, 6, 13, 14, 31, 0).Add(-1), utc(2026, 6, 13, 14, 30, 0), utc(2026, 6, 13, 14, 31, 0)},
		{"ten seconds", 10 * time.Second, utc(2026, 6, 13, 14, 30, 29), utc(2026, 6, 13, 14, 30, 20), utc(2026, 6, 13, 14, 30, 30)},
		{"day", 24 * time.Hour, utc(2026, 6, 13, 23, 59, 59), utc(2026, 6, 13, 0, 0, 0), utc(2026, 6, 14, 0, 0, 0)},
		{"week from the epoch, a Thursday", 7 * 24 * time.Hour, utc(2026, 6, 13, 12, 0, 0), utc(2026, 6, 11, 0, 0, 0), utc(2026, 6, 18, 0, 0, 0)},
		{"before the epoch", time.Minute, utc(1969, 12, 31, 23, 59, 30), utc(1969, 12, 31, 23, 59, 0), utc(1970, 1, 1, 0, 0, 0)},
		{"month", WindowMonth, utc(2026, 6, 13, 14, 30, 20), utc(2026, 6, 1, 0, 0, 0), utc(2026, 7, 1, 0, 0, 0)},
		{"leap February", WindowMonth, utc(2028, 2, 29, 23, 0, 0), utc(2028, 2, 1, 0, 0, 0), utc(2028, 3, 1, 0, 0, 0)},
		{"month in another zone", WindowMonth, utc(2026, 6, 30, 20, 0, 0).In(time.FixedZone("NZST", 12*3600)),
			utc(2026, 6, 1, 0, 0, 0), utc(2026, 7, 1, 0, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, end := window(tc.w, tc.now)
			if !start.Equal(tc.start) || !end.Equal(tc.end) {
				t.Errorf("window(%v, %v) = [%v, %v), want [%v, %v)", tc.w, tc.now, start, end, tc.start, tc.end)
			}
		})
	}
}

func TestEmbeddedSweep(t *testing.T) {
	e, err := NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ctx := t.Context()
	t0 := time.Date(2026, time.June, 13, 14, 30, 20, 0, time.UTC)
	limits := []Limit{
		{Name: "rpm", Window: time.Minute, Max: 10, Amount: 1},
		{Name: "month_tokens", Window: WindowMonth, Max: 1000, Amount: 1},
	}
	reserve := func(subject string, now time.Time) {
		t.Helper()
		if _, d, err := e.Reserve(ctx, subject, limits, now); err != nil || d != nil {
			t.Fatalf("Reserve = %+v, %v", d, err)
		}
	}
	count := func() int {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.counters)
	}
	reserve("supplier:a", t0)
	reserve("supplier:b", t0)
	if n := count(); n != 4 {
		t.Fatalf("%d counters, want 4", n)
	}
	// Within CounterGrace of the end of 14:30, the old minute stays for
	// late settlements.
	reserve("supplier:a", t0.Add(time.Minute))
	if n := count(); n != 5 {
		t.Fatalf("%d counters, want 5", n)
	}
	// At 14:32:20, the 14:30 minute is more than CounterGrace old.
	reserve("supplier:a", t0.Add(2*time.Minute))
	if n := count(); n != 4 { // 14:31 and 14:32 of a, the month of a and of b
		t.Fatalf("%d counters after the sweep, want 4", n)
	}
}

func TestEmbeddedSlotsForgetIdleSubjects(t *testing.T) {
	e, err := NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ctx := t.Context()
	t0 := time.Date(2026, time.June, 13, 14, 30, 20, 0, time.UTC)
	s, ok, err := e.AcquireSlot(ctx, "supplier:a", 2, time.Minute, t0)
	if err != nil || !ok {
		t.Fatalf("AcquireSlot = %v, %v", ok, err)
	}
	if err := e.ReleaseSlot(ctx, s); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	n := len(e.slots)
	e.mu.Unlock()
	if n != 0 {
		t.Errorf("%d subjects with slots after the last release, want 0", n)
	}
}

func TestHashTag(t *testing.T) {
	for _, tc := range []struct {
		name, group, want string
	}{
		{"plain", "supplier:bella", "supplier:bella"},
		{"closing brace", "a}b", "a%7Db"},
		{"opening brace", "{x", "%7Bx"},
		{"leading closing brace", "}", "%7D"},
		{"percent", "50%", "50%25"},
		{"escape lookalike", "%7D", "%257D"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hashTag(tc.group); got != tc.want {
				t.Errorf("hashTag(%q) = %q, want %q", tc.group, got, tc.want)
			}
		})
	}
}

// The ids of applied deltas are remembered for AppliedTTL, then forgotten
// and swept, in memory and in the bbolt file.
func TestAppliedIDsExpire(t *testing.T) {
	t0 := time.Date(2026, time.June, 13, 14, 30, 20, 0, time.UTC)
	day := time.Date(2026, time.June, 13, 0, 0, 0, 0, time.UTC)
	bolt, err := openBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bolt.close() })
	for name, d := range map[string]durable{"memory": newMemDurable(), "bolt": bolt} {
		t.Run(name, func(t *testing.T) {
			add := func(id string, at time.Duration) {
				t.Helper()
				if err := d.addUsage(id, Usage{Day: day, Supplier: "bella", Requests: 1}, t0.Add(at)); err != nil {
					t.Fatal(err)
				}
			}
			// More ids than one sweep forgets.
			for i := range sweepBatch + 10 {
				add(strconv.Itoa(i), 0)
			}
			add("0", AppliedTTL-time.Nanosecond) // remembered: nothing
			add("late", time.Minute)
			add("0", AppliedTTL) // forgotten: counts again, remembered anew
			add("0", AppliedTTL+time.Minute)
			add("late", AppliedTTL+time.Minute) // forgotten
			rows, err := d.queryUsage("bella", day, day)
			if err != nil || len(rows) != 1 || rows[0].Requests != sweepBatch+10+1+2 {
				t.Fatalf("queryUsage = %+v, %v; want %d requests", rows, err, sweepBatch+10+1+2)
			}
			// By now the sweeps forgot everything but "0" and "late", the
			// two applied again.
			if n := appliedIDs(t, d); n != 2 {
				t.Errorf("%d ids remembered, want 2", n)
			}
		})
	}
}

// appliedIDs returns how many ids d remembers, checking that its two
// indexes agree.
func appliedIDs(t *testing.T, d durable) int {
	t.Helper()
	switch d := d.(type) {
	case *memDurable:
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.applied)
	case *boltDurable:
		var byID, byExpiry int
		err := d.db.View(func(tx *bbolt.Tx) error {
			byID = tx.Bucket(boltApplied).Stats().KeyN
			byExpiry = tx.Bucket(boltAppliedByExpiry).Stats().KeyN
			return nil
		})
		if err != nil || byID != byExpiry {
			t.Fatalf("ids %d, by expiry %d, %v", byID, byExpiry, err)
		}
		return byID
	}
	t.Fatalf("unknown durable %T", d)
	return 0
}
