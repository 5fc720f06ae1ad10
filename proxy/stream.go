package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/usage"
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
	rd := x.reader
	if rd == nil {
		rd = sse.NewReader(x.upResp.BodyStream(), s.limits.MaxEventBytes)
	}
	if len(x.held) > 0 {
		// What hold read before the first content event goes out first.
		x.events++
		x.bytesOut += len(x.held)
		x.ttft = time.Since(x.start)
		if _, err := w.Write(x.held); err != nil || w.Flush() != nil {
			x.clientGone()
			_ = x.upResp.CloseBodyStream()
			fasthttp.ReleaseResponse(x.upResp)
			x.upResp = nil
			return
		}
	}
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
			if out := x.relay(r.ev); out != nil {
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
