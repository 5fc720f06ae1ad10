package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/usage"
)

// resumeInstruction asks the next provider to go on from the text the
// client already has.
const resumeInstruction = "Your previous answer was cut off. Continue it exactly where it stopped, " +
	"without repeating anything already written and without any preamble."

// maxResumes bounds how often one stream is resumed.
const maxResumes = 2

// resumeState is what a chat completion stream needs to be continued on
// another target after it broke: a copy of the client's request (the
// request context is not to be touched once the stream writer runs), the
// answer text sent so far, and the identity of the stream the client saw.
// It exists only when limits.stream_resume is on.
type resumeState struct {
	req *fasthttp.Request
	// text is the assistant text the client has received.
	text []byte
	// id, created, model and fingerprint are the raw JSON values of the
	// first chunk the client saw; continuation chunks carry them instead of
	// their own.
	id, created, model, fingerprint []byte
	// blocked is set when the stream cannot be resumed faithfully: tool
	// calls or several choices were streamed, or the answer had finished.
	blocked bool
	// resumes counts the continuations made.
	resumes int
	// parts are the attempts that streamed part of the answer before it
	// broke.
	parts []resumePart
	// skipping drops the continuation's opening events (role chunk) until
	// its first content.
	skipping bool
	// errorRelayed is set once an in-band error event went to the client.
	errorRelayed bool
	// deadline is the request's.
	deadline time.Time
}

var _ tap = (*resumeState)(nil)

// errErrorEvent says that the upstream sent an in-band error event where
// the stream could still be resumed.
var errErrorEvent = errors.New("the provider's stream failed")

// event is the resume's tap: it turns a continuation's events into the
// stream the client has been reading, keeps the text sent, and breaks
// the stream at an in-band error while it can still be resumed.
func (rs *resumeState) event(ev sse.Event) (sse.Event, error) {
	if isErrorEvent(ev) && rs.resumable() {
		return ev, errErrorEvent
	}
	if rs.resumes > 0 {
		ev = rs.rewriteContinuation(ev)
	}
	rs.errorRelayed = rs.errorRelayed || isErrorEvent(ev)
	if ev.Raw != nil {
		rs.observe(ev.Data)
	}
	return ev, nil
}

// incomplete reports whether a stream that ended without error lacks its
// end: no [DONE] (done), no error event relayed, and nothing that stops
// it being resumed.
func (rs *resumeState) incomplete(done bool) bool {
	return !done && !rs.errorRelayed && !rs.blocked
}

// resumePart is the share of a resumed answer that one attempt streamed.
type resumePart struct {
	log                        int // index in the exchange's attempt log
	prompt, completion, cached int64
	estimated                  bool
	// from and to delimit the answer text the attempt produced.
	from, to int
}

// startResume prepares a stream for resumption when config allows it and
// the stream is a single-choice chat completion.
func (x *exchange) startResume(ctx *fasthttp.RequestCtx) bool {
	if !x.s.limits.StreamResume || x.ep != epChat || x.fields.N > 1 {
		return false
	}
	rs := &resumeState{req: fasthttp.AcquireRequest(), deadline: x.deadline}
	ctx.Request.Header.CopyTo(&rs.req.Header)
	rs.req.SetBody(x.body)
	x.resume = rs
	return true
}

// releaseResume returns what a resume state holds.
func (x *exchange) releaseResume() {
	if x.resume != nil {
		fasthttp.ReleaseRequest(x.resume.req)
		x.resume = nil
	}
}

// observe keeps what a relayed chat chunk adds to the answer.
func (rs *resumeState) observe(data []byte) {
	if rs.blocked || len(data) == 0 || data[0] != '{' {
		return
	}
	if rs.id == nil {
		r := gjson.GetManyBytes(data, "id", "created", "model", "system_fingerprint")
		rs.id, rs.created, rs.model = []byte(r[0].Raw), []byte(r[1].Raw), []byte(r[2].Raw)
		if r[3].Exists() {
			rs.fingerprint = []byte(r[3].Raw)
		}
	}
	choices := gjson.GetBytes(data, "choices")
	if !choices.IsArray() {
		return
	}
	choices.ForEach(func(_, c gjson.Result) bool {
		if c.Get("index").Int() != 0 || c.Get("delta.tool_calls").Exists() || c.Get("delta.function_call").Exists() {
			rs.blocked = true
			return false
		}
		if f := c.Get("finish_reason"); f.Exists() && f.Type != gjson.Null {
			rs.blocked = true // the answer is complete; nothing to continue
			return false
		}
		rs.text = append(rs.text, c.Get("delta.content").String()...)
		return true
	})
}

