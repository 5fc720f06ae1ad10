// Package storetest is the contract of store.Store as a test suite: every
// implementation, and every wrapper around one (metrics, caching), must
// pass Run. The suite drives time only through the clocks it passes to
// the store, never the wall clock.
package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wedsync/veil/store"
)

// Open returns n handles to one new, empty state, as n replicas would see
// it: what one handle writes, the others read. The state is shared with
// no other call. Open closes the handles when the test ends; closing one
// earlier must be harmless. An implementation for a single replica may
// return the same store n times.
type Open func(t testing.TB, n int) []store.Store

// t0 is the suite's clock: Saturday 13 June 2026, 14:30:20 UTC, 40s
// before the next minute.
var t0 = time.Date(2026, time.June, 13, 14, 30, 20, 0, time.UTC)

// Run runs the contract suite against the stores of open.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, Open)
	}{
		{"Reserve", testReserve},
		{"ReservationWindows", testReservationWindows},
		{"WindowRoll", testWindowRoll},
		{"MonthWindow", testMonthWindow},
		{"Settle", testSettle},
		{"Refund", testRefund},
		{"SettleOnAnotherReplica", testSettleOnAnotherReplica},
		{"Used", testUsed},
		{"InvalidArguments", testInvalidArguments},
		{"Slots", testSlots},
		{"SlotExpiry", testSlotExpiry},
		{"Documents", testDocuments},
		{"DocumentValues", testDocumentValues},
		{"List", testList},
		{"Leases", testLeases},
		{"Usage", testUsage},
		{"UsageInvalid", testUsageInvalid},
		{"UsageAppliedOnce", testUsageAppliedOnce},
		{"UsageMark", testUsageMark},
		{"UsageMarkConcurrent", testUsageMarkConcurrent},
		{"UsageMarkInvalid", testUsageMarkInvalid},
		{"UsageBilledAndWorkflow", testUsageBilledAndWorkflow},
		{"ConcurrentReserve", testConcurrentReserve},
		{"ConcurrentSlots", testConcurrentSlots},
		{"ConcurrentCompareAndSwap", testConcurrentCompareAndSwap},
		{"Headroom", testHeadroom},
		{"HeadroomMerge", testHeadroomMerge},
		{"HeadroomExpiry", testHeadroomExpiry},
		{"HeadroomAccounts", testHeadroomAccounts},
		{"ConcurrentHeadroom", testConcurrentHeadroom},
		{"Close", testClose},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open) })
	}
}

// one returns a single new store.
func one(t *testing.T, open Open) store.Store {
	t.Helper()
	return open(t, 1)[0]
}

// reserve reserves and fails the test on an error or a denial.
func reserve(t *testing.T, s store.Store, subject string, limits []store.Limit, now time.Time) store.Reservation {
	t.Helper()
	r, d, err := s.Reserve(t.Context(), subject, limits, now)
	if err != nil {
		t.Fatalf("Reserve(%s) at %v: %v", subject, now, err)
	}
	if d != nil {
		t.Fatalf("Reserve(%s) at %v denied: %+v", subject, now, *d)
	}
	return r
}

// deny reserves and fails the test unless it is denied as want says.
func deny(t *testing.T, s store.Store, subject string, limits []store.Limit, now time.Time, want store.Denial) {
	t.Helper()
	r, d, err := s.Reserve(t.Context(), subject, limits, now)
	if err != nil {
		t.Fatalf("Reserve(%s) at %v: %v", subject, now, err)
	}
	if d == nil {
		t.Fatalf("Reserve(%s) at %v = %+v, want denial %+v", subject, now, r, want)
	}
	if *d != want {
		t.Fatalf("Reserve(%s) at %v denied %+v, want %+v", subject, now, *d, want)
	}
	if r.Subject != "" || r.Items != nil {
		t.Errorf("denied Reserve returned reservation %+v, want the zero Reservation", r)
	}
}

// checkUsed fails the test unless the usage of limits is want.
func checkUsed(t *testing.T, s store.Store, subject string, limits []store.Limit, now time.Time, want ...int64) {
	t.Helper()
	got, err := s.Used(t.Context(), subject, limits, now)
	if err != nil {
		t.Fatalf("Used(%s): %v", subject, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Used(%s) at %v = %v, want %v", subject, now, got, want)
	}
}

func rpm(maximum, amount int64) store.Limit { //nolint:unparam // a test helper, shaped like tpm and the others
	return store.Limit{Name: "rpm", Window: time.Minute, Max: maximum, Amount: amount}
}

func tpm(maximum, amount int64) store.Limit {
	return store.Limit{Name: "tpm", Window: time.Minute, Max: maximum, Amount: amount}
}

func dayTokens(maximum, amount int64) store.Limit {
	return store.Limit{Name: "day_tokens", Window: 24 * time.Hour, Max: maximum, Amount: amount}
}

func monthCost(maximum, amount int64) store.Limit {
	return store.Limit{Name: "month_cost_micros", Window: store.WindowMonth, Max: maximum, Amount: amount}
}

func testReserve(t *testing.T, open Open) {
	s := one(t, open)
	const untilMinute = 40 * time.Second
	for _, tc := range []struct {
		name   string
		limits []store.Limit
		before int           // successful reservations before the checked one
		want   *store.Denial // the checked one's denial, nil if granted
		used   []int64       // usage afterwards
	}{
		{"within limit", []store.Limit{rpm(3, 1)}, 2, nil, []int64{3}},
		{"over limit", []store.Limit{rpm(3, 1)}, 3,
			&store.Denial{Limit: "rpm", Max: 3, Used: 3, Amount: 1, RetryAfter: untilMinute}, []int64{3}},
		{"exactly max", []store.Limit{tpm(100, 100)}, 0, nil, []int64{100}},
		{"amount above max", []store.Limit{tpm(100, 150)}, 0,
			&store.Denial{Limit: "tpm", Max: 100, Used: 0, Amount: 150, RetryAfter: untilMinute}, []int64{0}},
		{"zero amount at max", []store.Limit{tpm(100, 0)}, 0, nil, []int64{0}},
		{"unlimited skipped", []store.Limit{rpm(0, 1), tpm(-1, 500)}, 5, nil, []int64{0, 0}},
		{"all or nothing", []store.Limit{rpm(10, 1), tpm(100, 60)}, 1,
			&store.Denial{Limit: "tpm", Max: 100, Used: 60, Amount: 60, RetryAfter: untilMinute}, []int64{1, 60}},
		{"first failing limit", []store.Limit{rpm(10, 1), tpm(100, 60), dayTokens(100, 60)}, 1,
			&store.Denial{Limit: "tpm", Max: 100, Used: 60, Amount: 60, RetryAfter: untilMinute}, []int64{1, 60, 60}},
		{"failing limit after unlimited", []store.Limit{tpm(0, 60), dayTokens(100, 60)}, 1,
			&store.Denial{Limit: "day_tokens", Max: 100, Used: 60, Amount: 60, RetryAfter: 9*time.Hour + 29*time.Minute + 40*time.Second},
			[]int64{0, 60}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := "supplier:" + tc.name
			for range tc.before {
				reserve(t, s, subject, tc.limits, t0)
			}
			if tc.want != nil {
				deny(t, s, subject, tc.limits, t0, *tc.want)
			} else {
				reserve(t, s, subject, tc.limits, t0)
			}
			checkUsed(t, s, subject, tc.limits, t0, tc.used...)
		})
	}
}

