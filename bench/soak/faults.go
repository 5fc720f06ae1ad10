//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// faultyUpstream is the primary upstream: a fake that, on a share of the
// chat and embeddings calls it receives, misbehaves. The fault is drawn
// when the call arrives and scripted on the fake just before it handles
// the call, so faults strike only calls veil actually makes: none pile up
// while veil keeps the primary out of its plan (a scripted fault left
// waiting would fail the one call a half-open breaker lets through, and
// keep the breaker open).
type faultyUpstream struct {
	fake *fakeopenai.Server
	plan plan
	srv  *fasthttp.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned

	armed  atomic.Bool // no faults before arm
	calls  atomic.Uint64
	byKind []atomic.Int64 // faults drawn, by index in faultKinds
}

// startFaulty serves fake behind the fault draw on a loopback port.
func startFaulty(fake *fakeopenai.Server, p plan) (*faultyUpstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("primary upstream: %w", err)
	}
	u := &faultyUpstream{fake: fake, plan: p, ln: ln, done: make(chan struct{}), byKind: make([]atomic.Int64, len(faultKinds))}
	u.srv = &fasthttp.Server{
		Handler:               u.handle,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
		// Idle workers end soon after Shutdown.
		MaxIdleWorkerDuration: time.Second,
		Logger:                quietLogger{},
	}
	go func() {
		defer close(u.done)
		_ = u.srv.Serve(ln)
	}()
	return u, nil
}

// quietLogger drops fasthttp's log lines (connections the faults cut).
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// Addr is the address the primary listens on.
func (u *faultyUpstream) Addr() string { return u.ln.Addr().String() }

func (u *faultyUpstream) handle(ctx *fasthttp.RequestCtx) {
	if path := string(ctx.Path()); u.armed.Load() && (path == pathChat || path == pathEmbeddings) {
		stream := gjson.GetBytes(ctx.PostBody(), "stream").Bool()
		if i := u.plan.faultAt(u.calls.Add(1), stream); i >= 0 {
			u.byKind[i].Add(1)
			u.fake.Script(faultKinds[i].fault(u.plan.stall).OnPath(path))
		}
	}
	u.fake.Handler(ctx)
}

// arm starts the faults.
func (u *faultyUpstream) arm() { u.armed.Store(true) }

// faults returns how many faults were drawn so far, in all and by kind.
func (u *faultyUpstream) faults() (total int64, byKind map[string]int64) {
	byKind = map[string]int64{}
	for i := range u.byKind {
		if n := u.byKind[i].Load(); n > 0 {
			byKind[faultKinds[i].name] = n
			total += n
		}
	}
	return total, byKind
}

// Close releases the fake's stalled handlers, then stops serving.
func (u *faultyUpstream) Close() error {
	err := u.fake.Close()
	err = errors.Join(err, u.srv.Shutdown())
	<-u.done
	return err
}
