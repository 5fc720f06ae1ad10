package quota

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/store"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func newEnforcer(t *testing.T, o Options) (*Enforcer, store.Store) {
	t.Helper()
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if o.Store == nil {
		o.Store = st
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return e, o.Store
}

var june = time.Date(2026, 6, 20, 12, 0, 30, 0, time.UTC)

func TestAdmitAndSettle(t *testing.T) {
	e, _ := newEnforcer(t, Options{
		Tiers:       []config.Tier{{Name: "starter", RequestsPerMinute: 10, TokensPerMinute: 1000, DefaultMaxTokens: 100, OnExhausted: "reject"}},
		DefaultTier: "starter",
	})
	req := Request{Supplier: []byte("bella"), Provider: "openai", Model: "gpt-4o-mini", Prompt: 300, Completion: true, Now: june}
	var tickets []Ticket
	for range 2 {
		tk, ref, err := e.Admit(context.Background(), req)
		if err != nil || ref != nil || !tk.Active() {
			t.Fatalf("admit: %v %v", ref, err)
		}
		tickets = append(tickets, tk)
	}
	// 2 × 400 reserved: a third 400 does not fit in 1000.
	_, ref, err := e.Admit(context.Background(), req)
	if err != nil || ref == nil || ref.Denial.Limit != LimitTokens || ref.TokensLimit != 1000 || ref.TokensRemaining != 200 {
		t.Fatalf("third admit: %+v %v", ref, err)
	}
	if ref.RetryAfterSeconds() != 30 {
		t.Errorf("retry after %d s, want the 30 s left in the minute", ref.RetryAfterSeconds())
	}
	// Settling with the real (smaller) usage makes room again.
	e.Settle(&tickets[0], true, 100, 50, 0)
	e.Settle(&tickets[1], false, 0, 0, 0)
	if _, ref, _ := e.Admit(context.Background(), req); ref != nil {
		t.Errorf("after settling: %+v", ref.Denial)
	}
	used, err := e.Used(context.Background(), []byte("bella"), june)
	if err != nil || used[LimitRequests] != 3 || used[LimitTokens] != 550 {
		t.Errorf("used %v %v", used, err)
	}
}

func TestTierBySupplierAndSeason(t *testing.T) {
	e, _ := newEnforcer(t, Options{
		Tiers:         []config.Tier{{Name: "starter", RequestsPerMinute: 60}, {Name: "pro", RequestsPerMinute: 600}},
		DefaultTier:   "starter",
		SupplierTiers: map[string]string{"bella": "pro"},
		Seasons:       []config.Season{{Name: "peak", From: "03-01", To: "10-31", Tiers: []config.Tier{{Name: "starter", RequestsPerMinute: 30}}}},
	})
	dec := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		supplier string
		at       time.Time
		rpm      int
	}{{"rose", june, 30}, {"rose", dec, 60}, {"bella", june, 600}}
	for _, tc := range cases {
		if got := e.Tier([]byte(tc.supplier), tc.at).RequestsPerMinute; got != tc.rpm {
			t.Errorf("%s at %v: rpm %d, want %d", tc.supplier, tc.at, got, tc.rpm)
		}
	}
	if got := e.TierNamed("starter", june).RequestsPerMinute; got != 30 {
		t.Errorf("starter in June: rpm %d, want the peak season's 30", got)
	}
	if e.TierNamed("gold", june) != nil || e.TierNamed("", june) != nil {
		t.Error("a tier of no such name was found")
	}
	if _, err := New(Options{Store: e.o.Store, DefaultTier: "gold"}); err == nil {
		t.Error("an unknown default tier was accepted")
	}
}

// downStore fails every call as unreachable.
type downStore struct{ store.Store }

func (downStore) Reserve(context.Context, string, []store.Limit, time.Time) (store.Reservation, *store.Denial, error) {
	return store.Reservation{}, nil, store.ErrUnavailable
}

func (downStore) ReserveAs(context.Context, string, string, []store.Limit, time.Time) (store.Reservation, *store.Denial, error) {
	return store.Reservation{}, nil, store.ErrUnavailable
}

type countObserver struct{ n int }

func (c *countObserver) QuotaStoreUnavailable() { c.n++ }

