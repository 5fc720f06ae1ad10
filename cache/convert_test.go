package cache

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readSSE returns the data payloads of the events in an SSE file, without
// [DONE].
func readSSE(t *testing.T, name string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var events [][]byte
	for line := range strings.Lines(string(raw)) {
		data, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: ")
		if ok && data != "[DONE]" {
			events = append(events, []byte(data))
		}
	}
	return events
}

func formatSSE(events [][]byte) []byte {
	var b bytes.Buffer
	for _, ev := range events {
		b.WriteString("data: ")
		b.Write(ev)
		b.WriteString("\n\n")
	}
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// sameJSON fails unless a and b have the same canonical form.
func sameJSON(t *testing.T, a, b []byte) {
	t.Helper()
	ca, errA := Canonical(nil, a)
	cb, errB := Canonical(nil, b)
	if errA != nil || errB != nil || !bytes.Equal(ca, cb) {
		t.Errorf("JSON differs (%v, %v):\n%s\n%s", errA, errB, ca, cb)
	}
}

func TestAssembleGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, golden string
		assemble         func([][]byte) ([]byte, error)
	}{
		{"chat", "chat_stream.sse", "chat_stream.assembled.golden.json", AssembleChat},
		{"chat tools", "chat_tools_stream.sse", "chat_tools_stream.assembled.golden.json", AssembleChat},
		{"completion", "completion_stream.sse", "completion_stream.assembled.golden.json", AssembleCompletion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.assemble(readSSE(t, tt.in))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, append(got, '\n'))
		})
	}
}

func TestSynthesizeGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, golden string
		includeUsage     bool
		synthesize       func([]byte, bool) ([][]byte, error)
		assemble         func([][]byte) ([]byte, error)
	}{
		{"chat with usage", "chat.json", "chat.stream.golden.sse", true, SynthesizeChatStream, AssembleChat},
		{"chat without usage", "chat.json", "chat.stream_nousage.golden.sse", false, SynthesizeChatStream, AssembleChat},
		{"chat tools", "chat_tools.json", "chat_tools.stream.golden.sse", true, SynthesizeChatStream, AssembleChat},
		{"chat tools without usage", "chat_tools.json", "chat_tools.stream_nousage.golden.sse", false, SynthesizeChatStream, AssembleChat},
		{"completion with usage", "completion.json", "completion.stream.golden.sse", true, SynthesizeCompletionStream, AssembleCompletion},
		{"completion without usage", "completion.json", "completion.stream_nousage.golden.sse", false, SynthesizeCompletionStream, AssembleCompletion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := readTestdata(t, tt.in)
			events, err := tt.synthesize(body, tt.includeUsage)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, formatSSE(events))

			// Assembling the synthesised stream gives the answer back.
			back, err := tt.assemble(events)
			if err != nil {
				t.Fatal(err)
			}
			if tt.includeUsage {
				sameJSON(t, back, body)
			}
			last := events[len(events)-1]
			if hasUsage := bytes.Contains(last, []byte(`"choices":[],"usage":{`)); hasUsage != tt.includeUsage {
				t.Errorf("last event %s: usage chunk present = %v, want %v", last, hasUsage, tt.includeUsage)
			}
		})
	}
}

// TestStreamRoundTrip checks that a live stream, assembled and synthesised
// again, assembles to the same answer.
func TestStreamRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		in         string
		assemble   func([][]byte) ([]byte, error)
		synthesize func([]byte, bool) ([][]byte, error)
	}{
		{"chat", "chat_stream.sse", AssembleChat, SynthesizeChatStream},
		{"chat tools", "chat_tools_stream.sse", AssembleChat, SynthesizeChatStream},
		{"completion", "completion_stream.sse", AssembleCompletion, SynthesizeCompletionStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first, err := tt.assemble(readSSE(t, tt.in))
			if err != nil {
				t.Fatal(err)
			}
			events, err := tt.synthesize(first, true)
			if err != nil {
				t.Fatal(err)
			}
			second, err := tt.assemble(events)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, first, second)
		})
	}
}

