package proxy_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/proxy"
	"github.com/wedsync/veil/tracing"
)

// appTraceparent is a sampled trace context an instrumented app sends.
const appTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// tracedProxy is benchProxy (access lines to a discarding JSON encoder)
// with tracing on at ratio, its spans going
// through veil's queue and batches to an exporter that drops them, so that
// the request path's share of tracing is measured.
func tracedProxy(tb testing.TB, upstream string, ratio float64) (*proxy.Server, string, *tracing.Tracing) {
	tb.Helper()
	tr, err := tracing.New(tracing.Options{Exporter: tracetest.NewNoopExporter(), SampleRatio: ratio, ServiceName: "veil",
		QueueSize: 1 << 16, BatchSize: 512, BatchTimeout: time.Second, Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	p, err := provider.New(config.Provider{Name: "openai", Type: "openai", BaseURL: "http://" + upstream + "/v1", MaxConns: 64},
		[]keys.Secret{keys.NewSecret("sk-bench-platform-key")}, provider.Options{MaxResponseBytes: 1 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	pol, err := policy.New(policy.Options{Providers: []*provider.Provider{p}})
	if err != nil {
		tb.Fatal(err)
	}
	const token = "veil-bench-caller"
	authn, err := auth.New(auth.Options{Callers: []auth.CallerSpec{{Name: "bench", TokenHash: auth.HashToken(token), Suppliers: []string{"*"}}}})
	if err != nil {
		tb.Fatal(err)
	}
	lim := config.Default().Limits
	lim.MaxInFlight = 1 << 20
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(discard{}), zap.InfoLevel))
	s, err := proxy.New(proxy.Options{Limits: lim, Auth: authn, Policy: pol, Metrics: metrics.New(), Log: log, Tracer: tr.Tracer()})
	if err != nil {
		tb.Fatal(err)
	}
	return s, token, tr
}

// BenchmarkPassThroughTraced is BenchmarkPassThrough with tracing on:
// every request recorded (an app's sampled traceparent), or veil starting
// an unsampled trace (ratio 0: the trace context still goes upstream).
func BenchmarkPassThroughTraced(b *testing.B) {
	for _, tc := range []struct {
		name        string
		ratio       float64
		traceparent string
	}{{"sampled", 1, appTraceparent}, {"unsampled", 0, ""}} {
		b.Run(tc.name, func(b *testing.B) {
			s, token, _ := tracedProxy(b, nullUpstream(b), tc.ratio)
			ctx := newCtx(token)
			if tc.traceparent != "" {
				ctx.Request.Header.Set("Traceparent", tc.traceparent)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(benchBody)))
			for b.Loop() {
				serveOnce(b, s, ctx)
			}
		})
	}
}

// TestTracedAllocs reports, and bounds, the allocations tracing adds to a
// pass-through request (whose own budget is maxAllocsPerRequest): a
// recorded request and its attempt with their attributes, and an
// unsampled one that only propagates its context.
func TestTracedAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are only meaningful without -short and -race")
	}
	for _, tc := range []struct {
		name        string
		ratio       float64
		traceparent string
		added       float64
	}{{"sampled", 1, appTraceparent, 36}, {"unsampled", 0, "", 10}} {
		s, token, tr := tracedProxy(t, nullUpstream(t), tc.ratio)
		ctx := newCtx(token)
		if tc.traceparent != "" {
			ctx.Request.Header.Set("Traceparent", tc.traceparent)
		}
		serveOnce(t, s, ctx)
		allocs := testing.AllocsPerRun(200, func() { serveOnce(t, s, ctx) })
		t.Logf("%.1f allocations per traced pass-through request (%s)", allocs, tc.name)
		if budget := maxAllocsPerRequest[false] + tc.added; allocs > budget {
			t.Errorf("%.1f allocations per traced request (%s), budget %v", allocs, tc.name, budget)
		}
		if err := tr.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := tr.Stats()
		if tc.ratio == 1 && (st.Exported < 2*201 || st.Dropped != 0) {
			t.Errorf("stats %+v: want two spans exported per request", st)
		}
		if tc.ratio == 0 && st.Exported != 0 {
			t.Errorf("stats %+v: unsampled spans were exported", st)
		}
	}
}
