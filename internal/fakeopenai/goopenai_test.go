package fakeopenai

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/tokencount"
)

// goOpenAI returns a go-openai client for s.
func goOpenAI(t testing.TB, s *Server, key string) *openai.Client {
	t.Helper()
	cfg := openai.DefaultConfig(key)
	cfg.BaseURL = s.URL()
	cfg.HTTPClient = httpClient(t)
	return openai.NewClientWithConfig(cfg)
}

func chatRequest(content string) openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{
		Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: "You are a wedding planner."},
			{Role: openai.ChatMessageRoleUser, Content: content},
		},
	}
}

func TestGoOpenAIChat(t *testing.T) {
	s := startServer(t, Options{})
	c := goOpenAI(t, s, testKey)
	ctx := testContext(t)

	tests := []struct {
		name       string
		req        openai.ChatCompletionRequest
		wantN      int
		wantFinish openai.FinishReason
		maxTokens  int // the most completion tokens per choice; 0 = unchecked
	}{
		{name: "plain", req: chatRequest("When is the ceremony?"), wantN: 1, wantFinish: openai.FinishReasonStop},
		{name: "n=3", req: func() openai.ChatCompletionRequest {
			r := chatRequest("Where is dinner?")
			r.N = 3
			return r
		}(), wantN: 3, wantFinish: openai.FinishReasonStop},
		{name: "max_tokens", req: func() openai.ChatCompletionRequest {
			r := chatRequest("Tell me everything.")
			r.MaxTokens = 5 //nolint:staticcheck // SA1019: clients still send the deprecated max_tokens; the fake must honour it
			return r
		}(), wantN: 1, wantFinish: openai.FinishReasonLength, maxTokens: 5},
		{name: "max_completion_tokens", req: func() openai.ChatCompletionRequest {
			r := chatRequest("Tell me everything.")
			r.MaxCompletionTokens = 3
			return r
		}(), wantN: 1, wantFinish: openai.FinishReasonLength, maxTokens: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.CreateChatCompletion(ctx, tt.req)
			if err != nil {
				t.Fatalf("create chat completion: %v", err)
			}
			if !strings.HasPrefix(resp.ID, "chatcmpl-") || resp.Object != "chat.completion" || resp.Model != tt.req.Model {
				t.Errorf("id/object/model = %q/%q/%q", resp.ID, resp.Object, resp.Model)
			}
			if len(resp.Choices) != tt.wantN {
				t.Fatalf("got %d choices, want %d", len(resp.Choices), tt.wantN)
			}
			tokens, enc := 0, tokencount.ForModel(tt.req.Model)
			for i, ch := range resp.Choices {
				if ch.Index != i || ch.Message.Role != openai.ChatMessageRoleAssistant || ch.Message.Content == "" {
					t.Errorf("choice %d = %+v", i, ch)
				}
				if ch.FinishReason != tt.wantFinish {
					t.Errorf("choice %d finish_reason = %q, want %q", i, ch.FinishReason, tt.wantFinish)
				}
				n := enc.Count(ch.Message.Content)
				if tt.maxTokens > 0 && (n > tt.maxTokens || n == 0) {
					t.Errorf("choice %d has %d tokens, want 1 to %d", i, n, tt.maxTokens)
				}
				tokens += n
			}
			u := resp.Usage
			if u.CompletionTokens != tokens || u.TotalTokens != u.PromptTokens+u.CompletionTokens || u.PromptTokens == 0 {
				t.Errorf("usage = %+v, want %d completion tokens", u, tokens)
			}
			if u.PromptTokensDetails == nil || u.CompletionTokensDetails == nil {
				t.Errorf("usage details missing: %+v", u)
			}
			if resp.SystemFingerprint == "" {
				t.Error("system_fingerprint is empty")
			}
			again, err := c.CreateChatCompletion(ctx, tt.req)
			if err != nil {
				t.Fatalf("second create chat completion: %v", err)
			}
			if again.Choices[0].Message.Content != resp.Choices[0].Message.Content {
				t.Errorf("answers differ for the same request: %q vs %q", again.Choices[0].Message.Content, resp.Choices[0].Message.Content)
			}
		})
	}
}