// canResume reports whether the broken stream may be continued.
func (x *exchange) canResume() bool {
	return x.resume != nil && x.resume.resumable()
}

// resumable reports whether the stream may be continued: it streamed text
// of a single choice, did not finish, was resumed less than maxResumes
// times and has time left.
func (rs *resumeState) resumable() bool {
	return !rs.blocked && rs.id != nil && len(rs.text) > 0 && rs.resumes < maxResumes && time.Now().Before(rs.deadline)
}

// resumeBody builds the continuation request: the client's body with the
// text sent so far as the assistant's message and an instruction to go on,
// for model, streamed with usage.
func resumeBody(body, model, text []byte) ([]byte, error) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, err
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(req["messages"], &msgs); err != nil {
		return nil, errors.New("messages is not an array")
	}
	assistant, err := json.Marshal(map[string]string{"role": "assistant", "content": string(text)})
	if err != nil {
		return nil, err
	}
	user, err := json.Marshal(map[string]string{"role": "user", "content": resumeInstruction})
	if err != nil {
		return nil, err
	}
	msgs = append(msgs, assistant, user)
	if req["messages"], err = json.Marshal(msgs); err != nil {
		return nil, err
	}
	if req["model"], err = json.Marshal(string(model)); err != nil {
		return nil, err
	}
	req["stream"] = json.RawMessage("true")
	req["stream_options"] = json.RawMessage(`{"include_usage":true}`)
	delete(req, "n")
	return json.Marshal(req)
}

// resumeTarget picks where a broken stream continues: the next planned
// target after the one that served, with the same key source (a supplier
// paying with its own key is not moved to platform keys here, nor the
// other way round) and an available breaker; else the serving target
// itself.
func (x *exchange) resumeTarget() *policy.Attempt {
	s := x.s
	served := -1
	for i := range x.plan {
		if &x.plan[i] == x.served {
			served = i
		}
	}
	now := time.Now()
	for i := served + 1; i < len(x.plan); i++ {
		a := &x.plan[i]
		if a.Source != x.served.Source || !s.health.Allow(a.Provider.Name(), now) {
			continue
		}
		if a.Source == billing.ClientKey && !s.keyHealth.Allow(a.Provider.Name(), x.supplier, now) {
			continue
		}
		return a
	}
	return x.served
}

// resumeStream opens the continuation of a broken stream. On success the
// exchange's upstream response is the continuation's, and the reader to
// pump from is returned; the caller has closed and released the broken
// one.
func (x *exchange) resumeStream(cause string) (sse.Source, error) {
	s, rs := x.s, x.resume
	rs.resumes++
	// The broken attempt's tokens: what it reported, else estimated once
	// the continuation's usage is known (see mergeResumed).
	from := 0
	if n := len(rs.parts); n > 0 {
		from = rs.parts[n-1].to
	}
	tokens := &x.usage.tokens
	part := resumePart{log: x.attemptCount - 1, prompt: tokens.Prompt, completion: tokens.Completion,
		cached: tokens.Cached, from: from, to: len(rs.text)}
	part.estimated = part.completion == 0
	rs.parts = append(rs.parts, part)
	*tokens = usage.Tokens{Model: tokens.Model}
	x.usage.from = len(x.usage.delivered)

	a := x.resumeTarget()
	key, e := s.keyFor(x, a)
	if e != nil {
		return nil, errors.New(e.Message)
	}
	body, err := resumeBody(rs.req.Body(), a.Model, rs.text)
	if err != nil {
		return nil, err
	}
	x.attempts++
	resp, e := s.roundTrip(x.stream.ctx, x, a, key, &rs.req.Header, body, nil)
	if e != nil {
		return nil, errors.New(e.Message)
	}
	status := resp.StatusCode()
	if status/100 != 2 || !isEventStream(resp) {
		_ = resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
		return nil, errors.New("the provider answered " + smallInt(status))
	}
	s.log.Info("stream resumed on the next target", zap.ByteString("request_id", x.reqID),
		zap.String("from", x.served.Provider.Name()), zap.String("to", a.Provider.Name()),
		zap.String("cause", cause), zap.Int("text_bytes", len(rs.text)), zap.Object("key", key))
	x.served, x.key = a, key
	x.stream.resp = resp
	x.reason = "stream_resumed"
	rs.skipping = true
	return x.upstreamEvents(resp, a), nil
}

