package fakeopenai

import (
	"slices"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/tokencount"
)

// maxChoices bounds n (OpenAI allows up to 128).
const maxChoices = 128

// gen is a generated chat or legacy completion, streamed or not.
type gen struct {
	kind         route // routeChat or routeCompletions
	id           string
	model        string
	fingerprint  string
	created      int64
	choices      []answer
	legacy       bool // calls are rendered as the legacy function_call
	azure        bool // with Azure's content filter results
	includeUsage bool
	promptTokens int
	outputTokens int
	// enc counts the answer's tokens, in the model's encoding.
	enc tokencount.Encoding
}

// finishGen fills the token counts of g.
func (g *gen) finishGen() {
	for _, a := range g.choices {
		g.outputTokens += g.enc.Count(joinWords(a.words))
		for _, c := range a.calls {
			g.outputTokens += len(c.pieces)
		}
	}
	g.promptTokens = max(g.promptTokens, 1)
}

// chatCompletions serves POST /v1/chat/completions. It reports whether the
// response was handed off to a stream writer.
func (s *Server) chatCompletions(ctx *fasthttp.RequestCtx, c *call) bool {
	return s.generateAnswer(ctx, c, s.parseChat, "chatcmpl-")
}

// generateAnswer serves a chat or legacy completion request: parse
// validates it and generates the answer, whose id is idPrefix and 29
// random characters. It reports whether the response was handed off to a
// stream writer.
func (s *Server) generateAnswer(ctx *fasthttp.RequestCtx, c *call, parse func(gjson.Result, string) (*gen, bool, *apiError), idPrefix string) bool {
	root, e := parseRoot(requestBody(ctx))
	if e != nil {
		s.writeError(ctx, c, *e)
		return false
	}
	g, stream, e := parse(root, c.model)
	if e != nil {
		s.writeError(ctx, c, *e)
		return false
	}
	g.id = s.token(idPrefix, 29, base62)
	g.azure = c.dialect == dialectAzure
	return s.answer(ctx, c, g, stream, appendDataError)
}

// parseChat validates a chat completion request and generates its answer.
func (s *Server) parseChat(root gjson.Result, deployed string) (*gen, bool, *apiError) {
	model, e := requireModel(root, deployed)
	if e != nil {
		return nil, false, e
	}
	msgs := root.Get("messages")
	if !present(msgs) {
		return nil, false, errMissingParam("messages")
	}
	if !msgs.IsArray() {
		return nil, false, errInvalidType("messages", "an array", msgs)
	}
	ts := newTextStats(model)
	scan, e := scanMessages(msgs, &ts)
	if e != nil {
		return nil, false, e
	}
	if scan.count == 0 {
		return nil, false, errEmptyArray("messages")
	}
	spec, e := parseTools(root)
	if e != nil {
		return nil, false, e
	}
	if spec.offered() {
		ts.hash = fnvString(ts.hash, spec.raw)
		ts.tokens += ts.enc.Count(spec.raw)
	}
	n, e := optInt(root, "n", 1, 1, maxChoices)
	if e != nil {
		return nil, false, e
	}
	limit, e := optInt(root, "max_completion_tokens", 0, 1, 0)
	if e != nil {
		return nil, false, e
	}
	if limit == 0 {
		if limit, e = optInt(root, "max_tokens", 0, 1, 0); e != nil {
			return nil, false, e
		}
	}
	stream, includeUsage, e := s.streamFlags(root, model, deployed != "")
	if e != nil {
		return nil, false, e
	}
	g := &gen{
		kind:         routeChat,
		model:        model,
		fingerprint:  fingerprint(model),
		created:      time.Now().Unix(),
		choices:      make([]answer, n),
		legacy:       spec.legacy,
		includeUsage: includeUsage,
		promptTokens: ts.tokens + tokencount.ReplyPriming,
		enc:          ts.enc,
	}
	var picks []int
	if spec.offered() {
		picks = spec.choose(ts.hash, scan.userText, scan.afterResults)
	}
	judge := !spec.offered() && judging(scan.systemText)
	for i := range g.choices {
		seed := choiceSeed(ts.hash, i)
		if judge {
			g.choices[i] = fitAnswer(strings.Fields(judgeVerdict(scan.userText)), int(limit), ts.enc)
			continue
		}
		if len(picks) == 0 {
			g.choices[i] = generate(seed, s.opts.ReplyWords, int(limit), ts.enc)
			continue
		}
		calls := make([]toolCall, len(picks))
		for k, d := range picks {
			id := ""
			if !spec.legacy {
				id = s.token("call_", 24, base62)
			}
			calls[k] = newCall(id, &spec.defs[d], seed, scan.userText)
		}
		a := answer{finish: "tool_calls"}
		if spec.legacy {
			a.finish = "function_call"
		}
		var cut bool
		if a.calls, cut = limitCalls(calls, int(limit)); cut {
			a.finish = "length"
		}
		g.choices[i] = a
	}
	g.finishGen()
	return g, stream, nil
}

