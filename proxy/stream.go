package proxy

import (
	"bufio"
	"errors"
	"io"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/sse"
)

// Reasons a stream ended early, as counted in metrics and logged.
const (
	cutClientGone    = "client_gone"
	cutUpstreamError = "upstream_error"
	cutIdleTimeout   = "idle_timeout"
)

// readResult is one event (or the end) handed from the upstream reader to
// the writer.
type readResult struct {
	ev  sse.Event
	err error
}

// pump copies the upstream's server-sent events to the client, flushing each
// one as it arrives. An upstream reader goroutine hands events over one at a
// time, so that the writer can keep the client connection alive with SSE
// comments while the upstream is silent (which is how a client that went
// away is noticed), and end the stream when the upstream stays silent past
// the idle timeout. Whatever ends the stream, the upstream request is
// cancelled and the exchange finished.
func (x *exchange) pump(w *bufio.Writer) {
	s := x.s
	defer s.streams.Done()
	defer s.finish(x)

	results := make(chan readResult)
	next := make(chan struct{})
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	rd := sse.NewReader(x.upResp.BodyStream(), s.limits.MaxEventBytes)
	go func() {
		defer close(readerDone)
		for {
			ev, err := rd.Next()
			select {
			case results <- readResult{ev: ev, err: err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
			select {
			case <-next:
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		_ = x.upResp.CloseBodyStream() // cancels the upstream, interrupting a read in flight
		<-readerDone
		fasthttp.ReleaseResponse(x.upResp)
		x.upResp = nil
	}()

	keepalive := s.limits.KeepAliveInterval
	idle := s.limits.StreamIdleTimeout
	timer := time.NewTimer(keepalive)
	defer timer.Stop()
	lastEvent := time.Now()
	var scratch [128]byte
	for {
		select {
		case r := <-results:
			if r.err != nil {
				if !errors.Is(r.err, io.EOF) {
					x.interrupt(w, cutUpstreamError, "upstream_stream_error",
						"veil: the provider's stream broke off: "+r.err.Error())
				}
				return
			}
			lastEvent = time.Now()
			if !r.ev.Comment {
				x.events++
				x.bytesOut += len(r.ev.Raw)
				if _, err := w.Write(r.ev.Raw); err != nil || w.Flush() != nil {
					x.clientGone()
					return
				}
			}
			next <- struct{}{}
			timer.Reset(keepalive)
		case <-timer.C:
			silence := time.Since(lastEvent)
			if idle > 0 && silence >= idle {
				x.interrupt(w, cutIdleTimeout, "upstream_idle_timeout",
					"veil: the provider sent nothing for "+idle.String()+"; the stream was ended")
				return
			}
			if _, err := w.Write(sse.AppendComment(scratch[:0], "keep-alive")); err != nil || w.Flush() != nil {
				x.clientGone()
				return
			}
			wait := keepalive
			if idle > 0 && idle-silence < wait {
				wait = idle - silence
			}
			timer.Reset(wait)
		}
	}
}

// interrupt ends a started stream with an in-band OpenAI error event and no
// [DONE], so SDKs raise an error instead of taking a cut answer as whole.
func (x *exchange) interrupt(w *bufio.Writer, reason, code, msg string) {
	x.interrupted = reason
	x.s.metrics.StreamInterrupted(reason)
	e := Error{Type: typeServer, Code: code, Message: msg}
	buf := envelopePool.Get()
	buf.B = e.AppendEnvelope(buf.B[:0])
	_, _ = w.Write(sse.AppendEvent(nil, buf.B))
	envelopePool.Put(buf)
	_ = w.Flush()
}

func (x *exchange) clientGone() {
	x.interrupted = cutClientGone
	x.s.metrics.StreamInterrupted(cutClientGone)
}
