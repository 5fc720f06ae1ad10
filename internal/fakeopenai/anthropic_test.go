package fakeopenai

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// anthropicAuth are the headers an Anthropic client sends, replacing the
// bearer key of do.
var anthropicAuth = []string{"Authorization", "", "X-Api-Key", testKey, "Anthropic-Version", "2023-06-01"}

// postMessages posts body to /v1/messages the way an Anthropic client does;
// header adds to or overrides its headers as for do.
func postMessages(t testing.TB, hc *http.Client, s *Server, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return do(t, hc, http.MethodPost, "http://"+s.Addr()+"/v1/messages", body, append(anthropicAuth[:len(anthropicAuth):len(anthropicAuth)], header...)...)
}

// anthMessage is a non-streamed Messages API answer.
type anthMessage struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Role    string `json:"role"`
	Model   string `json:"model"`
	Content []struct {
		Type  string          `json:"type"`
		Text  string          `json:"text"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	} `json:"content"`
	StopReason   *string `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Usage        struct {
		InputTokens          int  `json:"input_tokens"`
		OutputTokens         int  `json:"output_tokens"`
		CacheReadInputTokens *int `json:"cache_read_input_tokens"`
	} `json:"usage"`
}

// decodeMessage parses a 200 answer of /v1/messages.
func decodeMessage(t testing.TB, resp *http.Response, body []byte) anthMessage {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var m anthMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if !strings.HasPrefix(m.ID, "msg_01") || m.Type != "message" || m.Role != "assistant" || m.StopReason == nil {
		t.Fatalf("not a message: %s", body)
	}
	return m
}

// anthError is Anthropic's error envelope.
type anthError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

// decodeAnthError parses an Anthropic error answer and checks its shape.
func decodeAnthError(t testing.TB, resp *http.Response, body []byte) anthError {
	t.Helper()
	var e anthError
	if err := json.Unmarshal(body, &e); err != nil || e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" {
		t.Fatalf("body %s is not an Anthropic error: %v", body, err)
	}
	if e.RequestID == "" || e.RequestID != resp.Header.Get("Request-Id") {
		t.Errorf("request_id %q, header %q", e.RequestID, resp.Header.Get("Request-Id"))
	}
	return e
}

// sseEvent is one event of an SSE body.
type sseEvent struct {
	name string
	data string
}