// promptScan is what scanMessages learns from the messages of a chat
// request.
type promptScan struct {
	count        int
	userText     string // the text of the last user message
	systemText   string // the text of the first system or developer message
	afterResults bool   // the last message hands call results back
}

// scanMessages folds the messages into ts and checks the ones that carry
// calls as the API does: an assistant message with tool_calls must be
// followed by one tool message per call, and tool messages answer such a
// message, naming one of its calls in tool_call_id.
func scanMessages(msgs gjson.Result, ts *textStats) (promptScan, *apiError) {
	var p promptScan
	var e *apiError
	var ids, open []string // calls of the assistant message being answered; those unanswered
	callsAt := -1          // index of that message
	msgs.ForEach(func(_, m gjson.Result) bool {
		i := p.count
		p.count++
		role := m.Get("role").Str
		if role != "tool" {
			if len(open) > 0 {
				e = errUnansweredCalls(callsAt, open)
				return false
			}
			ids, callsAt = nil, -1
		}
		content := m.Get("content")
		ts.tokens += ts.enc.Overhead(role, m.Get("name"))
		ts.hash = fnvString(ts.hash, role)
		ts.addContent(content)
		switch role {
		case "user":
			p.userText = contentText(content)
		case "system", "developer":
			if p.systemText == "" {
				p.systemText = contentText(content)
			}
		case "assistant":
			if tc := m.Get("tool_calls"); present(tc) {
				if ids, e = scanCalls(tc, i, ts); e != nil {
					return false
				}
				open, callsAt = slices.Clone(ids), i
			}
			if fc := m.Get("function_call"); fc.IsObject() {
				ts.addCall(fc.Get("name").Str, fc.Get("arguments").Str)
			}
		case "tool":
			id := m.Get("tool_call_id")
			switch {
			case !present(id):
				e = errMissingParam("messages[" + itoa(i) + "].tool_call_id")
			case id.Type != gjson.String:
				e = errInvalidType("messages["+itoa(i)+"].tool_call_id", "a string", id)
			case callsAt < 0:
				e = errToolWithoutCalls(i)
			case !slices.Contains(ids, id.Str):
				e = errUnknownCallID(i, id.Str)
			}
			if e != nil {
				return false
			}
			open = slices.DeleteFunc(open, func(s string) bool { return s == id.Str })
		}
		p.afterResults = role == "tool" || role == "function"
		return true
	})
	if e == nil && len(open) > 0 {
		e = errUnansweredCalls(callsAt, open)
	}
	return p, e
}

// scanCalls checks the tool_calls of the assistant message i, folds them
// into ts and returns their IDs.
func scanCalls(tc gjson.Result, i int, ts *textStats) ([]string, *apiError) {
	path := "messages[" + itoa(i) + "].tool_calls"
	if !tc.IsArray() {
		return nil, errInvalidType(path, "an array", tc)
	}
	items := tc.Array()
	if len(items) == 0 {
		return nil, errEmptyArray(path)
	}
	ids := make([]string, 0, len(items))
	for j, c := range items {
		at := path + "[" + itoa(j) + "]"
		if !c.IsObject() {
			return nil, errInvalidType(at, "an object", c)
		}
		id := c.Get("id")
		if !present(id) {
			return nil, errMissingParam(at + ".id")
		}
		if id.Type != gjson.String {
			return nil, errInvalidType(at+".id", "a string", id)
		}
		fn := c.Get("function")
		if !present(fn) {
			return nil, errMissingParam(at + ".function")
		}
		if !fn.IsObject() {
			return nil, errInvalidType(at+".function", "an object", fn)
		}
		if !present(fn.Get("name")) {
			return nil, errMissingParam(at + ".function.name")
		}
		ts.addCall(fn.Get("name").Str, fn.Get("arguments").Str)
		ids = append(ids, id.Str)
	}
	return ids, nil
}

// completions serves POST /v1/completions. It reports whether the response
// was handed off to a stream writer.
func (s *Server) completions(ctx *fasthttp.RequestCtx, c *call) bool {
	return s.generateAnswer(ctx, c, s.parseCompletion, "cmpl-")
}

