package proxy_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/cache"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/proxy"
	"github.com/wedsync/veil/usage"
)

// cacheBody is benchBody made deterministic (temperature 0), so that its
// answer is cached.
const cacheBody = `{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"system","content":"You write venue descriptions for wedding suppliers."},{"role":"user","content":"Describe a lakeside pavilion for 80 guests with an evening barbecue."}]}`

// cacheStreamBody is the same request streamed.
const cacheStreamBody = `{"model":"gpt-4o-mini","temperature":0,"stream":true,"messages":[{"role":"system","content":"You write venue descriptions for wedding suppliers."},{"role":"user","content":"Describe a lakeside pavilion for 80 guests with an evening barbecue."}]}`

// cacheStreamUsageBody is the streamed request asking for the usage chunk
// (stream_options.include_usage), which replays the stored events as they
// are; without it, the replay takes the usage out of every event.
const cacheStreamUsageBody = `{"model":"gpt-4o-mini","temperature":0,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You write venue descriptions for wedding suppliers."},{"role":"user","content":"Describe a lakeside pavilion for 80 guests with an evening barbecue."}]}`

// fakeUpstream serves the fake OpenAI API on a loopback port, streaming
// when asked to, so that a cache miss stores a real answer of either kind.
func fakeUpstream(tb testing.TB) string {
	tb.Helper()
	f := fakeopenai.New(fakeopenai.Options{NoRecord: true})
	if err := f.Start("127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = f.Close() })
	return f.Addr()
}

// cacheProxy is benchProxyWith with the response cache on, as veil serve
// builds it by default: per-supplier scope, single flight.
func cacheProxy(tb testing.TB, upstream string, withUsage bool) (*proxy.Server, string) {
	tb.Helper()
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
	st, err := cache.New(cache.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(discard{}), zap.InfoLevel))
	lim := config.Default().Limits
	lim.MaxInFlight = 1 << 20 // far above any load here, so that its check is on the measured path
	o := proxy.Options{Limits: lim, Auth: authn, Policy: pol, Metrics: metrics.New(), Log: log,
		Cache: st, SingleFlight: true}
	if withUsage {
		pt, err := usage.NewPriceTable([]usage.Price{{Provider: "openai", Model: "gpt-4o-mini", InputPerMTok: 0.15, OutputPerMTok: 0.6}})
		if err != nil {
			tb.Fatal(err)
		}
		em := usage.NewEmitter(usage.Options{}, &countingSink{})
		tb.Cleanup(func() { _ = em.Close(context.Background()) })
		o.Usage, o.Prices = em, pt
	}
	s, err := proxy.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return s, token
}

// newCacheCtx is newCtx with body as the request body.
func newCacheCtx(token, body string) *fasthttp.RequestCtx {
	ctx := newCtx(token)
	ctx.Request.SetBodyString(body)
	return ctx
}

// warmCache sends warm, a miss that stores its answer (the proxy stores
// before it answers), and then ctx's request, which must be a hit. A
// streamed miss is answered by a stream writer, so its body is read to the
// end, which runs the writer and stores the stream.
func warmCache(tb testing.TB, s *proxy.Server, ctx *fasthttp.RequestCtx, warm string) {
	tb.Helper()
	body := append([]byte(nil), ctx.Request.Body()...)
	for i, want := range []string{"MISS", "HIT"} {
		if i == 0 {
			ctx.Request.SetBodyString(warm)
		} else {
			ctx.Request.SetBody(body)
		}
		ctx.Response.Reset()
		s.Handle(ctx)
		body := ctx.Response.Body()
		got := string(ctx.Response.Header.Peek(proxy.HeaderCache))
		if ctx.Response.StatusCode() != fasthttp.StatusOK || got != want {
			tb.Fatalf("warm-up request %d: status %d, %s %q, want %q: %.300s", i+1, ctx.Response.StatusCode(),
				proxy.HeaderCache, got, want, body)
		}
	}
}