// sseEvents returns the events of an SSE body, in order.
func sseEvents(t testing.TB, body []byte) []sseEvent {
	t.Helper()
	var out []sseEvent
	var ev sseEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev != (sseEvent{}) {
				out = append(out, ev)
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[len("data: "):]
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	if ev != (sseEvent{}) {
		t.Fatalf("unterminated event %+v", ev)
	}
	return out
}

const helloMessages = `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"Hello there"}]}`

// weatherTools offers one tool that a question about the weather calls.
const weatherTools = `"tools":[{"name":"get_weather","description":"Get the current weather in a city",` +
	`"input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]`

// pngBase64 is a 1x1 PNG.
const pngBase64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

func TestAnthropicText(t *testing.T) {
	s := startServer(t, Options{Keys: []string{testKey}})
	hc := httpClient(t)
	resp, body := postMessages(t, hc, s, helloMessages)
	m := decodeMessage(t, resp, body)
	if m.Model != "claude-sonnet-4-5" || len(m.Content) != 1 || m.Content[0].Type != "text" || m.Content[0].Text == "" {
		t.Fatalf("answer %s", body)
	}
	if *m.StopReason != "end_turn" || m.StopSequence != nil {
		t.Errorf("stop %v %v", *m.StopReason, m.StopSequence)
	}
	if m.Usage.InputTokens <= 0 || m.Usage.OutputTokens != len(strings.Fields(m.Content[0].Text)) || m.Usage.CacheReadInputTokens == nil {
		t.Errorf("usage %+v for %q", m.Usage, m.Content[0].Text)
	}
	if !strings.HasPrefix(resp.Header.Get("Request-Id"), "req_011C") {
		t.Errorf("request-id %q", resp.Header.Get("Request-Id"))
	}
	for _, h := range []string{"requests", "tokens"} {
		if resp.Header.Get("Anthropic-Ratelimit-"+h+"-Limit") == "" || resp.Header.Get("Anthropic-Ratelimit-"+h+"-Remaining") == "" {
			t.Errorf("no %s rate limit headers: %v", h, resp.Header)
		}
		if _, err := time.Parse(time.RFC3339, resp.Header.Get("Anthropic-Ratelimit-"+h+"-Reset")); err != nil {
			t.Errorf("%s reset: %v", h, err)
		}
	}
	if resp.Header.Get("X-Ratelimit-Limit-Requests") != "" || resp.Header.Get("Openai-Version") != "" {
		t.Errorf("OpenAI headers on an Anthropic answer: %v", resp.Header)
	}

	_, again := postMessages(t, hc, s, helloMessages)
	if m2 := decodeMessage(t, resp, again); m2.Content[0].Text != m.Content[0].Text {
		t.Errorf("answers differ: %q, %q", m.Content[0].Text, m2.Content[0].Text)
	}
}

func TestAnthropicStops(t *testing.T) {
	s := startServer(t, Options{ReplyWords: 30})
	hc := httpClient(t)
	resp, body := postMessages(t, hc, s, helloMessages)
	full := decodeMessage(t, resp, body).Content[0].Text
	word := strings.Fields(full)[10]
	stopAt := strings.Index(full, word)

	tests := []struct {
		name     string
		body     string
		reason   string
		sequence string
		text     string
		output   int
	}{
		{name: "max_tokens", body: `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"Hello there"}]}`,
			reason: "max_tokens", text: strings.Join(strings.Fields(full)[:5], " "), output: 5},
		{name: "stop sequence", body: `{"model":"claude-sonnet-4-5","max_tokens":1024,"stop_sequences":["zzz",` + quote(word) +
			`],"messages":[{"role":"user","content":"Hello there"}]}`,
			reason: "stop_sequence", sequence: word, text: full[:stopAt], output: len(textPieces(full[:stopAt]))},
		{name: "max_tokens before stop sequence", body: `{"model":"claude-sonnet-4-5","max_tokens":3,"stop_sequences":[` + quote(word) +
			`],"messages":[{"role":"user","content":"Hello there"}]}`,
			reason: "max_tokens", text: strings.Join(strings.Fields(full)[:3], " "), output: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := postMessages(t, hc, s, tt.body)
			m := decodeMessage(t, resp, body)
			seq := ""
			if m.StopSequence != nil {
				seq = *m.StopSequence
			}
			if *m.StopReason != tt.reason || seq != tt.sequence || m.Content[0].Text != tt.text || m.Usage.OutputTokens != tt.output {
				t.Errorf("got %s\nwant reason %s, sequence %q, text %q, %d tokens", body, tt.reason, tt.sequence, tt.text, tt.output)
			}
		})
	}
}

