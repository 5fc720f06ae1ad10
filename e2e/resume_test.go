package e2e

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/usage"
)

// continuation decodes the messages of a continuation request.
func continuation(t *testing.T, body []byte) (msgs []openai.ChatCompletionMessage, model string) {
	t.Helper()
	var req openai.ChatCompletionRequest
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("continuation body %q: %v", body, err)
	}
	return req.Messages, req.Model
}

// TestStreamResume: with stream_resume on, a stream that breaks after its
// first tokens (cut, error event, stall) is continued on the next
// provider; the client reads one clean stream with one id, created and
// model, and the text is what the first provider sent followed by the
// second's continuation. The usage record keeps both attempts' tokens.
func TestStreamResume(t *testing.T) {
	faults := []struct {
		name  string
		fault fakeopenai.Fault
	}{
		{"cut", fakeopenai.Cut(3)},
		{"error event", fakeopenai.ErrorEvent(3)},
		{"stall", fakeopenai.StallStream(3, 0)},
	}
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			recs := &tap{}
			h := start(t, setup{providers: twoProviders, tap: recs.add,
				limits: "  stream_resume: true\n  stream_idle_timeout: 500ms\n"})
			h.up.Script(tc.fault)
			req := openai.ChatCompletionRequest{Model: "gpt-4o-mini", Stream: true,
				Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "Write a long wedding speech."}}}
			got, err := readStream(t, h.client(), req)
			if err != nil {
				t.Fatalf("the client saw an error: %v (text %q)", err, got.text)
			}
			if len(got.ids) != 1 || len(got.models) != 1 || len(got.created) != 1 {
				t.Errorf("the stream changed identity: ids %v models %v created %v", got.ids, got.models, got.created)
			}
			rs := h.up.Requests()
			if len(rs) != 2 {
				t.Fatalf("upstream requests: %d, want 2", len(rs))
			}
			msgs, model := continuation(t, rs[1].Body)
			if len(msgs) != 3 || msgs[1].Role != "assistant" || msgs[2].Role != "user" || model != "gpt-4o-mini" {
				t.Fatalf("continuation messages %+v model %q", msgs, model)
			}
			partial := msgs[1].Content
			if partial == "" || !strings.HasPrefix(got.text, partial) || len(got.text) == len(partial) {
				t.Errorf("client text %q does not start with the partial %q and go on", got.text, partial)
			}
			// The continuation is exactly what the second provider answers
			// to the continuation request.
			want := collectStream(t, h.direct(), openai.ChatCompletionRequest{Model: model, Stream: true, Messages: msgs})
			if got.text != partial+want.text {
				t.Errorf("client text\n%q\nwant partial + continuation\n%q", got.text, partial+want.text)
			}
			waitFor(t, func() bool { return len(recs.all()) == 1 })
			rec := recs.all()[0]
			if rec.Reason != "stream_resumed" || rec.Partial || rec.Status != 200 || len(rec.Attempts) != 2 {
				t.Fatalf("record: reason %q partial %v status %d attempts %+v", rec.Reason, rec.Partial, rec.Status, rec.Attempts)
			}
			first, second := rec.Attempts[0], rec.Attempts[1]
			if !first.TokensEstimated || first.CompletionTokens <= 0 || first.PromptTokens <= 0 || second.CompletionTokens <= 0 {
				t.Errorf("attempt tokens: %+v %+v", first, second)
			}
			if rec.CompletionTokens != first.CompletionTokens+second.CompletionTokens ||
				rec.PromptTokens != first.PromptTokens+second.PromptTokens ||
				rec.TotalTokens != rec.PromptTokens+rec.CompletionTokens {
				t.Errorf("record tokens %d+%d=%d, attempts %+v %+v", rec.PromptTokens, rec.CompletionTokens, rec.TotalTokens, first, second)
			}
			if rec.Provider != "secondary" || !rec.Failover {
				t.Errorf("record provider %q failover %v", rec.Provider, rec.Failover)
			}
		})
	}
}

