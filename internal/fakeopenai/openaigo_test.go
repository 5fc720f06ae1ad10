package fakeopenai

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/wedsync/veil/internal/tokencount"
)

// openAIGo returns an openai-go client for s that never retries.
func openAIGo(t testing.TB, s *Server, extra ...option.RequestOption) openai.Client {
	t.Helper()
	opts := []option.RequestOption{
		option.WithBaseURL(s.URL()),
		option.WithAPIKey(testKey),
		option.WithMaxRetries(0),
		option.WithHTTPClient(httpClient(t)),
	}
	return openai.NewClient(append(opts, extra...)...)
}

func chatParams(content string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(content)},
	}
}

func TestOpenAIGoChat(t *testing.T) {
	s := startServer(t, Options{})
	c := openAIGo(t, s)
	ctx := testContext(t)

	comp, err := c.Chat.Completions.New(ctx, chatParams("What should I wear?"))
	if err != nil {
		t.Fatalf("new chat completion: %v", err)
	}
	if len(comp.Choices) != 1 || comp.Choices[0].Message.Content == "" || comp.Choices[0].FinishReason != "stop" {
		t.Fatalf("completion = %+v", comp)
	}
	if comp.Usage.TotalTokens != comp.Usage.PromptTokens+comp.Usage.CompletionTokens {
		t.Errorf("usage = %+v", comp.Usage)
	}

	tests := []struct {
		name         string
		includeUsage bool
	}{
		{name: "include_usage", includeUsage: true},
		{name: "without_usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := chatParams("What should I wear?")
			if tt.includeUsage {
				p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := c.Chat.Completions.NewStreaming(ctx, p)
			defer stream.Close()
			acc := openai.ChatCompletionAccumulator{}
			for stream.Next() {
				if !acc.AddChunk(stream.Current()) {
					t.Fatalf("accumulator rejected chunk %+v", stream.Current())
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			if got, want := acc.Choices[0].Message.Content, comp.Choices[0].Message.Content; got != want {
				t.Errorf("accumulated content = %q, want %q", got, want)
			}
			if acc.Choices[0].FinishReason != "stop" {
				t.Errorf("finish_reason = %q", acc.Choices[0].FinishReason)
			}
			if tt.includeUsage && acc.Usage.CompletionTokens != comp.Usage.CompletionTokens {
				t.Errorf("accumulated usage = %+v, want %+v", acc.Usage, comp.Usage)
			}
			if !tt.includeUsage && acc.Usage.TotalTokens != 0 {
				t.Errorf("usage without include_usage: %+v", acc.Usage)
			}
		})
	}
}

func TestOpenAIGoEmbeddingsAndModels(t *testing.T) {
	s := startServer(t, Options{})
	c := openAIGo(t, s)
	ctx := testContext(t)

	tests := []struct {
		name   string
		format openai.EmbeddingNewParamsEncodingFormat
	}{
		{name: "float", format: openai.EmbeddingNewParamsEncodingFormatFloat},
		{name: "base64", format: openai.EmbeddingNewParamsEncodingFormatBase64},
	}
	var vectors [][]float64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model:          openai.EmbeddingModelTextEmbedding3Small,
				Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"first dance", "cake"}},
				EncodingFormat: tt.format,
			})
			if err != nil {
				t.Fatalf("new embeddings: %v", err)
			}
			if len(resp.Data) != 2 || len(resp.Data[0].Embedding) != 1536 {
				t.Fatalf("got %d embeddings", len(resp.Data))
			}
			vectors = append(vectors, resp.Data[1].Embedding)
		})
	}
	if len(vectors) == 2 {
		for i := range vectors[0] {
			if float32(vectors[0][i]) != float32(vectors[1][i]) {
				t.Fatalf("float and base64 vectors differ at %d", i)
			}
		}
	}

	page, err := c.Models.List(ctx)
	if err != nil {
		t.Fatalf("list models: %v", err)
	}
	if len(page.Data) != len(DefaultModels) {
		t.Errorf("listed %d models, want %d", len(page.Data), len(DefaultModels))
	}
	m, err := c.Models.Get(ctx, "text-embedding-3-small")
	if err != nil || m.ID != "text-embedding-3-small" {
		t.Errorf("get model = %+v, %v", m, err)
	}
}

