package proxy

import (
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/policy"
)

// errNoContent says why a stream was given up before its first content
// event, so that the next planned target can answer instead.
var errNoContent = errors.New("no content before the stream ended")

// hold reads an upstream stream until its first content event, keeping
// what came before (the role chunk, Responses preamble events) to send
// with it. Nothing reaches the client yet, so when the stream fails first
// (an error event, an empty 200, a break, or no first token within the
// time to first token), the caller can move to the next target. It returns
// the reader, positioned after the held events; the events themselves are
// kept as they came, for the stream writer to pass through its taps and
// send first.
func (x *exchange) hold(resp *fasthttp.Response, a *policy.Attempt) (src sse.Source, err error) {
	s := x.s
	rd := x.upstreamEvents(resp, a)
	ttft := s.limits.TTFTTimeout
	closed := make(chan struct{})
	timer := time.AfterFunc(ttft, func() {
		_ = resp.CloseBodyStream() // interrupts the read in flight
		close(closed)
	})
	defer timer.Stop()
	held := x.stream.held[:0]
	defer func() {
		if err != nil {
			held = held[:0] // nothing of a failed stream is sent
		}
		x.stream.held = held
	}()
	for {
		ev, rerr := rd.Next()
		if rerr != nil {
			if !timer.Stop() {
				<-closed // the timer's close is done before the caller releases resp
				return nil, errors.New("no first token within " + ttft.String())
			}
			if errors.Is(rerr, io.EOF) {
				return nil, errNoContent
			}
			return nil, rerr
		}
		if isErrorEvent(ev) {
			return nil, errors.New("an error event before any content")
		}
		held = append(held, ev.Raw...)
		if isContent(ev) {
			return rd, nil
		}
	}
}

// isContent reports whether an event carries part of the answer: chat or
// completion text, a tool call, a refusal, a Responses text delta, or the
// end of a stream that had nothing else to say.
func isContent(ev sse.Event) bool {
	d := ev.Data
	if len(d) == 0 {
		return false
	}
	if sse.IsDone(d) {
		return true
	}
	for _, marker := range [...][]byte{[]byte(`"content":"`), []byte(`"text":"`), []byte(`"tool_calls"`), []byte(`"refusal":"`),
		[]byte(`"finish_reason":"`), []byte(`"delta":"`), []byte(`"response.completed"`)} {
		if i := bytes.Index(d, marker); i >= 0 {
			rest := d[i+len(marker):]
			if marker[len(marker)-1] == '"' && len(rest) > 0 && rest[0] == '"' {
				continue // an empty string is not content
			}
			return true
		}
	}
	return false
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