// TestStreamResumePricedPerSegment: a stream cut on one provider and
// finished on another is priced per part, each at the price of the
// provider that produced it, and says its tokens are partly estimated.
func TestStreamResumePricedPerSegment(t *testing.T) {
	recs := &tap{}
	h := start(t, setup{providers: twoProviders, tap: recs.add,
		limits: "  stream_resume: true\n",
		extra: `prices:
  - {provider: primary, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.60}
  - {provider: secondary, model: gpt-4o-mini, input_per_mtok: 2.50, output_per_mtok: 10}
`})
	h.up.Script(fakeopenai.Cut(3))
	req := openai.ChatCompletionRequest{Model: "gpt-4o-mini", Stream: true,
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "Write a long wedding speech."}}}
	if got, err := readStream(t, h.client(), req); err != nil {
		t.Fatalf("the client saw an error: %v (text %q)", err, got.text)
	}
	waitFor(t, func() bool { return len(recs.all()) == 1 })
	rec := recs.all()[0]
	if len(rec.Attempts) != 2 || rec.CostMicros == nil || !rec.TokensEstimated {
		t.Fatalf("record: attempts %+v cost %v tokens estimated %v", rec.Attempts, rec.CostMicros, rec.TokensEstimated)
	}
	first, second := rec.Attempts[0], rec.Attempts[1]
	price := func(in, out float64, a usage.Attempt) int64 {
		return int64(math.Round(float64(a.PromptTokens)*in + float64(a.CompletionTokens)*out))
	}
	if want := price(0.15, 0.60, first); first.CostMicros != want {
		t.Errorf("the primary's part cost %d µ$, want %d at its price", first.CostMicros, want)
	}
	if want := price(2.50, 10, second); second.CostMicros != want {
		t.Errorf("the secondary's part cost %d µ$, want %d at its price", second.CostMicros, want)
	}
	if *rec.CostMicros != first.CostMicros+second.CostMicros || first.Model != "gpt-4o-mini" || second.Provider != "secondary" {
		t.Errorf("record cost %d µ$, parts %+v %+v", *rec.CostMicros, first, second)
	}
}

// TestStreamResumeSameProvider: with one provider, the stream resumes on
// it; with resume off (the default) the same cut ends in an in-band error.
func TestStreamResumeSameProvider(t *testing.T) {
	h := start(t, setup{limits: "  stream_resume: true\n"})
	h.up.Script(fakeopenai.Cut(2))
	req := openai.ChatCompletionRequest{Model: "gpt-4o-mini", Stream: true,
		StreamOptions: &openai.StreamOptions{IncludeUsage: true},
		Messages:      []openai.ChatCompletionMessage{{Role: "user", Content: "Plan a wedding timeline."}}}
	got, err := readStream(t, h.client(), req)
	if err != nil || len(got.ids) != 1 || got.usage == nil {
		t.Fatalf("err %v ids %v usage %v", err, got.ids, got.usage)
	}
	if n := len(h.up.Requests()); n != 2 {
		t.Errorf("upstream requests %d, want 2", n)
	}

	off := start(t, setup{})
	off.up.Script(fakeopenai.Cut(2))
	if got, err := readStream(t, off.client(), req); err == nil {
		t.Errorf("without stream_resume a cut stream must end in an error, got text %q", got.text)
	}
}

// TestStreamResumeNotForTools: a stream that sent tool calls is not
// resumed: the client gets the in-band error as without stream_resume.
func TestStreamResumeNotForTools(t *testing.T) {
	h := start(t, setup{providers: twoProviders, limits: "  stream_resume: true\n"})
	h.up.Script(fakeopenai.Cut(1))
	req := openai.ChatCompletionRequest{Model: "gpt-4o-mini", Stream: true,
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "Book the venue for June."}},
		Tools: []openai.Tool{{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "book_venue",
			Parameters: json.RawMessage(`{"type":"object","properties":{"month":{"type":"string"}}}`)}}},
		ToolChoice: "required"}
	if _, err := readStream(t, h.client(), req); err == nil {
		t.Error("a cut tool-call stream must end in an error")
	}
	if n := len(h.up.Requests()); n != 1 {
		t.Errorf("upstream requests %d, want 1", n)
	}
}
