package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/internal/sse"
)

// Reasons a stream ended early, as counted in metrics and logged.
const (
	cutClientGone    = "client_gone"
	cutUpstreamError = "upstream_error"
	cutIdleTimeout   = "idle_timeout"
	cutShutdown      = "shutdown"
)

// stream is the state of a streamed answer that the stream writer owns.
type stream struct {
	// streamed is set once a stream writer took the exchange.
	streamed bool
	// resp is the upstream response being read, released when the stream
	// ends or is resumed elsewhere.
	resp *fasthttp.Response
	// reader is positioned after the held events, when hold ran.
	reader sse.Source
	// held is what hold read before the first content event, sent first.
	held      []byte
	heldBytes bytes.Reader
	heldRd    *sse.Reader
	// ctx is the request's, for a look at its client's connection.
	ctx *fasthttp.RequestCtx
	// out is a buffer for what veil itself writes to the stream.
	out      []byte
	events   int
	bytesOut int
	// ttft is the time from the request to the first event sent.
	ttft        time.Duration
	interrupted string
}

// reset keeps the stream's buffers for the next exchange.
func (st *stream) reset() stream {
	return stream{held: st.held[:0], heldRd: st.heldRd, out: st.out[:0]}
}

// startStream hands the upstream's event stream to a stream writer, with
// the taps of the features the request uses.
func (x *exchange) startStream(ctx *fasthttp.RequestCtx, resp *fasthttp.Response, status int) {
	x.cache.collect = x.cache.store && status == fasthttp.StatusOK
	if x.cache.collect {
		x.cache.x = x
		x.taps.add(&x.cache)
	}
	if x.startResume(ctx) {
		x.taps.add(x.resume)
	}
	x.taps.add(&x.usage)
	if x.shadow != nil {
		x.taps.add(x.shadow)
	}
	if x.trace != nil {
		x.taps.add(x.trace)
	}
	x.stream.resp = resp
	x.stream.ctx = ctx
	x.stream.streamed = true
	x.status = status
	x.s.streams.Add(1)
	ctx.SetBodyStreamWriter(x.pump)
}

// pump copies the upstream's server-sent events to the client, each passed
// through the taps and flushed as it arrives. A watchdog keeps time beside
// it: it keeps the client connection alive with SSE comments while the
// upstream is silent (which is how a client that went away is noticed),
// and cuts the upstream when it stays silent past the idle timeout or veil
// drains. A stream that breaks after content went out ends with an in-band
// error event, or, with limits.stream_resume, is continued on the next
// target. Whatever ends the stream, the upstream request is cancelled and
// the exchange finished.
func (x *exchange) pump(w *bufio.Writer) {
	s, st := x.s, &x.stream
	defer s.streams.Done()
	defer s.finish(x)
	rd := st.reader
	if rd == nil {
		rd = x.upstreamEvents(st.resp, x.served)
	}
	// The watchdog starts once the reader holds the body stream it may
	// close.
	var gone func() bool
	if ctx := st.ctx; ctx != nil {
		gone = func() bool { return departed(ctx) }
	}
	wd := startWatchdog(w, st.resp, s.limits.KeepAliveInterval, s.limits.StreamIdleTimeout, s.stop, gone)
	defer func() {
		wd.stop()
		x.endUpstream(wd)
	}()
	if len(st.held) > 0 && !x.relayHeld(wd) {
		return
	}
	for rd != nil {
		ev, err := rd.Next()
		if err == nil {
			wd.heard()
			ev, err = x.taps.event(ev)
		}
		if err != nil {
			rd = x.broken(wd, err)
			continue
		}
		if ev.Raw == nil || ev.Comment {
			continue // veil sends its own keep-alives
		}
		if x.usage.done && !x.completed {
			s.complete(x) // recorded before the client has [DONE]
		}
		// Flushed at once, unless the next event is already in: then
		// both leave together, a write saved and no time lost.
		if !x.emit(wd, ev.Raw, !sse.Buffered(rd)) {
			return
		}
	}
}

// emit writes one event to the client, flushed when flush is set; it
// reports false when the client is gone.
func (x *exchange) emit(wd *watchdog, b []byte, flush bool) bool {
	st := &x.stream
	if !wd.write(b, flush) {
		x.clientGone()
		return false
	}
	st.events++
	st.bytesOut += len(b)
	if st.ttft == 0 {
		st.ttft = time.Since(x.start)
	}
	return true
}

