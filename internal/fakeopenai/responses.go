package fakeopenai

import (
	"encoding/json"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// respObject is a Responses API response object.
type respObject struct {
	ID                 string             `json:"id"`
	Object             string             `json:"object"`
	CreatedAt          int64              `json:"created_at"`
	Status             string             `json:"status"`
	Background         bool               `json:"background"`
	Error              any                `json:"error"`
	IncompleteDetails  *incompleteDetails `json:"incomplete_details"`
	Instructions       *string            `json:"instructions"`
	MaxOutputTokens    *int64             `json:"max_output_tokens"`
	MaxToolCalls       any                `json:"max_tool_calls"`
	Model              string             `json:"model"`
	Output             []outputItem       `json:"output"`
	ParallelToolCalls  bool               `json:"parallel_tool_calls"`
	PreviousResponseID *string            `json:"previous_response_id"`
	PromptCacheKey     any                `json:"prompt_cache_key"`
	Reasoning          reasoningConfig    `json:"reasoning"`
	SafetyIdentifier   any                `json:"safety_identifier"`
	ServiceTier        string             `json:"service_tier"`
	Store              bool               `json:"store"`
	Temperature        float64            `json:"temperature"`
	Text               json.RawMessage    `json:"text"`
	ToolChoice         json.RawMessage    `json:"tool_choice"`
	Tools              json.RawMessage    `json:"tools"`
	TopLogprobs        int                `json:"top_logprobs"`
	TopP               float64            `json:"top_p"`
	Truncation         string             `json:"truncation"`
	Usage              *respUsage         `json:"usage"`
	User               any                `json:"user"`
	Metadata           json.RawMessage    `json:"metadata"`
}

// incompleteDetails explains an incomplete response.
type incompleteDetails struct {
	Reason string `json:"reason"`
}

// reasoningConfig is the (empty) reasoning configuration of a response.
type reasoningConfig struct {
	Effort  any `json:"effort"`
	Summary any `json:"summary"`
}

// outputItem is an assistant message in a response's output.
type outputItem struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Status  string       `json:"status"`
	Content []outputText `json:"content"`
	Role    string       `json:"role"`
}

// outputText is an output_text content part.
type outputText struct {
	Type        string `json:"type"`
	Annotations []any  `json:"annotations"`
	Logprobs    []any  `json:"logprobs"`
	Text        string `json:"text"`
}

// respUsage is the usage of a response.
type respUsage struct {
	InputTokens         int                 `json:"input_tokens"`
	InputTokensDetails  inputTokensDetails  `json:"input_tokens_details"`
	OutputTokens        int                 `json:"output_tokens"`
	OutputTokensDetails outputTokensDetails `json:"output_tokens_details"`
	TotalTokens         int                 `json:"total_tokens"`
}

// inputTokensDetails breaks input tokens down.
type inputTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// outputTokensDetails breaks output tokens down.
type outputTokensDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

// respEvent is one Responses API stream event.
type respEvent struct {
	Type           string          `json:"type"`
	SequenceNumber int             `json:"sequence_number"`
	Response       *respObject     `json:"response,omitempty"`
	OutputIndex    *int            `json:"output_index,omitempty"`
	ItemID         string          `json:"item_id,omitempty"`
	ContentIndex   *int            `json:"content_index,omitempty"`
	Item           *outputItem     `json:"item,omitempty"`
	Part           *outputText     `json:"part,omitempty"`
	Text           *string         `json:"text,omitempty"`
	Logprobs       json.RawMessage `json:"logprobs,omitempty"`
}

// respGen is a generated Responses API answer.
type respGen struct {
	obj    respObject // the final object
	msgID  string
	answer answer
	input  int
}

// responses serves POST /v1/responses. It reports whether the response was
// handed off to a stream writer.
func (s *Server) responses(ctx *fasthttp.RequestCtx, c *call) bool {
	root, e := parseRoot(requestBody(ctx))
	if e != nil {
		s.writeError(ctx, c, *e)
		return false
	}
	g, stream, e := s.parseResponse(root)
	if e != nil {
		s.writeError(ctx, c, *e)
		return false
	}
	if !stream {
		body, err := json.Marshal(&g.obj)
		if err != nil {
			s.writeError(ctx, c, apiError{status: fasthttp.StatusInternalServerError, message: err.Error(), typ: "server_error"})
			return false
		}
		s.writeJSON(ctx, c, body)
		return false
	}
	return s.startStream(ctx, c, sseContentType, g.run, appendResponseError)
}