func testReservationWindows(t *testing.T, open Open) {
	s := one(t, open)
	utc := func(y int, m time.Month, d, h, minute int) time.Time {
		return time.Date(y, m, d, h, minute, 0, 0, time.UTC)
	}
	for _, tc := range []struct {
		name       string
		limit      store.Limit
		now        time.Time
		start, end time.Time
	}{
		{"minute", tpm(1000, 120), t0, utc(2026, 6, 13, 14, 30), utc(2026, 6, 13, 14, 31)},
		{"hour", store.Limit{Name: "rph", Window: time.Hour, Max: 10, Amount: 1}, t0,
			utc(2026, 6, 13, 14, 0), utc(2026, 6, 13, 15, 0)},
		{"day", dayTokens(1000, 5), t0, utc(2026, 6, 13, 0, 0), utc(2026, 6, 14, 0, 0)},
		{"month", monthCost(1_000_000, 2500), t0, utc(2026, 6, 1, 0, 0), utc(2026, 7, 1, 0, 0)},
		{"month across a year", monthCost(1_000_000, 2500), utc(2026, 12, 31, 23, 59),
			utc(2026, 12, 1, 0, 0), utc(2027, 1, 1, 0, 0)},
		{"minute in another zone", tpm(1000, 120), t0.In(time.FixedZone("IST", 5*3600+1800)),
			utc(2026, 6, 13, 14, 30), utc(2026, 6, 13, 14, 31)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := "supplier:windows-" + tc.name
			first := reserve(t, s, subject, []store.Limit{tc.limit}, tc.now)
			r := reserve(t, s, subject, []store.Limit{tc.limit}, tc.now)
			want := store.Reserved{Name: tc.limit.Name, Start: tc.start, End: tc.end, Amount: tc.limit.Amount, Used: 2 * tc.limit.Amount}
			if r.Subject != subject || len(r.Items) != 1 {
				t.Fatalf("Reserve = %+v, want subject %q and one item", r, subject)
			}
			got := r.Items[0]
			if got.Name != want.Name || !got.Start.Equal(want.Start) || !got.End.Equal(want.End) ||
				got.Amount != want.Amount || got.Used != want.Used {
				t.Errorf("Reserve item = %+v, want %+v", got, want)
			}
			if got.Start.Location() != time.UTC || got.End.Location() != time.UTC {
				t.Errorf("window bounds %v, %v are not in UTC", got.Start, got.End)
			}
			if u := first.Items[0].Used; u != tc.limit.Amount {
				t.Errorf("first reservation's Used = %d, want %d", u, tc.limit.Amount)
			}
		})
	}
}

func testWindowRoll(t *testing.T, open Open) {
	s := one(t, open)
	const subject = "supplier:bella-photography"
	limits := []store.Limit{rpm(2, 1), {Name: "tph", Window: time.Hour, Max: 3, Amount: 1}}
	reserve(t, s, subject, limits, t0)
	reserve(t, s, subject, limits, t0)
	last := t0.Add(39 * time.Second) // 14:30:59
	deny(t, s, subject, limits, last, store.Denial{Limit: "rpm", Max: 2, Used: 2, Amount: 1, RetryAfter: time.Second})

	next := time.Date(2026, 6, 13, 14, 31, 0, 0, time.UTC)
	checkUsed(t, s, subject, limits, next, 0, 2)
	reserve(t, s, subject, limits, next)
	checkUsed(t, s, subject, limits, next, 1, 3)
	checkUsed(t, s, subject, limits, t0, 2, 3) // the previous minute is unchanged

	// The hour is now full: RetryAfter runs to 15:00.
	later := next.Add(5 * time.Minute)
	deny(t, s, subject, limits, later, store.Denial{Limit: "tph", Max: 3, Used: 3, Amount: 1, RetryAfter: 24 * time.Minute})
	reserve(t, s, subject, limits, time.Date(2026, 6, 13, 15, 0, 0, 0, time.UTC))
}

func testMonthWindow(t *testing.T, open Open) {
	s := one(t, open)
	const subject = "supplier:rose-garden-venue"
	limits := []store.Limit{monthCost(5_000_000, 5_000_000)}
	endOfJan := time.Date(2026, time.January, 31, 23, 59, 30, 0, time.UTC)
	r := reserve(t, s, subject, limits, endOfJan)
	if want := time.Date(2026, time.February, 1, 0, 0, 0, 0, time.UTC); !r.Items[0].End.Equal(want) {
		t.Errorf("January window ends %v, want %v", r.Items[0].End, want)
	}
	deny(t, s, subject, limits, endOfJan, store.Denial{
		Limit: "month_cost_micros", Max: 5_000_000, Used: 5_000_000, Amount: 5_000_000, RetryAfter: 30 * time.Second,
	})
	// Already 1 February in Auckland, still January in UTC.
	auckland := endOfJan.Add(10 * time.Second).In(time.FixedZone("NZDT", 13*3600))
	deny(t, s, subject, limits, auckland, store.Denial{
		Limit: "month_cost_micros", Max: 5_000_000, Used: 5_000_000, Amount: 5_000_000, RetryAfter: 20 * time.Second,
	})
	feb := time.Date(2026, time.February, 1, 0, 0, 0, 0, time.UTC)
	checkUsed(t, s, subject, limits, feb, 0)
	r = reserve(t, s, subject, limits, feb)
	if start, end := r.Items[0].Start, r.Items[0].End; !start.Equal(feb) || !end.Equal(feb.AddDate(0, 1, 0)) {
		t.Errorf("February window = [%v, %v), want [%v, %v)", start, end, feb, feb.AddDate(0, 1, 0))
	}
	// February has 28 days in 2026: the window rolls on 1 March.
	endOfFeb := time.Date(2026, time.February, 28, 12, 0, 0, 0, time.UTC)
	deny(t, s, subject, limits, endOfFeb, store.Denial{
		Limit: "month_cost_micros", Max: 5_000_000, Used: 5_000_000, Amount: 5_000_000, RetryAfter: 12 * time.Hour,
	})
}

func testSettle(t *testing.T, open Open) {
	s := one(t, open)
	for _, tc := range []struct {
		name   string
		limits []store.Limit
		actual map[string]int64
		used   []int64
	}{
		{"up", []store.Limit{tpm(1000, 100)}, map[string]int64{"tpm": 250}, []int64{250}},
		{"down", []store.Limit{tpm(1000, 100)}, map[string]int64{"tpm": 40}, []int64{40}},
		{"to zero", []store.Limit{tpm(1000, 100)}, map[string]int64{"tpm": 0}, []int64{0}},
		{"over max", []store.Limit{tpm(200, 150)}, map[string]int64{"tpm": 500}, []int64{500}},
		{"missing names keep their amount", []store.Limit{rpm(10, 1), tpm(1000, 100), monthCost(10_000, 300)},
			map[string]int64{"tpm": 30}, []int64{1, 30, 300}},
		{"unknown names ignored", []store.Limit{tpm(1000, 100)}, map[string]int64{"tpm": 90, "rpd": 7}, []int64{90}},
		{"nil actual", []store.Limit{tpm(1000, 100)}, nil, []int64{100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := "supplier:settle-" + tc.name
			r := reserve(t, s, subject, tc.limits, t0)
			if err := s.Settle(t.Context(), r, tc.actual); err != nil {
				t.Fatalf("Settle: %v", err)
			}
			checkUsed(t, s, subject, tc.limits, t0, tc.used...)
		})
	}

	t.Run("other reservations kept", func(t *testing.T) {
		const subject = "supplier:settle-two"
		limits := []store.Limit{tpm(1000, 100)}
		r := reserve(t, s, subject, limits, t0)
		reserve(t, s, subject, limits, t0)
		if err := s.Settle(t.Context(), r, map[string]int64{"tpm": 10}); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		checkUsed(t, s, subject, limits, t0, 110)
	})

	t.Run("over max denies the next", func(t *testing.T) {
		const subject = "supplier:settle-over"
		limits := []store.Limit{tpm(200, 150)}
		r := reserve(t, s, subject, limits, t0)
		if err := s.Settle(t.Context(), r, map[string]int64{"tpm": 500}); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		deny(t, s, subject, []store.Limit{tpm(200, 0)}, t0,
			store.Denial{Limit: "tpm", Max: 200, Used: 500, Amount: 0, RetryAfter: 40 * time.Second})
	})

	t.Run("after the window rolled", func(t *testing.T) {
		const subject = "supplier:settle-late"
		limits := []store.Limit{tpm(1000, 100)}
		r := reserve(t, s, subject, limits, t0)
		next := t0.Add(time.Minute)
		reserve(t, s, subject, limits, next)
		if err := s.Settle(t.Context(), r, map[string]int64{"tpm": 300}); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		checkUsed(t, s, subject, limits, next, 100) // the new window is untouched
		checkUsed(t, s, subject, limits, t0, 300)   // within CounterGrace, the old one is settled
	})
}