// relayHeld sends what hold read before the first content event, passed
// through the taps like every later event; it reports false when the
// client is gone.
func (x *exchange) relayHeld(wd *watchdog) bool {
	st := &x.stream
	st.heldBytes.Reset(st.held)
	if st.heldRd == nil {
		st.heldRd = sse.NewReader(&st.heldBytes, 0)
	} else {
		st.heldRd.Reset(&st.heldBytes)
	}
	out := st.out[:0]
	for {
		ev, err := st.heldRd.Next()
		if err != nil {
			break
		}
		if ev, _ = x.taps.event(ev); ev.Raw != nil && !ev.Comment {
			out = append(out, ev.Raw...)
		}
	}
	st.out = out[:0]
	return len(out) == 0 || x.emit(wd, out, true)
}

// broken handles the end of the upstream's events: a clean end, a cut by
// the watchdog, or a failure. It returns the reader of the stream's
// continuation, or nil when the stream is over.
func (x *exchange) broken(wd *watchdog, err error) sse.Source {
	switch wd.cutReason() {
	case cutClientGone:
		x.clientGone()
		return nil
	case cutShutdown:
		// The drain timeout passed: the client learns in band that the
		// answer is incomplete, rather than from a cut.
		x.interrupt(wd, cutShutdown, "server_shutting_down",
			"veil is shutting down and ended the stream before the provider finished; the answer is incomplete")
		return nil
	case cutIdleTimeout:
		return x.resumeOrEnd(wd, cutIdleTimeout, "upstream_idle_timeout",
			"veil: the provider sent nothing for "+x.s.limits.StreamIdleTimeout.String()+"; the stream was ended")
	}
	if errors.Is(err, io.EOF) {
		if x.usage.failed && !x.usage.done {
			// The provider's error event was relayed as it came: the
			// answer is incomplete, and the client knows.
			x.stream.interrupted = cutUpstreamError
			x.s.metrics.StreamInterrupted(cutUpstreamError)
			return nil
		}
		if x.resume == nil || !x.resume.incomplete(x.usage.done) {
			return nil
		}
		// Ended without [DONE]: the answer may be incomplete.
		return x.resumeOrEnd(wd, cutUpstreamError, "upstream_stream_error", "veil: the provider's stream ended without [DONE]")
	}
	if errors.Is(err, errErrorEvent) {
		return x.resumeOrEnd(wd, cutUpstreamError, "upstream_stream_error", "veil: the provider's stream failed")
	}
	return x.resumeOrEnd(wd, cutUpstreamError, "upstream_stream_error", "veil: the provider's stream broke off: "+err.Error())
}

// resumeOrEnd continues a broken stream on the next target when it can be
// resumed, and otherwise ends it with an in-band error.
func (x *exchange) resumeOrEnd(wd *watchdog, reason, code, msg string) sse.Source {
	if x.canResume() {
		x.s.metrics.StreamInterrupted(reason)
		x.endUpstream(wd)
		rd, err := x.resumeStream(reason)
		if err == nil {
			x.cache.stop() // a resumed answer is not cached
			x.taps.remove(&x.cache)
			wd.upstream(x.stream.resp)
			return rd
		}
		x.s.log.Warn("stream could not be resumed", zap.ByteString("request_id", x.reqID), zap.String("cause", reason),
			zap.String("error", err.Error()))
	}
	x.interrupt(wd, reason, code, msg)
	return nil
}

// endUpstream cancels and releases the upstream response being read.
func (x *exchange) endUpstream(wd *watchdog) {
	st := &x.stream
	if st.resp == nil {
		return
	}
	wd.upstream(nil)
	_ = st.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(st.resp)
	st.resp = nil
}

// interrupt ends a started stream with an in-band OpenAI error event and no
// [DONE], so SDKs raise an error instead of taking a cut answer as whole.
func (x *exchange) interrupt(wd *watchdog, reason, code, msg string) {
	x.stream.interrupted = reason
	x.s.metrics.StreamInterrupted(reason)
	e := Error{Type: typeServer, Code: code, Message: msg}
	buf := envelopePool.Get()
	buf.B = e.AppendEnvelope(buf.B[:0])
	out := sse.AppendEvent(x.stream.out[:0], buf.B)
	envelopePool.Put(buf)
	wd.stop()
	_ = wd.writeDirect(out)
	x.stream.out = out[:0]
}

func (x *exchange) clientGone() {
	x.stream.interrupted = cutClientGone
	x.s.metrics.StreamInterrupted(cutClientGone)
}