// parseCompletion validates a legacy completion request and generates its
// answer. Like OpenAI, max_tokens defaults to 16.
func (s *Server) parseCompletion(root gjson.Result, deployed string) (*gen, bool, *apiError) {
	model, e := requireModel(root, deployed)
	if e != nil {
		return nil, false, e
	}
	prompts := []textStats{newTextStats(model)}
	if p := root.Get("prompt"); present(p) {
		if prompts, e = parseTexts(p, model, "prompt"); e != nil {
			return nil, false, e
		}
	}
	n, e := optInt(root, "n", 1, 1, maxChoices)
	if e != nil {
		return nil, false, e
	}
	limit, e := optInt(root, "max_tokens", 16, 0, 0)
	if e != nil {
		return nil, false, e
	}
	if limit == 0 {
		limit = -1 // max_tokens 0 is allowed; echo-only in reality, empty here
	}
	stream, includeUsage, e := s.streamFlags(root, model, deployed != "")
	if e != nil {
		return nil, false, e
	}
	g := &gen{
		kind:         routeCompletions,
		model:        model,
		created:      time.Now().Unix(),
		choices:      make([]answer, 0, len(prompts)*int(n)),
		includeUsage: includeUsage,
	}
	for _, ts := range prompts {
		g.promptTokens += ts.tokens
		g.enc = ts.enc
		for i := range int(n) {
			a := answer{finish: "length"}
			if limit > 0 {
				a = generate(choiceSeed(ts.hash, i), s.opts.ReplyWords, int(limit), ts.enc)
			}
			g.choices = append(g.choices, a)
		}
	}
	g.finishGen()
	return g, stream, nil
}

// fingerprint returns a stable system_fingerprint for model.
func fingerprint(model string) string {
	h := fnvString(fnvOffset64, model)
	b := make([]byte, 0, 13)
	b = append(b, "fp_"...)
	b = appendHex64(b, h)
	return string(b[:13])
}

// appendChatUsage appends the usage object of a chat completion.
func (g *gen) appendUsage(b []byte) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = appendInt(b, int64(g.promptTokens))
	b = append(b, `,"completion_tokens":`...)
	b = appendInt(b, int64(g.outputTokens))
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, int64(g.promptTokens+g.outputTokens))
	if g.kind == routeChat {
		b = append(b, `,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":`+
			`{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}`...)
	}
	return append(b, '}')
}

// appendJSON appends the JSON of g not streamed.
func (g *gen) appendJSON(b []byte) []byte {
	if g.kind == routeChat {
		return g.appendChatCompletion(b)
	}
	return g.appendTextCompletion(b)
}

// appendChatCompletion appends the JSON of a non-streamed chat completion.
func (g *gen) appendChatCompletion(b []byte) []byte {
	b = g.appendHead(b, "chat.completion")
	b = append(b, `,"choices":[`...)
	for i, a := range g.choices {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = appendInt(b, int64(i))
		b = append(b, `,"message":{"role":"assistant","content":`...)
		if len(a.calls) > 0 {
			b = g.appendCalls(b, a.calls)
		} else {
			b = appendJSONWords(b, a.words, false)
		}
		b = append(b, `,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"`...)
		b = append(b, a.finish...)
		b = g.appendChoiceEnd(append(b, '"'), true)
	}
	b = append(b, `],"usage":`...)
	b = g.appendUsage(b)
	b = append(b, `,"service_tier":"default","system_fingerprint":"`...)
	b = append(b, g.fingerprint...)
	b = g.appendPromptFilter(append(b, '"'))
	return append(b, '}')
}

// appendHead opens the JSON object of g with the fields every completion
// and chunk starts with: id, object, created and model.
func (g *gen) appendHead(b []byte, object string) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, g.id)
	b = append(b, `,"object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = appendInt(b, g.created)
	b = append(b, `,"model":`...)
	return appendJSONString(b, g.model)
}

// appendCalls appends null content and the calls of a message:
// ,"tool_calls":[...] or, for legacy function calling, ,"function_call":{...}.
func (g *gen) appendCalls(b []byte, calls []toolCall) []byte {
	b = append(b, "null"...)
	if g.legacy {
		b = append(b, `,"function_call":`...)
		return appendFunction(b, calls[0].name, calls[0].args)
	}
	b = append(b, `,"tool_calls":[`...)
	for k, c := range calls {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendJSONString(b, c.id)
		b = append(b, `,"type":"function","function":`...)
		b = appendFunction(b, c.name, c.args)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendFunction appends {"name":name,"arguments":args}.
func appendFunction(b []byte, name, args string) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, name)
	b = append(b, `,"arguments":`...)
	b = appendJSONString(b, args)
	return append(b, '}')
}

// appendTextCompletion appends the JSON of a non-streamed legacy completion.
func (g *gen) appendTextCompletion(b []byte) []byte {
	b = g.appendHead(b, "text_completion")
	b = append(b, `,"choices":[`...)
	for i, a := range g.choices {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"text":`...)
		b = appendJSONWords(b, a.words, false)
		b = append(b, `,"index":`...)
		b = appendInt(b, int64(i))
		b = append(b, `,"logprobs":null,"finish_reason":"`...)
		b = append(b, a.finish...)
		b = g.appendChoiceEnd(append(b, '"'), true)
	}
	b = append(b, `],"usage":`...)
	b = g.appendUsage(b)
	b = g.appendPromptFilter(b)
	return append(b, '}')
}

