package provider

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/config"
)

// anthropic speaks Anthropic's Messages API: chat completions are
// translated to POST /messages and its answers, streamed or not, back to
// chat completions; the key goes in x-api-key with the anthropic-version
// header. Fields are mapped, dropped or refused as anthropicFields says.
type anthropic struct {
	version   string
	maxTokens int
}

var _ Translator = (*anthropic)(nil)

func newAnthropic(cfg *config.Provider) *anthropic {
	a := &anthropic{version: config.DefaultAnthropicVersion, maxTokens: config.DefaultAnthropicMaxTokens}
	if cfg.Anthropic != nil {
		if cfg.Anthropic.Version != "" {
			a.version = cfg.Anthropic.Version
		}
		if cfg.Anthropic.MaxTokens > 0 {
			a.maxTokens = cfg.Anthropic.MaxTokens
		}
	}
	return a
}

// Request translates a chat completion into a Messages API request; a
// model list request goes to Anthropic's model list.
func (a *anthropic) Request(dst *fasthttp.Request, p *Provider, c *Call) error {
	switch string(c.Suffix) {
	case "/chat/completions":
		if !dst.Header.IsPost() {
			break
		}
		body, err := a.translate(dst.Body(), c.Model)
		if err != nil {
			return err
		}
		dst.SetBodyRaw(body)
		dst.Header.SetContentType("application/json")
		p.setURI(dst, []byte("/messages"), nil)
		a.credentials(dst, c)
		return nil
	case "/models":
		if dst.Header.IsGet() {
			p.setURI(dst, c.Suffix, c.Query)
			a.credentials(dst, c)
			return nil
		}
	}
	return &RequestError{Status: fasthttp.StatusBadRequest, Code: "unsupported_endpoint",
		Message: "veil: provider " + p.Name() + " speaks Anthropic's Messages API, which serves chat completions only, not " +
			string(dst.Header.Method()) + " /v1" + string(c.Suffix)}
}

func (a *anthropic) credentials(dst *fasthttp.Request, c *Call) {
	dst.Header.Del(fasthttp.HeaderAuthorization)
	dst.Header.Del("OpenAI-Organization")
	dst.Header.Del("OpenAI-Project")
	dst.Header.Del("OpenAI-Beta")
	dst.Header.Set("x-api-key", c.Key.Secret().Reveal())
	dst.Header.Set("anthropic-version", a.version)
}

// How each top-level field of an OpenAI chat completion request fares on
// the way to the Messages API. Fields not listed are refused, since veil
// cannot know what dropping them would change.
const (
	fieldMapped  = iota // translated into the Messages API's own field
	fieldDropped        // removed: it tunes sampling, storage or billing, not the answer's shape
)

var anthropicFields = map[string]int{
	"model": fieldMapped, "messages": fieldMapped, "max_tokens": fieldMapped, "max_completion_tokens": fieldMapped,
	"temperature": fieldMapped, "top_p": fieldMapped, "stop": fieldMapped, "stream": fieldMapped,
	"tools": fieldMapped, "tool_choice": fieldMapped, "parallel_tool_calls": fieldMapped, "user": fieldMapped,
	"n": fieldMapped, "response_format": fieldMapped, "logprobs": fieldMapped, "logit_bias": fieldMapped,
	"top_logprobs": fieldMapped, "modalities": fieldMapped,
	"stream_options": fieldDropped, "presence_penalty": fieldDropped, "frequency_penalty": fieldDropped,
	"seed": fieldDropped, "store": fieldDropped, "metadata": fieldDropped, "service_tier": fieldDropped,
	"prediction": fieldDropped, "reasoning_effort": fieldDropped, "verbosity": fieldDropped,
	"prompt_cache_key": fieldDropped, "safety_identifier": fieldDropped,
}