func TestStoreUnavailable(t *testing.T) {
	for _, closed := range []bool{false, true} {
		obs := &countObserver{}
		st, _ := store.NewEmbedded("")
		t.Cleanup(func() { _ = st.Close() })
		e, err := New(Options{Store: downStore{st}, Tiers: []config.Tier{{Name: "t", RequestsPerMinute: 1}}, DefaultTier: "t",
			FailClosed: closed, Observer: obs})
		if err != nil {
			t.Fatal(err)
		}
		tk, ref, err := e.Admit(context.Background(), Request{Supplier: []byte("bella"), Now: june})
		switch {
		case closed && !errors.Is(err, ErrUnavailable):
			t.Errorf("fail closed: %v", err)
		case !closed && (err != nil || ref != nil || tk.Active()):
			t.Errorf("fail open: %v %v %v", tk, ref, err)
		}
		if obs.n != 1 {
			t.Errorf("unavailable counted %d times", obs.n)
		}
	}
}

// TestFallbackAllowance: a supplier's calls falling back from its own key
// are held to its tier's fallback_tier, counted apart from its platform
// calls, and to no tier when its tier names none.
func TestFallbackAllowance(t *testing.T) {
	e, _ := newEnforcer(t, Options{
		Tiers: []config.Tier{
			{Name: "starter", RequestsPerMinute: 2, OnExhausted: "reject", FallbackTier: "outage"},
			{Name: "outage", RequestsPerMinute: 5, OnExhausted: "reject"},
			{Name: "plain", RequestsPerMinute: 1, OnExhausted: "reject"},
		},
		DefaultTier:   "starter",
		SupplierTiers: map[string]string{"rose": "plain"},
	})
	ctx := context.Background()
	admitted := func(supplier string, fallback bool, n int) int {
		ok := 0
		for range n {
			if _, ref, err := e.Admit(ctx, Request{Supplier: []byte(supplier), Provider: "openai", Fallback: fallback, Now: june}); err == nil && ref == nil {
				ok++
			}
		}
		return ok
	}
	if got := admitted("bella", false, 4); got != 2 {
		t.Errorf("platform calls admitted %d, want the starter tier's 2", got)
	}
	if got := admitted("bella", true, 8); got != 5 {
		t.Errorf("fallback calls admitted %d, want the outage tier's 5, apart from the platform calls", got)
	}
	if got := admitted("rose", true, 10); got != 10 {
		t.Errorf("fallback calls of a tier without fallback_tier admitted %d, want all 10", got)
	}
}

// fixedPrices prices every token of a provider at its rate, in
// micro-dollars.
type fixedPrices map[string]int64

func (p fixedPrices) CostMicros(provider, _ string, _ time.Time, prompt, _, completion int64) (int64, bool) {
	rate, ok := p[provider]
	return rate * (prompt + completion), ok
}

// TestReservationPricedAtTheCostliestTarget: a call that may fail over to
// a dearer provider reserves that provider's price, so that a monthly
// budget cannot be overrun by failovers.
func TestReservationPricedAtTheCostliestTarget(t *testing.T) {
	e, _ := newEnforcer(t, Options{
		Tiers:       []config.Tier{{Name: "budget", MonthlyCostUSD: 0.001, DefaultMaxTokens: 100, OnExhausted: "reject"}},
		DefaultTier: "budget",
		Prices:      fixedPrices{"openai": 1, "backup": 3}, // micro-dollars per token
	})
	// 200 tokens: 200 µ$ at openai, 600 µ$ at the backup; the budget is 1000 µ$.
	req := Request{Supplier: []byte("bella"), Provider: "openai", Model: "gpt-4o-mini", Prompt: 100, Completion: true, Now: june}
	for i, want := range []bool{true, true, true, true, true, false} {
		_, ref, err := e.Admit(context.Background(), req)
		if err != nil || (ref == nil) != want {
			t.Fatalf("openai-only call %d: refusal %+v, err %v; want admitted %v", i, ref, err, want)
		}
	}
	e2, _ := newEnforcer(t, Options{
		Tiers:       []config.Tier{{Name: "budget", MonthlyCostUSD: 0.001, DefaultMaxTokens: 100, OnExhausted: "reject"}},
		DefaultTier: "budget",
		Prices:      fixedPrices{"openai": 1, "backup": 3},
	})
	req.Later = []Target{{Provider: "backup", Model: "gpt-4o"}}
	for i, want := range []bool{true, false} {
		_, ref, err := e2.Admit(context.Background(), req)
		if err != nil || (ref == nil) != want {
			t.Fatalf("call %d that may fail over to the backup: refusal %+v, err %v; want admitted %v", i, ref, err, want)
		}
		if ref != nil && ref.Denial.Limit != LimitMonthCost {
			t.Fatalf("refused by %s, want the monthly budget", ref.Denial.Limit)
		}
	}
}

