package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/usage"
)

// Reasons a stream ended early, as counted in metrics and logged.
const (
	cutClientGone    = "client_gone"
	cutUpstreamError = "upstream_error"
	cutIdleTimeout   = "idle_timeout"
	cutShutdown      = "shutdown"
)

// readResult is one event (or the end) handed from the upstream reader to
// the writer.
type readResult struct {
	ev  sse.Event
	err error
}

// upstreamReader hands the events of one upstream stream to the stream
// writer, one at a time, from a goroutine of its own.
type upstreamReader struct {
	results chan readResult
	next    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func startReader(rd sse.Source) *upstreamReader {
	u := &upstreamReader{results: make(chan readResult), next: make(chan struct{}), stop: make(chan struct{}),
		done: make(chan struct{})}
	go func() {
		defer close(u.done)
		for {
			ev, err := rd.Next()
			select {
			case u.results <- readResult{ev: ev, err: err}:
			case <-u.stop:
				return
			}
			if err != nil {
				return
			}
			select {
			case <-u.next:
			case <-u.stop:
				return
			}
		}
	}()
	return u
}

// close stops the reader and releases the upstream response: closing its
// body stream cancels the upstream and interrupts a read in flight.
func (u *upstreamReader) close(resp *fasthttp.Response) {
	close(u.stop)
	_ = resp.CloseBodyStream()
	<-u.done
	fasthttp.ReleaseResponse(resp)
}

// pump copies the upstream's server-sent events to the client, flushing each
// one as it arrives. An upstream reader goroutine hands events over one at a
// time, so that the writer can keep the client connection alive with SSE
// comments while the upstream is silent (which is how a client that went
// away is noticed), and end the stream when the upstream stays silent past
// the idle timeout. A stream that breaks after content went out ends with an
// in-band error event, or, with limits.stream_resume, is continued on the
// next target. Whatever ends the stream, the upstream request is cancelled
// and the exchange finished.
func (x *exchange) pump(w *bufio.Writer) {
	s := x.s
	defer s.streams.Done()
	defer s.finish(x)

	rd := x.reader
	if rd == nil {
		rd = x.upstreamEvents(x.upResp, x.served)
	}
	if len(x.held) > 0 {
		// What hold read before the first content event goes out first.
		x.events++
		x.bytesOut += len(x.held)
		x.ttft = time.Since(x.start)
		if x.resume != nil || x.cache.collect || x.shadow != nil {
			x.replayHeld()
		}
		if _, err := w.Write(x.held); err != nil || w.Flush() != nil {
			x.clientGone()
			_ = x.upResp.CloseBodyStream()
			fasthttp.ReleaseResponse(x.upResp)
			x.upResp = nil
			return
		}
	}
	u := startReader(rd)
	defer func() {
		if u != nil {
			u.close(x.upResp)
			x.upResp = nil
		}
	}()

	keepalive := s.limits.KeepAliveInterval
	idle := s.limits.StreamIdleTimeout
	timer := time.NewTimer(keepalive)
	defer timer.Stop()
	lastEvent := time.Now()
	var scratch [128]byte
	errorRelayed := false
	// broken ends the stream after a failure, or resumes it; it reports
	// whether pumping goes on.
	broken := func(reason, code, msg string) bool {
		if x.canResume() {
			s.metrics.StreamInterrupted(reason)
			u.close(x.upResp)
			u, x.upResp = nil, nil
			rd, err := x.resumeStream(reason)
			if err == nil {
				u = startReader(rd)
				lastEvent = time.Now()
				timer.Reset(keepalive)
				return true
			}
			s.log.Warn("stream could not be resumed", zap.ByteString("request_id", x.reqID), zap.String("cause", reason),
				zap.String("error", err.Error()))
		}
		x.interrupt(w, reason, code, msg)
		return false
	}
	for {
		select {
		case r := <-u.results:
			if r.err != nil {
				if errors.Is(r.err, io.EOF) && (x.sawDone || x.resume == nil || errorRelayed) {
					return
				}
				if errors.Is(r.err, io.EOF) {
					// Ended without [DONE]: the answer may be incomplete.
					if x.resume.blocked || !broken(cutUpstreamError, "upstream_stream_error", "veil: the provider's stream ended without [DONE]") {
						return
					}
					continue
				}
				if !broken(cutUpstreamError, "upstream_stream_error", "veil: the provider's stream broke off: "+r.err.Error()) {
					return
				}
				continue
			}
			lastEvent = time.Now()
			ev := r.ev
			if x.cache.collect {
				x.collectEvent(ev)
			}
			if x.resume != nil {
				if isErrorEvent(ev) && x.canResume() {
					if !broken(cutUpstreamError, "upstream_stream_error", "veil: the provider's stream failed") {
						return
					}
					continue
				}
				if x.resume.resumes > 0 {
					ev = x.rewriteContinuation(ev)
				}
				errorRelayed = errorRelayed || isErrorEvent(ev)
			}
			if out := x.relay(ev); out != nil {
				if x.resume != nil {
					x.resume.observe(ev.Data)
				}
				if x.cache.collect && x.sawDone {
					s.storeStream(x)
				}
				if x.shadow != nil {
					x.shadow.shadowText(ev.Data, true)
				}
				x.events++
				x.bytesOut += len(out)
				if x.ttft == 0 {
					x.ttft = time.Since(x.start)
				}
				if _, err := w.Write(out); err != nil || w.Flush() != nil {
					x.clientGone()
					return
				}
			}
			u.next <- struct{}{}
			timer.Reset(keepalive)
		case <-s.stop:
			// The drain timeout passed: the client learns in band that
			// the answer is incomplete, rather than from a cut.
			x.interrupt(w, cutShutdown, "server_shutting_down",
				"veil is shutting down and ended the stream before the provider finished; the answer is incomplete")
			return
		case <-timer.C:
			silence := time.Since(lastEvent)
			if idle > 0 && silence >= idle {
				if !broken(cutIdleTimeout, "upstream_idle_timeout",
					"veil: the provider sent nothing for "+idle.String()+"; the stream was ended") {
					return
				}
				continue
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

// isErrorEvent reports whether an event is an in-band error
// (data: {"error":{...}}).
func isErrorEvent(ev sse.Event) bool {
	if len(ev.Data) == 0 || sse.IsDone(ev.Data) {
		return false
	}
	v, ok, _ := jsonfield.Get(ev.Data, "error")
	return ok && len(v) > 0 && v[0] == '{'
}

// replayHeld shows the events hold sent first to the resume state and
// the cache, as later events are shown as they pass.
func (x *exchange) replayHeld() {
	rd := sse.NewReader(bytes.NewReader(x.held), len(x.held)+1)
	for {
		ev, err := rd.Next()
		if err != nil {
			return
		}
		if x.resume != nil {
			x.resume.observe(ev.Data)
		}
		if x.cache.collect {
			x.collectEvent(ev)
		}
		if x.shadow != nil {
			x.shadow.shadowText(ev.Data, true)
		}
	}
}

// relay reads what veil needs from one upstream event (usage, model,
// [DONE]) and returns the bytes to send to the client: the event as it
// came, the event without the "usage":null veil caused by asking for usage,
// or nil to send nothing (comments, and the usage-only chunk the client did
// not ask for).
func (x *exchange) relay(ev sse.Event) []byte {
	if ev.Comment || len(ev.Data) == 0 {
		if ev.Comment {
			return nil
		}
		return ev.Raw
	}
	if sse.IsDone(ev.Data) {
		x.sawDone = true
		return ev.Raw
	}
	var t usage.Tokens
	hasUsage, usageOnly := usage.FromChunk(ev.Data, &t)
	if len(t.Model) > 0 {
		x.respModel = append(x.respModel[:0], t.Model...)
		x.tokens.Model = x.respModel
	}
	if hasUsage {
		model := x.tokens.Model
		x.tokens = t
		x.tokens.Model = model
	}
	if !x.injectedUsage {
		return ev.Raw
	}
	if usageOnly {
		return nil
	}
	if !bytes.Contains(ev.Data, []byte(`"usage"`)) {
		return ev.Raw
	}
	data, removed, err := jsonfield.RemoveMember(x.scratch[:0], ev.Data, "usage")
	x.scratch = data[:0]
	if err != nil || !removed {
		return ev.Raw
	}
	// Re-frame the event: its name and id lines, if any, then the data.
	out := x.frame[:0]
	if len(ev.Name) > 0 {
		out = append(append(append(out, "event: "...), ev.Name...), '\n')
	}
	if len(ev.ID) > 0 {
		out = append(append(append(out, "id: "...), ev.ID...), '\n')
	}
	out = sse.AppendEvent(out, data)
	x.frame = out[:0]
	return out
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