// chatRequest is the part of an OpenAI chat completion request that is
// translated.
type chatRequest struct {
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	Tools               []chatTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	User                string          `json:"user"`
	N                   *int64          `json:"n"`
	ResponseFormat      *struct {
		Type string `json:"type"`
	} `json:"response_format"`
	Logprobs    bool            `json:"logprobs"`
	TopLogprobs *int64          `json:"top_logprobs"`
	LogitBias   map[string]any  `json:"logit_bias"`
	Modalities  []string        `json:"modalities"`
	Metadata    json.RawMessage `json:"metadata"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []chatToolCall  `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type chatToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

type chatPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Refusal  string `json:"refusal"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// The Messages API request.
type messagesRequest struct {
	Model         string           `json:"model"`
	System        []block          `json:"system,omitempty"`
	Messages      []message        `json:"messages"`
	MaxTokens     int64            `json:"max_tokens"`
	Temperature   *float64         `json:"temperature,omitempty"`
	TopP          *float64         `json:"top_p,omitempty"`
	StopSequences []string         `json:"stop_sequences,omitempty"`
	Stream        bool             `json:"stream,omitempty"`
	Tools         []messagesTool   `json:"tools,omitempty"`
	ToolChoice    *toolChoice      `json:"tool_choice,omitempty"`
	Metadata      *messageMetadata `json:"metadata,omitempty"`
}

type messageMetadata struct {
	UserID string `json:"user_id"`
}

type message struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *imageSource    `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   []block         `json:"content,omitempty"`
}

type imageSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type messagesTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// translate turns an OpenAI chat completion body into a Messages API body
// for model.
func (a *anthropic) translate(body []byte, model []byte) ([]byte, error) {
	r, e := parseChatRequest(body)
	if e != nil {
		return nil, e
	}
	out, e := a.messagesFor(r, model)
	if e != nil {
		return nil, e
	}
	return encodeMessagesRequest(out)
}

// parseChatRequest reads a chat completion body, refusing the fields the
// Messages API has no place for and the values it cannot honour.
func parseChatRequest(body []byte) (*chatRequest, *RequestError) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, &RequestError{Status: fasthttp.StatusBadRequest, Code: "invalid_json",
			Message: "veil could not parse the JSON body of the request: " + err.Error()}
	}
	for name := range fields {
		if _, ok := anthropicFields[name]; !ok {
			return nil, unsupported(name, "veil cannot send `"+name+"` to Anthropic's Messages API, which has no such parameter; "+
				"remove it or route the call to an OpenAI provider")
		}
	}
	var r chatRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, &RequestError{Status: fasthttp.StatusBadRequest, Code: "invalid_type",
			Message: "veil could not read the request for Anthropic: " + err.Error()}
	}
	if e := refuseAnswerChanging(&r); e != nil {
		return nil, e
	}
	return &r, nil
}

// messagesFor maps a chat completion request onto the Messages API's
// fields, for model.
func (a *anthropic) messagesFor(r *chatRequest, model []byte) (*messagesRequest, *RequestError) {
	out := &messagesRequest{Model: string(model), Stream: r.Stream, TopP: r.TopP, Temperature: anthropicTemperature(r.Temperature)}
	var e *RequestError
	if out.MaxTokens, e = a.maxTokensFor(r); e != nil {
		return nil, e
	}
	if out.StopSequences, e = stopSequences(r.Stop); e != nil {
		return nil, e
	}
	if r.User != "" {
		out.Metadata = &messageMetadata{UserID: r.User}
	}
	if out.System, out.Messages, e = translateMessages(r.Messages); e != nil {
		return nil, e
	}
	if out.Tools, e = translateTools(r.Tools); e != nil {
		return nil, e
	}
	if out.ToolChoice, e = toolChoiceFor(r, len(out.Tools) > 0); e != nil {
		return nil, e
	}
	return out, nil
}

// maxTokensFor is the call's max_completion_tokens, else its max_tokens,
// else the provider's default; the Messages API needs at least 1.
func (a *anthropic) maxTokensFor(r *chatRequest) (int64, *RequestError) {
	n := int64(a.maxTokens)
	switch {
	case r.MaxCompletionTokens != nil:
		n = *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		n = *r.MaxTokens
	}
	if n <= 0 {
		return 0, &RequestError{Status: fasthttp.StatusBadRequest, Code: "integer_below_min_value", Param: "max_tokens",
			Message: "Invalid 'max_tokens': integer below minimum value; expected a value >= 1."}
	}
	return n, nil
}

// anthropicTemperature maps OpenAI's temperature, 0 to 2, onto Anthropic's
// range, 0 to 1: hotter is capped.
func anthropicTemperature(t *float64) *float64 {
	if t == nil {
		return nil
	}
	v := min(max(*t, 0), 1)
	return &v
}