func TestTicketHeadroom(t *testing.T) {
	minuteEnd := time.Date(2026, 6, 20, 12, 1, 0, 0, time.UTC)
	monthEnd := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name             string
		tier             config.Tier
		admits           int
		requests, tokens Headroom
	}{
		{"the minute's windows", config.Tier{RequestsPerMinute: 10, TokensPerMinute: 1000, MonthlyTokens: 100000}, 2,
			Headroom{Limit: 10, Remaining: 8, Reset: minuteEnd}, Headroom{Limit: 1000, Remaining: 200, Reset: minuteEnd}},
		{"the month has less left than the minute", config.Tier{RequestsPerMinute: 10, TokensPerMinute: 1000, MonthlyTokens: 900}, 2,
			Headroom{Limit: 10, Remaining: 8, Reset: minuteEnd}, Headroom{Limit: 900, Remaining: 100, Reset: monthEnd}},
		{"the month alone limits tokens", config.Tier{MonthlyTokens: 1500}, 3,
			Headroom{}, Headroom{Limit: 1500, Remaining: 300, Reset: monthEnd}},
		{"the month's budget is no headroom of requests or tokens", config.Tier{MonthlyCostUSD: 10}, 1, Headroom{}, Headroom{}},
		{"nothing left is zero, not less", config.Tier{RequestsPerMinute: 1, TokensPerMinute: 1000, MonthlyTokens: 600}, 1,
			Headroom{Limit: 1, Remaining: 0, Reset: minuteEnd}, Headroom{Limit: 600, Remaining: 0, Reset: monthEnd}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tier := tt.tier
			tier.Name, tier.DefaultMaxTokens, tier.OnExhausted = "starter", 100, "reject"
			e, st := newEnforcer(t, Options{Tiers: []config.Tier{tier}, DefaultTier: "starter"})
			if tt.tier.MonthlyTokens == 600 {
				// Earlier this month the supplier used 200 of its 600 tokens.
				if _, _, err := st.Reserve(context.Background(), "supplier:bella", []store.Limit{
					{Name: LimitMonthTokens, Window: store.WindowMonth, Max: 600, Amount: 200}}, june); err != nil {
					t.Fatal(err)
				}
			}
			req := Request{Supplier: []byte("bella"), Provider: "openai", Model: "gpt-4o-mini", Prompt: 300, Completion: true, Now: june}
			var tk Ticket
			for i := range tt.admits {
				var ref *Refusal
				var err error
				if tk, ref, err = e.Admit(context.Background(), req); err != nil || ref != nil {
					t.Fatalf("admit %d: %+v %v", i, ref, err)
				}
			}
			requests, tokens := tk.Headroom()
			if requests != tt.requests || tokens != tt.tokens {
				t.Errorf("headroom %+v %+v, want %+v %+v", requests, tokens, tt.requests, tt.tokens)
			}
		})
	}
	t.Run("no reservation", func(t *testing.T) {
		var tk Ticket
		if r, k := tk.Headroom(); r != (Headroom{}) || k != (Headroom{}) {
			t.Errorf("headroom %+v %+v of an empty ticket", r, k)
		}
	})
}

// settleDownStore answers reservations but cannot settle them.
type settleDownStore struct{ store.Store }

func (settleDownStore) Settle(context.Context, store.Reservation, map[string]int64) error {
	return store.ErrUnavailable
}

// TestStoreFailuresLogSparingly: while the store is down every request
// fails the same way; the log says so once, not once per request.
func TestStoreFailuresLogSparingly(t *testing.T) {
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	tiers := []config.Tier{{Name: "t", RequestsPerMinute: 1000}}
	cases := []struct {
		name, msg string
		store     store.Store
	}{
		{"reserve", "quota store unavailable; serving without a quota check (fail_open)", downStore{st}},
		{"settle", "quota settlement failed; the reservation stands", settleDownStore{st}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			e, err := New(Options{Store: c.store, Tiers: tiers, DefaultTier: "t", Log: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			for range 50 {
				tk, _, err := e.Admit(context.Background(), Request{Supplier: []byte("bella"), Now: time.Now()})
				if err != nil {
					t.Fatal(err)
				}
				e.Settle(&tk, true, 10, 20, 0)
			}
			if n := logs.FilterMessage(c.msg).Len(); n != 1 {
				t.Errorf("%d lines %q for 50 requests, want 1", n, c.msg)
			}
		})
	}
}