func testRefund(t *testing.T, open Open) {
	s := one(t, open)
	limits := []store.Limit{rpm(10, 1), tpm(1000, 100), monthCost(1_000_000, 2000)}

	t.Run("gives everything back", func(t *testing.T) {
		const subject = "supplier:refund-all"
		r := reserve(t, s, subject, limits, t0)
		if err := s.Refund(t.Context(), r); err != nil {
			t.Fatalf("Refund: %v", err)
		}
		checkUsed(t, s, subject, limits, t0, 0, 0, 0)
	})
	t.Run("keeps other reservations", func(t *testing.T) {
		const subject = "supplier:refund-one"
		reserve(t, s, subject, limits, t0)
		r := reserve(t, s, subject, limits, t0)
		if err := s.Refund(t.Context(), r); err != nil {
			t.Fatalf("Refund: %v", err)
		}
		checkUsed(t, s, subject, limits, t0, 1, 100, 2000)
	})
	t.Run("never below zero", func(t *testing.T) {
		const subject = "supplier:refund-floor"
		r := reserve(t, s, subject, limits, t0)
		if err := s.Settle(t.Context(), r, map[string]int64{"tpm": 10}); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		if err := s.Refund(t.Context(), r); err != nil { // settled already: nothing changes
			t.Fatalf("Refund: %v", err)
		}
		checkUsed(t, s, subject, limits, t0, 1, 10, 2000)
		anon := r
		anon.ID = "" // a reservation without an ID settles every time
		if err := s.Refund(t.Context(), anon); err != nil {
			t.Fatalf("Refund: %v", err)
		}
		checkUsed(t, s, subject, limits, t0, 0, 0, 0)
	})
	t.Run("settled once", func(t *testing.T) {
		const subject = "supplier:settle-once"
		r := reserve(t, s, subject, limits, t0)
		if r.ID == "" {
			t.Fatal("a reservation has no ID")
		}
		for range 3 { // a killed process's reservation settled again from its journal
			if err := s.Settle(t.Context(), r, map[string]int64{"tpm": 10}); err != nil {
				t.Fatalf("Settle: %v", err)
			}
		}
		checkUsed(t, s, subject, limits, t0, 1, 10, 2000)
	})
	t.Run("never made, not settled", func(t *testing.T) {
		const subject = "supplier:settle-unmade"
		reserve(t, s, subject, limits, t0)
		// Journaled by a process killed before it reserved: settling
		// or refunding it changes nothing.
		planned := store.PlanReservation("unmade-1", subject, limits, t0)
		if err := s.Refund(t.Context(), planned); err != nil {
			t.Fatalf("Refund: %v", err)
		}
		checkUsed(t, s, subject, limits, t0, 1, 100, 2000)
		r, denial, err := s.ReserveAs(t.Context(), "made-2", subject, limits, t0)
		if err != nil || denial != nil || r.ID != "made-2" || len(r.Items) != len(planned.Items) {
			t.Fatalf("ReserveAs: %+v %v %v", r, denial, err)
		}
		if err := s.Refund(t.Context(), store.PlanReservation("made-2", subject, limits, t0)); err != nil {
			t.Fatalf("Refund: %v", err)
		}
		checkUsed(t, s, subject, limits, t0, 1, 100, 2000)
	})
	t.Run("makes room", func(t *testing.T) {
		const subject = "supplier:refund-room"
		limit := []store.Limit{rpm(1, 1)}
		r := reserve(t, s, subject, limit, t0)
		deny(t, s, subject, limit, t0, store.Denial{Limit: "rpm", Max: 1, Used: 1, Amount: 1, RetryAfter: 40 * time.Second})
		if err := s.Refund(t.Context(), r); err != nil {
			t.Fatalf("Refund: %v", err)
		}
		reserve(t, s, subject, limit, t0)
	})
	t.Run("nothing reserved", func(t *testing.T) {
		r := reserve(t, s, "supplier:refund-unlimited", []store.Limit{rpm(0, 1)}, t0)
		if err := s.Refund(t.Context(), r); err != nil {
			t.Fatalf("Refund of an empty reservation: %v", err)
		}
	})
}

func testSettleOnAnotherReplica(t *testing.T, open Open) {
	replicas := open(t, 2)
	const subject = "supplier:lakeside-catering"
	limits := []store.Limit{rpm(10, 1), tpm(10_000, 800)}
	r := reserve(t, replicas[0], subject, limits, t0)
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var decoded store.Reservation
	if err := json.Unmarshal(data, &decoded); err != nil {
		t.Fatal(err)
	}
	if err := replicas[1].Settle(t.Context(), decoded, map[string]int64{"tpm": 1234}); err != nil {
		t.Fatalf("Settle on the other replica: %v", err)
	}
	checkUsed(t, replicas[0], subject, limits, t0, 1, 1234)

	r = reserve(t, replicas[1], subject, limits, t0)
	if err := replicas[0].Refund(t.Context(), r); err != nil {
		t.Fatalf("Refund on the other replica: %v", err)
	}
	checkUsed(t, replicas[1], subject, limits, t0, 1, 1234)
}

func testUsed(t *testing.T, open Open) {
	s := one(t, open)
	const subject = "supplier:used"
	limits := []store.Limit{rpm(10, 1), tpm(1000, 321), monthCost(0, 99)}
	checkUsed(t, s, subject, limits, t0, 0, 0, 0)
	reserve(t, s, subject, limits, t0)
	reserve(t, s, subject, limits, t0)
	checkUsed(t, s, subject, limits, t0, 2, 642, 0)
	// Amount and Max do not matter to Used; order does.
	checkUsed(t, s, subject, []store.Limit{{Name: "tpm", Window: time.Minute}, {Name: "rpm", Window: time.Minute}}, t0, 642, 2)
	checkUsed(t, s, "supplier:other", limits, t0, 0, 0, 0)
	checkUsed(t, s, subject, nil, t0)
}

func testInvalidArguments(t *testing.T, open Open) {
	s := one(t, open)
	ctx := t.Context()
	reserveErr := func(subject string, limits ...store.Limit) func() error {
		return func() error {
			_, _, err := s.Reserve(ctx, subject, limits, t0)
			return err
		}
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"reserve empty subject", reserveErr("", rpm(1, 1))},
		{"reserve empty name", reserveErr("s", store.Limit{Window: time.Minute, Max: 1, Amount: 1})},
		{"reserve name with colon", reserveErr("s", store.Limit{Name: "a:b", Window: time.Minute, Max: 1, Amount: 1})},
		{"reserve zero window", reserveErr("s", store.Limit{Name: "x", Max: 1, Amount: 1})},
		{"reserve negative window", reserveErr("s", store.Limit{Name: "x", Window: -time.Minute, Max: 1, Amount: 1})},
		{"reserve fractional window", reserveErr("s", store.Limit{Name: "x", Window: 1500 * time.Millisecond, Max: 1, Amount: 1})},
		{"reserve negative amount", reserveErr("s", tpm(100, -5))},
		{"reserve duplicate name", reserveErr("s", tpm(100, 5), tpm(200, 5))},
		{"used empty subject", func() error { _, err := s.Used(ctx, "", []store.Limit{rpm(1, 1)}, t0); return err }},
		{"settle negative actual", func() error {
			return s.Settle(ctx, store.Reservation{Subject: "s"}, map[string]int64{"tpm": -1})
		}},
		{"settle empty subject", func() error { return s.Settle(ctx, store.Reservation{}, nil) }},
		{"slot empty subject", func() error { _, _, err := s.AcquireSlot(ctx, "", 1, time.Minute, t0); return err }},
		{"slot zero ttl", func() error { _, _, err := s.AcquireSlot(ctx, "s", 1, 0, t0); return err }},
		{"renew zero ttl", func() error { _, err := s.RenewSlot(ctx, store.Slot{Subject: "s", ID: "x"}, 0, t0); return err }},
		{"get empty bucket", func() error { _, _, err := s.Get(ctx, "", "k"); return err }},
		{"get empty key", func() error { _, _, err := s.Get(ctx, "b", ""); return err }},
		{"put empty key", func() error { _, err := s.Put(ctx, "b", "", nil); return err }},
		{"cas negative version", func() error { _, _, err := s.CompareAndSwap(ctx, "b", "k", -1, nil); return err }},
		{"delete empty bucket", func() error { return s.Delete(ctx, "", "k") }},
		{"list empty bucket", func() error { _, err := s.List(ctx, ""); return err }},
		{"lease empty holder", func() error { _, err := s.AcquireLease(ctx, "m", "", time.Minute, t0); return err }},
		{"lease empty name", func() error { _, err := s.AcquireLease(ctx, "", "h", time.Minute, t0); return err }},
		{"lease zero ttl", func() error { _, err := s.AcquireLease(ctx, "m", "h", 0, t0); return err }},
		{"release lease empty holder", func() error { return s.ReleaseLease(ctx, "m", "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
		})
	}
}