// appendChunkStart appends "data: " and the fields every chunk shares, up
// to and including the opening bracket of choices.
func (g *gen) appendChunkStart(b []byte) []byte {
	object := "text_completion"
	if g.kind == routeChat {
		object = "chat.completion.chunk"
	}
	b = g.appendHead(append(b, "data: "...), object)
	if g.kind == routeChat {
		b = append(b, `,"service_tier":"default","system_fingerprint":"`...)
		b = append(b, g.fingerprint...)
		b = append(b, '"')
	}
	return append(b, `,"choices":[`...)
}

// appendChunkEnd closes a chunk opened by appendChunkStart.
func (g *gen) appendChunkEnd(b []byte) []byte {
	if g.includeUsage {
		return append(b, "],\"usage\":null}\n\n"...)
	}
	return append(b, "]}\n\n"...)
}

// run streams g through e.
func (g *gen) run(e *emitter) {
	if !e.s.sleep(e.s.opts.TTFT) {
		return
	}
	if g.azure {
		e.buf = g.appendFilterChunk(e.buf)
		if !e.flush() {
			return
		}
	}
	if g.kind == routeChat {
		if !g.runChat(e) {
			return
		}
	} else if !g.runText(e) {
		return
	}
	g.runEnd(e)
}

// runText streams the content chunks of a legacy completion and reports
// whether the stream may go on.
func (g *gen) runText(e *emitter) bool {
	cw := e.s.chunkWords
	for lo := 0; ; lo += cw {
		more := false
		for i, a := range g.choices {
			if lo >= len(a.words) {
				continue
			}
			more = true
			if !e.beforeContent() {
				return false
			}
			e.buf = g.appendChunkStart(e.buf)
			e.buf = append(e.buf, `{"text":`...)
			e.buf = appendJSONWords(e.buf, a.words[lo:min(lo+cw, len(a.words))], lo > 0)
			e.buf = append(e.buf, `,"index":`...)
			e.buf = appendInt(e.buf, int64(i))
			e.buf = append(e.buf, `,"logprobs":null,"finish_reason":null`...)
			e.buf = g.appendChoiceEnd(e.buf, true)
			e.buf = g.appendChunkEnd(e.buf)
			if !e.flush() {
				return false
			}
			e.sent++
		}
		if !more {
			return true
		}
	}
}

// chatItem is one content chunk of a chat choice: words [lo, hi) of a text
// answer; or, of call number call, its opening (header, for the calls
// after the first, whose opening is in the role chunk) or argument pieces
// [lo, hi).
type chatItem struct {
	call   int
	header bool
	lo, hi int
}

// callItems returns the content chunks of an answer with calls, cw
// argument pieces each.
func callItems(calls []toolCall, cw int) []chatItem {
	var items []chatItem
	for k, c := range calls {
		if k > 0 {
			items = append(items, chatItem{call: k, header: true})
		}
		for lo := 0; lo < len(c.pieces); lo += cw {
			items = append(items, chatItem{call: k, lo: lo, hi: min(lo+cw, len(c.pieces))})
		}
	}
	return items
}

// appendCallOpening appends the delta member that opens call k:
// "tool_calls":[{"index":k,"id":...,"type":"function","function":
// {"name":...,"arguments":""}}], or for legacy function calling
// "function_call":{"name":...,"arguments":""}.
func (g *gen) appendCallOpening(b []byte, c toolCall, k int) []byte {
	if g.legacy {
		b = append(b, `"function_call":`...)
		return appendFunction(b, c.name, "")
	}
	b = append(b, `"tool_calls":[{"index":`...)
	b = appendInt(b, int64(k))
	b = append(b, `,"id":`...)
	b = appendJSONString(b, c.id)
	b = append(b, `,"type":"function","function":`...)
	b = appendFunction(b, c.name, "")
	return append(b, "}]"...)
}