// parseResponse validates a Responses API request and generates its answer.
func (s *Server) parseResponse(root gjson.Result) (*respGen, bool, *apiError) {
	model, e := requireModel(root, "")
	if e != nil {
		return nil, false, e
	}
	ts := newTextStats(model)
	var instructions *string
	if in := root.Get("instructions"); in.Type == gjson.String {
		instructions = &in.Str
		ts.add(in.Str)
	}
	input := root.Get("input")
	switch {
	case input.Type == gjson.String:
		ts.add(input.Str)
	case input.IsArray():
		input.ForEach(func(_, item gjson.Result) bool {
			if item.Type == gjson.String {
				ts.add(item.Str)
				return true
			}
			ts.hash = fnvString(ts.hash, item.Get("role").Str)
			ts.addContent(item.Get("content"))
			return true
		})
	case present(input):
		return nil, false, errInvalidType("input", "a string or an array", input)
	}
	limit, e := optInt(root, "max_output_tokens", 0, 16, 0)
	if e != nil {
		return nil, false, e
	}
	stream := root.Get("stream").Bool()
	if e := s.checkModel(model, false); e != nil {
		return nil, false, e
	}

	g := &respGen{
		msgID:  s.token("msg_", 48, hexDigits),
		answer: generate(choiceSeed(ts.hash, 0), s.opts.ReplyWords, int(limit), ts.enc),
		input:  max(ts.tokens, 1),
	}
	o := &g.obj
	o.ID = s.token("resp_", 48, hexDigits)
	o.Object = "response"
	o.CreatedAt = time.Now().Unix()
	o.Status = "completed"
	o.Instructions = instructions
	if limit > 0 {
		o.MaxOutputTokens = &limit
	}
	o.Model = model
	o.ParallelToolCalls = true
	if prev := root.Get("previous_response_id"); prev.Type == gjson.String {
		o.PreviousResponseID = &prev.Str
	}
	o.ServiceTier = "default"
	o.Store = true
	if st := root.Get("store"); st.IsBool() {
		o.Store = st.Bool()
	}
	o.Temperature = floatOr(root.Get("temperature"), 1)
	o.TopP = floatOr(root.Get("top_p"), 1)
	o.Text = rawOr(root.Get("text"), gjson.JSON, `{"format":{"type":"text"},"verbosity":"medium"}`)
	o.ToolChoice = rawOr(root.Get("tool_choice"), gjson.String, `"auto"`)
	o.Tools = rawOr(root.Get("tools"), gjson.JSON, `[]`)
	o.Truncation = "disabled"
	o.Metadata = rawOr(root.Get("metadata"), gjson.JSON, `{}`)
	item := g.item("completed", joinWords(g.answer.words))
	if g.answer.finish == "length" {
		o.Status = "incomplete"
		o.IncompleteDetails = &incompleteDetails{Reason: "max_output_tokens"}
		item.Status = "incomplete"
	}
	o.Output = []outputItem{item}
	output := ts.enc.Count(joinWords(g.answer.words))
	o.Usage = &respUsage{InputTokens: g.input, OutputTokens: output, TotalTokens: g.input + output}
	return g, stream, nil
}

// floatOr returns r as a number, or def when r is not a number.
func floatOr(r gjson.Result, def float64) float64 {
	if r.Type == gjson.Number {
		return r.Float()
	}
	return def
}

// rawOr returns the raw JSON of r when it has type t, else def.
func rawOr(r gjson.Result, t gjson.Type, def string) json.RawMessage {
	if r.Type == t && (t != gjson.JSON || r.IsObject() || r.IsArray()) {
		return json.RawMessage(r.Raw)
	}
	return json.RawMessage(def)
}

// part returns an output_text part holding text.
func (g *respGen) part(text string) outputText {
	return outputText{Type: "output_text", Annotations: []any{}, Logprobs: []any{}, Text: text}
}

