package proxy

import (
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/valyala/fasthttp"

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
// the reader, positioned after the held events, and the bytes to send
// first.
func (x *exchange) hold(resp *fasthttp.Response, a *policy.Attempt) (sse.Source, error) {
	s := x.s
	rd := x.upstreamEvents(resp, a)
	ttft := s.limits.TTFTTimeout
	closed := make(chan struct{})
	timer := time.AfterFunc(ttft, func() {
		_ = resp.CloseBodyStream() // interrupts the read in flight
		close(closed)
	})
	defer timer.Stop()
	x.held = x.held[:0]
	for {
		ev, err := rd.Next()
		if err != nil {
			if !timer.Stop() {
				<-closed // the timer's close is done before the caller releases resp
				return nil, errors.New("no first token within " + ttft.String())
			}
			if errors.Is(err, io.EOF) {
				return nil, errNoContent
			}
			return nil, err
		}
		if isErrorEvent(ev) {
			return nil, errors.New("an error event before any content")
		}
		out := x.relay(ev)
		x.held = append(x.held, out...)
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

// upstreamEvents reads the server-sent events of a's streamed answer resp, in
// OpenAI's shape whatever the provider's schema.
func (x *exchange) upstreamEvents(resp *fasthttp.Response, a *policy.Attempt) sse.Source {
	return a.Provider.Events(sse.NewReader(resp.BodyStream(), x.s.limits.MaxEventBytes), &x.call)
}