// runChat streams the role chunks and the content chunks of a chat
// completion and reports whether the stream may go on. The role chunk of
// an answer with calls also opens its first call; the pieces of the
// arguments and the openings of further calls are content chunks.
func (g *gen) runChat(e *emitter) bool {
	for i, a := range g.choices {
		e.buf = g.appendChunkStart(e.buf)
		e.buf = append(e.buf, `{"index":`...)
		e.buf = appendInt(e.buf, int64(i))
		if len(a.calls) > 0 {
			e.buf = append(e.buf, `,"delta":{"role":"assistant","content":null,`...)
			e.buf = g.appendCallOpening(e.buf, a.calls[0], 0)
			e.buf = append(e.buf, `,"refusal":null},"logprobs":null,"finish_reason":null`...)
		} else {
			e.buf = append(e.buf, `,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null`...)
		}
		e.buf = g.appendChoiceEnd(e.buf, false)
		e.buf = g.appendChunkEnd(e.buf)
		if !e.flush() {
			return false
		}
	}
	cw := e.s.chunkWords
	var plans [][]chatItem // of the answers with calls; text is cut on the fly
	for i, a := range g.choices {
		if len(a.calls) > 0 {
			if plans == nil {
				plans = make([][]chatItem, len(g.choices))
			}
			plans[i] = callItems(a.calls, cw)
		}
	}
	for j := 0; ; j++ {
		more := false
		for i, a := range g.choices {
			var it chatItem
			if len(a.calls) == 0 {
				if j*cw >= len(a.words) {
					continue
				}
				it = chatItem{lo: j * cw, hi: min(j*cw+cw, len(a.words))}
			} else {
				if j >= len(plans[i]) {
					continue
				}
				it = plans[i][j]
			}
			more = true
			if !e.beforeContent() {
				return false
			}
			e.buf = g.appendChunkStart(e.buf)
			e.buf = append(e.buf, `{"index":`...)
			e.buf = appendInt(e.buf, int64(i))
			e.buf = append(e.buf, `,"delta":{`...)
			switch {
			case len(a.calls) == 0:
				e.buf = append(e.buf, `"content":`...)
				e.buf = appendJSONWords(e.buf, a.words[it.lo:it.hi], it.lo > 0)
			case it.header:
				e.buf = g.appendCallOpening(e.buf, a.calls[it.call], it.call)
			case g.legacy:
				e.buf = append(e.buf, `"function_call":{"arguments":`...)
				e.buf = appendJSONPieces(e.buf, a.calls[it.call].pieces[it.lo:it.hi])
				e.buf = append(e.buf, '}')
			default:
				e.buf = append(e.buf, `"tool_calls":[{"index":`...)
				e.buf = appendInt(e.buf, int64(it.call))
				e.buf = append(e.buf, `,"function":{"arguments":`...)
				e.buf = appendJSONPieces(e.buf, a.calls[it.call].pieces[it.lo:it.hi])
				e.buf = append(e.buf, "}}]"...)
			}
			e.buf = append(e.buf, `},"logprobs":null,"finish_reason":null`...)
			e.buf = g.appendChoiceEnd(e.buf, true)
			e.buf = g.appendChunkEnd(e.buf)
			if !e.flush() {
				return false
			}
			e.sent++
		}
		if !more {
			return true
		}
	}
}

// runEnd applies a fault still due, then streams the finish chunks, the
// usage chunk when asked for and [DONE].
func (g *gen) runEnd(e *emitter) {
	if !e.afterContent() {
		return
	}
	for i, a := range g.choices {
		e.buf = g.appendChunkStart(e.buf)
		if g.kind == routeChat {
			e.buf = append(e.buf, `{"index":`...)
			e.buf = appendInt(e.buf, int64(i))
			e.buf = append(e.buf, `,"delta":{},"logprobs":null,"finish_reason":"`...)
		} else {
			e.buf = append(e.buf, `{"text":"","index":`...)
			e.buf = appendInt(e.buf, int64(i))
			e.buf = append(e.buf, `,"logprobs":null,"finish_reason":"`...)
		}
		e.buf = append(e.buf, a.finish...)
		e.buf = g.appendChoiceEnd(append(e.buf, '"'), false)
		e.buf = g.appendChunkEnd(e.buf)
		if !e.flush() {
			return
		}
	}
	if g.includeUsage {
		e.buf = g.appendChunkStart(e.buf)
		e.buf = append(e.buf, `],"usage":`...)
		e.buf = g.appendUsage(e.buf)
		e.buf = append(e.buf, "}\n\n"...)
		if !e.flush() {
			return
		}
	}
	e.buf = append(e.buf, "data: [DONE]\n\n"...)
	e.flush()
}