func TestGoOpenAIChatStream(t *testing.T) {
	s := startServer(t, Options{ChunkWords: 2})
	c := goOpenAI(t, s, testKey)
	ctx := testContext(t)

	plain, err := c.CreateChatCompletion(ctx, chatRequest("Is there a rain plan?"))
	if err != nil {
		t.Fatalf("create chat completion: %v", err)
	}
	want := plain.Choices[0].Message.Content

	for _, includeUsage := range []bool{true, false} {
		name := "without_usage"
		if includeUsage {
			name = "include_usage"
		}
		t.Run(name, func(t *testing.T) {
			req := chatRequest("Is there a rain plan?")
			req.Stream = true
			if includeUsage {
				req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
			}
			stream, err := c.CreateChatCompletionStream(ctx, req)
			if err != nil {
				t.Fatalf("create stream: %v", err)
			}
			defer stream.Close()
			var content strings.Builder
			var usage *openai.Usage
			var finish openai.FinishReason
			chunks := 0
			for {
				chunk, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("recv: %v", err)
				}
				chunks++
				if chunk.Object != "chat.completion.chunk" || chunk.ID == "" {
					t.Errorf("chunk %d object/id = %q/%q", chunks, chunk.Object, chunk.ID)
				}
				if chunk.Usage != nil {
					if len(chunk.Choices) != 0 {
						t.Errorf("usage chunk has %d choices", len(chunk.Choices))
					}
					usage = chunk.Usage
					continue
				}
				if usage != nil {
					t.Error("chunk after the usage chunk")
				}
				for _, ch := range chunk.Choices {
					content.WriteString(ch.Delta.Content)
					if ch.FinishReason != "" {
						finish = ch.FinishReason
					}
				}
			}
			if got := content.String(); got != want {
				t.Errorf("streamed content = %q, want %q", got, want)
			}
			if finish != openai.FinishReasonStop {
				t.Errorf("finish_reason = %q, want stop", finish)
			}
			if includeUsage {
				if usage == nil {
					t.Fatal("no usage chunk")
				}
				if *usage.PromptTokensDetails != *plain.Usage.PromptTokensDetails ||
					usage.TotalTokens != plain.Usage.TotalTokens || usage.CompletionTokens != plain.Usage.CompletionTokens {
					t.Errorf("stream usage %+v differs from plain usage %+v", usage, plain.Usage)
				}
			} else if usage != nil {
				t.Errorf("unexpected usage chunk %+v", usage)
			}
		})
	}
}

func TestGoOpenAICompletion(t *testing.T) {
	s := startServer(t, Options{})
	c := goOpenAI(t, s, testKey)
	ctx := testContext(t)

	tests := []struct {
		name       string
		maxTokens  int
		wantFinish string
		limit      int // the most completion tokens; 0 = unchecked
	}{
		{name: "default max_tokens is 16", maxTokens: 0, wantFinish: "length", limit: 16},
		{name: "roomy", maxTokens: 500, wantFinish: "stop"},
		{name: "short", maxTokens: 4, wantFinish: "length", limit: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := openai.CompletionRequest{Model: "gpt-3.5-turbo-instruct", Prompt: "Write a toast:", MaxTokens: tt.maxTokens}
			resp, err := c.CreateCompletion(ctx, req)
			if err != nil {
				t.Fatalf("create completion: %v", err)
			}
			if resp.Object != "text_completion" || len(resp.Choices) != 1 {
				t.Fatalf("response = %+v", resp)
			}
			ch := resp.Choices[0]
			if ch.FinishReason != tt.wantFinish {
				t.Errorf("finish_reason = %q, want %q", ch.FinishReason, tt.wantFinish)
			}
			tokens := tokencount.ForModel(req.Model).Count(ch.Text)
			if tt.limit > 0 && (tokens > tt.limit || tokens < tt.limit-4) {
				t.Errorf("got %d tokens, want at most %d, the whole words that fit", tokens, tt.limit)
			}
			if resp.Usage.CompletionTokens != tokens {
				t.Errorf("completion_tokens = %d, want %d", resp.Usage.CompletionTokens, tokens)
			}

			req.Stream = true
			stream, err := c.CreateCompletionStream(ctx, req)
			if err != nil {
				t.Fatalf("create completion stream: %v", err)
			}
			defer stream.Close()
			var text strings.Builder
			for {
				chunk, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("recv: %v", err)
				}
				for _, ch := range chunk.Choices {
					text.WriteString(ch.Text)
				}
			}
			if text.String() != ch.Text {
				t.Errorf("streamed text = %q, want %q", text.String(), ch.Text)
			}
		})
	}
}

