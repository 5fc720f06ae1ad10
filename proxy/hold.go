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
// time to first token), the caller can move to the next target; when the
// client leaves meanwhile (gone, asked every clientCheckInterval; nil: not
// asked), the upstream is cancelled at once. It returns the reader,
// positioned after the held events; the events themselves are kept as
// they came, for the stream writer to pass through its taps and send
// first.
func (x *exchange) hold(resp *fasthttp.Response, a *policy.Attempt, gone func() bool) (src sse.Source, err error) {
	rd := x.upstreamEvents(resp, a)
	ttft := x.s.limits.TTFTTimeout
	w := watchHold(resp, ttft, gone)
	held := x.stream.held[:0]
	defer func() {
		if err != nil {
			held = held[:0] // nothing of a failed stream is sent
		}
		x.stream.held = held
	}()
	for {
		ev, rerr := rd.Next()
		switch {
		case rerr != nil:
			if cut := w.stop(); cut != nil {
				return nil, cut
			}
			if errors.Is(rerr, io.EOF) {
				return nil, errNoContent
			}
			return nil, rerr
		case isErrorEvent(ev):
			_ = w.stop()
			return nil, errors.New("an error event before any content")
		}
		held = append(held, ev.Raw...)
		if isContent(ev) {
			if cut := w.stop(); cut != nil {
				return nil, cut // the cut came with the first content
			}
			return rd, nil
		}
	}
}

// errClientLeft says that the client left while its stream was held.
var errClientLeft = errors.New("the client closed its connection")

// holdWatch cuts a held stream (closing its body, which ends the read in
// flight) when the time to first token passes or the client leaves.
type holdWatch struct {
	quit, done chan struct{}
	cut        error
}

func watchHold(resp *fasthttp.Response, ttft time.Duration, gone func() bool) *holdWatch {
	w := &holdWatch{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTimer(ttft)
		defer t.Stop()
		var check <-chan time.Time
		if gone != nil {
			tick := time.NewTicker(clientCheckInterval)
			defer tick.Stop()
			check = tick.C
		}
		for {
			select {
			case <-w.quit:
				return
			case <-t.C:
				w.cut = errors.New("no first token within " + ttft.String())
			case <-check:
				if !gone() {
					continue
				}
				w.cut = errClientLeft
			}
			_ = resp.CloseBodyStream() // interrupts the read in flight
			return
		}
	}()
	return w
}

// stop ends the watch and returns why it cut the stream, nil when it did
// not; once it returns, the watch no longer touches the response.
func (w *holdWatch) stop() error {
	close(w.quit)
	<-w.done
	return w.cut
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