// acquire takes a slot and fails the test unless it got one as want says.
func acquire(t *testing.T, s store.Store, subject string, maxSlots int64, ttl time.Duration, now time.Time, want bool) store.Slot {
	t.Helper()
	slot, ok, err := s.AcquireSlot(t.Context(), subject, maxSlots, ttl, now)
	if err != nil {
		t.Fatalf("AcquireSlot(%s, %d) at %v: %v", subject, maxSlots, now, err)
	}
	if ok != want {
		t.Fatalf("AcquireSlot(%s, %d) at %v = %v, want %v", subject, maxSlots, now, ok, want)
	}
	if ok && maxSlots > 0 && (slot.Subject != subject || slot.ID == "") {
		t.Fatalf("AcquireSlot returned %+v", slot)
	}
	if !ok && slot != (store.Slot{}) {
		t.Fatalf("AcquireSlot refused but returned %+v", slot)
	}
	return slot
}

func release(t *testing.T, s store.Store, slot store.Slot) {
	t.Helper()
	if err := s.ReleaseSlot(t.Context(), slot); err != nil {
		t.Fatalf("ReleaseSlot(%+v): %v", slot, err)
	}
}

func testSlots(t *testing.T, open Open) {
	replicas := open(t, 2)
	a, b := replicas[0], replicas[1]
	const subject, ttl = "supplier:slots", time.Minute

	t.Run("max", func(t *testing.T) {
		s1 := acquire(t, a, subject, 2, ttl, t0, true)
		s2 := acquire(t, b, subject, 2, ttl, t0, true)
		if s1.ID == s2.ID {
			t.Fatalf("two slots share ID %q", s1.ID)
		}
		acquire(t, a, subject, 2, ttl, t0, false)
		acquire(t, b, subject, 2, ttl, t0, false)
		acquire(t, a, "supplier:slots-other", 2, ttl, t0, true)

		release(t, b, s1) // released by another replica than the one that took it
		s3 := acquire(t, a, subject, 2, ttl, t0, true)
		acquire(t, a, subject, 2, ttl, t0, false)
		release(t, a, s1) // again: nothing
		acquire(t, a, subject, 2, ttl, t0, false)
		release(t, a, s2)
		release(t, a, s3)
		release(t, a, store.Slot{})
		acquire(t, a, subject, 2, ttl, t0, true)
	})
	t.Run("unlimited", func(t *testing.T) {
		for range 5 {
			slot := acquire(t, a, "supplier:slots-unlimited", 0, ttl, t0, true)
			if slot.ID != "" {
				t.Errorf("unlimited slot has ID %q", slot.ID)
			}
			ok, err := a.RenewSlot(t.Context(), slot, ttl, t0)
			if err != nil || !ok {
				t.Errorf("RenewSlot(unlimited) = %v, %v; want true", ok, err)
			}
			release(t, a, slot)
		}
	})
}

func testSlotExpiry(t *testing.T, open Open) {
	s := one(t, open)
	const ttl = 30 * time.Second

	t.Run("expires after ttl", func(t *testing.T) {
		const subject = "supplier:crashed-replica"
		acquire(t, s, subject, 1, ttl, t0, true)
		acquire(t, s, subject, 1, ttl, t0.Add(29*time.Second), false)
		acquire(t, s, subject, 1, ttl, t0.Add(ttl), true)
	})
	t.Run("renew", func(t *testing.T) {
		const subject = "supplier:long-stream"
		slot := acquire(t, s, subject, 1, ttl, t0, true)
		renew := func(at time.Duration, want bool) {
			t.Helper()
			ok, err := s.RenewSlot(t.Context(), slot, ttl, t0.Add(at))
			if err != nil || ok != want {
				t.Fatalf("RenewSlot at +%v = %v, %v; want %v", at, ok, err, want)
			}
		}
		renew(20*time.Second, true) // now until +50s
		acquire(t, s, subject, 1, ttl, t0.Add(45*time.Second), false)
		renew(49*time.Second, true) // now until +79s
		acquire(t, s, subject, 1, ttl, t0.Add(78*time.Second), false)
		other := acquire(t, s, subject, 1, ttl, t0.Add(79*time.Second), true)
		renew(80*time.Second, false) // expired, and taken since
		release(t, s, slot)          // must not free the other holder's slot
		acquire(t, s, subject, 1, ttl, t0.Add(81*time.Second), false)
		release(t, s, other)
		renew(82*time.Second, false)
	})
}

// put writes a document and fails the test on an error.
func put(t *testing.T, s store.Store, bucket, key, value string) int64 {
	t.Helper()
	v, err := s.Put(t.Context(), bucket, key, []byte(value))
	if err != nil {
		t.Fatalf("Put(%s, %s): %v", bucket, key, err)
	}
	if v <= 0 {
		t.Fatalf("Put(%s, %s) = version %d, want > 0", bucket, key, v)
	}
	return v
}

// get reads a document and fails the test unless it holds value at
// version (any version if 0).
func get(t *testing.T, s store.Store, bucket, key, value string, version int64) {
	t.Helper()
	got, v, err := s.Get(t.Context(), bucket, key)
	if err != nil {
		t.Fatalf("Get(%s, %s): %v", bucket, key, err)
	}
	if string(got) != value || (version != 0 && v != version) {
		t.Fatalf("Get(%s, %s) = %q, %d; want %q, %d", bucket, key, got, v, value, version)
	}
}

// missing fails the test unless the document does not exist.
func missing(t *testing.T, s store.Store, bucket, key string) {
	t.Helper()
	if v, ver, err := s.Get(t.Context(), bucket, key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%s, %s) = %q, %d, %v; want ErrNotFound", bucket, key, v, ver, err)
	}
}

// cas swaps and fails the test unless the outcome is as want says.
func cas(t *testing.T, s store.Store, bucket, key string, old int64, value string, wantOK bool, wantVersion int64) int64 { //nolint:unparam // a test helper: the bucket reads at each call
	t.Helper()
	v, ok, err := s.CompareAndSwap(t.Context(), bucket, key, old, []byte(value))
	if err != nil {
		t.Fatalf("CompareAndSwap(%s, %s, %d): %v", bucket, key, old, err)
	}
	if ok != wantOK || (wantVersion >= 0 && v != wantVersion) || (ok && v <= old) {
		t.Fatalf("CompareAndSwap(%s, %s, %d) = %d, %v; want version %d, %v", bucket, key, old, v, ok, wantVersion, wantOK)
	}
	return v
}

func testDocuments(t *testing.T, open Open) {
	replicas := open(t, 2)
	a, b := replicas[0], replicas[1]
	const bucket = "supplier_overrides"

	t.Run("put and get", func(t *testing.T) {
		missing(t, a, bucket, "bella-photography")
		v1 := put(t, a, bucket, "bella-photography", `{"tier":"gold"}`)
		get(t, b, bucket, "bella-photography", `{"tier":"gold"}`, v1)
		v2 := put(t, b, bucket, "bella-photography", `{"tier":"platinum"}`)
		if v2 <= v1 {
			t.Fatalf("second Put version %d, want > %d", v2, v1)
		}
		get(t, a, bucket, "bella-photography", `{"tier":"platinum"}`, v2)
		missing(t, a, "other_bucket", "bella-photography")
		missing(t, a, bucket, "someone-else")
	})
	t.Run("compare and swap", func(t *testing.T) {
		const key = "migration-0007"
		v1 := cas(t, a, bucket, key, 0, "started", true, -1)
		cas(t, b, bucket, key, 0, "started again", false, v1) // must not exist
		cas(t, b, bucket, key, v1+100, "stale", false, v1)
		v2 := cas(t, b, bucket, key, v1, "halfway", true, -1)
		cas(t, a, bucket, key, v1, "lost race", false, v2)
		get(t, a, bucket, key, "halfway", v2)
		cas(t, a, bucket, "never-written", 5, "x", false, 0)
		missing(t, a, bucket, "never-written")
	})
	t.Run("delete", func(t *testing.T) {
		const key = "rose-garden-venue"
		v1 := put(t, a, bucket, key, "v1")
		if err := b.Delete(t.Context(), bucket, key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		missing(t, a, bucket, key)
		if err := a.Delete(t.Context(), bucket, key); err != nil {
			t.Fatalf("Delete of a missing document: %v", err)
		}
		if err := a.Delete(t.Context(), "no_such_bucket", key); err != nil {
			t.Fatalf("Delete in a missing bucket: %v", err)
		}
		cas(t, a, bucket, key, v1, "resurrected", false, 0)
		v2 := cas(t, a, bucket, key, 0, "v2", true, -1)
		if v2 <= v1 {
			t.Fatalf("version after delete and create = %d, want > %d (never reused)", v2, v1)
		}
	})
}

func testDocumentValues(t *testing.T, open Open) {
	s := one(t, open)
	const bucket = "values"
	for _, tc := range []struct{ name, key, value string }{
		{"empty", "empty", ""},
		{"binary", "binary", "\x00\x01\xff:7:\r\n"},
		{"colons", "a:b:c", "12:34"},
		{"unicode", "fleurs-de-l'amour", "💐 pivoines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := put(t, s, bucket, tc.key, tc.value)
			get(t, s, bucket, tc.key, tc.value, v)
		})
	}
	t.Run("copies", func(t *testing.T) {
		in := []byte("original")
		if _, err := s.Put(t.Context(), bucket, "copies", in); err != nil {
			t.Fatal(err)
		}
		copy(in, "CHANGED!")
		out, _, err := s.Get(t.Context(), bucket, "copies")
		if err != nil {
			t.Fatal(err)
		}
		copy(out, "CHANGED!")
		get(t, s, bucket, "copies", "original", 0)
	})
}

