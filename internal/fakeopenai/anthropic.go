package fakeopenai

import (
	"bytes"
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// DefaultAnthropicModels is the list of Anthropic models served when
// Options.AnthropicModels is empty: the current models, each under its alias
// and its dated ID, newest first.
var DefaultAnthropicModels = []string{
	"claude-haiku-4-5",
	"claude-haiku-4-5-20251001",
	"claude-sonnet-4-5",
	"claude-sonnet-4-5-20250929",
	"claude-opus-4-1",
	"claude-opus-4-1-20250805",
	"claude-opus-4-0",
	"claude-opus-4-20250514",
	"claude-sonnet-4-0",
	"claude-sonnet-4-20250514",
	"claude-3-7-sonnet-latest",
	"claude-3-7-sonnet-20250219",
	"claude-3-5-haiku-latest",
	"claude-3-5-haiku-20241022",
	"claude-3-haiku-20240307",
}

// anthropicModel is what the fake knows of an Anthropic model.
type anthropicModel struct {
	display   string
	createdAt string // RFC 3339
	maxOutput int64  // the largest max_tokens accepted; 0: unbounded
}

// knownAnthropicModels holds the display names, release dates and output
// limits Anthropic reports for its models, by ID and by alias.
var knownAnthropicModels = func() map[string]anthropicModel {
	m := make(map[string]anthropicModel)
	for _, k := range []struct {
		alias, id, display, date string
		maxOutput                int64
	}{
		{"claude-haiku-4-5", "claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15", 64000},
		{"claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29", 64000},
		{"claude-opus-4-1", "claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05", 32000},
		{"claude-opus-4-0", "claude-opus-4-20250514", "Claude Opus 4", "2025-05-22", 32000},
		{"claude-sonnet-4-0", "claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22", 64000},
		{"claude-3-7-sonnet-latest", "claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24", 64000},
		{"claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22", 8192},
		{"", "claude-3-haiku-20240307", "Claude Haiku 3", "2024-03-07", 4096},
	} {
		info := anthropicModel{display: k.display, createdAt: k.date + "T00:00:00Z", maxOutput: k.maxOutput}
		m[k.id] = info
		if k.alias != "" {
			m[k.alias] = info
		}
	}
	return m
}()

// headerAnthropicVersion is the header that marks, and is required on,
// Anthropic calls.
const headerAnthropicVersion = "anthropic-version"

// Anthropic limits.
const (
	// maxAnthropicBody is the largest Messages API request body.
	maxAnthropicBody = 32 << 20
	// imageTokens stands in for the tokens of one image.
	imageTokens = 85
)

// initAnthropicModels builds the Anthropic model table.
func (s *Server) initAnthropicModels() {
	ids := s.opts.AnthropicModels
	if len(ids) == 0 {
		ids = DefaultAnthropicModels
	}
	s.anthModels = make(map[string]anthropicModel, len(ids))
	for _, id := range ids {
		if _, dup := s.anthModels[id]; dup {
			continue
		}
		m, ok := knownAnthropicModels[id]
		if !ok {
			m = anthropicModel{display: id, createdAt: "2025-01-01T00:00:00Z"}
		}
		s.anthModels[id] = m
		s.anthModelIDs = append(s.anthModelIDs, id)
	}
}

// anthropicAuth checks the x-api-key header of an Anthropic call. A bearer
// key is not looked at.
func (s *Server) anthropicAuth(ctx *fasthttp.RequestCtx) (apiError, bool) {
	key := ctx.Request.Header.Peek("x-api-key")
	if len(key) == 0 {
		return apiError{status: fasthttp.StatusUnauthorized, message: "x-api-key header is required", typ: "authentication_error"}, false
	}
	if !s.acceptsKey(string(key)) {
		return apiError{status: fasthttp.StatusUnauthorized, message: "invalid x-api-key", typ: "authentication_error"}, false
	}
	if len(ctx.Request.Header.Peek(headerAnthropicVersion)) == 0 {
		return *errAnthropic(headerAnthropicVersion + ": header is required"), false
	}
	return apiError{}, true
}

// anthropicTypes maps the HTTP statuses Anthropic documents to its error
// types.
var anthropicTypes = map[int]string{
	fasthttp.StatusBadRequest:            "invalid_request_error",
	fasthttp.StatusUnauthorized:          "authentication_error",
	fasthttp.StatusForbidden:             "permission_error",
	fasthttp.StatusNotFound:              "not_found_error",
	fasthttp.StatusRequestEntityTooLarge: "request_too_large",
	fasthttp.StatusTooManyRequests:       "rate_limit_error",
	fasthttp.StatusInternalServerError:   "api_error",
	statusOverloaded:                     "overloaded_error",
}

// statusOverloaded is the status Anthropic answers when it is overloaded.
const statusOverloaded = 529

// anthropicType returns the Anthropic error type of e: its own when it is
// one, else the one of its status.
func anthropicType(e apiError) string {
	for _, t := range anthropicTypes {
		if e.typ == t {
			return t
		}
	}
	if t, ok := anthropicTypes[e.status]; ok {
		return t
	}
	if e.status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// appendAnthropicError appends Anthropic's error envelope of e:
// {"type":"error","error":{"type":...,"message":...},"request_id":...}.
func appendAnthropicError(b []byte, e apiError, reqID string) []byte {
	b = appendAnthropicErrorObject(b, anthropicType(e), e.message)
	b = b[:len(b)-1]
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, reqID)
	return append(b, '}')
}

// appendAnthropicErrorObject appends {"type":"error","error":{...}}.
func appendAnthropicErrorObject(b []byte, typ, message string) []byte {
	b = append(b, `{"type":"error","error":{"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, message)
	return append(b, "}}"...)
}

// anthropicStatusError returns the envelope of a KindStatus fault on an
// Anthropic call; writeRateLimited answers those of status 429.
func anthropicStatusError(f Fault) apiError {
	e := apiError{status: f.Status}
	if e.status == 0 {
		e.status = fasthttp.StatusInternalServerError
	}
	e.typ = anthropicType(e)
	msg, ok := anthropicMessages[e.typ]
	if !ok {
		msg = "There was an issue with the format or content of your request."
	}
	e.message = msg
	return e.override(f)
}

// anthropicMessages are Anthropic's messages for its error types; others
// get the one of invalid_request_error.
var anthropicMessages = map[string]string{
	"authentication_error": "invalid x-api-key",
	"permission_error":     "Your API key does not have permission to use the specified resource.",
	"not_found_error":      "The requested resource could not be found.",
	"request_too_large":    "Request exceeds the maximum allowed number of bytes.",
	"api_error":            "Internal server error",
	"overloaded_error":     "Overloaded",
}

// anthropicRateLimitError returns the envelope of a 429 answer to an
// Anthropic call.
func anthropicRateLimitError(f Fault) apiError {
	return apiError{
		status: fasthttp.StatusTooManyRequests,
		typ:    "rate_limit_error",
		message: "This request would exceed the rate limit for your organization (" + anthropicOrg + ") of " +
			anthropicRequestLimit + " requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. " +
			"You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens " +
			"requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to " +
			"discuss your options for a rate limit increase.",
	}.override(f)
}

// Header values advertised on every Anthropic answer.
const (
	anthropicOrg          = "0f2c6d8e-4b1a-4c3e-9d7f-fa4e0b6c1d2a"
	anthropicRequestLimit = "4000"
)

// anthropicHeaders returns the headers Anthropic sets on every answer. A
// non-negative reset marks the answer as rate limited.
func anthropicHeaders(c *call, reset time.Duration) []headerPair {
	now := time.Now().UTC()
	remaining, at := "3999", now.Add(15*time.Millisecond)
	if reset >= 0 {
		remaining, at = "0", now.Add(reset)
	}
	resetReq := at.Format(time.RFC3339)
	resetTok := now.Add(time.Second).Format(time.RFC3339)
	return []headerPair{
		{"Request-Id", c.reqID},
		{"Anthropic-Organization-Id", c.anthropicOrganization()},
		{"Anthropic-Ratelimit-Requests-Limit", anthropicRequestLimit},
		{"Anthropic-Ratelimit-Requests-Remaining", remaining},
		{"Anthropic-Ratelimit-Requests-Reset", resetReq},
		{"Anthropic-Ratelimit-Input-Tokens-Limit", "2000000"},
		{"Anthropic-Ratelimit-Input-Tokens-Remaining", "1999000"},
		{"Anthropic-Ratelimit-Input-Tokens-Reset", resetTok},
		{"Anthropic-Ratelimit-Output-Tokens-Limit", "400000"},
		{"Anthropic-Ratelimit-Output-Tokens-Remaining", "399000"},
		{"Anthropic-Ratelimit-Output-Tokens-Reset", resetTok},
		{"Anthropic-Ratelimit-Tokens-Limit", "2400000"},
		{"Anthropic-Ratelimit-Tokens-Remaining", "2398000"},
		{"Anthropic-Ratelimit-Tokens-Reset", resetTok},
	}
}

// errAnthropic returns a 400 invalid_request_error saying msg.
func errAnthropic(msg string) *apiError {
	return invalidRequest("", "", msg)
}

// errAnthropicType reports that the field at path is not a valid what
// ("string", "integer", "list", "dictionary"...), the way the API words it.
func errAnthropicType(path, what string) *apiError {
	return errAnthropic(path + ": Input should be a valid " + what)
}

// joinPath appends key to the dotted field path path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// checkFields answers "Extra inputs are not permitted" for the first key of
// obj, found at path, that is not allowed.
func checkFields(obj gjson.Result, path string, allowed ...string) *apiError {
	var e *apiError
	obj.ForEach(func(k, _ gjson.Result) bool {
		if !slices.Contains(allowed, k.Str) {
			e = errAnthropic(joinPath(path, k.Str) + ": Extra inputs are not permitted")
			return false
		}
		return true
	})
	return e
}

// optNumber checks the optional number field name of root against
// [lo, hi].
func optNumber(root gjson.Result, name string, lo, hi float64) *apiError {
	r := root.Get(name)
	switch {
	case !present(r):
		return nil
	case r.Type != gjson.Number:
		return errAnthropicType(name, "number")
	case r.Num < lo:
		return errAnthropic(name + ": Input should be greater than or equal to " + strconv.FormatFloat(lo, 'g', -1, 64))
	case r.Num > hi:
		return errAnthropic(name + ": Input should be less than or equal to " + strconv.FormatFloat(hi, 'g', -1, 64))
	}
	return nil
}

// anthropicInt returns the integer at path, checked to be at least lo.
func anthropicInt(r gjson.Result, path string, lo int64) (int64, *apiError) {
	if r.Type != gjson.Number || r.Num != math.Trunc(r.Num) {
		return 0, errAnthropicType(path, "integer")
	}
	if int64(r.Num) < lo {
		return 0, errAnthropic(path + ": Input should be greater than or equal to " + strconv.FormatInt(lo, 10))
	}
	return int64(r.Num), nil
}

// requireString returns the string field key of obj, found at path.
func requireString(obj gjson.Result, path, key string) (string, *apiError) {
	v := obj.Get(key)
	switch {
	case !v.Exists():
		return "", errAnthropic(joinPath(path, key) + ": Field required")
	case v.Type != gjson.String:
		return "", errAnthropicType(joinPath(path, key), "string")
	}
	return v.Str, nil
}

// requireObject returns the object field key of obj, found at path.
func requireObject(obj gjson.Result, path, key string) (gjson.Result, *apiError) {
	v := obj.Get(key)
	switch {
	case !v.Exists():
		return v, errAnthropic(joinPath(path, key) + ": Field required")
	case !v.IsObject():
		return v, errAnthropicType(joinPath(path, key), "dictionary")
	}
	return v, nil
}

// anthBlock is one content block of a generated message: text, streamed in
// pieces that concatenate to it, or a tool_use block when call is set.
type anthBlock struct {
	pieces []string
	call   *toolCall
}

// anthMsg is a generated Messages API answer.
type anthMsg struct {
	id           string
	model        string
	blocks       []anthBlock
	stopReason   string
	stopSequence string // "" is rendered as null
	inputTokens  int
	outputTokens int
}

// anthScan is what scanning the messages of a request learns.
type anthScan struct {
	userText     string // the text of the last user message that has text
	afterResults bool   // the last message hands tool results back
	images       int
}

// messages serves POST /v1/messages. It reports whether the response was
// handed off to a stream writer.
func (s *Server) messages(ctx *fasthttp.RequestCtx, c *call) bool {
	body := requestBody(ctx)
	if len(body) > maxAnthropicBody {
		s.writeError(ctx, c, apiError{status: fasthttp.StatusRequestEntityTooLarge,
			message: "Request exceeds the maximum allowed number of bytes.", typ: "request_too_large"})
		return false
	}
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		s.writeError(ctx, c, *errAnthropic("The request body is not valid JSON."))
		return false
	}
	m, stream, e := s.parseMessages(gjson.ParseBytes(body))
	if e != nil {
		s.writeError(ctx, c, *e)
		return false
	}
	m.id = s.token("msg_01", 22, base62)
	return s.answer(ctx, c, m, stream, appendAnthropicStreamError)
}

// anthropicFields are the top-level fields of a Messages API request.
var anthropicFields = []string{"model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k",
	"stop_sequences", "stream", "metadata", "tools", "tool_choice", "thinking", "service_tier"}

// parseMessages validates a Messages API request and generates its answer.
func (s *Server) parseMessages(root gjson.Result) (*anthMsg, bool, *apiError) {
	if e := checkFields(root, "", anthropicFields...); e != nil {
		return nil, false, e
	}
	model, e := requireString(root, "", "model")
	if e != nil {
		return nil, false, e
	}
	mt := root.Get("max_tokens")
	if !mt.Exists() {
		return nil, false, errAnthropic("max_tokens: Field required")
	}
	limit, e := anthropicInt(mt, "max_tokens", 1)
	if e != nil {
		return nil, false, e
	}
	msgs := root.Get("messages")
	switch {
	case !msgs.Exists():
		return nil, false, errAnthropic("messages: Field required")
	case !msgs.IsArray():
		return nil, false, errAnthropicType("messages", "list")
	case len(msgs.Array()) == 0:
		return nil, false, errAnthropic("messages: at least one message is required")
	}
	ts := newTextStats(model)
	system, e := foldSystem(root.Get("system"), &ts)
	if e != nil {
		return nil, false, e
	}
	scan, e := scanAnthropicMessages(msgs.Array(), &ts)
	if e != nil {
		return nil, false, e
	}
	if e := checkSampling(root); e != nil {
		return nil, false, e
	}
	stops, e := stopSequences(root.Get("stop_sequences"))
	if e != nil {
		return nil, false, e
	}
	stream := root.Get("stream")
	if present(stream) && !stream.IsBool() {
		return nil, false, errAnthropicType("stream", "boolean")
	}
	if e := checkMetadata(root.Get("metadata")); e != nil {
		return nil, false, e
	}
	if e := checkThinking(root.Get("thinking"), limit); e != nil {
		return nil, false, e
	}
	if st := root.Get("service_tier"); present(st) && st.Str != "auto" && st.Str != "standard_only" {
		return nil, false, errAnthropic("service_tier: Input should be 'auto' or 'standard_only'")
	}
	spec, e := parseAnthropicTools(root.Get("tools"), root.Get("tool_choice"))
	if e != nil {
		return nil, false, e
	}
	if spec.offered() {
		ts.hash = fnvString(ts.hash, spec.raw)
		ts.tokens += ts.enc.Count(spec.raw)
	}
	info, known := s.anthModels[model]
	if !known && !s.opts.AllowUnknownModels {
		return nil, false, &apiError{status: fasthttp.StatusNotFound, message: "model: " + model, typ: "not_found_error"}
	}
	if info.maxOutput > 0 && limit > info.maxOutput {
		return nil, false, errAnthropic("max_tokens: " + strconv.FormatInt(limit, 10) + " > " +
			strconv.FormatInt(info.maxOutput, 10) + ", which is the maximum allowed number of output tokens for " + model)
	}
	m := &anthMsg{model: model, inputTokens: max(ts.tokens+scan.images*imageTokens, 1)}
	var picks []int
	if spec.offered() {
		picks = spec.choose(ts.hash, scan.userText, scan.afterResults)
	}
	switch {
	case !spec.offered() && judging(system):
		m.answerText(strings.Fields(judgeVerdict(scan.userText)), 0, 0, stops, int(limit))
	case len(picks) == 0:
		m.answerText(generate(ts.hash, s.opts.ReplyWords, 0, ts.enc).words, s.opts.ReplyWords, scan.images, stops, int(limit))
	default:
		m.answerCalls(s, &spec, picks, ts.hash, scan.userText, int(limit))
	}
	return m, stream.Bool(), nil
}

// answerText makes m a text answer of words, led by a sentence about the
// images of the prompt when there are any (and then cut to target words when
// target is positive), cut at the first stop sequence and at limit tokens.
func (m *anthMsg) answerText(words []string, target, images int, stops []string, limit int) {
	if images > 0 {
		seen := []string{"I", "can", "see", "one", "image."}
		if images > 1 {
			seen[3], seen[4] = itoa(images), "images."
		}
		words = append(seen, words...)
		if target > 0 {
			words = words[:target]
		}
	}
	text := joinWords(words)
	m.stopReason = "end_turn"
	cut := -1
	for _, seq := range stops {
		if i := strings.Index(text, seq); i >= 0 && (cut < 0 || i < cut) {
			cut, m.stopSequence = i, seq
		}
	}
	if cut >= 0 {
		text, m.stopReason = text[:cut], "stop_sequence"
	}
	pieces := textPieces(text)
	if len(pieces) > limit {
		pieces, m.stopReason, m.stopSequence = pieces[:limit], "max_tokens", ""
	}
	if len(pieces) > 0 {
		m.blocks = append(m.blocks, anthBlock{pieces: pieces})
	}
	m.outputTokens = max(len(pieces), 1)
}

// answerCalls makes m an answer calling the functions picks of spec. With
// tool_choice auto a short text block says which tools are used first, as
// the models tend to. A call that would not fit in limit tokens is left
// out, and the answer then stops with max_tokens.
func (m *anthMsg) answerCalls(s *Server, spec *toolSpec, picks []int, seed uint64, userText string, limit int) {
	m.stopReason = "tool_use"
	left := limit
	if spec.mode == toolAuto {
		names := make([]string, len(picks))
		for k, d := range picks {
			names[k] = spec.defs[d].name
		}
		intro := "I'll use the " + strings.Join(names, " and ") + " tool."
		if len(names) > 1 {
			intro = intro[:len(intro)-1] + "s."
		}
		pieces := textPieces(intro)
		if len(pieces) > left {
			m.blocks = append(m.blocks, anthBlock{pieces: pieces[:left]})
			m.stopReason, m.outputTokens = "max_tokens", limit
			return
		}
		left -= len(pieces)
		m.blocks = append(m.blocks, anthBlock{pieces: pieces})
	}
	for _, d := range picks {
		call := newCall(s.token("toolu_01", 22, base62), &spec.defs[d], choiceSeed(seed, 0), userText)
		if len(call.pieces) > left {
			m.stopReason = "max_tokens"
			break
		}
		left -= len(call.pieces)
		m.blocks = append(m.blocks, anthBlock{call: &call})
	}
	m.outputTokens = max(limit-left, 1)
	if m.stopReason == "max_tokens" {
		m.outputTokens = limit
	}
}

// textPieces splits s into the pieces it is streamed in, about a token
// each: a word with the spaces before it. The pieces concatenate to s.
func textPieces(s string) []string {
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] == ' ' && s[i-1] != ' ' {
			out = append(out, s[start:i])
			start = i
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// foldSystem checks the system prompt, a string or a list of text blocks,
// folds it into ts and returns its text (the blocks' joined by spaces).
func foldSystem(sys gjson.Result, ts *textStats) (string, *apiError) {
	switch {
	case !present(sys):
		return "", nil
	case sys.Type == gjson.String:
		ts.add(sys.Str)
		return sys.Str, nil
	case !sys.IsArray():
		return "", errAnthropicType("system", "list")
	}
	var texts []string
	for j, b := range sys.Array() {
		path := "system." + itoa(j)
		if !b.IsObject() {
			return "", errAnthropicType(path, "dictionary")
		}
		if b.Get("type").Str != "text" {
			return "", errAnthropic(path + ".type: Input should be 'text'")
		}
		if e := checkFields(b, path, "type", "text", "cache_control", "citations"); e != nil {
			return "", e
		}
		text, e := requireString(b, path, "text")
		if e != nil {
			return "", e
		}
		ts.add(text)
		texts = append(texts, text)
	}
	return strings.Join(texts, " "), nil
}

// scanAnthropicMessages checks the messages as the API does and folds them
// into ts: roles alternate freely between user and assistant but the first
// is the user's, tool_use blocks are the assistant's and tool_result blocks
// the user's, and the message after one with tool_use blocks answers every
// one of them, and only them, with tool_result blocks.
func scanAnthropicMessages(msgs []gjson.Result, ts *textStats) (anthScan, *apiError) {
	var p anthScan
	var open []string // the tool_use IDs of the previous message
	for i, m := range msgs {
		path := "messages." + itoa(i)
		if !m.IsObject() {
			return p, errAnthropicType(path, "dictionary")
		}
		if e := checkFields(m, path, "role", "content"); e != nil {
			return p, e
		}
		role, e := requireString(m, path, "role")
		if e != nil {
			return p, e
		}
		switch {
		case role == "system":
			return p, errAnthropic(`messages: Unexpected role "system". The Messages API accepts a top-level ` +
				"`system` parameter, not \"system\" as an input message role.")
		case role != "user" && role != "assistant":
			return p, errAnthropic(path + ".role: Input should be 'user' or 'assistant'")
		case i == 0 && role != "user":
			return p, errAnthropic(`messages: first message must use the "user" role`)
		}
		content := m.Get("content")
		if !content.Exists() {
			return p, errAnthropic(path + ".content: Field required")
		}
		final := i == len(msgs)-1 && role == "assistant"
		ts.hash = fnvString(ts.hash, role)
		mb := msgBlocks{role: role, path: path, open: open, ts: ts}
		switch {
		case content.Type == gjson.String:
			mb.text = content.Str
			ts.add(content.Str)
		case content.IsArray():
			for j, b := range content.Array() {
				if e := mb.block(b, path+".content."+itoa(j)); e != nil {
					return p, e
				}
			}
		default:
			return p, errAnthropicType(path+".content", "list")
		}
		if strings.TrimSpace(mb.text) == "" && mb.others == 0 && !final {
			return p, errAnthropic(path + ": all messages must have non-empty content except for the optional final assistant message")
		}
		if final && mb.text != "" && strings.TrimRight(mb.text, " \t\n\r") != mb.text {
			return p, errAnthropic("messages: final assistant content cannot end with trailing whitespace")
		}
		if len(open) > 0 && len(mb.answered) < len(open) {
			var missing []string
			for _, id := range open {
				if !slices.Contains(mb.answered, id) {
					missing = append(missing, id)
				}
			}
			return p, errAnthropic("messages." + itoa(i-1) + ": `tool_use` ids were found without `tool_result` blocks " +
				"immediately after: " + strings.Join(missing, ", ") + ". Each `tool_use` block must have a corresponding " +
				"`tool_result` block in the next message.")
		}
		open = mb.uses
		p.images += mb.images
		p.afterResults = role == "user" && len(mb.answered) > 0
		if role == "user" && strings.TrimSpace(mb.text) != "" {
			p.userText = mb.text
		}
	}
	return p, nil
}

// msgBlocks checks the content blocks of one message.
type msgBlocks struct {
	role, path string
	open       []string // the tool_use IDs of the previous message
	ts         *textStats

	text     string   // the text of the text blocks, joined by spaces
	others   int      // blocks other than text
	images   int      // images, those in tool results included
	uses     []string // the IDs of the tool_use blocks
	answered []string // the tool_use IDs answered by tool_result blocks
}

// addText records the text of a text block.
func (mb *msgBlocks) addText(text string) {
	if mb.text != "" {
		mb.text += " "
	}
	mb.text += text
	mb.ts.add(text)
}

// block checks the content block b found at path.
func (mb *msgBlocks) block(b gjson.Result, path string) *apiError {
	if !b.IsObject() {
		return errAnthropicType(path, "dictionary")
	}
	typ, e := requireString(b, path, "type")
	if e != nil {
		return e
	}
	if typ != "text" {
		mb.others++
	}
	switch typ {
	case "text":
		return mb.textBlock(b, path)
	case "image":
		return mb.image(b, path)
	case "tool_use":
		return mb.toolUse(b, path)
	case "tool_result":
		return mb.toolResult(b, path)
	case "thinking", "redacted_thinking":
		_, e := mb.roleBlock(b, path, typ, "assistant", "type", "type", "thinking", "signature", "data")
		return e
	}
	return errAnthropic(path + ".type: Input tag '" + typ + "' found using 'type' does not match any of the expected " +
		"tags: 'text', 'image', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'")
}

// textBlock checks a text block.
func (mb *msgBlocks) textBlock(b gjson.Result, path string) *apiError {
	if e := checkFields(b, path, "type", "text", "cache_control", "citations"); e != nil {
		return e
	}
	text, e := requireString(b, path, "text")
	if e != nil {
		return e
	}
	if text == "" {
		return errAnthropic("messages: text content blocks must be non-empty")
	}
	mb.addText(text)
	return nil
}

// imageMedia are the media types an image may have.
var imageMedia = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}

// sniffImage returns the media type the magic bytes of data announce, or
// "" when they announce none of imageMedia.
func sniffImage(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		return "image/jpeg"
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "image/gif"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "image/webp"
	}
	return ""
}

// image checks an image block, in base64 or by URL.
func (mb *msgBlocks) image(b gjson.Result, path string) *apiError {
	if e := checkFields(b, path, "type", "source", "cache_control"); e != nil {
		return e
	}
	src, e := requireObject(b, path, "source")
	if e != nil {
		return e
	}
	switch typ := src.Get("type").Str; typ {
	case "base64":
		at := path + ".source.base64"
		if e := checkFields(src, at, "type", "media_type", "data"); e != nil {
			return e
		}
		media, e := requireString(src, at, "media_type")
		if e != nil {
			return e
		}
		if !slices.Contains(imageMedia, media) {
			return errAnthropic(at + ".media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
		}
		data, e := requireString(src, at, "data")
		if e != nil {
			return e
		}
		raw, err := base64.StdEncoding.DecodeString(data)
		if err != nil || len(raw) == 0 {
			return errAnthropic(at + ".data: invalid base64 data")
		}
		if got := sniffImage(raw); got != "" && got != media {
			return errAnthropic(at + ": The image was specified using the " + media +
				" media type, but the image appears to be a " + got + " image")
		}
		mb.ts.hash = fnvString(mb.ts.hash, data)
	case "url":
		at := path + ".source.url"
		if e := checkFields(src, at, "type", "url"); e != nil {
			return e
		}
		u, e := requireString(src, at, "url")
		if e != nil {
			return e
		}
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return errAnthropic(at + ".url: Input should be a valid URL")
		}
		mb.ts.hash = fnvString(mb.ts.hash, u)
	default:
		return errAnthropic(path + ".source: Input tag '" + typ + "' found using 'type' does not match any of the " +
			"expected tags: 'base64', 'url'")
	}
	mb.images++
	return nil
}

// roleBlock checks that the block b of type typ, found at path, is in a
// message of role and has no other fields than fields, and returns its
// string field key.
func (mb *msgBlocks) roleBlock(b gjson.Result, path, typ, role, key string, fields ...string) (string, *apiError) {
	if mb.role != role {
		return "", errAnthropic(path + ": " + typ + " blocks may only appear in " + role + " messages")
	}
	if e := checkFields(b, path, fields...); e != nil {
		return "", e
	}
	return requireString(b, path, key)
}

// toolUse checks a tool_use block of an assistant message.
func (mb *msgBlocks) toolUse(b gjson.Result, path string) *apiError {
	id, e := mb.roleBlock(b, path, "tool_use", "assistant", "id", "type", "id", "name", "input", "cache_control")
	if e != nil {
		return e
	}
	if !validFunctionName(id) {
		return errAnthropic(path + ".id: String should match pattern '^[a-zA-Z0-9_-]+$'")
	}
	if slices.Contains(mb.uses, id) {
		return errAnthropic("messages: `tool_use` ids must be unique")
	}
	name, e := requireString(b, path, "name")
	if e != nil {
		return e
	}
	input, e := requireObject(b, path, "input")
	if e != nil {
		return e
	}
	mb.uses = append(mb.uses, id)
	mb.ts.addCall(name, input.Raw)
	return nil
}

// toolResult checks a tool_result block of a user message: it must answer
// a tool_use block of the previous message.
func (mb *msgBlocks) toolResult(b gjson.Result, path string) *apiError {
	id, e := mb.roleBlock(b, path, "tool_result", "user", "tool_use_id", "type", "tool_use_id", "content", "is_error", "cache_control")
	if e != nil {
		return e
	}
	if !slices.Contains(mb.open, id) {
		return errAnthropic(path + ": unexpected `tool_use_id` found in `tool_result` blocks: " + id +
			". Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
	}
	if ie := b.Get("is_error"); present(ie) && !ie.IsBool() {
		return errAnthropicType(path+".is_error", "boolean")
	}
	mb.answered = append(mb.answered, id)
	mb.ts.hash = fnvString(mb.ts.hash, id)
	content := b.Get("content")
	switch {
	case !present(content):
	case content.Type == gjson.String:
		mb.ts.add(content.Str)
	case content.IsArray():
		for j, part := range content.Array() {
			at := path + ".content." + itoa(j)
			switch part.Get("type").Str {
			case "text":
				if e := checkFields(part, at, "type", "text", "cache_control", "citations"); e != nil {
					return e
				}
				text, e := requireString(part, at, "text")
				if e != nil {
					return e
				}
				mb.ts.add(text)
			case "image":
				if e := mb.image(part, at); e != nil {
					return e
				}
			default:
				return errAnthropic(at + ".type: Input tag '" + part.Get("type").Str + "' found using 'type' does not " +
					"match any of the expected tags: 'text', 'image'")
			}
		}
	default:
		return errAnthropicType(path+".content", "list")
	}
	return nil
}

// checkSampling checks temperature, top_p and top_k.
func checkSampling(root gjson.Result) *apiError {
	if e := optNumber(root, "temperature", 0, 1); e != nil {
		return e
	}
	if e := optNumber(root, "top_p", 0, 1); e != nil {
		return e
	}
	if k := root.Get("top_k"); present(k) {
		if _, e := anthropicInt(k, "top_k", 0); e != nil {
			return e
		}
	}
	return nil
}

// stopSequences returns the stop sequences of a request.
func stopSequences(r gjson.Result) ([]string, *apiError) {
	if !present(r) {
		return nil, nil
	}
	if !r.IsArray() {
		return nil, errAnthropicType("stop_sequences", "list")
	}
	var out []string
	for j, v := range r.Array() {
		if v.Type != gjson.String {
			return nil, errAnthropicType("stop_sequences."+itoa(j), "string")
		}
		if strings.TrimSpace(v.Str) == "" {
			return nil, errAnthropic("stop_sequences: each stop sequence must contain non-whitespace")
		}
		out = append(out, v.Str)
	}
	return out, nil
}

// checkMetadata checks metadata, which only holds user_id.
func checkMetadata(md gjson.Result) *apiError {
	if !present(md) {
		return nil
	}
	if !md.IsObject() {
		return errAnthropicType("metadata", "dictionary")
	}
	if e := checkFields(md, "metadata", "user_id"); e != nil {
		return e
	}
	switch u := md.Get("user_id"); {
	case !present(u):
	case u.Type != gjson.String:
		return errAnthropicType("metadata.user_id", "string")
	case len(u.Str) > 256:
		return errAnthropic("metadata.user_id: String should have at most 256 characters")
	}
	return nil
}

// checkThinking checks the extended thinking configuration. The fake
// accepts it but does not think.
func checkThinking(th gjson.Result, maxTokens int64) *apiError {
	if !present(th) {
		return nil
	}
	if !th.IsObject() {
		return errAnthropicType("thinking", "dictionary")
	}
	switch typ := th.Get("type").Str; typ {
	case "disabled":
		return checkFields(th, "thinking.disabled", "type")
	case "enabled":
		if e := checkFields(th, "thinking.enabled", "type", "budget_tokens"); e != nil {
			return e
		}
		bt := th.Get("budget_tokens")
		if !bt.Exists() {
			return errAnthropic("thinking.enabled.budget_tokens: Field required")
		}
		budget, e := anthropicInt(bt, "thinking.enabled.budget_tokens", 1024)
		if e != nil {
			return e
		}
		if budget >= maxTokens {
			return errAnthropic("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our " +
				"documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")
		}
		return nil
	default:
		return errAnthropic("thinking: Input tag '" + typ + "' found using 'type' does not match any of the expected " +
			"tags: 'disabled', 'enabled'")
	}
}

// parseAnthropicTools validates tools and tool_choice. tool_choice "any"
// is the required mode of toolSpec, "tool" the named one, and
// disable_parallel_tool_use the converse of parallel_tool_calls.
func parseAnthropicTools(tools, choice gjson.Result) (toolSpec, *apiError) {
	ts := toolSpec{mode: toolAuto, parallel: true, raw: tools.Raw}
	if !present(tools) {
		if present(choice) {
			return ts, errAnthropic("tool_choice may only be specified while providing tools.")
		}
		return ts, nil
	}
	if !tools.IsArray() {
		return ts, errAnthropicType("tools", "list")
	}
	for i, t := range tools.Array() {
		path := "tools." + itoa(i)
		if !t.IsObject() {
			return ts, errAnthropicType(path, "dictionary")
		}
		if typ := t.Get("type"); present(typ) && typ.Str != "custom" {
			return ts, errAnthropic(path + ".type: Input should be 'custom'")
		}
		path += ".custom"
		if e := checkFields(t, path, "type", "name", "description", "input_schema", "cache_control"); e != nil {
			return ts, e
		}
		name, e := requireString(t, path, "name")
		if e != nil {
			return ts, e
		}
		if len(name) > maxFunctionName || !validFunctionName(name) {
			return ts, errAnthropic(path + ".name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'")
		}
		if ts.find(name) >= 0 {
			return ts, errAnthropic("tools: Tool names must be unique.")
		}
		desc := t.Get("description")
		if present(desc) && desc.Type != gjson.String {
			return ts, errAnthropicType(path+".description", "string")
		}
		schema, e := requireObject(t, path, "input_schema")
		if e != nil {
			return ts, e
		}
		if schema.Get("type").Str != "object" {
			return ts, errAnthropic(path + ".input_schema.type: Input should be 'object'")
		}
		ts.defs = append(ts.defs, toolDef{
			name:      name,
			params:    schema,
			nameWords: significantWords(name),
			descWords: significantWords(desc.Str),
		})
	}
	if !present(choice) {
		return ts, nil
	}
	if !choice.IsObject() {
		return ts, errAnthropicType("tool_choice", "dictionary")
	}
	typ := choice.Get("type").Str
	at := "tool_choice." + typ
	allowed := []string{"type", "disable_parallel_tool_use"}
	switch typ {
	case "auto":
	case "any":
		ts.mode = toolRequired
	case "none":
		ts.mode = toolNone
		allowed = allowed[:1]
	case "tool":
		ts.mode = toolNamed
		allowed = append(allowed, "name")
	default:
		return ts, errAnthropic("tool_choice: Input tag '" + typ + "' found using 'type' does not match any of the " +
			"expected tags: 'auto', 'any', 'tool', 'none'")
	}
	if e := checkFields(choice, at, allowed...); e != nil {
		return ts, e
	}
	if typ == "tool" {
		name, e := requireString(choice, at, "name")
		if e != nil {
			return ts, e
		}
		if ts.named = ts.find(name); ts.named < 0 {
			return ts, errAnthropic("Tool '" + name + "' not found in provided tools")
		}
	}
	if dp := choice.Get("disable_parallel_tool_use"); present(dp) {
		if !dp.IsBool() {
			return ts, errAnthropicType(at+".disable_parallel_tool_use", "boolean")
		}
		ts.parallel = !dp.Bool()
	}
	return ts, nil
}

// appendUsage appends the usage object of m with output tokens.
func (m *anthMsg) appendUsage(b []byte, output int) []byte {
	b = append(b, `{"input_tokens":`...)
	b = appendInt(b, int64(m.inputTokens))
	b = append(b, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,`+
		`"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":`...)
	b = appendInt(b, int64(output))
	return append(b, `,"service_tier":"standard"}`...)
}

// appendHead appends the fields a message object starts with, up to and
// including the opening bracket of content.
func (m *anthMsg) appendHead(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, m.id)
	b = append(b, `,"type":"message","role":"assistant","model":`...)
	b = appendJSONString(b, m.model)
	return append(b, `,"content":[`...)
}

// appendStop appends the stop_reason and stop_sequence members, without
// the leading comma; a nil reason is null.
func appendStop(b []byte, reason, sequence string) []byte {
	b = append(b, `"stop_reason":`...)
	b = appendJSONStringOrNull(b, reason)
	b = append(b, `,"stop_sequence":`...)
	return appendJSONStringOrNull(b, sequence)
}

// appendJSON appends the JSON of a non-streamed answer.
func (m *anthMsg) appendJSON(b []byte) []byte {
	b = m.appendHead(b)
	for i, blk := range m.blocks {
		if i > 0 {
			b = append(b, ',')
		}
		if blk.call != nil {
			b = appendToolUse(b, blk.call, blk.call.args)
			continue
		}
		b = append(b, `{"type":"text","text":`...)
		b = appendJSONPieces(b, blk.pieces)
		b = append(b, '}')
	}
	b = append(b, "],"...)
	b = appendStop(b, m.stopReason, m.stopSequence)
	b = append(b, `,"usage":`...)
	b = m.appendUsage(b, m.outputTokens)
	return append(b, '}')
}

// appendToolUse appends a tool_use block of c with input.
func appendToolUse(b []byte, c *toolCall, input string) []byte {
	b = append(b, `{"type":"tool_use","id":`...)
	b = appendJSONString(b, c.id)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, c.name)
	b = append(b, `,"input":`...)
	b = append(b, input...)
	return append(b, '}')
}