// translateTools turns function tools into Messages API tools; a function
// without parameters takes an empty object.
func translateTools(tools []chatTool) ([]messagesTool, *RequestError) {
	var out []messagesTool
	for i, t := range tools {
		if t.Type != "" && t.Type != "function" {
			return nil, unsupported("tools["+strconv.Itoa(i)+"].type", "veil can send only function tools to Anthropic, not `"+t.Type+"`")
		}
		schema := t.Function.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out = append(out, messagesTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	return out, nil
}

// toolChoiceFor is the Messages API's tool_choice for the call: its
// tool_choice translated, with parallel tool use turned off when
// parallel_tool_calls is false, and none at all without tools, since
// Anthropic refuses a choice without tools where OpenAI ignores it.
func toolChoiceFor(r *chatRequest, haveTools bool) (*toolChoice, *RequestError) {
	choice, e := translateToolChoice(r.ToolChoice)
	if e != nil || !haveTools {
		return nil, e
	}
	if r.ParallelToolCalls != nil && !*r.ParallelToolCalls {
		if choice == nil {
			choice = &toolChoice{Type: "auto"}
		}
		if choice.Type != "none" {
			choice.DisableParallelToolUse = true
		}
	}
	return choice, nil
}

// encodeMessagesRequest writes the Messages API body, keeping prompts'
// & and < as the client sent them.
func encodeMessagesRequest(out *messagesRequest) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, &RequestError{Status: fasthttp.StatusBadRequest, Code: "invalid_value", Message: "veil could not build the request for Anthropic: " + err.Error()}
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// refuseAnswerChanging refuses the parameters the Messages API cannot
// honour and whose loss would change the answer.
func refuseAnswerChanging(r *chatRequest) *RequestError {
	switch {
	case r.N != nil && *r.N != 1:
		return unsupported("n", "veil cannot ask Anthropic for more than one choice (`n` must be 1)")
	case r.Logprobs || r.TopLogprobs != nil:
		return unsupported("logprobs", "Anthropic's Messages API does not return log probabilities")
	case len(r.LogitBias) > 0:
		return unsupported("logit_bias", "Anthropic's Messages API has no logit bias")
	case r.ResponseFormat != nil && r.ResponseFormat.Type != "" && r.ResponseFormat.Type != "text":
		return unsupported("response_format", "veil cannot ask Anthropic for response_format `"+r.ResponseFormat.Type+
			"`; describe the JSON in the prompt or route the call to an OpenAI provider")
	}
	for _, m := range r.Modalities {
		if m != "text" {
			return unsupported("modalities", "Anthropic's Messages API answers only in text, not `"+m+"`")
		}
	}
	return nil
}

func stopSequences(raw json.RawMessage) ([]string, *RequestError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, &RequestError{Status: fasthttp.StatusBadRequest, Code: "invalid_type", Param: "stop",
			Message: "Invalid type for 'stop': expected a string or an array of strings."}
	}
	return many, nil
}

func translateToolChoice(raw json.RawMessage) (*toolChoice, *RequestError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto":
			return &toolChoice{Type: "auto"}, nil
		case "none":
			return &toolChoice{Type: "none"}, nil
		case "required":
			return &toolChoice{Type: "any"}, nil
		}
		return nil, unsupported("tool_choice", "unknown tool_choice `"+s+"`")
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &named); err != nil || named.Function.Name == "" {
		return nil, unsupported("tool_choice", "veil can send Anthropic only a tool_choice of auto, none, required or one named function")
	}
	return &toolChoice{Type: "tool", Name: named.Function.Name}, nil
}

