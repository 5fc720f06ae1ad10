package fakeopenai

import (
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
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
	includeUsage bool
	promptTokens int
	outputTokens int
}

// finishGen fills the token counts of g.
func (g *gen) finishGen() {
	for _, a := range g.choices {
		g.outputTokens += len(a.words)
	}
	g.promptTokens = max(g.promptTokens, 1)
}

// chatCompletions serves POST /v1/chat/completions. It reports whether the
// response was handed off to a stream writer.
func (s *Server) chatCompletions(ctx *fasthttp.RequestCtx, c *call) bool {
	root, e := parseRoot(requestBody(ctx))
	if e != nil {
		s.writeError(ctx, c, *e)
		return false
	}
	g, stream, e := s.parseChat(root)
	if e != nil {
		s.writeError(ctx, c, *e)
		return false
	}
	g.id = s.token("chatcmpl-", 29, base62)
	if !stream {
		bp := getBuf()
		*bp = g.appendChatCompletion(*bp)
		s.writeJSON(ctx, c, fasthttp.StatusOK, *bp)
		putBuf(bp)
		return false
	}
	return s.startStream(ctx, c, sseContentType, g.run, appendDataError)
}

// parseChat validates a chat completion request and generates its answer.
func (s *Server) parseChat(root gjson.Result) (*gen, bool, *apiError) {
	model, e := requireModel(root)
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
	count := 0
	msgs.ForEach(func(_, m gjson.Result) bool {
		count++
		ts.hash = fnvString(ts.hash, m.Get("role").Str)
		ts.addContent(m.Get("content"))
		return true
	})
	if count == 0 {
		return nil, false, errEmptyArray("messages")
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
	stream, includeUsage, e := streamFlags(root)
	if e != nil {
		return nil, false, e
	}
	if e := s.checkModel(model); e != nil {
		return nil, false, e
	}
	g := &gen{
		kind:         routeChat,
		model:        model,
		fingerprint:  fingerprint(model),
		created:      time.Now().Unix(),
		choices:      make([]answer, n),
		includeUsage: includeUsage,
		promptTokens: ts.words,
	}
	for i := range g.choices {
		g.choices[i] = generate(choiceSeed(ts.hash, i), s.opts.ReplyWords, int(limit))
	}
	g.finishGen()
	return g, stream, nil
}

// completions serves POST /v1/completions. It reports whether the response
// was handed off to a stream writer.
func (s *Server) completions(ctx *fasthttp.RequestCtx, c *call) bool {
	root, e := parseRoot(requestBody(ctx))
	if e != nil {
		s.writeError(ctx, c, *e)
		return false
	}
	g, stream, e := s.parseCompletion(root)
	if e != nil {
		s.writeError(ctx, c, *e)
		return false
	}
	g.id = s.token("cmpl-", 29, base62)
	if !stream {
		bp := getBuf()
		*bp = g.appendTextCompletion(*bp)
		s.writeJSON(ctx, c, fasthttp.StatusOK, *bp)
		putBuf(bp)
		return false
	}
	return s.startStream(ctx, c, sseContentType, g.run, appendDataError)
}

// parseCompletion validates a legacy completion request and generates its
// answer. Like OpenAI, max_tokens defaults to 16.
func (s *Server) parseCompletion(root gjson.Result) (*gen, bool, *apiError) {
	model, e := requireModel(root)
	if e != nil {
		return nil, false, e
	}
	var prompts []textStats
	p := root.Get("prompt")
	switch {
	case !present(p):
		prompts = append(prompts, newTextStats(model))
	case p.Type == gjson.String:
		ts := newTextStats(model)
		ts.add(p.Str)
		prompts = append(prompts, ts)
	case p.IsArray():
		tokens := newTextStats(model)
		isTokens := false
		p.ForEach(func(_, item gjson.Result) bool {
			switch {
			case item.Type == gjson.Number:
				isTokens = true
				tokens.add(item.Raw)
			case item.Type == gjson.String:
				ts := newTextStats(model)
				ts.add(item.Str)
				prompts = append(prompts, ts)
			case item.IsArray():
				ts := newTextStats(model)
				item.ForEach(func(_, tok gjson.Result) bool {
					ts.add(tok.Raw)
					return true
				})
				prompts = append(prompts, ts)
			}
			return true
		})
		if isTokens {
			prompts = append(prompts[:0], tokens)
		}
		if len(prompts) == 0 {
			return nil, false, errEmptyArray("prompt")
		}
	default:
		return nil, false, errInvalidType("prompt", "a string or an array", p)
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
	stream, includeUsage, e := streamFlags(root)
	if e != nil {
		return nil, false, e
	}
	if e := s.checkModel(model); e != nil {
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
		g.promptTokens += ts.words
		for i := range int(n) {
			a := answer{finish: "length"}
			if limit > 0 {
				a = generate(choiceSeed(ts.hash, i), s.opts.ReplyWords, int(limit))
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

// appendChatCompletion appends the JSON of a non-streamed chat completion.
func (g *gen) appendChatCompletion(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, g.id)
	b = append(b, `,"object":"chat.completion","created":`...)
	b = appendInt(b, g.created)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, g.model)
	b = append(b, `,"choices":[`...)
	for i, a := range g.choices {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = appendInt(b, int64(i))
		b = append(b, `,"message":{"role":"assistant","content":`...)
		b = appendJSONWords(b, a.words, false)
		b = append(b, `,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"`...)
		b = append(b, a.finish...)
		b = append(b, `"}`...)
	}
	b = append(b, `],"usage":`...)
	b = g.appendUsage(b)
	b = append(b, `,"service_tier":"default","system_fingerprint":"`...)
	b = append(b, g.fingerprint...)
	return append(b, `"}`...)
}

// appendTextCompletion appends the JSON of a non-streamed legacy completion.
func (g *gen) appendTextCompletion(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, g.id)
	b = append(b, `,"object":"text_completion","created":`...)
	b = appendInt(b, g.created)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, g.model)
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
		b = append(b, `"}`...)
	}
	b = append(b, `],"usage":`...)
	b = g.appendUsage(b)
	return append(b, '}')
}

// appendChunkStart appends "data: " and the fields every chunk shares, up
// to and including the opening bracket of choices.
func (g *gen) appendChunkStart(b []byte) []byte {
	b = append(b, `data: {"id":`...)
	b = appendJSONString(b, g.id)
	if g.kind == routeChat {
		b = append(b, `,"object":"chat.completion.chunk","created":`...)
	} else {
		b = append(b, `,"object":"text_completion","created":`...)
	}
	b = appendInt(b, g.created)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, g.model)
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
	if g.kind == routeChat {
		for i := range g.choices {
			e.buf = g.appendChunkStart(e.buf)
			e.buf = append(e.buf, `{"index":`...)
			e.buf = appendInt(e.buf, int64(i))
			e.buf = append(e.buf, `,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}`...)
			e.buf = g.appendChunkEnd(e.buf)
			if !e.flush() {
				return
			}
		}
	}
	cw := e.s.chunkWords
	for lo := 0; ; lo += cw {
		more := false
		for i, a := range g.choices {
			if lo >= len(a.words) {
				continue
			}
			more = true
			if !e.beforeContent() {
				return
			}
			piece := a.words[lo:min(lo+cw, len(a.words))]
			e.buf = g.appendChunkStart(e.buf)
			if g.kind == routeChat {
				e.buf = append(e.buf, `{"index":`...)
				e.buf = appendInt(e.buf, int64(i))
				e.buf = append(e.buf, `,"delta":{"content":`...)
				e.buf = appendJSONWords(e.buf, piece, lo > 0)
				e.buf = append(e.buf, `},"logprobs":null,"finish_reason":null}`...)
			} else {
				e.buf = append(e.buf, `{"text":`...)
				e.buf = appendJSONWords(e.buf, piece, lo > 0)
				e.buf = append(e.buf, `,"index":`...)
				e.buf = appendInt(e.buf, int64(i))
				e.buf = append(e.buf, `,"logprobs":null,"finish_reason":null}`...)
			}
			e.buf = g.appendChunkEnd(e.buf)
			if !e.flush() {
				return
			}
			e.sent++
		}
		if !more {
			break
		}
	}
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
		e.buf = append(e.buf, `"}`...)
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
