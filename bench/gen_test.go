//go:build linux

package main

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/bench/load"
)

// serve runs h on a loopback listener for the duration of the test and
// returns its address.
func serve(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = s.Shutdown()
		<-done
	})
	return ln.Addr().String()
}

func newTestGen(t *testing.T, addr string, o Options) *Generator {
	t.Helper()
	g, err := NewGenerator(Target{Addr: addr, Path: "/v1/chat/completions", Token: "tok", Body: requestBody(false)}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func TestRunCountsOutcomes(t *testing.T) {
	var hits, bad atomic.Int64
	want := requestBody(false)
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		n := hits.Add(1)
		if !ctx.IsPost() || string(ctx.Path()) != "/v1/chat/completions" ||
			string(ctx.Request.Header.Peek("Authorization")) != "Bearer tok" ||
			!bytes.Equal(ctx.PostBody(), want) {
			bad.Add(1)
		}
		if n%10 == 0 {
			ctx.Error("overloaded", fasthttp.StatusServiceUnavailable)
			return
		}
		ctx.SetBodyString(`{"ok":true}`)
	})
	g := newTestGen(t, addr, Options{Conns: 8, Timeout: 5 * time.Second})

	r, err := g.Run(context.Background(), 2000, 250*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Records) != 500 {
		t.Fatalf("scheduled %d requests, want 500", len(r.Records))
	}
	s := summarize(r)
	if s.Requests != 500 || s.OK != 450 || s.BadStatus != 50 || s.Transport != 0 || s.Timeout != 0 || s.Unsent != 0 {
		t.Errorf("summary %+v, want 500 requests, 450 ok, 50 bad status", s)
	}
	if s.StatusCodes[503] != 50 {
		t.Errorf("status codes %v, want 50 × 503", s.StatusCodes)
	}
	if hits.Load() != 500 || bad.Load() != 0 {
		t.Errorf("server saw %d requests, %d malformed; want 500, 0", hits.Load(), bad.Load())
	}
	for i, rec := range r.Records {
		if rec.Latency < rec.Lag || rec.Lag < -time.Millisecond {
			t.Fatalf("record %d: latency %v, lag %v", i, rec.Latency, rec.Lag)
		}
	}
	if s.Errors["status"] == "" {
		t.Error("no example message for the status errors")
	}
}

// TestRunIsOpenLoop holds every request at the server until all of them
// have arrived: a closed-loop generator would deadlock (and time out),
// an open-loop one sends them all regardless of missing responses.
func TestRunIsOpenLoop(t *testing.T) {
	const n = 20
	var arrived atomic.Int64
	all := make(chan struct{})
	var once sync.Once
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		if arrived.Add(1) == n {
			once.Do(func() { close(all) })
		}
		select {
		case <-all:
		case <-time.After(3 * time.Second):
			ctx.Error("not all requests arrived", fasthttp.StatusGatewayTimeout)
		}
	})
	g := newTestGen(t, addr, Options{Conns: n, Timeout: 5 * time.Second})
	r, err := g.Run(context.Background(), 1000, n*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if s := summarize(r); s.OK != n {
		t.Errorf("ok %d of %d (%+v)", s.OK, n, s)
	}
}

func TestRunTransportErrors(t *testing.T) {
	addr, err := load.FreeAddr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	g := newTestGen(t, addr, Options{Conns: 4, Timeout: 2 * time.Second})
	r, err := g.Run(context.Background(), 1000, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(r)
	if s.Requests != 50 || s.Transport != 50 {
		t.Errorf("summary %+v, want 50 transport errors", s)
	}
	if s.Errors["transport"] == "" {
		t.Error("no example message for the transport errors")
	}
}

func TestRunTimeouts(t *testing.T) {
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		time.Sleep(300 * time.Millisecond)
	})
	g := newTestGen(t, addr, Options{Conns: 10, Timeout: 50 * time.Millisecond})
	r, err := g.Run(context.Background(), 200, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(r)
	if s.Requests != 10 || s.Timeout != 10 {
		t.Errorf("summary %+v, want 10 timeouts", s)
	}
	if s.Latency.P50 < 50*time.Millisecond {
		t.Errorf("timed-out requests recorded %v, less than the timeout", s.Latency.P50)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hits atomic.Int64
	addr := serve(t, func(rc *fasthttp.RequestCtx) {
		if hits.Add(1) == 10 {
			cancel()
		}
	})
	g := newTestGen(t, addr, Options{Conns: 4, Timeout: time.Second})
	r, err := g.Run(ctx, 1000, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(r)
	if s.Requests < 10 || s.Unsent == 0 || s.Requests+s.Unsent != len(r.Records) {
		t.Errorf("after cancel: %d sent, %d unsent of %d", s.Requests, s.Unsent, len(r.Records))
	}
}

func TestNewGeneratorChecks(t *testing.T) {
	ok := Options{Conns: 1, Timeout: time.Second}
	for _, addr := range []string{"127.0.0.1:80", "[::1]:80", "127.8.9.10:1"} {
		if _, err := NewGenerator(Target{Addr: addr, Path: "/"}, ok); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	for _, addr := range []string{"10.0.0.1:80", "example.com:80", "localhost:80", "0.0.0.0:80", "127.0.0.1", "[::]:80"} {
		if _, err := NewGenerator(Target{Addr: addr, Path: "/"}, ok); err == nil {
			t.Errorf("%s: accepted a non-loopback target", addr)
		}
	}
	for _, o := range []Options{{Conns: 0, Timeout: time.Second}, {Conns: 1}, {Conns: 1, Workers: -1, Timeout: time.Second}} {
		if _, err := NewGenerator(Target{Addr: "127.0.0.1:80", Path: "/"}, o); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
	g, err := NewGenerator(Target{Addr: "127.0.0.1:80", Path: "/"}, ok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Run(context.Background(), 0, time.Second); err == nil {
		t.Error("rate 0 accepted")
	}
}