// quote returns s as a JSON string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestAnthropicTools(t *testing.T) {
	s := startServer(t, Options{})
	hc := httpClient(t)
	ask := `{"role":"user","content":"What is the weather in Paris?"}`
	tests := []struct {
		name   string
		extra  string
		intro  bool   // a text block leads the calls
		called string // the tool called, "" for a text answer
	}{
		{name: "auto", called: "get_weather", intro: true},
		{name: "any", extra: `,"tool_choice":{"type":"any"}`, called: "get_weather"},
		{name: "tool", extra: `,"tool_choice":{"type":"tool","name":"get_weather","disable_parallel_tool_use":true}`, called: "get_weather"},
		{name: "none", extra: `,"tool_choice":{"type":"none"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := postMessages(t, hc, s, `{"model":"claude-haiku-4-5","max_tokens":500,`+weatherTools+tt.extra+`,"messages":[`+ask+`]}`)
			m := decodeMessage(t, resp, body)
			if tt.called == "" {
				if *m.StopReason != "end_turn" || len(m.Content) != 1 || m.Content[0].Type != "text" {
					t.Fatalf("want a text answer, got %s", body)
				}
				return
			}
			blocks := m.Content
			if tt.intro {
				if len(blocks) == 0 || blocks[0].Type != "text" || !strings.Contains(blocks[0].Text, tt.called) {
					t.Fatalf("want an introduction, got %s", body)
				}
				blocks = blocks[1:]
			}
			if *m.StopReason != "tool_use" || len(blocks) != 1 || blocks[0].Type != "tool_use" || blocks[0].Name != tt.called ||
				!strings.HasPrefix(blocks[0].ID, "toolu_01") {
				t.Fatalf("want one call of %s, got %s", tt.called, body)
			}
			var input map[string]any
			if err := json.Unmarshal(blocks[0].Input, &input); err != nil || input["city"] == nil {
				t.Errorf("input %s: %v", blocks[0].Input, err)
			}

			// Hand the result back: the answer is text.
			var raw struct{ Content json.RawMessage }
			_ = json.Unmarshal(body, &raw)
			use, _ := json.Marshal(map[string]any{"role": "assistant", "content": raw.Content})
			result := `{"role":"user","content":[{"type":"tool_result","tool_use_id":` + quote(blocks[0].ID) +
				`,"content":[{"type":"text","text":"18 degrees and sunny"}]}]}`
			resp, body = postMessages(t, hc, s, `{"model":"claude-haiku-4-5","max_tokens":500,`+weatherTools+
				`,"messages":[`+ask+`,`+string(use)+`,`+result+`]}`)
			m = decodeMessage(t, resp, body)
			if tt.name == "auto" && (*m.StopReason != "end_turn" || len(m.Content) != 1 || m.Content[0].Type != "text") {
				t.Errorf("want a text answer to the result, got %s", body)
			}
		})
	}
}

func TestAnthropicImage(t *testing.T) {
	s := startServer(t, Options{})
	hc := httpClient(t)
	text := `{"model":"claude-sonnet-4-5","max_tokens":200,"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"}]}]}`
	withImage := `{"model":"claude-sonnet-4-5","max_tokens":200,"messages":[{"role":"user","content":[` +
		`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + pngBase64 + `"}},` +
		`{"type":"image","source":{"type":"url","url":"https://example.com/cake.jpg"}},` +
		`{"type":"text","text":"What is this?"}]}]}`
	resp, body := postMessages(t, hc, s, text)
	plain := decodeMessage(t, resp, body)
	resp, body = postMessages(t, hc, s, withImage)
	m := decodeMessage(t, resp, body)
	if got := m.Usage.InputTokens - plain.Usage.InputTokens; got != 2*imageTokens {
		t.Errorf("two images add %d input tokens, want %d", got, 2*imageTokens)
	}
	if !strings.HasPrefix(m.Content[0].Text, "I can see 2 images.") {
		t.Errorf("answer %q does not mention the images", m.Content[0].Text)
	}
}

func TestAnthropicValidation(t *testing.T) {
	s := startServer(t, Options{Keys: []string{testKey}})
	hc := httpClient(t)
	jpeg := base64.StdEncoding.EncodeToString([]byte("\xff\xd8\xff\xe0\x00\x10JFIF"))
	tests := []struct {
		name    string
		body    string
		header  []string
		status  int
		typ     string
		message string // a part of the message
	}{
		{name: "system role", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]}`,
			status: 400, typ: "invalid_request_error", message: "top-level `system` parameter"},
		{name: "missing max_tokens", body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`,
			status: 400, typ: "invalid_request_error", message: "max_tokens: Field required"},
		{name: "max_tokens above the model's", body: `{"model":"claude-3-5-haiku-latest","max_tokens":10000,"messages":[{"role":"user","content":"hi"}]}`,
			status: 400, typ: "invalid_request_error", message: "max_tokens: 10000 > 8192"},
		{name: "extra field n", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"n":1,"messages":[{"role":"user","content":"hi"}]}`,
			status: 400, typ: "invalid_request_error", message: "n: Extra inputs are not permitted"},
		{name: "extra field stream_options", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"stream_options":{},"messages":[{"role":"user","content":"hi"}]}`,
			status: 400, typ: "invalid_request_error", message: "stream_options: Extra inputs are not permitted"},
		{name: "bad temperature", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"temperature":1.5,"messages":[{"role":"user","content":"hi"}]}`,
			status: 400, typ: "invalid_request_error", message: "temperature: Input should be less than or equal to 1"},
		{name: "first message assistant", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"assistant","content":"hi"}]}`,
			status: 400, typ: "invalid_request_error", message: `first message must use the "user" role`},
		{name: "empty messages", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[]}`,
			status: 400, typ: "invalid_request_error", message: "at least one message"},
		{name: "image_url part", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}`,
			status: 400, typ: "invalid_request_error", message: "Input tag 'image_url'"},
		{name: "bad media type", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"` + pngBase64 + `"}}]}]}`,
			status: 400, typ: "invalid_request_error", message: "media_type: Input should be"},
		{name: "media type mismatch", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + jpeg + `"}}]}]}`,
			status: 400, typ: "invalid_request_error", message: "appears to be a image/jpeg image"},
		{name: "not base64", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"not base64!"}}]}]}`,
			status: 400, typ: "invalid_request_error", message: "invalid base64"},
		{name: "bad tool_result id", body: `{"model":"claude-sonnet-4-5","max_tokens":10,` + weatherTools + `,"messages":[{"role":"user","content":"weather?"},` +
			`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01a","name":"get_weather","input":{}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01b","content":"sunny"}]}]}`,
			status: 400, typ: "invalid_request_error", message: "unexpected `tool_use_id` found in `tool_result` blocks: toolu_01b"},
		{name: "unanswered tool_use", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"weather?"},` +
			`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01a","name":"get_weather","input":{}}]},` +
			`{"role":"user","content":"well?"}]}`,
			status: 400, typ: "invalid_request_error", message: "`tool_use` ids were found without `tool_result` blocks"},
		{name: "tool_use from the user", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_use","id":"toolu_01a","name":"x","input":{}}]}]}`,
			status: 400, typ: "invalid_request_error", message: "only appear in assistant messages"},
		{name: "OpenAI tool shape", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"tools":[{"type":"function","function":{"name":"x"}}],"messages":[{"role":"user","content":"hi"}]}`,
			status: 400, typ: "invalid_request_error", message: "tools.0.type"},
		{name: "tool_choice without tools", body: `{"model":"claude-sonnet-4-5","max_tokens":10,"tool_choice":{"type":"any"},"messages":[{"role":"user","content":"hi"}]}`,
			status: 400, typ: "invalid_request_error", message: "tool_choice may only be specified while providing tools"},
		{name: "unknown model", body: `{"model":"claude-2","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
			status: 404, typ: "not_found_error", message: "model: claude-2"},
		{name: "no anthropic-version", body: helloMessages, header: []string{"Anthropic-Version", ""},
			status: 400, typ: "invalid_request_error", message: "anthropic-version: header is required"},
		{name: "bearer key", body: helloMessages, header: []string{"X-Api-Key", "", "Authorization", "Bearer " + testKey},
			status: 401, typ: "authentication_error", message: "x-api-key header is required"},
		{name: "wrong key", body: helloMessages, header: []string{"X-Api-Key", "sk-ant-wrong"},
			status: 401, typ: "authentication_error", message: "invalid x-api-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := postMessages(t, hc, s, tt.body, tt.header...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			e := decodeAnthError(t, resp, body)
			if e.Error.Type != tt.typ || !strings.Contains(e.Error.Message, tt.message) {
				t.Errorf("error %+v, want %s containing %q", e.Error, tt.typ, tt.message)
			}
		})
	}
}