func testList(t *testing.T, open Open) {
	s := one(t, open)
	const bucket = "overrides"
	docs, err := s.List(t.Context(), bucket)
	if err != nil || len(docs) != 0 {
		t.Fatalf("List(empty) = %v, %v; want nothing", docs, err)
	}
	want := map[string]int64{}
	for _, k := range []string{"m-venue", "a-florist", "z-band", "c-cake", "b-photo"} {
		want[k] = put(t, s, bucket, k, "doc of "+k)
	}
	put(t, s, "other", "a-florist", "elsewhere")
	if err := s.Delete(t.Context(), bucket, "c-cake"); err != nil {
		t.Fatal(err)
	}
	delete(want, "c-cake")
	want["z-band"] = put(t, s, bucket, "z-band", "doc of z-band")

	docs, err = s.List(t.Context(), bucket)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var keys []string
	for _, d := range docs {
		keys = append(keys, d.Key)
		if string(d.Value) != "doc of "+d.Key || d.Version != want[d.Key] {
			t.Errorf("List doc %+v, want value %q version %d", d, "doc of "+d.Key, want[d.Key])
		}
	}
	if wantKeys := []string{"a-florist", "b-photo", "m-venue", "z-band"}; !slices.Equal(keys, wantKeys) {
		t.Errorf("List keys = %v, want %v (sorted)", keys, wantKeys)
	}
}

// lease acquires a lease and fails the test unless the outcome is want.
func lease(t *testing.T, s store.Store, name, holder string, ttl time.Duration, now time.Time, want bool) { //nolint:unparam // a test helper: the ttl reads at each call
	t.Helper()
	ok, err := s.AcquireLease(t.Context(), name, holder, ttl, now)
	if err != nil {
		t.Fatalf("AcquireLease(%s, %s) at %v: %v", name, holder, now, err)
	}
	if ok != want {
		t.Fatalf("AcquireLease(%s, %s) at %v = %v, want %v", name, holder, now, ok, want)
	}
}

func testLeases(t *testing.T, open Open) {
	replicas := open(t, 2)
	a, b := replicas[0], replicas[1]
	const name, ttl = "migration:0007-split-tiers", 30 * time.Second
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	lease(t, a, name, "pod-a", ttl, at(0), true)
	lease(t, b, name, "pod-b", ttl, at(10*time.Second), false)
	lease(t, a, name, "pod-a", ttl, at(20*time.Second), true) // renewed until +50s
	lease(t, b, name, "pod-b", ttl, at(49*time.Second), false)
	lease(t, b, "migration:other", "pod-b", ttl, at(49*time.Second), true)

	// Releasing as someone else does nothing.
	if err := b.ReleaseLease(t.Context(), name, "pod-b"); err != nil {
		t.Fatalf("ReleaseLease by a non-holder: %v", err)
	}
	lease(t, b, name, "pod-b", ttl, at(49*time.Second), false)

	lease(t, b, name, "pod-b", ttl, at(50*time.Second), true) // pod-a's expired
	lease(t, a, name, "pod-a", ttl, at(55*time.Second), false)

	if err := b.ReleaseLease(t.Context(), name, "pod-b"); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	lease(t, a, name, "pod-a", ttl, at(56*time.Second), true)
	if err := a.ReleaseLease(t.Context(), "never-held", "pod-a"); err != nil {
		t.Fatalf("ReleaseLease of a lease nobody holds: %v", err)
	}
}

