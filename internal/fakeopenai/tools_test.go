package fakeopenai

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	venueTool = `{"type":"function","function":{"name":"book_venue","description":"Reserve the wedding venue for a date",` +
		`"parameters":{"type":"object","properties":{"venue":{"type":"string"},"date":{"type":"string","format":"date"},` +
		`"guests":{"type":"integer","minimum":10,"maximum":300},"deposit":{"type":"number"},"indoor":{"type":"boolean"},` +
		`"extras":{"type":"array","items":{"type":"string","enum":["flowers","band","cake"]}},` +
		`"contact":{"type":"object","properties":{"name":{"type":"string"},"email":{"type":"string"}},"required":["name"]}},` +
		`"required":["venue","date","guests","notes"]}}}`
	weatherTool = `{"type":"function","function":{"name":"get_weather","description":"Forecast for a city on a given day",` +
		`"parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},` +
		`"required":["city"]}}}`
	twoTools = `[` + venueTool + `,` + weatherTool + `]`

	askVenue = `[{"role":"system","content":"You are a wedding planner."},{"role":"user","content":"Book the Rosewood venue for June."}]`
	askBoth  = `[{"role":"user","content":"Book the venue and check the weather in Paris."}]`
	askNone  = `[{"role":"user","content":"Thanks for everything!"}]`
)