func TestAnthropicUnknownModels(t *testing.T) {
	s := startServer(t, Options{AllowUnknownModels: true})
	resp, body := postMessages(t, httpClient(t), s, `{"model":"claude-next","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	if m := decodeMessage(t, resp, body); m.Model != "claude-next" {
		t.Errorf("model %q", m.Model)
	}
}

// streamedMessage checks the events of a Messages API stream, and returns
// the text and the tool inputs it carries, by block, and its stop reason.
func streamedMessage(t testing.TB, events []sseEvent) (blocks []string, stop string) {
	t.Helper()
	var types []string
	for i, ev := range events {
		var data map[string]any
		if err := json.Unmarshal([]byte(ev.data), &data); err != nil {
			t.Fatalf("event %d %q: data %s: %v", i, ev.name, ev.data, err)
		}
		if data["type"] != ev.name {
			t.Fatalf("event %q has type %v", ev.name, data["type"])
		}
		types = append(types, ev.name)
		switch ev.name {
		case "message_start":
			msg := data["message"].(map[string]any)
			usage := msg["usage"].(map[string]any)
			if msg["stop_reason"] != nil || len(msg["content"].([]any)) != 0 || usage["input_tokens"].(float64) < 1 || usage["output_tokens"] != 1.0 {
				t.Errorf("message_start %s", ev.data)
			}
		case "content_block_start":
			if int(data["index"].(float64)) != len(blocks) {
				t.Errorf("block %v starts as block %d", data["index"], len(blocks))
			}
			blocks = append(blocks, "")
		case "content_block_delta":
			d := data["delta"].(map[string]any)
			switch d["type"] {
			case "text_delta":
				blocks[len(blocks)-1] += d["text"].(string)
			case "input_json_delta":
				blocks[len(blocks)-1] += d["partial_json"].(string)
			default:
				t.Errorf("delta %s", ev.data)
			}
		case "message_delta":
			stop, _ = data["delta"].(map[string]any)["stop_reason"].(string)
			if data["usage"].(map[string]any)["output_tokens"].(float64) < 1 {
				t.Errorf("message_delta %s", ev.data)
			}
		}
	}
	order := strings.Join(types, " ")
	for _, want := range []string{"message_start content_block_start ping content_block_delta", "content_block_stop message_delta message_stop"} {
		if !strings.Contains(order, want) {
			t.Errorf("events %s lack %s", order, want)
		}
	}
	if !strings.HasPrefix(order, "message_start") || !strings.HasSuffix(order, "message_stop") {
		t.Errorf("events %s", order)
	}
	return blocks, stop
}

func TestAnthropicStream(t *testing.T) {
	s := startServer(t, Options{ChunkWords: 2})
	hc := httpClient(t)
	tests := []struct {
		name string
		body string
	}{
		{name: "text", body: helloMessages},
		{name: "tools", body: `{"model":"claude-haiku-4-5","max_tokens":500,` + weatherTools + `,"messages":[{"role":"user","content":"What is the weather in Paris?"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := postMessages(t, hc, s, tt.body)
			m := decodeMessage(t, resp, body)
			resp, body = postMessages(t, hc, s, strings.Replace(tt.body, `{"model"`, `{"stream":true,"model"`, 1))
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
				!strings.HasPrefix(resp.Header.Get("Request-Id"), "req_") {
				t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
			}
			if bytes.Contains(body, []byte("[DONE]")) {
				t.Errorf("stream has [DONE]")
			}
			events := sseEvents(t, body)
			blocks, stop := streamedMessage(t, events)
			if stop != *m.StopReason || len(blocks) != len(m.Content) {
				t.Fatalf("streamed %q stopping with %s, not as %s", blocks, stop, body)
			}
			for i, c := range m.Content {
				want := c.Text
				if c.Type == "tool_use" {
					want = string(c.Input)
				}
				if blocks[i] != want {
					t.Errorf("block %d: streamed %q, answered %q", i, blocks[i], want)
				}
			}
			var last map[string]any
			for _, ev := range events {
				if ev.name == "message_delta" {
					_ = json.Unmarshal([]byte(ev.data), &last)
				}
			}
			if int(last["usage"].(map[string]any)["output_tokens"].(float64)) != m.Usage.OutputTokens {
				t.Errorf("message_delta %v, answer usage %+v", last, m.Usage)
			}
		})
	}
}

func TestAnthropicFaults(t *testing.T) {
	const path = "/v1/messages"
	streamBody := strings.Replace(helloMessages, `{"model"`, `{"stream":true,"model"`, 1)
	tests := []struct {
		name   string
		fault  Fault
		body   string
		status int
		typ    string
		check  func(t *testing.T, resp *http.Response, body []byte)
	}{
		{name: "overloaded", fault: Status(statusOverloaded, 1).OnPath(path), body: helloMessages, status: statusOverloaded, typ: "overloaded_error"},
		{name: "server error", fault: Status(500, 1).OnPath(path), body: helloMessages, status: 500, typ: "api_error"},
		{name: "rate limit", fault: RateLimit(2500 * time.Millisecond).OnPath(path), body: helloMessages, status: 429, typ: "rate_limit_error",
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if resp.Header.Get("Retry-After") != "3" || resp.Header.Get("Anthropic-Ratelimit-Requests-Remaining") != "0" {
					t.Errorf("headers %v", resp.Header)
				}
			}},
		{name: "error event", fault: ErrorEvent(1).OnPath(path), body: streamBody, status: 200,
			check: func(t *testing.T, _ *http.Response, body []byte) {
				events := sseEvents(t, body)
				last := events[len(events)-1]
				if last.name != "error" || last.data != `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}` {
					t.Errorf("last event %+v", last)
				}
				if bytes.Contains(body, []byte("message_stop")) {
					t.Errorf("stream went on to message_stop: %s", body)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{})
			s.Script(tt.fault)
			resp, body := postMessages(t, httpClient(t), s, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.typ != "" {
				if e := decodeAnthError(t, resp, body); e.Error.Type != tt.typ {
					t.Errorf("error %+v, want %s", e.Error, tt.typ)
				}
			}
			if tt.check != nil {
				tt.check(t, resp, body)
			}
			if st := s.Stats(); st.Faults != 1 || st.Requests != 1 {
				t.Errorf("stats %+v", st)
			}
			if r := s.Requests(); len(r) != 1 || r[0].Path != path || r[0].Header.Get("X-Api-Key") != testKey {
				t.Errorf("recorded %+v", r)
			}
		})
	}
}

func TestAnthropicCut(t *testing.T) {
	s := startServer(t, Options{})
	s.Script(Cut(2).OnPath("/v1/messages"))
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := strings.Replace(helloMessages, `{"model"`, `{"stream":true,"model"`, 1)
	req := "POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + testKey + "\r\nAnthropic-Version: 2023-06-01\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(safety))
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	text := string(raw)
	if !strings.HasPrefix(text, "HTTP/1.1 200 OK") || !strings.Contains(text, "Request-Id: req_") {
		t.Fatalf("head %q", text)
	}
	if n := strings.Count(text, "event: content_block_delta"); n != 2 {
		t.Errorf("%d deltas before the cut, want 2", n)
	}
	if strings.Contains(text, "message_stop") || strings.HasSuffix(text, "0\r\n\r\n") {
		t.Errorf("stream was not cut: %q", text)
	}
}

