package usage

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	jan = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	jun = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
)

func testPrices(t testing.TB) *PriceTable {
	t.Helper()
	pt, err := NewPriceTable([]Price{
		{Provider: "openai", Model: "gpt-4o", InputPerMTok: 5, CachedInputPerMTok: 2.5, OutputPerMTok: 15, Effective: jan},
		{Provider: "openai", Model: "gpt-4o", InputPerMTok: 2.5, CachedInputPerMTok: 1.25, OutputPerMTok: 10, Effective: jun},
		{Provider: "openai", Model: "gpt-4o-mini", InputPerMTok: 0.15, OutputPerMTok: 0.6, Effective: jan},
		{Provider: "azure", Model: "gpt-4o", InputPerMTok: 6, OutputPerMTok: 18},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func TestPriceTableCost(t *testing.T) {
	pt := testPrices(t)
	tests := []struct {
		name                       string
		provider, model            string
		at                         time.Time
		prompt, cached, completion int64
		want                       float64
		wantOK                     bool
	}{
		{"first price", "openai", "gpt-4o", jan.AddDate(0, 1, 0), 1_000_000, 0, 1_000_000, 20, true},
		{"on the effective instant", "openai", "gpt-4o", jun, 1_000_000, 0, 0, 2.5, true},
		{"just before a change", "openai", "gpt-4o", jun.Add(-time.Nanosecond), 1_000_000, 0, 0, 5, true},
		{"latest price", "openai", "gpt-4o", jun.AddDate(1, 0, 0), 1000, 0, 500, (1000*2.5 + 500*10) / 1e6, true},
		{"cached tokens at the cached price", "openai", "gpt-4o", jun, 1000, 400, 100, (600*2.5 + 400*1.25 + 100*10) / 1e6, true},
		{"cached tokens at the input price when none is set", "openai", "gpt-4o-mini", jun, 1000, 400, 100, (1000*0.15 + 100*0.6) / 1e6, true},
		{"cached beyond prompt counts as prompt", "openai", "gpt-4o", jun, 100, 500, 0, 100 * 1.25 / 1e6, true},
		{"negative counts are zero", "openai", "gpt-4o", jun, -5, -1, -9, 0, true},
		{"zero effective applies always", "azure", "gpt-4o", time.Time{}, 1_000_000, 0, 0, 6, true},
		{"before the first price", "openai", "gpt-4o", jan.Add(-time.Second), 1000, 0, 0, 0, false},
		{"unknown model", "openai", "gpt-5", jun, 1000, 0, 0, 0, false},
		{"unknown provider", "anthropic", "gpt-4o", jun, 1000, 0, 0, 0, false},
		{"names are exact", "OpenAI", "gpt-4o", jun, 1000, 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := pt.Cost(tt.provider, tt.model, tt.at, tt.prompt, tt.cached, tt.completion)
			if ok != tt.wantOK || math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("Cost = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestNewPriceTableValidates(t *testing.T) {
	ok := Price{Provider: "openai", Model: "gpt-4o", InputPerMTok: 1, OutputPerMTok: 2, Effective: jan}
	with := func(f func(*Price)) Price { p := ok; f(&p); return p }
	tests := []struct {
		name    string
		prices  []Price
		wantErr bool
	}{
		{"valid", []Price{ok, with(func(p *Price) { p.Effective = jun })}, false},
		{"empty table", nil, false},
		{"empty provider", []Price{with(func(p *Price) { p.Provider = "" })}, true},
		{"empty model", []Price{with(func(p *Price) { p.Model = "" })}, true},
		{"negative input", []Price{with(func(p *Price) { p.InputPerMTok = -1 })}, true},
		{"negative cached", []Price{with(func(p *Price) { p.CachedInputPerMTok = -0.1 })}, true},
		{"negative output", []Price{with(func(p *Price) { p.OutputPerMTok = -1 })}, true},
		{"NaN", []Price{with(func(p *Price) { p.OutputPerMTok = math.NaN() })}, true},
		{"infinite", []Price{with(func(p *Price) { p.InputPerMTok = math.Inf(1) })}, true},
		{"same effective twice", []Price{ok, with(func(p *Price) { p.InputPerMTok = 9 })}, true},
		{"same instant in another zone", []Price{ok, with(func(p *Price) { p.Effective = jan.In(time.FixedZone("X", 3600)) })}, true},
		{"same effective, other model", []Price{ok, with(func(p *Price) { p.Model = "gpt-4o-mini" })}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPriceTable(tt.prices)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

func TestPriceTableUnknownReportsOnce(t *testing.T) {
	pt := testPrices(t)
	if pt.Unknown("openai", "gpt-4o") {
		t.Error("a priced model reported unknown")
	}
	if !pt.Unknown("openai", "gpt-9") {
		t.Error("first report of an unknown model: false")
	}
	if pt.Unknown("openai", "gpt-9") {
		t.Error("second report of an unknown model: true")
	}
	if !pt.Unknown("other", "gpt-9") {
		t.Error("same model, other provider: false")
	}

	// Concurrent reports of one pair: exactly one true.
	var trues atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if pt.Unknown("openai", "race") {
				trues.Add(1)
			}
		})
	}
	wg.Wait()
	if trues.Load() != 1 {
		t.Errorf("%d concurrent first reports, want 1", trues.Load())
	}

	// Memory is bounded: beyond the cap, nothing is remembered or reported.
	for i := range 2 * maxUnknown {
		pt.Unknown("made-up", fmt.Sprint(i))
	}
	pt.mu.Lock()
	n := len(pt.unknown)
	pt.mu.Unlock()
	if n != maxUnknown {
		t.Errorf("%d pairs remembered, want the cap %d", n, maxUnknown)
	}
	if pt.Unknown("made-up", "one more") {
		t.Error("a pair beyond the cap reported")
	}
}

func TestPriceTableCostDoesNotAllocate(t *testing.T) {
	pt := testPrices(t)
	provider, model := "openai", "gpt-4o"
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := pt.Cost(provider, model, jun, 1000, 100, 200); !ok {
			t.Fatal("no price")
		}
	})
	if allocs != 0 {
		t.Errorf("Cost: %v allocations, want 0", allocs)
	}
}

func TestNilPriceTable(t *testing.T) {
	var pt *PriceTable
	if _, ok := pt.Cost("openai", "gpt-4o", jun, 1, 0, 1); ok {
		t.Error("a nil table priced a call")
	}
	if pt.Unknown("openai", "gpt-4o") {
		t.Error("a nil table reported unknown")
	}
}

// TestCostMicrosIsExact: costs are integer micro-dollars, summed in
// picodollars and rounded once per call, so totals carry no float noise.
func TestCostMicrosIsExact(t *testing.T) {
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	pt, err := NewPriceTable([]Price{
		{Provider: "openai", Model: "gpt-4o-mini", InputPerMTok: 0.15, CachedInputPerMTok: 0.075, OutputPerMTok: 0.60},
		{Provider: "openai", Model: "gpt-4o", InputPerMTok: 2.50, OutputPerMTok: 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name                       string
		model                      string
		prompt, cached, completion int64
		want                       int64
	}{
		{"a short call", "gpt-4o-mini", 16, 0, 41, 27},                // 2.4 + 24.6 µ$
		{"cached prompt tokens", "gpt-4o-mini", 1000, 400, 0, 120},    // 600*0.15 + 400*0.075
		{"half a micro-dollar rounds up", "gpt-4o-mini", 10, 0, 0, 2}, // 1.5 µ$
		{"under half rounds down", "gpt-4o-mini", 3, 0, 0, 0},         // 0.45 µ$
		{"a long answer", "gpt-4o", 1200, 0, 800, 11000},
		{"negative counts are zero", "gpt-4o", -5, -1, -7, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := pt.CostMicros("openai", tt.model, at, tt.prompt, tt.cached, tt.completion)
			if !ok || got != tt.want {
				t.Fatalf("CostMicros = %d, %v; want %d", got, ok, tt.want)
			}
		})
	}
	var sum int64
	for range 1000 {
		m, _ := pt.CostMicros("openai", "gpt-4o-mini", at, 16, 0, 41)
		sum += m
	}
	if sum != 27_000 {
		t.Fatalf("1000 calls cost %d micro-dollars, want exactly 27000", sum)
	}
	if huge, ok := pt.CostMicros("openai", "gpt-4o", at, 1<<40, 0, 1<<40); !ok || huge <= 0 {
		t.Fatalf("a huge count priced %d, %v: want a clamped positive cost, not an overflow", huge, ok)
	}
}