// item returns the message output item with the given status and text.
func (g *respGen) item(status, text string) outputItem {
	return outputItem{ID: g.msgID, Type: "message", Status: status, Content: []outputText{g.part(text)}, Role: "assistant"}
}

// appendResponseError appends the error event of Responses API streams. It
// carries both the documented flat fields and the nested error object the
// service sends.
func appendResponseError(b []byte, seq int, f Fault) []byte {
	e := streamError(f)
	b = append(b, "event: error\ndata: {\"type\":\"error\",\"sequence_number\":"...)
	b = appendInt(b, int64(seq))
	b = append(b, `,"code":`...)
	b = appendJSONStringOrNull(b, e.code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.message)
	b = append(b, `,"param":`...)
	b = appendJSONStringOrNull(b, e.param)
	b = append(b, `,"error":`...)
	b = e.appendObject(b)
	return append(b, "}\n\n"...)
}

// appendEvent appends ev as an SSE event with an event: line.
func appendEvent(b []byte, ev *respEvent) []byte {
	data, err := json.Marshal(ev)
	if err != nil {
		// respEvent only holds marshalable values.
		panic("fakeopenai: marshal event: " + err.Error())
	}
	b = append(b, "event: "...)
	b = append(b, ev.Type...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// event appends ev, numbering it, and sends it; it reports whether the
// stream may go on.
func (g *respGen) event(e *emitter, ev *respEvent) bool {
	ev.SequenceNumber = e.seq
	e.seq++
	e.buf = appendEvent(e.buf, ev)
	return e.flush()
}

// run streams g through e.
func (g *respGen) run(e *emitter) {
	zero := 0
	emptyLogprobs := json.RawMessage(`[]`)

	pending := g.obj
	pending.Status = "in_progress"
	pending.IncompleteDetails = nil
	pending.Output = []outputItem{}
	pending.Usage = nil
	if !g.event(e, &respEvent{Type: "response.created", Response: &pending}) ||
		!g.event(e, &respEvent{Type: "response.in_progress", Response: &pending}) {
		return
	}
	started := g.item("in_progress", "")
	started.Content = []outputText{}
	if !g.event(e, &respEvent{Type: "response.output_item.added", OutputIndex: &zero, Item: &started}) {
		return
	}
	empty := g.part("")
	if !g.event(e, &respEvent{Type: "response.content_part.added", ItemID: g.msgID, OutputIndex: &zero, ContentIndex: &zero, Part: &empty}) {
		return
	}
	if !e.s.sleep(e.s.opts.TTFT) {
		return
	}
	words := g.answer.words
	cw := e.s.chunkWords
	for lo := 0; lo < len(words); lo += cw {
		if !e.beforeContent() {
			return
		}
		e.buf = append(e.buf, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":"...)
		e.buf = appendInt(e.buf, int64(e.seq))
		e.buf = append(e.buf, `,"item_id":"`...)
		e.buf = append(e.buf, g.msgID...)
		e.buf = append(e.buf, `","output_index":0,"content_index":0,"delta":`...)
		e.buf = appendJSONWords(e.buf, words[lo:min(lo+cw, len(words))], lo > 0)
		e.buf = append(e.buf, ",\"logprobs\":[]}\n\n"...)
		e.seq++
		if !e.flush() {
			return
		}
		e.sent++
	}
	if !e.afterContent() {
		return
	}
	final := g.obj.Output[0]
	text := final.Content[0].Text
	if !g.event(e, &respEvent{Type: "response.output_text.done", ItemID: g.msgID, OutputIndex: &zero, ContentIndex: &zero, Text: &text, Logprobs: emptyLogprobs}) {
		return
	}
	donePart := final.Content[0]
	if !g.event(e, &respEvent{Type: "response.content_part.done", ItemID: g.msgID, OutputIndex: &zero, ContentIndex: &zero, Part: &donePart}) {
		return
	}
	if !g.event(e, &respEvent{Type: "response.output_item.done", OutputIndex: &zero, Item: &final}) {
		return
	}
	last := "response.completed"
	if g.obj.Status == "incomplete" {
		last = "response.incomplete"
	}
	g.event(e, &respEvent{Type: last, Response: &g.obj})
}