func TestAssembleLogprobsAndChoices(t *testing.T) {
	t.Parallel()
	events := [][]byte{
		[]byte(`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":1,"delta":{"role":"assistant","content":"B"},"logprobs":{"content":[{"token":"B","logprob":-0.5}],"refusal":null},"finish_reason":null}]}`),
		[]byte(`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"A"},"logprobs":{"content":[{"token":"A","logprob":-0.1}],"refusal":null},"finish_reason":null}]}`),
		[]byte(`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.2}],"refusal":null},"finish_reason":"stop"},{"index":1,"delta":{},"logprobs":null,"finish_reason":"length"}]}`),
		[]byte(` [DONE] `),
	}
	got, err := AssembleChat(events)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"c1","object":"chat.completion","created":5,"model":"m","choices":[` +
		`{"index":0,"message":{"role":"assistant","content":"Aa","refusal":null},"logprobs":{"content":[{"token":"A","logprob":-0.1},{"token":"a","logprob":-0.2}],"refusal":null},"finish_reason":"stop"},` +
		`{"index":1,"message":{"role":"assistant","content":"B","refusal":null},"logprobs":{"content":[{"token":"B","logprob":-0.5}],"refusal":null},"finish_reason":"length"}]}`
	sameJSON(t, got, []byte(want))
}

func TestConvertErrors(t *testing.T) {
	t.Parallel()
	chunk := func(s string) [][]byte { return [][]byte{[]byte(s)} }
	tests := []struct {
		name string
		run  func() error
	}{
		{"assemble chat no events", func() error { _, err := AssembleChat(nil); return err }},
		{"assemble chat only done", func() error { _, err := AssembleChat(chunk("[DONE]")); return err }},
		{"assemble chat invalid json", func() error { _, err := AssembleChat(chunk(`{"id":`)); return err }},
		{"assemble chat error event", func() error {
			_, err := AssembleChat(chunk(`{"error":{"message":"overloaded","type":"server_error"}}`))
			return err
		}},
		{"assemble chat wrong object", func() error { _, err := AssembleChat(chunk(`{"object":"text_completion","choices":[]}`)); return err }},
		{"assemble chat bad logprobs", func() error {
			_, err := AssembleChat(chunk(`{"choices":[{"index":0,"delta":{},"logprobs":{"content":3}}]}`))
			return err
		}},
		{"assemble completion no events", func() error { _, err := AssembleCompletion(nil); return err }},
		{"assemble completion wrong object", func() error {
			_, err := AssembleCompletion(chunk(`{"object":"chat.completion.chunk","choices":[]}`))
			return err
		}},
		{"assemble completion error event", func() error { _, err := AssembleCompletion(chunk(`{"error":"boom"}`)); return err }},
		{"synthesize chat invalid json", func() error { _, err := SynthesizeChatStream([]byte(`nope`), true); return err }},
		{"synthesize chat wrong object", func() error {
			_, err := SynthesizeChatStream([]byte(`{"object":"text_completion"}`), true)
			return err
		}},
		{"synthesize completion invalid json", func() error { _, err := SynthesizeCompletionStream([]byte(`[`), false); return err }},
		{"synthesize completion wrong object", func() error {
			_, err := SynthesizeCompletionStream([]byte(`{"object":"chat.completion"}`), false)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.run(); !errors.Is(err, ErrInvalidAnswer) {
				t.Errorf("error = %v, want %v", err, ErrInvalidAnswer)
			}
		})
	}
}

func TestSplitWords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    string
		n    int
		want []string
	}{
		{"empty", "", 2, nil},
		{"spaces only", "  \n", 2, []string{"  \n"}},
		{"fewer words", "a b", 2, []string{"a b"}},
		{"exact", "a b", 1, []string{"a", " b"}},
		{"split", "one two three four five", 2, []string{"one two", " three four", " five"}},
		{"leading and trailing space", " a  b\tc\n", 2, []string{" a  b", "\tc\n"}},
		{"unicode", "café 💍 ok", 1, []string{"café", " 💍", " ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := splitWords(tt.s, tt.n)
			if !slices.Equal(got, tt.want) {
				t.Errorf("splitWords(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
			if strings.Join(got, "") != tt.s {
				t.Errorf("parts do not join back to %q", tt.s)
			}
		})
	}
}

func TestEntryConversions(t *testing.T) {
	t.Parallel()
	chatEvents := [][]byte{
		[]byte(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}`),
		[]byte(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`),
	}
	plainChat := []byte(`{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"logprobs":null,"finish_reason":"stop"}]}`)
	tests := []struct {
		name      string
		entry     *Entry
		endpoint  string
		wantBody  []byte
		bodyErr   error
		streamErr error
	}{
		{"plain body", &Entry{Body: plainChat}, EndpointChatCompletions, plainChat, nil, nil},
		{"events only", &Entry{Events: chatEvents}, EndpointChatCompletions, plainChat, nil, nil},
		{"embeddings body", &Entry{Body: []byte(`{"object":"list","data":[]}`)}, EndpointEmbeddings, []byte(`{"object":"list","data":[]}`), nil, ErrUnsupportedEndpoint},
		{"events for embeddings", &Entry{Events: chatEvents}, EndpointEmbeddings, nil, ErrUnsupportedEndpoint, ErrUnsupportedEndpoint},
		{"empty", &Entry{}, EndpointChatCompletions, nil, ErrNoAnswer, ErrNoAnswer},
		{"nil", nil, EndpointChatCompletions, nil, ErrNoAnswer, ErrNoAnswer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body, err := tt.entry.JSONBody(tt.endpoint)
			if !errors.Is(err, tt.bodyErr) {
				t.Fatalf("JSONBody error = %v, want %v", err, tt.bodyErr)
			}
			if err == nil {
				sameJSON(t, body, tt.wantBody)
			}
			events, err := tt.entry.StreamEvents(tt.endpoint, false)
			if !errors.Is(err, tt.streamErr) {
				t.Fatalf("StreamEvents error = %v, want %v", err, tt.streamErr)
			}
			if err == nil {
				back, err := AssembleChat(events)
				if err != nil {
					t.Fatal(err)
				}
				sameJSON(t, back, tt.wantBody)
			}
		})
	}
}

func TestEntryCost(t *testing.T) {
	t.Parallel()
	var nilEntry *Entry
	if c := nilEntry.Cost(); c != 0 {
		t.Errorf("nil entry cost = %d, want 0", c)
	}
	empty := (&Entry{}).Cost()
	e := &Entry{ContentType: "application/json", Body: make([]byte, 1000), Events: [][]byte{make([]byte, 10), make([]byte, 20)}, Model: "m", Provider: "openai"}
	want := empty + int64(len("application/json")+1000+10+20+1+len("openai")) + 2*sliceOverhead
	if got := e.Cost(); got != want {
		t.Errorf("Cost() = %d, want %d", got, want)
	}
}

// TestReplayStoredStream: a stored stream is replayed as its own events;
// without include_usage the usage chunk and every "usage" member go.
func TestReplayStoredStream(t *testing.T) {
	t.Parallel()
	events := readSSE(t, "chat_stream.sse")
	e := &Entry{Status: 200, Events: events}
	with, err := e.StreamEvents(EndpointChatCompletions, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(with) != len(events) || string(with[len(with)-1]) != string(events[len(events)-1]) {
		t.Errorf("with usage: %d events, want the %d stored", len(with), len(events))
	}
	without, err := e.StreamEvents(EndpointChatCompletions, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(without) != len(events)-1 {
		t.Fatalf("without usage: %d events, want %d", len(without), len(events)-1)
	}
	for _, ev := range without {
		if strings.Contains(string(ev), `"usage"`) {
			t.Errorf("an event keeps usage: %s", ev)
		}
	}
	// The replay with usage assembles to what the stored events do, the
	// one without to an answer without usage.
	want, _ := AssembleChat(events)
	if got, err := AssembleChat(with); err != nil || string(got) != string(want) {
		t.Errorf("replay with usage assembles to %s, %v", got, err)
	}
	if got, err := AssembleChat(without); err != nil || strings.Contains(string(got), `"usage"`) {
		t.Errorf("replay without usage assembles to %s, %v", got, err)
	}
	// A stored stream without a usage chunk asked for with usage is
	// synthesised instead, to carry "usage" on every chunk.
	e = &Entry{Status: 200, Events: without}
	if syn, err := e.StreamEvents(EndpointChatCompletions, true); err != nil || !strings.Contains(string(syn[0]), `"usage":null`) {
		t.Errorf("synthesised %q, %v", syn, err)
	}
}