func TestGoOpenAIEmbeddings(t *testing.T) {
	s := startServer(t, Options{})
	c := goOpenAI(t, s, testKey)
	ctx := testContext(t)

	tests := []struct {
		name     string
		req      openai.EmbeddingRequest
		wantN    int
		wantDims int
	}{
		{name: "float", req: openai.EmbeddingRequest{Model: openai.SmallEmbedding3, Input: []string{"veil", "bouquet"}}, wantN: 2, wantDims: 1536},
		{name: "base64", req: openai.EmbeddingRequest{Model: openai.SmallEmbedding3, Input: []string{"veil", "bouquet"},
			EncodingFormat: openai.EmbeddingEncodingFormatBase64}, wantN: 2, wantDims: 1536},
		{name: "dimensions", req: openai.EmbeddingRequest{Model: openai.LargeEmbedding3, Input: "veil", Dimensions: 256}, wantN: 1, wantDims: 256},
		{name: "large", req: openai.EmbeddingRequest{Model: openai.LargeEmbedding3, Input: "veil"}, wantN: 1, wantDims: 3072},
	}
	var floatVeil []float32
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.CreateEmbeddings(ctx, tt.req)
			if err != nil {
				t.Fatalf("create embeddings: %v", err)
			}
			if len(resp.Data) != tt.wantN {
				t.Fatalf("got %d embeddings, want %d", len(resp.Data), tt.wantN)
			}
			for i, d := range resp.Data {
				if d.Index != i || len(d.Embedding) != tt.wantDims {
					t.Errorf("embedding %d: index %d, %d dims, want %d", i, d.Index, len(d.Embedding), tt.wantDims)
				}
				var norm float64
				for _, f := range d.Embedding {
					norm += float64(f) * float64(f)
				}
				if norm < 0.999 || norm > 1.001 {
					t.Errorf("embedding %d has squared norm %v, want 1", i, norm)
				}
			}
			if resp.Usage.PromptTokens == 0 || resp.Usage.TotalTokens != resp.Usage.PromptTokens {
				t.Errorf("usage = %+v", resp.Usage)
			}
			switch tt.name {
			case "float":
				floatVeil = resp.Data[0].Embedding
			case "base64":
				if floatVeil == nil {
					t.Skip("float case did not run")
				}
				for i, f := range resp.Data[0].Embedding {
					if f != floatVeil[i] {
						t.Fatalf("base64 and float vectors differ at %d: %v vs %v", i, f, floatVeil[i])
					}
				}
			}
		})
	}
}

func TestGoOpenAIModels(t *testing.T) {
	s := startServer(t, Options{})
	c := goOpenAI(t, s, testKey)
	ctx := testContext(t)

	list, err := c.ListModels(ctx)
	if err != nil {
		t.Fatalf("list models: %v", err)
	}
	ids := map[string]bool{}
	for _, m := range list.Models {
		ids[m.ID] = true
		if m.Object != "model" || m.OwnedBy == "" || m.CreatedAt == 0 {
			t.Errorf("model %+v", m)
		}
	}
	for _, id := range []string{"gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "gpt-3.5-turbo-instruct"} {
		if !ids[id] {
			t.Errorf("model list lacks %s", id)
		}
	}

	m, err := c.GetModel(ctx, "gpt-4o")
	if err != nil || m.ID != "gpt-4o" {
		t.Errorf("get model = %+v, %v", m, err)
	}
	_, err = c.GetModel(ctx, "gpt-9")
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Errorf("get unknown model: %v", err)
	}
}

func TestGoOpenAIErrors(t *testing.T) {
	s := startServer(t, Options{Keys: []string{testKey}})
	ctx := testContext(t)

	tests := []struct {
		name       string
		key        string
		script     []Fault
		req        openai.ChatCompletionRequest
		wantStatus int
		wantCode   string
		wantType   string
	}{
		{name: "wrong key", key: "sk-wrong-key-123456", req: chatRequest("hi"), wantStatus: 401,
			wantCode: "invalid_api_key", wantType: "invalid_request_error"},
		{name: "rate limited", key: testKey, script: []Fault{RateLimit(0)}, req: chatRequest("hi"), wantStatus: 429,
			wantCode: "rate_limit_exceeded", wantType: "requests"},
		{name: "server error", key: testKey, script: []Fault{Status(500, 1)}, req: chatRequest("hi"), wantStatus: 500,
			wantType: "server_error"},
		{name: "unknown model", key: testKey, req: func() openai.ChatCompletionRequest {
			r := chatRequest("hi")
			r.Model = "gpt-9"
			return r
		}(), wantStatus: 404, wantCode: "model_not_found", wantType: "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Script(tt.script...)
			_, err := goOpenAI(t, s, tt.key).CreateChatCompletion(ctx, tt.req)
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T) is not an *openai.APIError", err, err)
			}
			if apiErr.HTTPStatusCode != tt.wantStatus || apiErr.Type != tt.wantType || apiErr.Message == "" {
				t.Errorf("APIError = %+v, want status %d type %q", apiErr, tt.wantStatus, tt.wantType)
			}
			if tt.wantCode != "" && apiErr.Code != tt.wantCode {
				t.Errorf("code = %v, want %q", apiErr.Code, tt.wantCode)
			}
		})
	}
}