// watchdog keeps time for a stream while the stream writer reads the
// upstream: it writes keep-alive comments while the upstream is silent,
// and cuts the upstream (closing its body, which ends the read in flight)
// when the client is gone, the upstream stays silent past the idle
// timeout, or veil drains. Writes to the client, the stream writer's and
// its own, are serialized by its lock.
type watchdog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	resp *fasthttp.Response
	// cut is why the watchdog cut the upstream; "" until it did.
	cut string
	// lastEvent and lastWrite are the times, in nanoseconds since start,
	// of the last upstream event and the last write to the client.
	lastEvent atomic.Int64
	lastWrite atomic.Int64
	start     time.Time
	// gone, when set, says whether the client closed its connection; it is
	// asked on each tick, so that a client that left is noticed within a
	// keep-alive interval even before a write to it fails.
	gone     func() bool
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// startWatchdog starts keeping time for a stream writing to w and reading
// resp.
func startWatchdog(w *bufio.Writer, resp *fasthttp.Response, keepalive, idle time.Duration, drain <-chan struct{},
	gone func() bool) *watchdog {
	wd := &watchdog{w: w, resp: resp, start: time.Now(), gone: gone, quit: make(chan struct{}), done: make(chan struct{})}
	go wd.watch(keepalive, idle, drain)
	return wd
}

func (wd *watchdog) now() int64 { return int64(time.Since(wd.start)) }

// heard notes an upstream event.
func (wd *watchdog) heard() { wd.lastEvent.Store(wd.now()) }

// watch is the watchdog's loop.
func (wd *watchdog) watch(keepalive, idle time.Duration, drain <-chan struct{}) {
	defer close(wd.done)
	timer := time.NewTimer(keepalive)
	defer timer.Stop()
	var comment [32]byte
	for {
		select {
		case <-wd.quit:
			return
		case <-drain:
			wd.cutUpstream(cutShutdown)
			<-wd.quit
			return
		case <-timer.C:
		}
		if wd.gone != nil && wd.gone() {
			wd.cutUpstream(cutClientGone)
			<-wd.quit
			return
		}
		now := wd.now()
		silence := time.Duration(now - wd.lastEvent.Load())
		if idle > 0 && silence >= idle {
			wd.cutUpstream(cutIdleTimeout)
		}
		quiet := time.Duration(now - wd.lastWrite.Load())
		if quiet >= keepalive {
			if !wd.write(sse.AppendComment(comment[:0], "keep-alive"), true) {
				wd.cutUpstream(cutClientGone)
				<-wd.quit
				return
			}
			quiet = 0
		}
		next := keepalive - quiet
		if left := idle - silence; idle > 0 && left > 0 && left < next {
			next = left
		}
		timer.Reset(next)
	}
}

// write sends b to the client, and flushes what was written when flush is
// set; it reports false when the client is gone.
func (wd *watchdog) write(b []byte, flush bool) bool {
	wd.mu.Lock()
	defer wd.mu.Unlock()
	wd.lastWrite.Store(wd.now())
	return wd.writeLocked(b, flush)
}

// writeDirect writes and flushes b once the watchdog has stopped.
func (wd *watchdog) writeDirect(b []byte) bool {
	wd.mu.Lock()
	defer wd.mu.Unlock()
	return wd.writeLocked(b, true)
}

func (wd *watchdog) writeLocked(b []byte, flush bool) bool {
	if wd.cut == cutClientGone {
		return false
	}
	if _, err := wd.w.Write(b); err != nil || (flush && wd.w.Flush() != nil) {
		wd.cut = cutClientGone
		if wd.resp != nil {
			_ = wd.resp.CloseBodyStream()
		}
		return false
	}
	return true
}

// cutUpstream closes the upstream body for reason, unless it was cut
// already.
func (wd *watchdog) cutUpstream(reason string) {
	wd.mu.Lock()
	defer wd.mu.Unlock()
	if wd.cut != "" {
		return
	}
	wd.cut = reason
	if wd.resp != nil {
		_ = wd.resp.CloseBodyStream() // interrupts the read in flight
	}
}

// cutReason is why the upstream was cut; "" when it was not.
func (wd *watchdog) cutReason() string {
	wd.mu.Lock()
	defer wd.mu.Unlock()
	return wd.cut
}

// upstream sets the response the watchdog cuts: the continuation of a
// resumed stream, or nil while there is none. A new upstream starts with
// a fresh idle clock; one arriving after the client left or a drain began
// is cut at once.
func (wd *watchdog) upstream(resp *fasthttp.Response) {
	wd.mu.Lock()
	defer wd.mu.Unlock()
	wd.resp = resp
	if resp == nil {
		return
	}
	wd.lastEvent.Store(wd.now())
	if wd.cut == cutIdleTimeout {
		wd.cut = ""
	}
	if wd.cut != "" {
		_ = resp.CloseBodyStream()
	}
}

// stop ends the watchdog's loop and waits for it.
func (wd *watchdog) stop() {
	wd.stopOnce.Do(func() { close(wd.quit) })
	<-wd.done
}