// chatBodyWith returns a chat completion request for messages with the
// extra members (a JSON object's members, without braces) added.
func chatBodyWith(messages, extra string) string {
	b := `{"model":"gpt-4o-mini","messages":` + messages
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// replyCall is a function call as the API renders it.
type replyCall struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// chatReply is the part of a chat completion the tests look at.
type chatReply struct {
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role         string          `json:"role"`
			Content      json.RawMessage `json:"content"`
			ToolCalls    []replyCall     `json:"tool_calls"`
			FunctionCall *struct {
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"function_call"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage chatUsage `json:"usage"`
}

// chatUsage is the usage of a chat completion.
type chatUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// postChat sends body to the chat completions of s and decodes a 200
// answer.
func postChat(t *testing.T, hc *http.Client, s *Server, body string) chatReply {
	t.Helper()
	resp, raw := do(t, hc, http.MethodPost, s.URL()+"/chat/completions", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	var r chatReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return r
}

// callNames returns the names of the calls of choice 0, or nil for text.
func callNames(r chatReply) []string {
	var names []string
	for _, c := range r.Choices[0].Message.ToolCalls {
		names = append(names, c.Function.Name)
	}
	return names
}

var callID = regexp.MustCompile(`^call_[0-9A-Za-z]{24}$`)

func TestToolChoice(t *testing.T) {
	s := startServer(t, Options{})
	hc := httpClient(t)
	tools := `"tools":` + twoTools
	followUp := `[{"role":"user","content":"Book the venue for June."},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"book_venue","arguments":"{}"}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":"{\"booked\":true}"}]`
	tests := []struct {
		name     string
		messages string
		extra    string
		want     []string // names called; nil: text
	}{
		{name: "auto mentions one", messages: askVenue, extra: tools, want: []string{"book_venue"}},
		{name: "explicit auto", messages: askVenue, extra: tools + `,"tool_choice":"auto"`, want: []string{"book_venue"}},
		{name: "auto mentions two", messages: askBoth, extra: tools, want: []string{"book_venue", "get_weather"}},
		{name: "auto not parallel", messages: askBoth, extra: tools + `,"parallel_tool_calls":false`, want: []string{"book_venue"}},
		{name: "auto by description", messages: `[{"role":"user","content":"What is the forecast for Lyon?"}]`, extra: tools,
			want: []string{"get_weather"}},
		{name: "auto mentions none", messages: askNone, extra: tools},
		{name: "auto after results", messages: followUp, extra: tools},
		{name: "none", messages: askVenue, extra: tools + `,"tool_choice":"none"`},
		{name: "required", messages: askVenue, extra: tools + `,"tool_choice":"required"`, want: []string{"book_venue"}},
		{name: "required after results", messages: followUp, extra: tools + `,"tool_choice":"required"`, want: []string{"book_venue"}},
		{name: "required mentions none", messages: askNone, extra: tools + `,"tool_choice":"required"`, want: []string{"get_weather"}},
		{name: "named", messages: askBoth, extra: tools + `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}`,
			want: []string{"get_weather"}},
		{name: "legacy auto", messages: askBoth, extra: `"functions":[` + strings.Join([]string{
			`{"name":"book_venue","parameters":{"type":"object","properties":{"venue":{"type":"string"}}}}`,
			`{"name":"get_weather"}`}, ",") + `]`, want: []string{"book_venue"}},
		{name: "legacy none", messages: askVenue, extra: `"functions":[{"name":"book_venue"}],"function_call":"none"`},
		{name: "legacy named", messages: askNone, extra: `"functions":[{"name":"book_venue"}],"function_call":{"name":"book_venue"}`,
			want: []string{"book_venue"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postChat(t, hc, s, chatBodyWith(tt.messages, tt.extra))
			ch := r.Choices[0]
			var got []string
			finish := "tool_calls"
			if fc := ch.Message.FunctionCall; fc != nil {
				got = []string{fc.Name}
				finish = "function_call"
			} else {
				got = callNames(r)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("called %v, want %v", got, tt.want)
			}
			if tt.want == nil {
				var text string
				if err := json.Unmarshal(ch.Message.Content, &text); err != nil || text == "" || ch.FinishReason != "stop" {
					t.Errorf("text answer: content %s, finish_reason %q", ch.Message.Content, ch.FinishReason)
				}
				return
			}
			if string(ch.Message.Content) != "null" || ch.FinishReason != finish {
				t.Errorf("content %s, finish_reason %q; want null and %q", ch.Message.Content, ch.FinishReason, finish)
			}
		})
	}
}

func TestToolCallShape(t *testing.T) {
	s := startServer(t, Options{})
	hc := httpClient(t)
	body := chatBodyWith(askVenue, `"tools":`+twoTools+`,"tool_choice":"required"`)
	raw := func(body string) string {
		resp, b := do(t, hc, http.MethodPost, s.URL()+"/chat/completions", body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		return string(b)
	}

	t.Run("message", func(t *testing.T) {
		text := raw(body)
		if !strings.Contains(text, `"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_`) {
			t.Errorf("message does not open with null content and tool_calls: %s", text)
		}
		var r chatReply
		if err := json.Unmarshal([]byte(text), &r); err != nil {
			t.Fatal(err)
		}
		calls := r.Choices[0].Message.ToolCalls
		if len(calls) != 1 || !callID.MatchString(calls[0].ID) || calls[0].Type != "function" || calls[0].Index != nil ||
			calls[0].Function.Name != "book_venue" || r.Choices[0].FinishReason != "tool_calls" {
			t.Fatalf("calls %+v, finish_reason %q", calls, r.Choices[0].FinishReason)
		}
		var args struct {
			Venue   *string  `json:"venue"`
			Date    *string  `json:"date"`
			Guests  *float64 `json:"guests"`
			Deposit *float64 `json:"deposit"`
			Indoor  *bool    `json:"indoor"`
			Extras  []string `json:"extras"`
			Notes   *string  `json:"notes"`
			Contact *struct {
				Name  *string `json:"name"`
				Email *string `json:"email"`
			} `json:"contact"`
		}
		a := calls[0].Function.Arguments
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			t.Fatalf("arguments %q: %v", a, err)
		}
		switch {
		case args.Venue == nil || *args.Venue == "" || strings.Contains(strings.ToLower(*args.Venue), "venue"):
			t.Errorf("venue in %s is not a word of the prompt other than the function's", a)
		case args.Date == nil || !regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`).MatchString(*args.Date):
			t.Errorf("date in %s", a)
		case args.Guests == nil || *args.Guests != float64(int(*args.Guests)) || *args.Guests < 10 || *args.Guests > 300:
			t.Errorf("guests in %s is not an integer in [10, 300]", a)
		case args.Deposit == nil || args.Indoor == nil || args.Notes == nil:
			t.Errorf("deposit, indoor or notes missing in %s", a)
		case len(args.Extras) == 0 || slices.ContainsFunc(args.Extras, func(e string) bool { return !slices.Contains([]string{"flowers", "band", "cake"}, e) }):
			t.Errorf("extras in %s are not values of the enum", a)
		case args.Contact == nil || args.Contact.Name == nil || args.Contact.Email == nil || !strings.HasSuffix(*args.Contact.Email, "@example.com"):
			t.Errorf("contact in %s", a)
		}
		pieces := splitPieces(a)
		if r.Usage.CompletionTokens != len(pieces) || r.Usage.TotalTokens != r.Usage.PromptTokens+r.Usage.CompletionTokens {
			t.Errorf("usage %+v, want %d completion tokens", r.Usage, len(pieces))
		}
		plain := postChat(t, hc, s, chatBodyWith(askVenue, ""))
		if r.Usage.PromptTokens <= plain.Usage.PromptTokens+jsonTokens(twoTools)/2 {
			t.Errorf("prompt tokens %d with the tools, %d without: the tools are not counted", r.Usage.PromptTokens, plain.Usage.PromptTokens)
		}

		again := postChat(t, hc, s, body)
		if got := again.Choices[0].Message.ToolCalls[0]; got.Function.Arguments != a || got.ID == calls[0].ID {
			t.Errorf("second answer: id %s arguments %s; want a new id and the same arguments", got.ID, got.Function.Arguments)
		}
	})

	tests := []struct {
		name        string
		body        string
		wantCalls   []int // calls per choice
		wantFinish  string
		wantTokens  int // completion tokens; 0: unchecked
		wantInvalid bool
	}{
		{name: "n=2", body: chatBodyWith(askBoth, `"n":2,"tools":`+twoTools), wantCalls: []int{2, 2}, wantFinish: "tool_calls"},
		{name: "max_tokens", body: chatBodyWith(askVenue, `"max_tokens":3,"tools":`+twoTools), wantCalls: []int{1},
			wantFinish: "length", wantTokens: 3, wantInvalid: true},
		{name: "max_tokens across calls", body: chatBodyWith(askBoth, `"max_completion_tokens":200,"tools":`+twoTools), wantCalls: []int{2},
			wantFinish: "tool_calls"},
		{name: "no parameters", body: chatBodyWith(askVenue, `"tools":[{"type":"function","function":{"name":"book_venue"}}]`),
			wantCalls: []int{1}, wantFinish: "tool_calls", wantTokens: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postChat(t, hc, s, tt.body)
			if len(r.Choices) != len(tt.wantCalls) {
				t.Fatalf("%d choices, want %d", len(r.Choices), len(tt.wantCalls))
			}
			ids := map[string]bool{}
			for i, ch := range r.Choices {
				if len(ch.Message.ToolCalls) != tt.wantCalls[i] || ch.FinishReason != tt.wantFinish {
					t.Errorf("choice %d: %d calls, finish_reason %q", i, len(ch.Message.ToolCalls), ch.FinishReason)
				}
				for _, c := range ch.Message.ToolCalls {
					if ids[c.ID] || !callID.MatchString(c.ID) {
						t.Errorf("call id %q repeated or malformed", c.ID)
					}
					ids[c.ID] = true
					if json.Valid([]byte(c.Function.Arguments)) == tt.wantInvalid {
						t.Errorf("arguments %q: valid JSON %v", c.Function.Arguments, !tt.wantInvalid)
					}
				}
			}
			if tt.wantTokens > 0 && r.Usage.CompletionTokens != tt.wantTokens {
				t.Errorf("completion tokens %d, want %d", r.Usage.CompletionTokens, tt.wantTokens)
			}
		})
	}

	t.Run("legacy", func(t *testing.T) {
		text := raw(chatBodyWith(askVenue, `"functions":[{"name":"book_venue","parameters":{"type":"object","properties":{"venue":{"type":"string"}}}}]`))
		if !strings.Contains(text, `"message":{"role":"assistant","content":null,"function_call":{"name":"book_venue","arguments":"{\"venue\":`) ||
			strings.Contains(text, "tool_calls") || !strings.Contains(text, `"finish_reason":"function_call"`) {
			t.Errorf("legacy answer %s", text)
		}
	})
}

// streamedCalls is what a chat stream of function calls carried for choice
// 0.
type streamedCalls struct {
	calls  []replyCall
	finish string
	usage  *chatUsage
	pieces int // chunks of arguments
}

// readCallStream checks the chunk sequence of a stream of calls and
// reassembles them: the role chunk opens the first call, every other chunk
// either opens a call or carries a piece of arguments, then comes a chunk
// with an empty delta and the finish reason, the usage chunk when asked
// for, and [DONE].
func readCallStream(t *testing.T, events []string, wantUsage bool) streamedCalls {
	t.Helper()
	var sc streamedCalls
	if len(events) < 4 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %v", events)
	}
	events = events[:len(events)-1]
	if wantUsage {
		var u struct {
			Choices []json.RawMessage `json:"choices"`
			Usage   *chatUsage        `json:"usage"`
		}
		last := events[len(events)-1]
		if err := json.Unmarshal([]byte(last), &u); err != nil || len(u.Choices) != 0 || u.Usage == nil {
			t.Fatalf("usage chunk %s: %v", last, err)
		}
		sc.usage = u.Usage
		events = events[:len(events)-1]
	}
	for i, ev := range events {
		var chunk struct {
			Object  string `json:"object"`
			Choices []struct {
				Index        int                        `json:"index"`
				Delta        map[string]json.RawMessage `json:"delta"`
				FinishReason *string                    `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(ev), &chunk); err != nil || chunk.Object != "chat.completion.chunk" || len(chunk.Choices) != 1 {
			t.Fatalf("chunk %d %s: %v", i, ev, err)
		}
		ch := chunk.Choices[0]
		if i == len(events)-1 {
			if len(ch.Delta) != 0 || ch.FinishReason == nil {
				t.Fatalf("last chunk %s: want an empty delta and a finish reason", ev)
			}
			sc.finish = *ch.FinishReason
			break
		}
		if ch.FinishReason != nil {
			t.Fatalf("chunk %d %s has a finish reason", i, ev)
		}
		if i == 0 {
			if string(ch.Delta["role"]) != `"assistant"` || string(ch.Delta["content"]) != "null" {
				t.Fatalf("role chunk %s: want role assistant and null content", ev)
			}
		} else if _, ok := ch.Delta["role"]; ok || len(ch.Delta) != 1 {
			t.Fatalf("chunk %d %s: want tool_calls only", i, ev)
		}
		var calls []replyCall
		if err := json.Unmarshal(ch.Delta["tool_calls"], &calls); err != nil || len(calls) != 1 || calls[0].Index == nil {
			t.Fatalf("chunk %d %s: want one indexed call: %v", i, ev, err)
		}
		c := calls[0]
		switch {
		case c.ID != "":
			if *c.Index != len(sc.calls) || c.Type != "function" || c.Function.Name == "" || c.Function.Arguments != "" {
				t.Fatalf("chunk %d %s does not open call %d", i, ev, len(sc.calls))
			}
			sc.calls = append(sc.calls, c)
		case i == 0:
			t.Fatalf("role chunk %s does not open a call", ev)
		default:
			if *c.Index != len(sc.calls)-1 || c.Function.Name != "" || c.Type != "" || c.Function.Arguments == "" {
				t.Fatalf("chunk %d %s is not a piece of the arguments of call %d", i, ev, len(sc.calls)-1)
			}
			sc.calls[*c.Index].Function.Arguments += c.Function.Arguments
			sc.pieces++
		}
	}
	return sc
}

func TestToolCallStream(t *testing.T) {
	tests := []struct {
		name       string
		chunkWords int
		messages   string
		extra      string
		wantUsage  bool
	}{
		{name: "required", messages: askVenue, extra: `"tool_choice":"required"`, wantUsage: true},
		{name: "two calls", messages: askBoth, wantUsage: true},
		{name: "named, three pieces a chunk", chunkWords: 3, messages: askBoth,
			extra: `"tool_choice":{"type":"function","function":{"name":"get_weather"}}`},
		{name: "truncated", messages: askVenue, extra: `"max_tokens":5`, wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{ChunkWords: tt.chunkWords})
			hc := httpClient(t)
			extra := `"tools":` + twoTools
			if tt.extra != "" {
				extra += "," + tt.extra
			}
			plain := postChat(t, hc, s, chatBodyWith(tt.messages, extra))
			extra += `,"stream":true`
			if tt.wantUsage {
				extra += `,"stream_options":{"include_usage":true}`
			}
			_, body := do(t, hc, http.MethodPost, s.URL()+"/chat/completions", chatBodyWith(tt.messages, extra))
			sc := readCallStream(t, sseData(body), tt.wantUsage)

			want := plain.Choices[0].Message.ToolCalls
			if len(sc.calls) != len(want) || sc.finish != plain.Choices[0].FinishReason {
				t.Fatalf("streamed %d calls finishing %q, want %d finishing %q", len(sc.calls), sc.finish, len(want), plain.Choices[0].FinishReason)
			}
			pieces := 0
			for k, c := range sc.calls {
				if !callID.MatchString(c.ID) || c.Function.Name != want[k].Function.Name || c.Function.Arguments != want[k].Function.Arguments {
					t.Errorf("call %d streamed %s %s(%s), want %s(%s)", k, c.ID, c.Function.Name, c.Function.Arguments,
						want[k].Function.Name, want[k].Function.Arguments)
				}
				n := len(splitPieces(c.Function.Arguments))
				pieces += (n + max(tt.chunkWords, 1) - 1) / max(tt.chunkWords, 1)
			}
			if sc.pieces != pieces || sc.pieces < 2 {
				t.Errorf("%d chunks of arguments, want %d (at least 2)", sc.pieces, pieces)
			}
			if tt.wantUsage && *sc.usage != plain.Usage {
				t.Errorf("stream usage %+v, want %+v", *sc.usage, plain.Usage)
			}
		})
	}
}

func TestToolCallStreamFaults(t *testing.T) {
	body := chatBodyWith(askVenue, `"stream":true,"tool_choice":"required","tools":`+twoTools)
	tests := []struct {
		name  string
		fault Fault
		raw   bool // read the raw connection, which a cut leaves unfinished
		last  func(t *testing.T, ev string)
	}{
		{name: "cut", fault: Cut(1), raw: true},
		{name: "error event", fault: ErrorEvent(1), last: func(t *testing.T, ev string) {
			if !strings.HasPrefix(ev, `{"error":{"message":`) || !strings.Contains(ev, `"type":"server_error"`) {
				t.Errorf("last event %s is not an error", ev)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{})
			plain := postChat(t, httpClient(t), s, strings.Replace(body, `"stream":true,`, "", 1))
			first := splitPieces(plain.Choices[0].Message.ToolCalls[0].Function.Arguments)[0]
			s.Script(tt.fault)
			var data []byte
			if tt.raw {
				_, r := rawStream(t, s, "/v1/chat/completions", body)
				var err error
				if data, err = io.ReadAll(r); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("read error %v, want unexpected EOF", err)
				}
			} else {
				_, data = do(t, httpClient(t), http.MethodPost, s.URL()+"/chat/completions", body)
			}
			events := sseData(data)
			want := 2
			if tt.last != nil {
				want = 3
				tt.last(t, events[len(events)-1])
			}
			if len(events) != want || slices.Contains(events, "[DONE]") {
				t.Fatalf("%d events, last %q: want the role chunk and one piece of arguments before the fault", len(events), events[len(events)-1])
			}
			if !strings.Contains(events[0], `"name":"book_venue","arguments":""`) {
				t.Errorf("first event %s does not open the call", events[0])
			}
			var piece struct {
				Choices []struct {
					Delta struct {
						ToolCalls []replyCall `json:"tool_calls"`
					} `json:"delta"`
				} `json:"choices"`
			}
			if err := json.Unmarshal([]byte(events[1]), &piece); err != nil || len(piece.Choices) != 1 ||
				len(piece.Choices[0].Delta.ToolCalls) != 1 || piece.Choices[0].Delta.ToolCalls[0].Function.Arguments != first {
				t.Errorf("second event %s: want the first piece %q: %v", events[1], first, err)
			}
		})
	}
}

func TestToolFollowUp(t *testing.T) {
	s := startServer(t, Options{})
	hc := httpClient(t)
	first := postChat(t, hc, s, chatBodyWith(askBoth, `"tools":`+twoTools))
	calls := first.Choices[0].Message.ToolCalls
	if len(calls) != 2 {
		t.Fatalf("first turn made %d calls, want 2", len(calls))
	}
	callsJSON, err := json.Marshal(calls)
	if err != nil {
		t.Fatal(err)
	}
	turn := `[{"role":"user","content":"Book the venue and check the weather in Paris."},` +
		`{"role":"assistant","content":null,"tool_calls":` + string(callsJSON) + `},` +
		`{"role":"tool","tool_call_id":"` + calls[0].ID + `","content":"{\"booked\":true}"},` +
		`{"role":"tool","tool_call_id":"` + calls[1].ID + `","content":[{"type":"text","text":"Sunny, 24 degrees"}]}]`

	for _, stream := range []bool{false, true} {
		name := "plain"
		if stream {
			name = "stream"
		}
		t.Run(name, func(t *testing.T) {
			body := chatBodyWith(turn, `"tools":`+twoTools)
			if !stream {
				r := postChat(t, hc, s, body)
				var text string
				if err := json.Unmarshal(r.Choices[0].Message.Content, &text); err != nil || text == "" ||
					r.Choices[0].FinishReason != "stop" || r.Choices[0].Message.ToolCalls != nil {
					t.Errorf("follow-up answer %+v", r.Choices[0])
				}
				if r.Usage.PromptTokens <= first.Usage.PromptTokens {
					t.Errorf("prompt tokens %d, not more than the first turn's %d", r.Usage.PromptTokens, first.Usage.PromptTokens)
				}
				return
			}
			_, raw := do(t, hc, http.MethodPost, s.URL()+"/chat/completions", chatBodyWith(turn, `"stream":true,"tools":`+twoTools))
			text := string(raw)
			if strings.Contains(text, "tool_calls") || !strings.Contains(text, `"finish_reason":"stop"`) || !strings.HasSuffix(text, "data: [DONE]\n\n") {
				t.Errorf("follow-up stream %s", text)
			}
		})
	}
}

func TestToolValidation(t *testing.T) {
	s := startServer(t, Options{})
	hc := httpClient(t)
	user := `[{"role":"user","content":"hi"}]`
	call := `{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"book_venue","arguments":"{}"}}]}`
	answer := `{"role":"tool","tool_call_id":"call_1","content":"ok"}`
	tests := []struct {
		name      string
		messages  string
		extra     string
		wantCode  string
		wantParam string
	}{
		{name: "tools not an array", extra: `"tools":{}`, wantCode: "invalid_type", wantParam: "tools"},
		{name: "empty tools", extra: `"tools":[]`, wantCode: "empty_array", wantParam: "tools"},
		{name: "tool not an object", extra: `"tools":["f"]`, wantCode: "invalid_type", wantParam: "tools[0]"},
		{name: "tool without type", extra: `"tools":[{"function":{"name":"f"}}]`, wantCode: "missing_required_parameter", wantParam: "tools[0].type"},
		{name: "tool of another type", extra: `"tools":[` + venueTool + `,{"type":"retrieval","function":{"name":"f"}}]`,
			wantCode: "invalid_value", wantParam: "tools[1].type"},
		{name: "tool without function", extra: `"tools":[{"type":"function"}]`, wantCode: "missing_required_parameter",
			wantParam: "tools[0].function"},
		{name: "function without name", extra: `"tools":[{"type":"function","function":{"description":"d"}}]`,
			wantCode: "missing_required_parameter", wantParam: "tools[0].function.name"},
		{name: "bad function name", extra: `"tools":[{"type":"function","function":{"name":"book venue"}}]`,
			wantCode: "invalid_value", wantParam: "tools[0].function.name"},
		{name: "long function name", extra: `"tools":[{"type":"function","function":{"name":"` + strings.Repeat("f", 65) + `"}}]`,
			wantCode: "string_above_max_length", wantParam: "tools[0].function.name"},
		{name: "parameters not an object", extra: `"tools":[{"type":"function","function":{"name":"f","parameters":"x"}}]`,
			wantCode: "invalid_type", wantParam: "tools[0].function.parameters"},
		{name: "unknown tool_choice", extra: `"tools":` + twoTools + `,"tool_choice":"always"`, wantCode: "invalid_value", wantParam: "tool_choice"},
		{name: "tool_choice names an unknown function", extra: `"tools":` + twoTools + `,"tool_choice":{"type":"function","function":{"name":"elope"}}`,
			wantCode: "<null>", wantParam: "tool_choice"},
		{name: "tool_choice without name", extra: `"tools":` + twoTools + `,"tool_choice":{"type":"function","function":{}}`,
			wantCode: "missing_required_parameter", wantParam: "tool_choice.function.name"},
		{name: "tool_choice without tools", extra: `"tool_choice":"auto"`, wantCode: "<null>", wantParam: "tool_choice"},
		{name: "parallel_tool_calls not a boolean", extra: `"tools":` + twoTools + `,"parallel_tool_calls":"yes"`,
			wantCode: "invalid_type", wantParam: "parallel_tool_calls"},
		{name: "function without name (legacy)", extra: `"functions":[{"description":"d"}]`, wantCode: "missing_required_parameter",
			wantParam: "functions[0].name"},
		{name: "function_call names an unknown function", extra: `"functions":[{"name":"f"}],"function_call":{"name":"g"}`,
			wantCode: "<null>", wantParam: "function_call"},
		{name: "tool message without id", messages: `[{"role":"user","content":"hi"},` + call + `,{"role":"tool","content":"ok"}]`,
			wantCode: "missing_required_parameter", wantParam: "messages[2].tool_call_id"},
		{name: "tool message without calls", messages: `[{"role":"user","content":"hi"},` + answer + `]`,
			wantCode: "<null>", wantParam: "messages.[1].role"},
		{name: "tool message for another call", messages: `[{"role":"user","content":"hi"},` + call +
			`,{"role":"tool","tool_call_id":"call_2","content":"ok"}]`, wantCode: "<null>", wantParam: "messages.[2].tool_call_id"},
		{name: "call left unanswered", messages: `[{"role":"user","content":"hi"},` + call + `,{"role":"user","content":"and?"}]`,
			wantCode: "<null>", wantParam: "messages.[1].role"},
		{name: "empty tool_calls", messages: `[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[]}]`,
			wantCode: "empty_array", wantParam: "messages[1].tool_calls"},
		{name: "call without id", messages: `[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]`,
			wantCode: "missing_required_parameter", wantParam: "messages[1].tool_calls[0].id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			messages := tt.messages
			if messages == "" {
				messages = user
			}
			resp, body := do(t, hc, http.MethodPost, s.URL()+"/chat/completions", chatBodyWith(messages, tt.extra))
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, body)
			}
			e := decodeEnvelope(t, body)
			if e.Error.Type != "invalid_request_error" || code(e) != tt.wantCode || e.Error.Param == nil || *e.Error.Param != tt.wantParam {
				t.Errorf("envelope %s, want code %s param %s", body, tt.wantCode, tt.wantParam)
			}
		})
	}

	t.Run("answered calls are accepted", func(t *testing.T) {
		r := postChat(t, hc, s, chatBodyWith(`[{"role":"user","content":"hi"},`+call+`,`+answer+`,{"role":"user","content":"thanks"}]`, ""))
		if r.Choices[0].FinishReason != "stop" {
			t.Errorf("answer %+v", r.Choices[0])
		}
	})
}

func TestSplitPieces(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{in: `{}`, want: []string{`{}`}},
		{in: `{"city":"Paris"}`, want: []string{`{"`, `city`, `":"`, `Paris`, `"}`}},
		{in: `{"venue":"Rosewood June","guests":120}`, want: []string{`{"`, `venue`, `":"`, `Rosewood`, ` June`, `","`, `guests`, `":`, `120`, `}`}},
		{in: `{"note":"café 💐 ok"}`, want: []string{`{"`, `note`, `":"`, `café`, ` `, `💐`, ` ok`, `"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := splitPieces(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("splitPieces(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Join(got, "") != tt.in {
				t.Errorf("pieces %q do not concatenate to %q", got, tt.in)
			}
			if n := jsonTokens(tt.in); n > len(got) || n < len(got)-2 {
				t.Errorf("jsonTokens(%q) = %d for %d pieces", tt.in, n, len(got))
			}
		})
	}
}