func TestGoOpenAITranscription(t *testing.T) {
	s := startServer(t, Options{})
	c := goOpenAI(t, s, testKey)
	ctx := testContext(t)

	audio := strings.Repeat("RIFF-fake-wave-data", 100)
	resp, err := c.CreateTranscription(ctx, openai.AudioRequest{
		Model:    openai.Whisper1,
		FilePath: "vows.wav",
		Reader:   strings.NewReader(audio),
	})
	if err != nil {
		t.Fatalf("create transcription: %v", err)
	}
	if resp.Text == "" {
		t.Fatal("empty transcription")
	}
	again, err := c.CreateTranscription(ctx, openai.AudioRequest{Model: openai.Whisper1, FilePath: "vows.wav", Reader: strings.NewReader(audio)})
	if err != nil || again.Text != resp.Text {
		t.Errorf("second transcription = %q, %v; want %q", again.Text, err, resp.Text)
	}
	recs := s.Requests()
	if len(recs) != 2 || !strings.HasPrefix(recs[0].Header.Get("Content-Type"), "multipart/form-data") {
		t.Fatalf("recorded %+v", recs)
	}
}

func TestGoOpenAIToolCalls(t *testing.T) {
	s := startServer(t, Options{ChunkWords: 2})
	c := goOpenAI(t, s, testKey)
	ctx := testContext(t)
	tools := []openai.Tool{
		{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "book_venue", Description: "Reserve the wedding venue for a date",
			Parameters: json.RawMessage(`{"type":"object","properties":{"venue":{"type":"string"},"guests":{"type":"integer"}},"required":["venue"]}`)}},
		{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "get_weather", Description: "Forecast for a city",
			Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}}}`)}},
	}
	tests := []struct {
		name   string
		choice any
		ask    string
		want   []string
	}{
		{name: "required", choice: "required", ask: "Book the venue for June.", want: []string{"book_venue"}},
		{name: "named", choice: openai.ToolChoice{Type: openai.ToolTypeFunction, Function: openai.ToolFunction{Name: "get_weather"}},
			ask: "Book the venue for June.", want: []string{"get_weather"}},
		{name: "auto, two", ask: "Book the venue and check the weather in Paris.", want: []string{"book_venue", "get_weather"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := chatRequest(tt.ask)
			req.Tools, req.ToolChoice = tools, tt.choice
			resp, err := c.CreateChatCompletion(ctx, req)
			if err != nil {
				t.Fatalf("create chat completion: %v", err)
			}
			msg := resp.Choices[0].Message
			if resp.Choices[0].FinishReason != openai.FinishReasonToolCalls || msg.Content != "" || len(msg.ToolCalls) != len(tt.want) {
				t.Fatalf("finish_reason %q, content %q, %d calls", resp.Choices[0].FinishReason, msg.Content, len(msg.ToolCalls))
			}
			for k, call := range msg.ToolCalls {
				if call.Type != openai.ToolTypeFunction || !strings.HasPrefix(call.ID, "call_") || call.Function.Name != tt.want[k] ||
					!json.Valid([]byte(call.Function.Arguments)) {
					t.Errorf("call %d = %+v", k, call)
				}
			}

			req.Stream = true
			stream, err := c.CreateChatCompletionStream(ctx, req)
			if err != nil {
				t.Fatalf("create stream: %v", err)
			}
			defer stream.Close()
			var got []openai.ToolCall
			var finish openai.FinishReason
			for {
				chunk, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("recv: %v", err)
				}
				for _, ch := range chunk.Choices {
					if ch.FinishReason != "" {
						finish = ch.FinishReason
					}
					for _, d := range ch.Delta.ToolCalls {
						if d.Index == nil {
							t.Fatalf("streamed call without index: %+v", d)
						}
						if *d.Index == len(got) {
							got = append(got, openai.ToolCall{ID: d.ID, Type: d.Type, Function: openai.FunctionCall{Name: d.Function.Name}})
						}
						got[*d.Index].Function.Arguments += d.Function.Arguments
					}
				}
			}
			if finish != openai.FinishReasonToolCalls || len(got) != len(msg.ToolCalls) {
				t.Fatalf("stream finished %q with %d calls", finish, len(got))
			}
			for k := range got {
				if got[k].Function != msg.ToolCalls[k].Function || got[k].Type != openai.ToolTypeFunction || !strings.HasPrefix(got[k].ID, "call_") {
					t.Errorf("streamed call %d = %+v, want %+v", k, got[k], msg.ToolCalls[k])
				}
			}

			follow := chatRequest(tt.ask)
			follow.Tools = tools
			follow.Messages = append(follow.Messages, msg)
			for _, call := range msg.ToolCalls {
				follow.Messages = append(follow.Messages, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool,
					ToolCallID: call.ID, Content: `{"ok":true}`})
			}
			next, err := c.CreateChatCompletion(ctx, follow)
			if err != nil {
				t.Fatalf("follow-up: %v", err)
			}
			if next.Choices[0].FinishReason != openai.FinishReasonStop || next.Choices[0].Message.Content == "" ||
				len(next.Choices[0].Message.ToolCalls) != 0 {
				t.Errorf("follow-up answer %+v", next.Choices[0])
			}
		})
	}
}