// rewriteContinuation turns one event of a continuation stream into what
// the client expects next: nil for events before its first content (the
// role chunk), otherwise the chunk with the id, created, model and
// system_fingerprint of the stream the client has been reading.
func (rs *resumeState) rewriteContinuation(ev sse.Event) sse.Event {
	if len(ev.Data) == 0 || sse.IsDone(ev.Data) || ev.Data[0] != '{' {
		return ev
	}
	if rs.skipping {
		if !isContent(ev) {
			return sse.Event{Comment: true} // no Raw bytes: nothing is sent
		}
		rs.skipping = false
	}
	data := ev.Data
	var err error
	for _, f := range [...]struct {
		name string
		raw  []byte
	}{{"id", rs.id}, {"created", rs.created}, {"model", rs.model}, {"system_fingerprint", rs.fingerprint}} {
		if len(f.raw) == 0 {
			continue
		}
		if _, ok, _ := jsonfield.Get(data, f.name); !ok {
			continue
		}
		var out []byte
		if out, err = jsonfield.SetRaw(nil, data, f.name, f.raw); err != nil {
			return ev
		}
		data = out
	}
	if bytes.Equal(data, ev.Data) {
		return ev
	}
	return sse.Event{Data: data, Raw: sse.AppendEvent(nil, data)}
}

// mergeResumed adds the tokens of the attempts that streamed the first
// parts of a resumed answer to those of the attempt that finished it, and
// keeps each attempt's share in the attempt log. What a broken attempt did
// not report is estimated in the finishing attempt's own tokenization:
// its completion from the bytes of text it produced at the finishing
// attempt's tokens per byte of answer, its prompt as the share of the
// finishing attempt's prompt that the request had before veil added the
// text sent and the instruction.
func (x *exchange) mergeResumed() {
	rs := x.resume
	if rs == nil || len(rs.parts) == 0 {
		return
	}
	final := x.usage.tokens
	last := rs.parts[len(rs.parts)-1]
	perByte := 0.25 // about four bytes a token, when the continuation says nothing
	if n := len(rs.text) - last.to; n > 0 && final.Completion > 0 {
		perByte = float64(final.Completion) / float64(n)
	}
	request := len(rs.req.Body())
	grown := float64(request + last.to + len(resumeInstruction))
	for i, p := range rs.parts {
		if p.estimated {
			p.completion = int64(math.Ceil(float64(p.to-p.from) * perByte))
			if p.prompt == 0 && final.Prompt > 0 {
				before := request
				if i > 0 {
					before += p.from + len(resumeInstruction)
				}
				p.prompt = int64(math.Round(float64(final.Prompt) * float64(before) / grown))
			}
		}
		x.usage.tokens.Prompt += p.prompt
		x.usage.tokens.Completion += p.completion
		x.usage.tokens.Cached += p.cached
		x.logTokens(p.log, p.prompt, p.completion, p.estimated)
	}
	x.logTokens(x.attemptCount-1, final.Prompt, final.Completion, x.usage.estimated)
	x.usage.tokens.Total = x.usage.tokens.Prompt + x.usage.tokens.Completion
}

// logTokens keeps an attempt's own tokens in the attempt log.
func (x *exchange) logTokens(i int, prompt, completion int64, estimated bool) {
	if i >= 0 && i < len(x.attemptLog) && i < x.attemptCount {
		a := &x.attemptLog[i]
		a.PromptTokens, a.CompletionTokens, a.TokensEstimated = prompt, completion, estimated
	}
}
