package proxy_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/proxy"
	"github.com/wedsync/veil/usage"
)

// nullAnswer is a fixed chat completion, so the upstream side of the
// benchmark allocates nothing and measures only veil.
var nullAnswer = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Congratulations!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`)

const benchBody = `{"model":"gpt-4o-mini","temperature":0.7,"messages":[{"role":"system","content":"You write venue descriptions for wedding suppliers."},{"role":"user","content":"Describe a lakeside pavilion for 80 guests with an evening barbecue."}]}`

// nullUpstream serves nullAnswer on a loopback port.
func nullUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("X-Ratelimit-Remaining-Requests", "9999")
		ctx.SetBody(nullAnswer)
	}}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// countingSink counts the records it is given and drops them.
type countingSink struct{ n atomic.Int64 }

func (c *countingSink) Name() string { return "count" }
func (c *countingSink) Write(b []*usage.Record) error {
	c.n.Add(int64(len(b)))
	return nil
}
func (c *countingSink) Close() error { return nil }

// benchProxy is a proxy in front of the null upstream, logging access lines
// to a discarding JSON encoder so that logging cost is counted.
func benchProxy(tb testing.TB, upstream string) (*proxy.Server, string) {
	return benchProxyWith(tb, upstream, false)
}

// benchProxyWith optionally adds usage accounting: extraction, pricing and
// an emitter with one sink that counts records.
func benchProxyWith(tb testing.TB, upstream string, withUsage bool) (*proxy.Server, string) {
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
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(discard{}), zap.InfoLevel))
	lim := config.Default().Limits
	lim.MaxInFlight = 1 << 20 // far above any load here, so that its check is on the measured path
	o := proxy.Options{Limits: lim, Auth: authn, Policy: pol, Metrics: metrics.New(), Log: log}
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

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// newCtx builds a request context as fasthttp's server would.
func newCtx(token string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/chat/completions")
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "OpenAI/Go 1.0")
	req.Header.Set("X-Supplier-ID", "rose-venue")
	req.SetBodyString(benchBody)
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	return ctx
}

// serveOnce runs one pass-through request through the handler.
func serveOnce(tb testing.TB, s *proxy.Server, ctx *fasthttp.RequestCtx) {
	ctx.Response.Reset()
	s.Handle(ctx)
	if ctx.Response.StatusCode() != 200 {
		tb.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// BenchmarkPassThrough measures one non-streamed chat completion through
// veil's handler: auth, field scan, plan, upstream round trip over loopback,
// header filtering, metrics and the access line.
func BenchmarkPassThrough(b *testing.B) {
	s, token := benchProxy(b, nullUpstream(b))
	ctx := newCtx(token)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		serveOnce(b, s, ctx)
	}
}

// BenchmarkPassThroughWithUsage adds usage accounting: reading the usage
// object of the answer, pricing it, building the record and emitting it.
func BenchmarkPassThroughWithUsage(b *testing.B) {
	s, token := benchProxyWith(b, nullUpstream(b), true)
	ctx := newCtx(token)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		serveOnce(b, s, ctx)
	}
}

// BenchmarkDirect is the same upstream round trip without veil, the
// baseline that BenchmarkPassThrough is compared with.
func BenchmarkDirect(b *testing.B) {
	up := nullUpstream(b)
	c := &fasthttp.HostClient{Addr: up, MaxConns: 64}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://" + up + "/v1/chat/completions")
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer sk-bench-platform-key")
	req.SetBodyString(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPassThroughParallel runs the handler from several goroutines, as
// fasthttp's server does.
func BenchmarkPassThroughParallel(b *testing.B) {
	s, token := benchProxy(b, nullUpstream(b))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := newCtx(token)
		for pb.Next() {
			serveOnce(b, s, ctx)
		}
	})
}

// maxAllocsPerRequest is the allocation budget of one pass-through request
// on veil's side, without and with usage accounting; the guard below keeps
// the hot path from growing past it.
var maxAllocsPerRequest = map[bool]float64{false: 8, true: 8}

func TestPassThroughAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are only meaningful without -short and -race")
	}
	for _, withUsage := range []bool{false, true} {
		s, token := benchProxyWith(t, nullUpstream(t), withUsage)
		ctx := newCtx(token)
		serveOnce(t, s, ctx) // warm pools and metric series
		allocs := testing.AllocsPerRun(200, func() { serveOnce(t, s, ctx) })
		t.Logf("%.1f allocations per pass-through request (usage accounting %v)", allocs, withUsage)
		if budget := maxAllocsPerRequest[withUsage]; allocs > budget {
			t.Errorf("%.1f allocations per request (usage %v), budget %v", allocs, withUsage, budget)
		}
	}
}