// translateMessages lifts system and developer messages into the system
// prompt, turns tool results into user turns and merges consecutive turns
// of one role, as the Messages API wants them.
func translateMessages(in []chatMessage) ([]block, []message, *RequestError) {
	var system []block
	var out []message
	add := func(role string, blocks ...block) {
		if len(blocks) == 0 {
			return
		}
		if n := len(out); n > 0 && out[n-1].Role == role {
			out[n-1].Content = append(out[n-1].Content, blocks...)
			return
		}
		out = append(out, message{Role: role, Content: blocks})
	}
	for i, m := range in {
		param := "messages[" + strconv.Itoa(i) + "]"
		switch m.Role {
		case "system", "developer":
			parts, err := contentBlocks(m.Content, param, false)
			if err != nil {
				return nil, nil, err
			}
			system = append(system, parts...)
		case "user":
			parts, err := contentBlocks(m.Content, param, true)
			if err != nil {
				return nil, nil, err
			}
			add("user", parts...)
		case "assistant":
			parts, err := contentBlocks(m.Content, param, false)
			if err != nil {
				return nil, nil, err
			}
			for j, tc := range m.ToolCalls {
				input := json.RawMessage(tc.Function.Arguments)
				if strings.TrimSpace(tc.Function.Arguments) == "" {
					input = json.RawMessage(`{}`)
				}
				var obj map[string]json.RawMessage
				if json.Unmarshal(input, &obj) != nil {
					return nil, nil, &RequestError{Status: fasthttp.StatusBadRequest, Code: "invalid_value",
						Param:   param + ".tool_calls[" + strconv.Itoa(j) + "].function.arguments",
						Message: "veil can send Anthropic only tool call arguments that are a JSON object"}
				}
				parts = append(parts, block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: compact(input)})
			}
			add("assistant", parts...)
		case "tool":
			parts, err := contentBlocks(m.Content, param, false)
			if err != nil {
				return nil, nil, err
			}
			add("user", block{Type: "tool_result", ToolUseID: m.ToolCallID, Content: parts})
		default:
			return nil, nil, unsupported(param+".role", "veil cannot send a `"+m.Role+"` message to Anthropic; use tools and tool messages")
		}
	}
	if len(out) == 0 {
		return nil, nil, &RequestError{Status: fasthttp.StatusBadRequest, Code: "invalid_value", Param: "messages",
			Message: "veil needs at least one user message to call Anthropic"}
	}
	if out[0].Role != "user" {
		// The Messages API starts with the user; an answer the client
		// put first becomes context after an empty turn.
		out = append([]message{{Role: "user", Content: []block{{Type: "text", Text: "(continue)"}}}}, out...)
	}
	return system, out, nil
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// contentBlocks turns a message's content, a string or an array of parts,
// into text and (for user messages) image blocks. Empty text is left out,
// since the Messages API refuses it.
func contentBlocks(raw json.RawMessage, param string, images bool) ([]block, *RequestError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []block{{Type: "text", Text: s}}, nil
	}
	var parts []chatPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, &RequestError{Status: fasthttp.StatusBadRequest, Code: "invalid_type", Param: param + ".content",
			Message: "Invalid type for '" + param + ".content': expected a string or an array of content parts."}
	}
	var out []block
	for j, p := range parts {
		pp := param + ".content[" + strconv.Itoa(j) + "]"
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, block{Type: "text", Text: p.Text})
			}
		case "refusal":
			if p.Refusal != "" {
				out = append(out, block{Type: "text", Text: p.Refusal})
			}
		case "image_url":
			if !images || p.ImageURL == nil {
				return nil, unsupported(pp, "veil can send Anthropic images only in user messages")
			}
			src, err := imageFrom(p.ImageURL.URL, pp)
			if err != nil {
				return nil, err
			}
			out = append(out, block{Type: "image", Source: src})
		default:
			return nil, unsupported(pp+".type", "veil cannot send content of type `"+p.Type+"` to Anthropic")
		}
	}
	return out, nil
}

// imageMediaTypes are the image types the Messages API accepts.
var imageMediaTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// imageFrom turns an image_url (a data: URL or an http(s) URL) into an
// image source.
func imageFrom(url, param string) (*imageSource, *RequestError) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		media, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 || !imageMediaTypes[media] {
			return nil, unsupported(param+".image_url.url", "veil can send Anthropic base64 data URLs of JPEG, PNG, GIF or WebP images only")
		}
		if _, err := base64.StdEncoding.DecodeString(data); err != nil {
			return nil, &RequestError{Status: fasthttp.StatusBadRequest, Code: "invalid_image_url", Param: param + ".image_url.url",
				Message: "the image's data URL is not valid base64"}
		}
		return &imageSource{Type: "base64", MediaType: media, Data: data}, nil
	}
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return &imageSource{Type: "url", URL: url}, nil
	}
	return nil, unsupported(param+".image_url.url", "an image must be an http(s) URL or a base64 data URL")
}