// serveHit runs one request that the cache must answer.
func serveHit(tb testing.TB, s *proxy.Server, ctx *fasthttp.RequestCtx) {
	ctx.Response.Reset()
	s.Handle(ctx)
	if ctx.Response.StatusCode() != fasthttp.StatusOK || !bytes.Equal(ctx.Response.Header.Peek(proxy.HeaderCache), []byte("HIT")) {
		tb.Fatalf("status %d, %s %q: %.300s", ctx.Response.StatusCode(), proxy.HeaderCache,
			ctx.Response.Header.Peek(proxy.HeaderCache), ctx.Response.Body())
	}
}

// BenchmarkCacheHit measures a repeat deterministic chat completion
// answered from the cache through veil's handler: auth, field scan, plan,
// cache key, lookup, the answer (the stored body, or the stored stream
// replayed as its events), headers, metrics and the access line. No
// provider is asked. stream and stream_include_usage are stored from a
// streamed miss: stream replays the stored events without their usage,
// which the client did not ask for, stream_include_usage replays them as
// they are. stream_from_plain is stored from a plain miss.
func BenchmarkCacheHit(b *testing.B) {
	for _, bm := range []struct{ name, warm, body string }{
		{"plain", cacheBody, cacheBody},
		{"stream", cacheStreamBody, cacheStreamBody},
		{"stream_include_usage", cacheStreamUsageBody, cacheStreamUsageBody},
		// A stream asked for after a plain miss: the stored plain answer
		// is turned into a stream of a few words a chunk on the first hit
		// and kept in the entry for the later ones.
		{"stream_from_plain", cacheBody, cacheStreamBody},
	} {
		b.Run(bm.name, func(b *testing.B) {
			s, token := cacheProxy(b, fakeUpstream(b), false)
			ctx := newCacheCtx(token, bm.body)
			warmCache(b, s, ctx, bm.warm)
			if body := ctx.Response.Body(); strings.Contains(bm.body, `"stream":true`) &&
				(!bytes.HasPrefix(body, []byte("data: {")) || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n"))) {
				b.Fatalf("a streamed hit is not an event stream: %.300s", body)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.body)))
			for b.Loop() {
				serveHit(b, s, ctx)
			}
		})
	}
}

// BenchmarkCacheHitParallel runs plain hits from several goroutines, as
// fasthttp's server does.
func BenchmarkCacheHitParallel(b *testing.B) {
	s, token := cacheProxy(b, fakeUpstream(b), false)
	warmCache(b, s, newCacheCtx(token, cacheBody), cacheBody)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := newCacheCtx(token, cacheBody)
		for pb.Next() {
			serveHit(b, s, ctx)
		}
	})
}

// maxAllocsPerHit is the allocation budget of one plain cache hit: 8
// measured (the access line's fields, the usage record with its request ID
// and zero cost, the remote IP string), plus a small margin.
const maxAllocsPerHit = 10

func TestCacheHitAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are only meaningful without -short and -race")
	}
	for _, withUsage := range []bool{false, true} {
		s, token := cacheProxy(t, fakeUpstream(t), withUsage)
		ctx := newCacheCtx(token, cacheBody)
		warmCache(t, s, ctx, cacheBody)
		allocs := testing.AllocsPerRun(200, func() { serveHit(t, s, ctx) })
		t.Logf("%.1f allocations per plain cache hit (usage accounting %v)", allocs, withUsage)
		if allocs > maxAllocsPerHit {
			t.Errorf("%.1f allocations per cache hit (usage %v), budget %d", allocs, withUsage, maxAllocsPerHit)
		}
	}
	// A stream replayed from a plain answer costs a plain hit once the
	// entry keeps the stream it made.
	s, token := cacheProxy(t, fakeUpstream(t), false)
	ctx := newCacheCtx(token, cacheStreamBody)
	warmCache(t, s, ctx, cacheBody)
	allocs := testing.AllocsPerRun(200, func() { serveHit(t, s, ctx) })
	t.Logf("%.1f allocations per stream replayed from a plain answer", allocs)
	if allocs > maxAllocsPerHit {
		t.Errorf("%.1f allocations per stream replayed from a plain answer, budget %d", allocs, maxAllocsPerHit)
	}
}