func testUsage(t *testing.T, open Open) {
	replicas := open(t, 2)
	day := func(d int) time.Time { return time.Date(2026, time.June, d, 0, 0, 0, 0, time.UTC) }
	auckland := time.FixedZone("NZST", 12*3600)
	deltas := []store.Usage{
		{Day: day(13).Add(10 * time.Hour), Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o", KeySource: "platform",
			Requests: 1, PromptTokens: 1200, CompletionTokens: 300, CachedTokens: 1000, CostMicros: 4500},
		// 08:00 on the 14th in Auckland is 20:00 on the 13th in UTC.
		{Day: time.Date(2026, time.June, 14, 8, 0, 0, 0, auckland), Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o", KeySource: "platform",
			Requests: 2, PromptTokens: 800, CompletionTokens: 200, CostMicros: 3000},
		{Day: day(13), Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o", KeySource: "supplier",
			Requests: 1, PromptTokens: 10, CompletionTokens: 5, CostMicros: 0},
		{Day: day(13), Supplier: "bella-photography", Provider: "anthropic", Model: "claude-sonnet", KeySource: "platform",
			Requests: 1, PromptTokens: 50, CompletionTokens: 50, CostMicros: 900},
		{Day: day(13), Supplier: "aisle-and-altar", Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform",
			Requests: 3, PromptTokens: 30, CompletionTokens: 30, CostMicros: 12},
		{Day: day(14).Add(23*time.Hour + 59*time.Minute), Supplier: "aisle-and-altar", Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform",
			Requests: 1, PromptTokens: 5, CompletionTokens: 5, CostMicros: 2},
		{Day: day(15), Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o", KeySource: "platform",
			Requests: 1, PromptTokens: 1, CompletionTokens: 1, CostMicros: 1},
		{Day: day(16), Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o", KeySource: "platform"}, // zeros: nothing
		{Day: day(12), Supplier: "bella-photography", Provider: "", Model: "", KeySource: "cache",
			Requests: 4},
	}
	for i, d := range deltas {
		s := replicas[i%2]
		if err := s.AddUsage(t.Context(), fmt.Sprintf("contract.%d", i), d); err != nil {
			t.Fatalf("AddUsage(%+v): %v", d, err)
		}
	}
	row := func(d int, supplier, provider, model, keySource string, counts ...int64) store.Usage {
		return store.Usage{Day: day(d), Supplier: supplier, Provider: provider, Model: model, KeySource: keySource,
			Requests: counts[0], PromptTokens: counts[1], CompletionTokens: counts[2], CachedTokens: counts[3], CostMicros: counts[4]}
	}
	all := []store.Usage{
		row(12, "bella-photography", "", "", "cache", 4, 0, 0, 0, 0),
		row(13, "aisle-and-altar", "openai", "gpt-4o-mini", "platform", 3, 30, 30, 0, 12),
		row(13, "bella-photography", "anthropic", "claude-sonnet", "platform", 1, 50, 50, 0, 900),
		row(13, "bella-photography", "openai", "gpt-4o", "platform", 3, 2000, 500, 1000, 7500),
		row(13, "bella-photography", "openai", "gpt-4o", "supplier", 1, 10, 5, 0, 0),
		row(14, "aisle-and-altar", "openai", "gpt-4o-mini", "platform", 1, 5, 5, 0, 2),
		row(15, "bella-photography", "openai", "gpt-4o", "platform", 1, 1, 1, 0, 1),
	}
	for _, tc := range []struct {
		name string
		q    store.UsageQuery
		want []store.Usage
	}{
		{"everything", store.UsageQuery{From: day(1), To: day(30)}, all},
		{"one day", store.UsageQuery{From: day(13), To: day(13)}, all[1:5]},
		{"inclusive range, time of day ignored", store.UsageQuery{From: day(13).Add(18 * time.Hour), To: day(14).Add(time.Hour)}, all[1:6]},
		{"one supplier", store.UsageQuery{Supplier: "aisle-and-altar", From: day(1), To: day(30)}, []store.Usage{all[1], all[5]}},
		{"supplier and range", store.UsageQuery{Supplier: "bella-photography", From: day(14), To: day(16)}, all[6:7]},
		{"unknown supplier", store.UsageQuery{Supplier: "nobody", From: day(1), To: day(30)}, nil},
		{"empty range", store.UsageQuery{From: day(20), To: day(25)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, s := range replicas {
				got, err := s.QueryUsage(t.Context(), tc.q)
				if err != nil {
					t.Fatalf("replica %d: QueryUsage: %v", i, err)
				}
				if !usageEqual(got, tc.want) {
					t.Errorf("replica %d: QueryUsage(%+v) =\n%s\nwant\n%s", i, tc.q, formatUsage(got), formatUsage(tc.want))
				}
			}
		})
	}
}

// usageEqual reports whether two lists of rows are equal, comparing days
// as instants and in UTC.
func usageEqual(a, b []store.Usage) bool {
	return slices.EqualFunc(a, b, func(x, y store.Usage) bool {
		if !x.Day.Equal(y.Day) || x.Day.Location() != time.UTC {
			return false
		}
		x.Day, y.Day = time.Time{}, time.Time{}
		return x == y
	})
}

func formatUsage(rows []store.Usage) string {
	var b bytes.Buffer
	for _, r := range rows {
		fmt.Fprintf(&b, "  %s %s %s %s %s billed %q workflow %q: %d req, %d+%d tok (%d cached), %d micros\n",
			r.Day.Format(time.DateOnly), r.Supplier, r.Provider, r.Model, r.KeySource, r.Billed, r.Workflow,
			r.Requests, r.PromptTokens, r.CompletionTokens, r.CachedTokens, r.CostMicros)
	}
	if b.Len() == 0 {
		return "  (none)"
	}
	return b.String()
}

// testUsageBilledAndWorkflow keeps aggregates apart by who pays and by
// workflow: a shadow call on the supplier's key paid by the platform is
// not the supplier's spend, and a workflow with the stores' separators in
// it comes back as it was given.
func testUsageBilledAndWorkflow(t *testing.T, open Open) {
	replicas := open(t, 2)
	day := time.Date(2026, time.June, 13, 0, 0, 0, 0, time.UTC)
	u := func(keySource, billed, workflow string, requests int64) store.Usage {
		return store.Usage{Day: day, Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o",
			KeySource: keySource, Billed: billed, Workflow: workflow,
			Requests: requests, PromptTokens: 100 * requests, CompletionTokens: 10 * requests, CostMicros: 7 * requests}
	}
	odd := []string{"a|b", "50%", "%7C", "nul\x00in", "a\x00b|c%00"}
	deltas := []store.Usage{
		u("client", "client", "photography", 2),
		u("client", "platform", "photography", 40), // shadow calls WedSync pays for
		u("client", "client", "venue", 1),
		u("platform", "platform", "", 3),
		u("platform", "none", "", 5), // cache hits
		u("client", "client", "photography", 1),
	}
	for i, w := range odd {
		deltas = append(deltas, u("platform", "platform", w, int64(i+1)))
	}
	for i, d := range deltas {
		if err := replicas[i%2].AddUsage(t.Context(), fmt.Sprintf("dims.%d", i), d); err != nil {
			t.Fatalf("AddUsage(%+v): %v", d, err)
		}
	}
	want := []store.Usage{
		u("client", "client", "photography", 3),
		u("client", "client", "venue", 1),
		u("client", "platform", "photography", 40),
		u("platform", "none", "", 5),
		u("platform", "platform", "", 3),
	}
	for i, w := range odd {
		want = append(want, u("platform", "platform", w, int64(i+1)))
	}
	slices.SortStableFunc(want[5:], func(a, b store.Usage) int { return strings.Compare(a.Workflow, b.Workflow) })
	for i, s := range replicas {
		got, err := s.QueryUsage(t.Context(), store.UsageQuery{From: day, To: day})
		if err != nil {
			t.Fatalf("replica %d: QueryUsage: %v", i, err)
		}
		if !usageEqual(got, want) {
			t.Errorf("replica %d: QueryUsage =\n%s\nwant\n%s", i, formatUsage(got), formatUsage(want))
		}
	}
}

// testUsageAppliedOnce adds deltas twice, as a retry after a timeout that
// had reached the store would, from one replica and from another, and
// concurrently: each id counts once.
func testUsageAppliedOnce(t *testing.T, open Open) {
	replicas := open(t, 2)
	day := time.Date(2026, time.June, 13, 0, 0, 0, 0, time.UTC)
	delta := func(supplier, model string, requests int64) store.Usage {
		return store.Usage{Day: day, Supplier: supplier, Provider: "openai", Model: model, KeySource: "platform",
			Requests: requests, PromptTokens: 10 * requests, CostMicros: 7 * requests}
	}
	add := func(s store.Store, id string, d store.Usage) {
		t.Helper()
		if err := s.AddUsage(t.Context(), id, d); err != nil {
			t.Fatalf("AddUsage(%s): %v", id, err)
		}
	}
	// The same id twice, on one replica and then on the other.
	add(replicas[0], "b1.0", delta("bella-photography", "gpt-4o", 2))
	add(replicas[0], "b1.0", delta("bella-photography", "gpt-4o", 2))
	add(replicas[1], "b1.0", delta("bella-photography", "gpt-4o", 2))
	// Other ids count, for the same aggregate and for others.
	add(replicas[1], "b1.1", delta("bella-photography", "gpt-4o", 3))
	add(replicas[0], "b2.0", delta("bella-photography", "gpt-4o", 1))
	add(replicas[0], "b2.1", delta("aisle-and-altar", "gpt-4o-mini", 5))
	add(replicas[1], "b2.1", delta("aisle-and-altar", "gpt-4o-mini", 5))
	// A zero delta records nothing: its id stays free.
	add(replicas[0], "b3.0", store.Usage{Day: day, Supplier: "aisle-and-altar", Model: "gpt-4o-mini"})
	add(replicas[0], "b3.0", delta("aisle-and-altar", "gpt-4o-mini", 1))
	// Concurrent attempts of one id: exactly one counts.
	const attempts = 16
	var wg sync.WaitGroup
	errs := make(chan error, attempts)
	for i := range attempts {
		wg.Go(func() {
			errs <- replicas[i%2].AddUsage(t.Context(), "b4.0", delta("aisle-and-altar", "gpt-4o-mini", 100))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent AddUsage: %v", err)
		}
	}
	want := []store.Usage{delta("aisle-and-altar", "gpt-4o-mini", 106), delta("bella-photography", "gpt-4o", 6)}
	for i, s := range replicas {
		got, err := s.QueryUsage(t.Context(), store.UsageQuery{From: day, To: day})
		if err != nil {
			t.Fatalf("replica %d: QueryUsage: %v", i, err)
		}
		if !usageEqual(got, want) {
			t.Errorf("replica %d: QueryUsage =\n%s\nwant\n%s", i, formatUsage(got), formatUsage(want))
		}
	}
}

// markDelta returns a delta of n requests of a supplier's aggregate of
// model on day.
func markDelta(day time.Time, supplier, model string, n int64) store.Usage {
	return store.Usage{Day: day, Supplier: supplier, Provider: "openai", Model: model, KeySource: "platform",
		Billed: "platform", Requests: n, PromptTokens: 10 * n, CostMicros: 3 * n}
}

// testUsageMark walks a source's mark on one aggregate through every
// case, alternating replicas: a delta above the mark is applied and
// moves it, one at or below it is skipped, one that straddles it is not
// applied and answered with the mark; marks are per source, aggregate
// and day, and AddUsage ignores them.
func testUsageMark(t *testing.T, open Open) {
	replicas := open(t, 2)
	day := time.Date(2026, time.June, 13, 0, 0, 0, 0, time.UTC)
	want := map[string]int64{}
	for i, step := range []struct {
		name           string
		id             string
		d              store.Usage
		source         string
		first, last    uint64
		wantMark       uint64
		applied        bool
		plain          bool // AddUsage, without a mark
		wantAggregates string
	}{
		{name: "first delta applied", id: "m1.0", d: markDelta(day, "bella", "gpt-4o", 3), source: "spool-a", first: 1, last: 5, wantMark: 0, applied: true},
		{name: "same records, another id: skipped", id: "m2.0", d: markDelta(day, "bella", "gpt-4o", 3), source: "spool-a", first: 1, last: 5, wantMark: 5},
		{name: "some of them: skipped", id: "m3.0", d: markDelta(day, "bella", "gpt-4o", 1), source: "spool-a", first: 5, last: 5, wantMark: 5},
		{name: "straddles the mark: not applied", id: "m4.0", d: markDelta(day, "bella", "gpt-4o", 4), source: "spool-a", first: 2, last: 9, wantMark: 5},
		{name: "the part above the mark: applied", id: "m4.0.5", d: markDelta(day, "bella", "gpt-4o", 2), source: "spool-a", first: 7, last: 9, wantMark: 5, applied: true},
		{name: "its retry: skipped", id: "m4.0.5", d: markDelta(day, "bella", "gpt-4o", 2), source: "spool-a", first: 7, last: 9, wantMark: 9},
		{name: "another aggregate has its own mark", id: "m4.1", d: markDelta(day, "bella", "gpt-4o-mini", 2), source: "spool-a", first: 2, last: 8, wantMark: 0, applied: true},
		{name: "another supplier has its own mark", id: "m4.2", d: markDelta(day, "aisle", "gpt-4o", 1), source: "spool-a", first: 3, last: 3, wantMark: 0, applied: true},
		{name: "another day has its own mark", id: "m4.3", d: markDelta(day.AddDate(0, 0, 1), "bella", "gpt-4o", 1), source: "spool-a", first: 4, last: 4, wantMark: 0, applied: true},
		{name: "another source has its own mark", id: "m5.0", d: markDelta(day, "bella", "gpt-4o", 1), source: "spool-b", first: 1, last: 1, wantMark: 0, applied: true},
		{name: "a zero delta does nothing", id: "m6.0", d: markDelta(day, "bella", "gpt-4o", 0), source: "spool-a", first: 10, last: 20, wantMark: 0},
		{name: "next delta applied", id: "m7.0", d: markDelta(day, "bella", "gpt-4o", 1), source: "spool-a", first: 10, last: 10, wantMark: 9, applied: true},
		{name: "an id applied before the mark moved counts once", id: "m7.0", d: markDelta(day, "bella", "gpt-4o", 1), source: "spool-b", first: 2, last: 2, wantMark: 1},
		{name: "AddUsage ignores marks", id: "m8.0", d: markDelta(day, "bella", "gpt-4o", 1), plain: true, applied: true},
		{name: "the mark at the largest number", id: "m9.0", d: markDelta(day, "bella", "gpt-4o", 1), source: "spool-a", first: store.MaxUsageSeq, last: store.MaxUsageSeq, wantMark: 10, applied: true},
		{name: "past it, skipped", id: "m9.1", d: markDelta(day, "bella", "gpt-4o", 1), source: "spool-a", first: 11, last: store.MaxUsageSeq, wantMark: store.MaxUsageSeq},
	} {
		s := replicas[i%2]
		if step.plain {
			if err := s.AddUsage(t.Context(), step.id, step.d); err != nil {
				t.Fatalf("step %q: AddUsage: %v", step.name, err)
			}
		} else {
			w, err := s.AddUsageSeq(t.Context(), step.id, step.d, store.UsageSeq{Source: step.source, First: step.first, Last: step.last})
			if err != nil {
				t.Fatalf("step %q: AddUsageSeq: %v", step.name, err)
			}
			if w != step.wantMark {
				t.Errorf("step %q: mark %d, want %d", step.name, w, step.wantMark)
			}
		}
		if step.applied {
			want[step.d.Day.Format(time.DateOnly)+"/"+step.d.Supplier+"/"+step.d.Model] += step.d.Requests
		}
	}
	for i, s := range replicas {
		rows, err := s.QueryUsage(t.Context(), store.UsageQuery{From: day, To: day.AddDate(0, 0, 1)})
		if err != nil {
			t.Fatalf("replica %d: QueryUsage: %v", i, err)
		}
		got := map[string]int64{}
		for _, r := range rows {
			got[r.Day.Format(time.DateOnly)+"/"+r.Supplier+"/"+r.Model] += r.Requests
			if r.PromptTokens != 10*r.Requests || r.CostMicros != 3*r.Requests {
				t.Errorf("replica %d: row %+v: counts of deltas applied in part", i, r)
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("replica %d: requests %v, want %v", i, got, want)
		}
	}
}

// testUsageMarkConcurrent sends the same records under many ids at once,
// from two replicas: exactly one is applied, and every other call is
// answered with the mark it moved to.
func testUsageMarkConcurrent(t *testing.T, open Open) {
	replicas := open(t, 2)
	day := time.Date(2026, time.June, 13, 0, 0, 0, 0, time.UTC)
	const attempts = 16
	var wg sync.WaitGroup
	marks := make(chan uint64, attempts)
	errs := make(chan error, attempts)
	for i := range attempts {
		wg.Go(func() {
			w, err := replicas[i%2].AddUsageSeq(t.Context(), fmt.Sprintf("c%d.0", i), markDelta(day, "bella", "gpt-4o", 2),
				store.UsageSeq{Source: "spool-a", First: 4, Last: 7})
			errs <- err
			marks <- w
		})
	}
	wg.Wait()
	close(errs)
	close(marks)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent AddUsageSeq: %v", err)
		}
	}
	got := map[uint64]int{}
	for w := range marks {
		got[w]++
	}
	if want := map[uint64]int{0: 1, 7: attempts - 1}; !maps.Equal(got, want) {
		t.Errorf("marks answered %v, want %v: one call applied, the others found its mark", got, want)
	}
	rows, err := replicas[0].QueryUsage(t.Context(), store.UsageQuery{From: day, To: day})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 2 {
		t.Errorf("QueryUsage = %s, want one aggregate of 2 requests", formatUsage(rows))
	}
}

func testUsageMarkInvalid(t *testing.T, open Open) {
	s := one(t, open)
	day := time.Date(2026, time.June, 13, 0, 0, 0, 0, time.UTC)
	d := markDelta(day, "bella", "gpt-4o", 1)
	for _, tc := range []struct {
		name string
		id   string
		d    store.Usage
		seq  store.UsageSeq
	}{
		{"no source", "i.0", d, store.UsageSeq{First: 1, Last: 1}},
		{"space in source", "i.1", d, store.UsageSeq{Source: "spool a", First: 1, Last: 1}},
		{"source too long", "i.2", d, store.UsageSeq{Source: strings.Repeat("s", store.MaxUsageIDLen+1), First: 1, Last: 1}},
		{"first zero", "i.3", d, store.UsageSeq{Source: "spool", First: 0, Last: 1}},
		{"first after last", "i.4", d, store.UsageSeq{Source: "spool", First: 3, Last: 2}},
		{"last too large", "i.5", d, store.UsageSeq{Source: "spool", First: 1, Last: store.MaxUsageSeq + 1}},
		{"no id", "", d, store.UsageSeq{Source: "spool", First: 1, Last: 1}},
		{"no supplier", "i.6", store.Usage{Day: day, Requests: 1}, store.UsageSeq{Source: "spool", First: 1, Last: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.AddUsageSeq(t.Context(), tc.id, tc.d, tc.seq); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
		})
	}
	rows, err := s.QueryUsage(t.Context(), store.UsageQuery{From: day, To: day})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 {
		t.Errorf("invalid deltas counted: %s", formatUsage(rows))
	}
}

func testUsageInvalid(t *testing.T, open Open) {
	s := one(t, open)
	day := time.Date(2026, time.June, 13, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"no supplier", func() error { return s.AddUsage(t.Context(), "a.0", store.Usage{Day: day, Requests: 1}) }},
		{"no day", func() error { return s.AddUsage(t.Context(), "a.1", store.Usage{Supplier: "s", Requests: 1}) }},
		{"pipe in model", func() error {
			return s.AddUsage(t.Context(), "a.2", store.Usage{Day: day, Supplier: "s", Model: "a|b", Requests: 1})
		}},
		{"pipe in billed", func() error {
			return s.AddUsage(t.Context(), "a.5", store.Usage{Day: day, Supplier: "s", Billed: "platform|client", Requests: 1})
		}},
		{"NUL in provider", func() error {
			return s.AddUsage(t.Context(), "a.3", store.Usage{Day: day, Supplier: "s", Provider: "a\x00b", Requests: 1})
		}},
		{"no id", func() error { return s.AddUsage(t.Context(), "", store.Usage{Day: day, Supplier: "s", Requests: 1}) }},
		{"id too long", func() error {
			return s.AddUsage(t.Context(), strings.Repeat("x", store.MaxUsageIDLen+1), store.Usage{Day: day, Supplier: "s", Requests: 1})
		}},
		{"space in id", func() error { return s.AddUsage(t.Context(), "a 4", store.Usage{Day: day, Supplier: "s", Requests: 1}) }},
		{"query ends before it starts", func() error {
			_, err := s.QueryUsage(t.Context(), store.UsageQuery{From: day, To: day.AddDate(0, 0, -1)})
			return err
		}},
		{"query without range", func() error {
			_, err := s.QueryUsage(t.Context(), store.UsageQuery{To: day})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
		})
	}
}