func TestOpenAIGoResponses(t *testing.T) {
	s := startServer(t, Options{ChunkWords: 3})
	c := openAIGo(t, s)
	ctx := testContext(t)

	params := responses.ResponseNewParams{
		Model:        "gpt-4o-mini",
		Instructions: openai.String("You are a wedding planner."),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("Plan the reception.")},
	}
	resp, err := c.Responses.New(ctx, params)
	if err != nil {
		t.Fatalf("new response: %v", err)
	}
	text := resp.OutputText()
	if text == "" || resp.Status != "completed" || !strings.HasPrefix(resp.ID, "resp_") {
		t.Fatalf("response = %+v", resp)
	}
	if resp.Usage.OutputTokens != int64(tokencount.ForModel(params.Model).Count(text)) {
		t.Errorf("output_tokens = %d for %q", resp.Usage.OutputTokens, text)
	}

	stream := c.Responses.NewStreaming(ctx, params)
	defer stream.Close()
	var deltas strings.Builder
	var types []string
	var completed responses.Response
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		switch ev.Type {
		case "response.output_text.delta":
			deltas.WriteString(ev.Delta)
		case "response.completed":
			completed = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if deltas.String() != text {
		t.Errorf("deltas = %q, want %q", deltas.String(), text)
	}
	if completed.OutputText() != text || completed.Usage.TotalTokens != resp.Usage.TotalTokens {
		t.Errorf("completed = %+v", completed)
	}
	if types[0] != "response.created" || types[len(types)-1] != "response.completed" {
		t.Errorf("event types = %v", types)
	}

	params.MaxOutputTokens = openai.Int(16)
	params.Input = responses.ResponseNewParamsInputUnion{OfString: openai.String(strings.Repeat("long ", 50))}
	s2 := startServer(t, Options{ReplyWords: 40})
	c2 := openAIGo(t, s2)
	short, err := c2.Responses.New(ctx, params)
	if err != nil {
		t.Fatalf("new response with max_output_tokens: %v", err)
	}
	if short.Status != "incomplete" || short.IncompleteDetails.Reason != "max_output_tokens" || short.Usage.OutputTokens != 16 {
		t.Errorf("truncated response = status %q, details %+v, usage %+v", short.Status, short.IncompleteDetails, short.Usage)
	}
}

func TestOpenAIGoErrors(t *testing.T) {
	s := startServer(t, Options{})
	c := openAIGo(t, s)
	ctx := testContext(t)

	tests := []struct {
		name       string
		fault      Fault
		wantStatus int
		wantCode   string
	}{
		{name: "429", fault: RateLimit(2500 * time.Millisecond), wantStatus: http.StatusTooManyRequests, wantCode: "rate_limit_exceeded"},
		{name: "503", fault: Status(503, 1), wantStatus: http.StatusServiceUnavailable},
		{name: "quota", fault: Fault{Kind: KindStatus, Status: 429, Type: "insufficient_quota", Code: "insufficient_quota",
			Message: "You exceeded your current quota."}, wantStatus: http.StatusTooManyRequests, wantCode: "insufficient_quota"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Script(tt.fault.OnPath("/v1/chat/completions"))
			_, err := c.Chat.Completions.New(ctx, chatParams("hi"))
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T) is not an *openai.Error", err, err)
			}
			if apiErr.StatusCode != tt.wantStatus || apiErr.Code != tt.wantCode {
				t.Errorf("error = status %d code %q, want %d %q", apiErr.StatusCode, apiErr.Code, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

// Ensure the stream error type used by the fault tests is the one the SDK
// returns.
var _ error = (*ssestream.StreamError)(nil)

func TestOpenAIGoToolCalls(t *testing.T) {
	s := startServer(t, Options{ChunkWords: 3})
	c := openAIGo(t, s)
	ctx := testContext(t)
	p := chatParams("What is the weather in Paris?")
	p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:        "get_weather",
		Description: openai.String("Forecast for a city"),
		Parameters:  shared.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})}

	comp, err := c.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatalf("new chat completion: %v", err)
	}
	calls := comp.Choices[0].Message.ToolCalls
	if len(calls) != 1 || comp.Choices[0].FinishReason != "tool_calls" || calls[0].Function.Name != "get_weather" ||
		calls[0].Function.Arguments != `{"city":"Paris"}` {
		t.Fatalf("completion = %+v", comp.Choices[0])
	}

	stream := c.Chat.Completions.NewStreaming(ctx, p)
	defer stream.Close()
	acc := openai.ChatCompletionAccumulator{}
	var finished []openai.FinishedChatCompletionToolCall
	for stream.Next() {
		if !acc.AddChunk(stream.Current()) {
			t.Fatalf("accumulator rejected chunk %+v", stream.Current())
		}
		if tc, ok := acc.JustFinishedToolCall(); ok {
			finished = append(finished, tc)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	got := acc.Choices[0].Message.ToolCalls
	if len(got) != 1 || got[0].Function.Name != calls[0].Function.Name || got[0].Function.Arguments != calls[0].Function.Arguments || acc.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("accumulated %+v, want %+v", acc.Choices[0], calls[0])
	}
	if len(finished) != 1 || finished[0].Name != "get_weather" || finished[0].Arguments != calls[0].Function.Arguments {
		t.Errorf("finished calls %+v", finished)
	}

	p.Messages = append(p.Messages, comp.Choices[0].Message.ToParam(), openai.ToolMessage(`{"forecast":"sunny"}`, calls[0].ID))
	next, err := c.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatalf("follow-up: %v", err)
	}
	if next.Choices[0].FinishReason != "stop" || next.Choices[0].Message.Content == "" {
		t.Errorf("follow-up answer %+v", next.Choices[0])
	}
}
