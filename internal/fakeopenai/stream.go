package fakeopenai

import (
	"bufio"
	"net"
	"strconv"

	"github.com/valyala/fasthttp"
)

// sseContentType is the Content-Type of streamed answers.
const sseContentType = "text/event-stream; charset=utf-8"

// sink delivers SSE events to the client.
type sink interface {
	// send writes p, one or more complete events, and flushes it.
	send(p []byte) error
}

// bufioSink writes to the body stream writer of fasthttp.
type bufioSink struct{ w *bufio.Writer }

// send implements sink.
func (s bufioSink) send(p []byte) error {
	if _, err := s.w.Write(p); err != nil {
		return err
	}
	return s.w.Flush()
}

// chunkedSink writes HTTP/1.1 chunks straight to a hijacked connection.
type chunkedSink struct {
	c   net.Conn
	buf []byte
}

// send implements sink.
func (s *chunkedSink) send(p []byte) error {
	s.buf = strconv.AppendInt(s.buf[:0], int64(len(p)), 16)
	s.buf = append(s.buf, "\r\n"...)
	s.buf = append(s.buf, p...)
	s.buf = append(s.buf, "\r\n"...)
	_, err := s.c.Write(s.buf)
	return err
}

// errorEventFunc appends the error event a KindErrorEvent fault f sends; seq
// is the number of events sent before it.
type errorEventFunc func(b []byte, seq int, f Fault) []byte

// appendDataError appends the error event of chat and legacy completion
// streams: data: {"error":{...}}.
func appendDataError(b []byte, _ int, f Fault) []byte {
	b = append(b, "data: "...)
	b = streamError(f).appendEnvelope(b)
	return append(b, "\n\n"...)
}

// streamError returns the envelope sent by a KindErrorEvent fault.
func streamError(f Fault) apiError {
	return apiError{
		status:  fasthttp.StatusInternalServerError,
		message: "The server had an error while processing your request. Sorry about that!",
		typ:     "server_error",
	}.override(f)
}

// emitter paces the events of one stream and applies its fault.
type emitter struct {
	s        *Server
	out      sink
	buf      []byte
	fault    *Fault
	sent     int // content chunks sent
	seq      int // events sent
	errEvent errorEventFunc
}

// flush sends the buffered events and reports whether the stream may go on.
// A failed write means the client went away: it is counted and the stream
// stops.
func (e *emitter) flush() bool {
	err := e.out.send(e.buf)
	e.buf = e.buf[:0]
	if err != nil {
		e.s.streamCancelled()
		return false
	}
	return true
}

// beforeContent applies the chunk delay and a fault due before the next
// content chunk; it reports whether the stream may go on.
func (e *emitter) beforeContent() bool {
	if e.fault != nil && e.sent >= e.fault.After {
		if !e.strike() {
			return false
		}
	}
	if e.sent > 0 {
		return e.s.sleep(e.s.opts.ChunkDelay)
	}
	return !e.s.isClosed()
}

// afterContent applies a fault that is still due after the last content
// chunk; it reports whether the stream may go on.
func (e *emitter) afterContent() bool {
	if e.fault != nil {
		return e.strike()
	}
	return true
}

// strike applies the stream fault and reports whether the stream may go on.
func (e *emitter) strike() bool {
	f := e.fault
	e.fault = nil
	switch f.Kind {
	case KindStallStream:
		return e.s.stall(f.Stall)
	case KindErrorEvent:
		e.buf = e.errEvent(e.buf, e.seq, *f)
		e.flush()
		return false
	default: // KindCut: the caller drops the connection.
		return false
	}
}

// reply is a generated answer, written whole or streamed.
type reply interface {
	// appendJSON appends the answer as one JSON object.
	appendJSON(b []byte) []byte
	// run streams the answer through e.
	run(e *emitter)
}

// answer writes r, as JSON or, when stream is set, as a stream whose
// KindErrorEvent faults errEvent writes. It reports whether the response
// was handed off to a stream writer.
func (s *Server) answer(ctx *fasthttp.RequestCtx, c *call, r reply, stream bool, errEvent errorEventFunc) bool {
	if !stream {
		bp := getBuf()
		*bp = r.appendJSON(*bp)
		s.writeJSON(ctx, c, *bp)
		putBuf(bp)
		return false
	}
	return s.startStream(ctx, c, sseContentType, r.run, errEvent)
}

// startStream answers with a stream produced by run and reports true: the
// response is handed off to a background writer, which uncounts the call
// from s.inFlight when it ends. Streams with a KindCut fault are written
// straight to the hijacked connection so that it can be dropped mid-body.
func (s *Server) startStream(ctx *fasthttp.RequestCtx, c *call, contentType string, run func(*emitter), errEvent errorEventFunc) bool {
	s.streams.Add(1)
	var fault *Fault
	if c.hasFault && c.fault.Kind.streamOnly() {
		f := c.fault
		fault = &f
	}
	if fault != nil && fault.Kind == KindCut {
		s.hijack(ctx, func(conn net.Conn) {
			bp := getBuf()
			defer putBuf(bp)
			*bp = s.appendRawHead(*bp, c, contentType)
			if _, err := conn.Write(*bp); err != nil {
				s.streamCancelled()
				return
			}
			e := &emitter{s: s, out: &chunkedSink{c: conn}, buf: (*bp)[:0], fault: fault, errEvent: errEvent}
			run(e)
			*bp = e.buf
		})
		return true
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(contentType)
	s.setHeaders(ctx, c, -1)
	ctx.Response.ImmediateHeaderFlush = true
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.inFlight.Add(-1)
		if !s.work.add() {
			return
		}
		defer s.work.done()
		bp := getBuf()
		defer putBuf(bp)
		e := &emitter{s: s, out: bufioSink{w: w}, buf: *bp, fault: fault, errEvent: errEvent}
		run(e)
		*bp = e.buf
	})
	return true
}