func testConcurrentReserve(t *testing.T, open Open) {
	const (
		workers   = 8 // per replica
		attempts  = 150
		maxTokens = 20_000
		subject   = "supplier:busy-saturday"
	)
	replicas := open(t, 2)
	limit := func(amount int64) []store.Limit { return []store.Limit{tpm(maxTokens, amount)} }
	var (
		granted, grants, denials atomic.Int64
		wg                       sync.WaitGroup
		errs                     = make(chan error, 2*workers+1)
		done                     = make(chan struct{})
		watched                  = make(chan struct{})
	)
	// A watcher checks that the window never holds more than maxTokens.
	go func() {
		defer close(watched)
		for {
			select {
			case <-done:
				return
			default:
			}
			used, err := replicas[0].Used(t.Context(), subject, limit(0), t0)
			if err != nil {
				errs <- fmt.Errorf("Used: %w", err) //nolint:staticcheck // ST1005: Used is the method's name
				return
			}
			if used[0] > maxTokens {
				errs <- fmt.Errorf("used %d > max %d while reserving", used[0], maxTokens)
				return
			}
		}
	}()
	for r, s := range replicas {
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(r), uint64(w))) //nolint:gosec // G404: seeded test load, not a secret
				for range attempts {
					amount := rng.Int64N(300) + 1
					res, d, err := s.Reserve(t.Context(), subject, limit(amount), t0)
					if err != nil {
						errs <- fmt.Errorf("replica %d worker %d: Reserve: %w", r, w, err)
						return
					}
					if d != nil {
						if d.Used+amount <= maxTokens {
							errs <- fmt.Errorf("denied %d with %d used of %d", amount, d.Used, maxTokens)
							return
						}
						denials.Add(1)
						continue
					}
					if res.Items[0].Used > maxTokens {
						errs <- fmt.Errorf("granted %d, taking the window to %d > %d", amount, res.Items[0].Used, maxTokens)
						return
					}
					granted.Add(amount)
					grants.Add(1)
				}
			})
		}
	}
	wg.Wait()
	close(done)
	<-watched
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	used, err := replicas[1].Used(t.Context(), subject, limit(0), t0)
	if err != nil {
		t.Fatal(err)
	}
	if used[0] > maxTokens {
		t.Errorf("used %d > max %d", used[0], maxTokens)
	}
	if used[0] != granted.Load() {
		t.Errorf("used %d, but the granted amounts sum to %d", used[0], granted.Load())
	}
	if denials.Load() == 0 || grants.Load() == 0 {
		t.Errorf("%d grants and %d denials: the test did not contend for the limit", grants.Load(), denials.Load())
	}
	t.Logf("%d grants (%d tokens of %d), %d denials", grants.Load(), granted.Load(), maxTokens, denials.Load())
}