// anthropicModels serves GET /v1/models for Anthropic: newest first, paged
// with limit, after_id and before_id (a missing before_id gives an empty
// page).
func (s *Server) anthropicModels(ctx *fasthttp.RequestCtx, c *call) {
	ids := s.anthModelIDs
	args := ctx.QueryArgs()
	limit := 20
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > 1000 {
			s.writeError(ctx, c, *errAnthropic("limit: Input should be greater than or equal to 1 and less than or equal to 1000"))
			return
		}
		limit = n
	}
	lo, hi := 0, len(ids)
	if after := string(args.Peek("after_id")); after != "" {
		lo = slices.Index(ids, after) + 1
	}
	backward := false
	if before := string(args.Peek("before_id")); before != "" {
		backward = true
		hi = max(slices.Index(ids, before), 0)
		lo = max(lo, hi-limit)
	}
	lo = min(lo, hi)
	page := ids[lo:min(lo+limit, hi)]
	hasMore := lo+len(page) < hi // has_more looks the way the page was turned
	if backward {
		hasMore = lo > 0
	}
	bp := getBuf()
	b := append(*bp, `{"data":[`...)
	for i, id := range page {
		if i > 0 {
			b = append(b, ',')
		}
		b = s.appendAnthropicModel(b, id)
	}
	b = append(b, `],"has_more":`...)
	b = strconv.AppendBool(b, hasMore)
	b = append(b, `,"first_id":`...)
	last := ""
	if len(page) > 0 {
		b = appendJSONString(b, page[0])
		last = page[len(page)-1]
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"last_id":`...)
	b = appendJSONStringOrNull(b, last)
	*bp = append(b, '}') //nolint:gocritic // appendAssign: b grew from *bp; the pooled buffer keeps the result
	s.writeJSON(ctx, c, *bp)
	putBuf(bp)
}

// anthropicModel serves GET /v1/models/{id} for Anthropic.
func (s *Server) anthropicModel(ctx *fasthttp.RequestCtx, c *call) {
	id := strings.TrimPrefix(string(ctx.Path()), "/v1/models/")
	if _, ok := s.anthModels[id]; !ok {
		s.writeError(ctx, c, apiError{status: fasthttp.StatusNotFound, message: "model: " + id, typ: "not_found_error"})
		return
	}
	bp := getBuf()
	*bp = s.appendAnthropicModel(*bp, id)
	s.writeJSON(ctx, c, *bp)
	putBuf(bp)
}

// appendAnthropicModel appends the model object of id.
func (s *Server) appendAnthropicModel(b []byte, id string) []byte {
	m := s.anthModels[id]
	b = append(b, `{"type":"model","id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"display_name":`...)
	b = appendJSONString(b, m.display)
	b = append(b, `,"created_at":`...)
	b = appendJSONString(b, m.createdAt)
	return append(b, '}')
}
