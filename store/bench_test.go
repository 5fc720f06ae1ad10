package store_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/store"
)

// benchLimits are a tier's limits on one call: requests and tokens per
// minute, tokens and cost per month. The maxima are never reached.
var benchLimits = []store.Limit{
	{Name: "rpm", Window: time.Minute, Max: 1 << 50, Amount: 1},
	{Name: "tpm", Window: time.Minute, Max: 1 << 50, Amount: 1500},
	{Name: "month_tokens", Window: store.WindowMonth, Max: 1 << 50, Amount: 1500},
	{Name: "month_cost_micros", Window: store.WindowMonth, Max: 1 << 50, Amount: 4200},
}

// benchStores returns the stores to benchmark, by name.
func benchStores(b *testing.B) []struct {
	name string
	s    store.Store
} {
	e, err := store.NewEmbedded("")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	r := newRedis(b, store.RedisOptions{Addr: redistest.Start(b).Addr})
	return []struct {
		name string
		s    store.Store
	}{{"embedded", e}, {"redis", r}}
}

// BenchmarkReserve measures one quota check with four limits: the latency
// a call waits for before it goes upstream.
func BenchmarkReserve(b *testing.B) {
	for _, bs := range benchStores(b) {
		b.Run(bs.name, func(b *testing.B) {
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if _, d, err := bs.s.Reserve(ctx, "supplier:bella-photography", benchLimits, t0); err != nil || d != nil {
					b.Fatalf("Reserve = %+v, %v", d, err)
				}
			}
		})
	}
}

// BenchmarkReserveParallel measures throughput with many concurrent
// requests, spread over 64 suppliers.
func BenchmarkReserveParallel(b *testing.B) {
	subjects := make([]string, 64)
	for i := range subjects {
		subjects[i] = "supplier:" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	for _, bs := range benchStores(b) {
		b.Run(bs.name, func(b *testing.B) {
			ctx := b.Context()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, d, err := bs.s.Reserve(ctx, subjects[i%len(subjects)], benchLimits, t0); err != nil || d != nil {
						b.Errorf("Reserve = %+v, %v", d, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSettle measures settling a reservation after the call.
func BenchmarkSettle(b *testing.B) {
	for _, bs := range benchStores(b) {
		b.Run(bs.name, func(b *testing.B) {
			ctx := b.Context()
			r, d, err := bs.s.Reserve(ctx, "supplier:bella-photography", benchLimits, t0)
			if err != nil || d != nil {
				b.Fatalf("Reserve = %+v, %v", d, err)
			}
			actual := map[string]int64{"tpm": 1400, "month_tokens": 1400, "month_cost_micros": 3900}
			b.ReportAllocs()
			for b.Loop() {
				if err := bs.s.Settle(ctx, r, actual); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddUsage measures adding one delta of the usage sink, with its
// id checked and recorded.
func BenchmarkAddUsage(b *testing.B) {
	d := store.Usage{Day: t0, Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o",
		KeySource: "platform", Requests: 3, PromptTokens: 4200, CompletionTokens: 900, CostMicros: 21000}
	for _, bs := range benchStores(b) {
		b.Run(bs.name, func(b *testing.B) {
			ctx := b.Context()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := bs.s.AddUsage(ctx, "Q2VQFZ3XK7M4WJ5TNB6YHC8RDA."+strconv.Itoa(i), d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddUsageSeq measures AddUsage's delta under a spool run's
// mark (ADR 0033): the mark read and moved with the counts, in the same
// script or transaction.
func BenchmarkAddUsageSeq(b *testing.B) {
	d := store.Usage{Day: t0, Supplier: "bella-photography", Provider: "openai", Model: "gpt-4o",
		KeySource: "platform", Requests: 3, PromptTokens: 4200, CompletionTokens: 900, CostMicros: 21000}
	for _, bs := range benchStores(b) {
		var i uint64 // numbers go on over the runs on one store
		b.Run(bs.name, func(b *testing.B) {
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				i++
				seq := store.UsageSeq{Source: "K3M9Q2VQFZ3XK7M4WJ5TNB6YHC", First: 3*i - 2, Last: 3 * i}
				w, err := bs.s.AddUsageSeq(ctx, "Q2VQFZ3XK7M4WJ5TNB6YHC8RDA."+strconv.FormatUint(i, 10), d, seq)
				if err != nil {
					b.Fatal(err)
				}
				if w >= seq.First {
					b.Fatalf("mark %d, want below %d", w, seq.First)
				}
			}
		})
	}
}

// BenchmarkHeadroom measures one replica's round of sharing providers'
// headroom (ADR 0028): publishing three providers' latest observations in
// one batch, and reading every provider's back; then the same for three
// providers whose pools each span three organisations (an entry per
// account). Neither is on the request path; each runs once a
// store.headroom_interval.
func BenchmarkHeadroom(b *testing.B) {
	entry := func(provider, account string) store.Headroom {
		return store.Headroom{Provider: provider, Account: account, At: t0, LimitRequests: 10000, RemainingRequests: 4000,
			LimitTokens: 30000000, RemainingTokens: 12000000, ResetRequests: t0.Add(6 * time.Second), ResetTokens: t0.Add(time.Second)}
	}
	var single, pools []store.Headroom
	for _, p := range []string{"openai", "azure", "anthropic"} {
		single = append(single, entry(p, ""))
		for _, acct := range []string{"0123456789abcdef", "1123456789abcdef", "2123456789abcdef"} {
			pools = append(pools, entry(p+"-pool", acct))
		}
	}
	for _, bs := range benchStores(b) {
		for _, c := range []struct {
			name  string
			batch []store.Headroom
			read  int // entries held once the batch is in
		}{{"", single, 3}, {"pools of three organisations/", pools, 12}} {
			b.Run(bs.name+"/"+c.name+"publish", func(b *testing.B) {
				ctx := b.Context()
				b.ReportAllocs()
				for b.Loop() {
					if err := bs.s.PublishHeadroom(ctx, c.batch, t0); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(bs.name+"/"+c.name+"read", func(b *testing.B) {
				ctx := b.Context()
				b.ReportAllocs()
				for b.Loop() {
					if hs, err := bs.s.Headroom(ctx, t0); err != nil || len(hs) != c.read {
						b.Fatalf("Headroom = %d entries, %v", len(hs), err)
					}
				}
			})
		}
	}
}