func TestAnthropicModels(t *testing.T) {
	s := startServer(t, Options{})
	hc := httpClient(t)
	get := func(t *testing.T, url string, header ...string) (*http.Response, []byte) {
		return do(t, hc, http.MethodGet, "http://"+s.Addr()+url, "", append(anthropicAuth[:len(anthropicAuth):len(anthropicAuth)], header...)...)
	}
	type page struct {
		Data []struct {
			Type        string `json:"type"`
			ID          string `json:"id"`
			DisplayName string `json:"display_name"`
			CreatedAt   string `json:"created_at"`
		} `json:"data"`
		HasMore bool    `json:"has_more"`
		FirstID *string `json:"first_id"`
		LastID  *string `json:"last_id"`
	}
	tests := []struct {
		name    string
		url     string
		ids     []string
		hasMore bool
	}{
		{name: "all", url: "/v1/models", ids: DefaultAnthropicModels},
		{name: "first page", url: "/v1/models?limit=2", ids: DefaultAnthropicModels[:2], hasMore: true},
		{name: "after", url: "/v1/models?limit=2&after_id=" + DefaultAnthropicModels[1], ids: DefaultAnthropicModels[2:4], hasMore: true},
		{name: "before", url: "/v1/models?limit=2&before_id=" + DefaultAnthropicModels[3], ids: DefaultAnthropicModels[1:3], hasMore: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, tt.url)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var p page
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range p.Data {
				if m.Type != "model" || m.DisplayName == "" {
					t.Errorf("model %+v", m)
				}
				if _, err := time.Parse(time.RFC3339, m.CreatedAt); err != nil {
					t.Errorf("created_at: %v", err)
				}
				ids = append(ids, m.ID)
			}
			if strings.Join(ids, " ") != strings.Join(tt.ids, " ") || p.HasMore != tt.hasMore ||
				*p.FirstID != tt.ids[0] || *p.LastID != tt.ids[len(tt.ids)-1] {
				t.Errorf("page %s", body)
			}
		})
	}
	t.Run("one", func(t *testing.T) {
		resp, body := get(t, "/v1/models/claude-sonnet-4-5-20250929")
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"display_name":"Claude Sonnet 4.5"`) {
			t.Errorf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("OpenAI list without anthropic-version", func(t *testing.T) {
		resp, body := do(t, hc, http.MethodGet, "http://"+s.Addr()+"/v1/models", "")
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"object":"list"`) || strings.Contains(string(body), "claude") {
			t.Errorf("status %d: %s", resp.StatusCode, body)
		}
	})
}
