package provider

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/internal/jsonfield"
)

// Response turns a Messages API answer into a chat completion, its model
// list into OpenAI's, and its errors into OpenAI's envelope. Its rate-limit
// headers become OpenAI's x-ratelimit-* and, on a platform key, its
// organisation OpenAI's OpenAI-Organization (see anthropicHeaders); its
// own headers are dropped.
func (a *anthropic) Response(resp *fasthttp.Response, c *Call) error {
	anthropicHeaders(&resp.Header, now(), c.Key != nil && c.Key.Source() == billing.PlatformKey)
	status := resp.StatusCode()
	if status == 529 {
		// Anthropic's "overloaded"; OpenAI clients know 503.
		resp.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	if isEventStream(resp) {
		return nil
	}
	body, streamed, err := readBody(resp)
	if err != nil {
		return err
	}
	var out []byte
	switch {
	case status >= 400:
		out = anthropicError(body, status).appendEnvelope(nil)
	case string(c.Suffix) == "/models":
		out = anthropicModels(body)
	default:
		out, err = anthropicCompletion(body)
		if err != nil {
			e := openAIError{Type: "server_error", Code: "upstream_invalid_response",
				Message: "veil could not read the provider's answer: " + err.Error()}
			out = e.appendEnvelope(nil)
			resp.SetStatusCode(fasthttp.StatusBadGateway)
		}
	}
	setBody(resp, streamed, out)
	resp.Header.SetContentType("application/json")
	return nil
}

// anthropicHeaders maps Anthropic's rate-limit headers to OpenAI's and
// drops its own. With platform, the answer's anthropic-organization-id
// (the organisation of the key, sent on every answer) becomes
// OpenAI-Organization, as OpenAI names its own: the proxy reads it as the
// account whose rate limits the answer reports, then drops it before the
// app sees the answer, as it drops OpenAI's. On a supplier's own key it is
// dropped here with Anthropic's other headers, as it always was.
func anthropicHeaders(h *fasthttp.ResponseHeader, now time.Time, platform bool) {
	if platform {
		if v := h.Peek("Anthropic-Organization-Id"); len(v) > 0 {
			h.SetBytesV("Openai-Organization", v)
		}
	}
	for _, m := range [...]struct{ from, to string }{
		{"Anthropic-Ratelimit-Requests-Limit", "X-Ratelimit-Limit-Requests"},
		{"Anthropic-Ratelimit-Requests-Remaining", "X-Ratelimit-Remaining-Requests"},
		{"Anthropic-Ratelimit-Tokens-Limit", "X-Ratelimit-Limit-Tokens"},
		{"Anthropic-Ratelimit-Tokens-Remaining", "X-Ratelimit-Remaining-Tokens"},
	} {
		if v := h.Peek(m.from); len(v) > 0 {
			h.SetBytesV(m.to, v)
		}
	}
	for _, m := range [...]struct{ from, to string }{
		{"Anthropic-Ratelimit-Requests-Reset", "X-Ratelimit-Reset-Requests"},
		{"Anthropic-Ratelimit-Tokens-Reset", "X-Ratelimit-Reset-Tokens"},
	} {
		if t, err := time.Parse(time.RFC3339, string(h.Peek(m.from))); err == nil {
			h.Set(m.to, max(t.Sub(now), 0).Round(time.Millisecond).String())
		}
	}
	dropHeaders(h, "Anthropic-", "Request-Id", "X-Robots-Tag", "Cf-")
}

// anthropicErrorTypes maps Anthropic's error types to OpenAI's type and
// code.
var anthropicErrorTypes = map[string][2]string{
	"invalid_request_error": {"invalid_request_error", ""},
	"authentication_error":  {"authentication_error", "invalid_api_key"},
	"permission_error":      {"permission_error", ""},
	"not_found_error":       {"invalid_request_error", "not_found"},
	"request_too_large":     {"invalid_request_error", "request_too_large"},
	"rate_limit_error":      {"rate_limit_error", "rate_limit_exceeded"},
	"api_error":             {"server_error", "server_error"},
	"overloaded_error":      {"server_error", "overloaded"},
}

// anthropicError reads {"type":"error","error":{"type","message"}}.
func anthropicError(body []byte, status int) *openAIError {
	obj, _ := errorObject(body)
	return fromAnthropic(fieldString(obj, "type"), fieldString(obj, "message"), status)
}

// fromAnthropic maps an Anthropic error type and message, answered with
// status, to OpenAI's error.
func fromAnthropic(typ, msg string, status int) *openAIError {
	e := &openAIError{Type: typeForStatus(status), Code: codeForStatus(status), Message: "provider answered " + strconv.Itoa(status)}
	if msg != "" {
		e.Message = msg
	}
	if tc, ok := anthropicErrorTypes[typ]; ok {
		e.Type = tc[0]
		if tc[1] != "" {
			e.Code = tc[1]
		}
	}
	if status == fasthttp.StatusNotFound && strings.HasPrefix(e.Message, "model:") {
		e.Code, e.Param = "model_not_found", "model"
	}
	return e
}

// messagesResponse is a Messages API answer.
type messagesResponse struct {
	ID           string           `json:"id"`
	Model        string           `json:"model"`
	Content      []responseBlock  `json:"content"`
	StopReason   string           `json:"stop_reason"`
	Usage        anthropicUsage   `json:"usage"`
	StopSequence *json.RawMessage `json:"stop_sequence"`
}

type responseBlock struct {
	Type  string          `json:"type"`
	Text  string          `json:"text"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

type anthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// prompt is the OpenAI prompt_tokens: Anthropic counts cached and
// cache-writing input apart from input_tokens.
func (u *anthropicUsage) prompt() int64 {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

// boundTokens bounds each count a provider reports to [0, billing.MaxTokens],
// so that a broken or hostile answer's absurd numbers neither overflow nor
// reach the client.
func boundTokens(n int64) int64 { return min(max(n, 0), billing.MaxTokens) }

// appendUsage appends OpenAI's usage object, each count bounded by
// boundTokens.
func (u *anthropicUsage) appendUsage(dst []byte) []byte {
	u = &anthropicUsage{InputTokens: boundTokens(u.InputTokens), OutputTokens: boundTokens(u.OutputTokens),
		CacheCreationInputTokens: boundTokens(u.CacheCreationInputTokens), CacheReadInputTokens: boundTokens(u.CacheReadInputTokens)}
	p := u.prompt()
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, p, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, u.OutputTokens, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, p+u.OutputTokens, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, u.CacheReadInputTokens, 10)
	return append(dst, `},"completion_tokens_details":{"reasoning_tokens":0}}`...)
}

// finishReason maps a stop reason to OpenAI's finish_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence, pause_turn
}

// completionID is the chat completion id of a message id.
func appendCompletionID(dst []byte, msgID string) []byte {
	return append(append(dst, "chatcmpl-"...), strings.TrimPrefix(msgID, "msg_")...)
}

// anthropicCompletion turns a message into a chat completion.
func anthropicCompletion(body []byte) ([]byte, error) {
	var m messagesResponse
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	var text strings.Builder
	var calls []responseBlock
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			calls = append(calls, b)
		}
	}
	out := make([]byte, 0, 256+text.Len())
	out = append(out, `{"id":`...)
	out = jsonfield.AppendString(out, string(appendCompletionID(nil, m.ID)))
	out = append(out, `,"object":"chat.completion","created":`...)
	out = strconv.AppendInt(out, now().Unix(), 10)
	out = append(out, `,"model":`...)
	out = jsonfield.AppendString(out, m.Model)
	out = append(out, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	if text.Len() == 0 && len(calls) > 0 {
		out = append(out, "null"...)
	} else {
		out = jsonfield.AppendString(out, text.String())
	}
	out = append(out, `,"refusal":null`...)
	if len(calls) > 0 {
		out = append(out, `,"tool_calls":[`...)
		for i, c := range calls {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendToolCall(out, -1, c.ID, c.Name, arguments(c.Input))
		}
		out = append(out, ']')
	}
	out = append(out, `},"logprobs":null,"finish_reason":`...)
	out = jsonfield.AppendString(out, finishReason(m.StopReason))
	out = append(out, `}],"usage":`...)
	out = m.Usage.appendUsage(out)
	return append(out, '}'), nil
}

// arguments is a tool call's input as OpenAI's arguments string.
func arguments(input json.RawMessage) string {
	if len(input) == 0 {
		return "{}"
	}
	return string(compact(input))
}

// appendToolCall appends one OpenAI tool call; index < 0 leaves the index
// out, as non-streamed answers do.
func appendToolCall(dst []byte, index int, id, name, args string) []byte {
	dst = append(dst, '{')
	if index >= 0 {
		dst = append(dst, `"index":`...)
		dst = strconv.AppendInt(dst, int64(index), 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"id":`...)
	dst = jsonfield.AppendString(dst, id)
	dst = append(dst, `,"type":"function","function":{"name":`...)
	dst = jsonfield.AppendString(dst, name)
	dst = append(dst, `,"arguments":`...)
	dst = jsonfield.AppendString(dst, args)
	return append(dst, "}}"...)
}

// anthropicModels turns Anthropic's model list into OpenAI's.
func anthropicModels(body []byte) []byte {
	var list struct {
		Data []struct {
			ID        string    `json:"id"`
			CreatedAt time.Time `json:"created_at"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &list)
	out := append(make([]byte, 0, 64+64*len(list.Data)), `{"object":"list","data":[`...)
	for i, m := range list.Data {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"id":`...)
		out = jsonfield.AppendString(out, m.ID)
		out = append(out, `,"object":"model","created":`...)
		out = strconv.AppendInt(out, max(m.CreatedAt.Unix(), 0), 10)
		out = append(out, `,"owned_by":"anthropic"}`...)
	}
	return append(out, "]}"...)
}