func testConcurrentSlots(t *testing.T, open Open) {
	const (
		workers  = 8 // per replica
		attempts = 40
		maxSlots = 3
		subject  = "supplier:slots-contended"
	)
	replicas := open(t, 2)
	var (
		holders, peak, acquired atomic.Int64
		wg                      sync.WaitGroup
		errs                    = make(chan error, 2*workers)
	)
	for r, s := range replicas {
		for w := range workers {
			wg.Go(func() {
				for range attempts {
					slot, ok, err := s.AcquireSlot(t.Context(), subject, maxSlots, time.Hour, t0)
					if err != nil {
						errs <- fmt.Errorf("replica %d worker %d: AcquireSlot: %w", r, w, err)
						return
					}
					if !ok {
						continue
					}
					acquired.Add(1)
					n := holders.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() { //nolint:revive // empty-block: a CAS loop; the work is in its condition
					}
					holders.Add(-1)
					if err := s.ReleaseSlot(t.Context(), slot); err != nil {
						errs <- fmt.Errorf("replica %d worker %d: ReleaseSlot: %w", r, w, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := peak.Load(); p > maxSlots {
		t.Errorf("%d concurrent holders, want at most %d", p, maxSlots)
	}
	if acquired.Load() == 0 {
		t.Error("no slot acquired")
	}
	// Everything was released: all the slots are free.
	for range maxSlots {
		acquire(t, replicas[0], subject, maxSlots, time.Hour, t0, true)
	}
	acquire(t, replicas[1], subject, maxSlots, time.Hour, t0, false)
}

func testConcurrentCompareAndSwap(t *testing.T, open Open) {
	const (
		workers    = 4 // per replica
		increments = 10
		bucket     = "counters"
		key        = "guests"
	)
	replicas := open(t, 2)
	var (
		wg   sync.WaitGroup
		errs = make(chan error, 2*workers)
	)
	for _, s := range replicas {
		for range workers {
			wg.Go(func() {
				for range increments {
					for {
						value, version, err := s.Get(t.Context(), bucket, key)
						n := 0
						switch {
						case errors.Is(err, store.ErrNotFound):
						case err != nil:
							errs <- err
							return
						default:
							if _, err := fmt.Sscan(string(value), &n); err != nil {
								errs <- err
								return
							}
						}
						_, ok, err := s.CompareAndSwap(t.Context(), bucket, key, version, fmt.Append(nil, n+1))
						if err != nil {
							errs <- err
							return
						}
						if ok {
							break
						}
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	get(t, replicas[0], bucket, key, fmt.Sprint(2*workers*increments), 0)
}

func testClose(t *testing.T, open Open) {
	s := one(t, open)
	ctx := t.Context()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"ping", func() error { return s.Ping(ctx) }},
		{"reserve", func() error { _, _, err := s.Reserve(ctx, "s", []store.Limit{rpm(1, 1)}, t0); return err }},
		{"used", func() error { _, err := s.Used(ctx, "s", []store.Limit{rpm(1, 1)}, t0); return err }},
		{"acquire slot", func() error { _, _, err := s.AcquireSlot(ctx, "s", 1, time.Minute, t0); return err }},
		{"get", func() error { _, _, err := s.Get(ctx, "b", "k"); return err }},
		{"put", func() error { _, err := s.Put(ctx, "b", "k", nil); return err }},
		{"list", func() error { _, err := s.List(ctx, "b"); return err }},
		{"lease", func() error { _, err := s.AcquireLease(ctx, "m", "h", time.Minute, t0); return err }},
		{"add usage", func() error {
			return s.AddUsage(ctx, "closed.0", store.Usage{Day: t0, Supplier: "s", Requests: 1})
		}},
		{"add usage seq", func() error {
			_, err := s.AddUsageSeq(ctx, "closed.1", store.Usage{Day: t0, Supplier: "s", Requests: 1},
				store.UsageSeq{Source: "spool", First: 1, Last: 1})
			return err
		}},
		{"query usage", func() error { _, err := s.QueryUsage(ctx, store.UsageQuery{From: t0, To: t0}); return err }},
		{"publish headroom", func() error {
			return s.PublishHeadroom(ctx, []store.Headroom{{Provider: "openai", At: t0, CooldownUntil: t0}}, t0)
		}},
		{"headroom", func() error { _, err := s.Headroom(ctx, t0); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, store.ErrClosed) {
				t.Fatalf("after Close: error = %v, want ErrClosed", err)
			}
		})
	}
}
