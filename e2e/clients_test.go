package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	oaigo "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	openai "github.com/sashabaranov/go-openai"
)

var weddingChat = openai.ChatCompletionRequest{
	Model: "gpt-4o-mini",
	Messages: []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleSystem, Content: "You help wedding photographers tag their photos."},
		{Role: openai.ChatMessageRoleUser, Content: "Suggest tags for a first-dance photo under fairy lights."},
	},
}

// TestGoOpenAIChatMatchesDirect: a go-openai client gets through veil what
// it gets from the provider directly, plus veil's headers.
func TestGoOpenAIChatMatchesDirect(t *testing.T) {
	h := start(t, setup{})
	ctx := ctxT(t)
	via, err := h.client().CreateChatCompletion(ctx, weddingChat)
	if err != nil {
		t.Fatalf("through veil: %v", err)
	}
	direct, err := h.direct().CreateChatCompletion(ctx, weddingChat)
	if err != nil {
		t.Fatalf("direct: %v", err)
	}
	if got, want := via.Choices, direct.Choices; !reflect.DeepEqual(got, want) {
		t.Errorf("choices differ:\nveil:   %+v\ndirect: %+v", got, want)
	}
	if !reflect.DeepEqual(via.Usage, direct.Usage) {
		t.Errorf("usage differs: veil %+v, direct %+v", via.Usage, direct.Usage)
	}
	if via.Model != direct.Model {
		t.Errorf("model: veil %q, direct %q", via.Model, direct.Model)
	}
	hd := via.Header()
	for k, want := range map[string]string{
		"X-Veil-Provider":   "openai",
		"X-Veil-Model":      "gpt-4o-mini",
		"X-Veil-Key-Source": "platform",
		"X-Veil-Attempts":   "1",
	} {
		if got := hd.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if hd.Get("X-Request-Id") == "" {
		t.Error("no X-Request-ID on the answer")
	}
	// The platform account's own headers stay with veil: a supplier
	// without a tier has no rate limits to show (headroom_test.go).
	for _, k := range []string{"X-Ratelimit-Remaining-Requests", "Openai-Organization", "Openai-Project"} {
		if v := hd.Get(k); v != "" {
			t.Errorf("the platform account's %s %q reached the app", k, v)
		}
	}
}

// TestGoOpenAIStreamMatchesDirect compares a streamed answer, usage chunk
// included, through veil and directly.
func TestGoOpenAIStreamMatchesDirect(t *testing.T) {
	h := start(t, setup{})
	for _, includeUsage := range []bool{true, false} {
		name := "without usage"
		if includeUsage {
			name = "with usage"
		}
		t.Run(name, func(t *testing.T) {
			req := weddingChat
			req.Stream = true
			if includeUsage {
				req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
			}
			via := collectStream(t, h.client(), req)
			direct := collectStream(t, h.direct(), req)
			if !reflect.DeepEqual(via.content(), direct.content()) {
				t.Errorf("streams differ:\nveil:   %+v\ndirect: %+v", via, direct)
			}
			if includeUsage != (via.usage != nil) {
				t.Errorf("usage chunk present = %v, want %v", via.usage != nil, includeUsage)
			}
			if via.chunks < 3 {
				t.Errorf("got %d chunks, want a real stream", via.chunks)
			}
		})
	}
}

// streamed is what a go-openai client read from one stream.
type streamed struct {
	text   string
	chunks int
	finish openai.FinishReason
	usage  *openai.Usage
	// usageChunks counts the chunks with usage, bare those with neither
	// choices nor usage.
	usageChunks, bare int
	// ids, models and created are the distinct values the chunks carried.
	ids     map[string]bool
	models  map[string]bool
	created map[int64]bool
}

// content is the stream without the identity of its chunks, which differs
// from one generation to the next.
func (s streamed) content() streamed {
	s.ids, s.models, s.created = nil, nil, nil
	s.usageChunks, s.bare = 0, 0
	return s
}

func collectStream(t *testing.T, c *openai.Client, req openai.ChatCompletionRequest) streamed {
	t.Helper()
	out, err := readStream(t, c, req)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return out
}

// readStream reads a stream to its end and returns what came, and the
// error that ended it early, if any.
func readStream(t *testing.T, c *openai.Client, req openai.ChatCompletionRequest) (streamed, error) {
	t.Helper()
	s, err := c.CreateChatCompletionStream(ctxT(t), req)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	defer s.Close()
	return recvAll(s)
}

// recvAll reads an open stream to its end and returns what came, and the
// error that ended it early, if any.
func recvAll(s *openai.ChatCompletionStream) (streamed, error) {
	out := streamed{ids: map[string]bool{}, models: map[string]bool{}, created: map[int64]bool{}}
	var b strings.Builder
	for {
		chunk, err := s.Recv()
		if errors.Is(err, io.EOF) {
			out.text = b.String()
			return out, nil
		}
		if err != nil {
			out.text = b.String()
			return out, err
		}
		out.chunks++
		out.ids[chunk.ID], out.models[chunk.Model], out.created[chunk.Created] = true, true, true
		if len(chunk.Choices) > 0 {
			b.WriteString(chunk.Choices[0].Delta.Content)
			if chunk.Choices[0].FinishReason != "" {
				out.finish = chunk.Choices[0].FinishReason
			}
		}
		if chunk.Usage != nil {
			out.usage = chunk.Usage
			out.usageChunks++
		} else if len(chunk.Choices) == 0 {
			out.bare++
		}
	}
}

func TestGoOpenAIEmbeddingsAndModels(t *testing.T) {
	h := start(t, setup{})
	ctx := ctxT(t)
	req := openai.EmbeddingRequestStrings{Model: openai.SmallEmbedding3, Input: []string{"rustic barn", "beach ceremony"}}
	via, err := h.client().CreateEmbeddings(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := h.direct().CreateEmbeddings(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(via.Data, direct.Data) || !reflect.DeepEqual(via.Usage, direct.Usage) {
		t.Error("embeddings through veil differ from the provider's")
	}
	models, err := h.client().ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	directModels, err := h.direct().ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(models.Models, directModels.Models) || len(models.Models) == 0 {
		t.Errorf("models through veil %v, direct %v", models.Models, directModels.Models)
	}
	one, err := h.client().GetModel(ctx, "gpt-4o-mini")
	if err != nil || one.ID != "gpt-4o-mini" {
		t.Errorf("get model: %+v, %v", one, err)
	}
}

func TestGoOpenAICompletions(t *testing.T) {
	h := start(t, setup{})
	req := openai.CompletionRequest{Model: "gpt-3.5-turbo-instruct", Prompt: "A toast for the couple:", MaxTokens: 20}
	via, err := h.client().CreateCompletion(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := h.direct().CreateCompletion(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(via.Choices, direct.Choices) || !reflect.DeepEqual(via.Usage, direct.Usage) {
		t.Errorf("completions differ: %+v vs %+v", via.Choices, direct.Choices)
	}
}

// TestOpenAIGoSDK drives veil with the official openai-go SDK.
func TestOpenAIGoSDK(t *testing.T) {
	h := start(t, setup{})
	ctx := ctxT(t)
	client := oaigo.NewClient(option.WithBaseURL(h.baseURL()+"/"), option.WithAPIKey(h.token), option.WithMaxRetries(0),
		option.WithHeader("X-Supplier-ID", testSupplier))
	direct := oaigo.NewClient(option.WithBaseURL(h.up.URL()+"/"), option.WithAPIKey(h.platformKey), option.WithMaxRetries(0))
	params := oaigo.ChatCompletionNewParams{
		Model: "gpt-4o-mini",
		Messages: []oaigo.ChatCompletionMessageParamUnion{
			oaigo.SystemMessage("You plan wedding catering."),
			oaigo.UserMessage("Three canapés for a summer garden wedding, please."),
		},
	}

	t.Run("chat", func(t *testing.T) {
		var hdr *http.Response
		got, err := client.Chat.Completions.New(ctx, params, option.WithResponseInto(&hdr))
		if err != nil {
			t.Fatal(err)
		}
		want, err := direct.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if got.Choices[0].Message.Content != want.Choices[0].Message.Content || got.Usage.TotalTokens != want.Usage.TotalTokens {
			t.Errorf("chat differs:\nveil:   %q %d\ndirect: %q %d", got.Choices[0].Message.Content, got.Usage.TotalTokens,
				want.Choices[0].Message.Content, want.Usage.TotalTokens)
		}
		if hdr.Header.Get("X-Veil-Provider") != "openai" {
			t.Errorf("X-Veil-Provider = %q", hdr.Header.Get("X-Veil-Provider"))
		}
	})

	t.Run("stream", func(t *testing.T) {
		p := params
		p.StreamOptions = oaigo.ChatCompletionStreamOptionsParam{IncludeUsage: oaigo.Bool(true)}
		accumulate := func(c oaigo.Client) oaigo.ChatCompletionAccumulator {
			s := c.Chat.Completions.NewStreaming(ctx, p)
			var acc oaigo.ChatCompletionAccumulator
			for s.Next() {
				acc.AddChunk(s.Current())
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			return acc
		}
		got, want := accumulate(client), accumulate(direct)
		if got.Choices[0].Message.Content != want.Choices[0].Message.Content {
			t.Errorf("stream text differs: %q vs %q", got.Choices[0].Message.Content, want.Choices[0].Message.Content)
		}
		if got.Usage.TotalTokens == 0 || got.Usage.TotalTokens != want.Usage.TotalTokens {
			t.Errorf("stream usage: veil %d, direct %d", got.Usage.TotalTokens, want.Usage.TotalTokens)
		}
	})

	t.Run("stream chunks match, without include_usage", func(t *testing.T) {
		chunks := func(c oaigo.Client) []string {
			s := c.Chat.Completions.NewStreaming(ctx, params)
			var out []string
			for s.Next() {
				out = append(out, scrubChunk(t, s.Current().RawJSON()))
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			return out
		}
		got, want := chunks(client), chunks(direct)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("chunks through veil:\n%s\ndirect:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for _, c := range got {
			if strings.Contains(c, `"usage"`) {
				t.Errorf("a chunk carries usage the client did not ask for: %s", c)
			}
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		e, err := client.Embeddings.New(ctx, oaigo.EmbeddingNewParams{
			Model: oaigo.EmbeddingModelTextEmbedding3Small,
			Input: oaigo.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"peonies", "ranunculus"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Data) != 2 || len(e.Data[0].Embedding) == 0 {
			t.Errorf("embeddings: %d vectors", len(e.Data))
		}
	})

	t.Run("models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) == 0 {
			t.Error("no models")
		}
	})

	t.Run("error", func(t *testing.T) {
		bad := oaigo.NewClient(option.WithBaseURL(h.baseURL()+"/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0),
			option.WithHeader("X-Supplier-ID", testSupplier))
		_, err := bad.Chat.Completions.New(ctx, params)
		var apiErr *oaigo.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
			t.Fatalf("want a 401 API error, got %v", err)
		}
		if apiErr.Code != "invalid_caller_token" {
			t.Errorf("code = %q", apiErr.Code)
		}
	})
}

// scrubChunk drops a chunk's per-call id and clock, so chunks of two runs of
// the same request compare equal.
func scrubChunk(t *testing.T, raw string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("chunk %q: %v", raw, err)
	}
	delete(m, "id")
	delete(m, "created")
	b, _ := json.Marshal(m)
	return string(b)
}
