package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/nodetest"
)

// anthropicProviders is an OpenAI provider and an Anthropic one, both on
// the fake, which speaks both APIs.
const anthropicProviders = `
  - name: openai
    type: openai
    base_url: %[1]s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]
  - name: anthropic
    type: anthropic
    base_url: %[1]s
    api_key: env://PLATFORM_KEY
    models: [claude-haiku-4-5, claude-sonnet-4-5]
    anthropic:
      max_tokens: 512`

// TestAnthropicChat: a go-openai client asks veil for a Claude model and
// gets OpenAI's answers, streamed or not, from the Messages API: veil sent
// a Messages request with x-api-key and anthropic-version and no bearer,
// and the usage record carries Anthropic's tokens.
func TestAnthropicChat(t *testing.T) {
	recs := &tap{}
	h := start(t, setup{providers: anthropicProviders, tap: recs.add})
	ctx := ctxT(t)
	msgs := []openai.ChatCompletionMessage{
		{Role: "system", Content: "You write warm venue descriptions."},
		{Role: "user", Content: "Describe Hartwell Barn in two sentences."},
	}

	t.Run("chat", func(t *testing.T) {
		resp, err := h.client().CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "claude-haiku-4-5", Messages: msgs,
			Temperature: 1.6, PresencePenalty: 0.3})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Object != "chat.completion" || len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" ||
			resp.Choices[0].FinishReason != openai.FinishReasonStop {
			t.Fatalf("answer %+v", resp)
		}
		if resp.Usage.PromptTokens == 0 || resp.Usage.CompletionTokens == 0 ||
			resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
			t.Errorf("usage %+v", resp.Usage)
		}
		if got := resp.Header().Get("X-Veil-Provider"); got != "anthropic" {
			t.Errorf("X-Veil-Provider %q", got)
		}
		up := h.lastUpstream()
		if up.Path != "/v1/messages" || up.Header.Get("X-Api-Key") != h.platformKey || up.Header.Get("Authorization") != "" ||
			up.Header.Get("Anthropic-Version") != "2023-06-01" {
			t.Errorf("upstream %s %v", up.Path, up.Header)
		}
		var body map[string]any
		if err := json.Unmarshal(up.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body["max_tokens"] != 512.0 || body["temperature"] != 1.0 || body["system"] == nil || body["presence_penalty"] != nil {
			t.Errorf("upstream body %s", up.Body)
		}
	})

	for _, includeUsage := range []bool{true, false} {
		name := "stream"
		if includeUsage {
			name = "stream_with_usage"
		}
		t.Run(name, func(t *testing.T) {
			req := openai.ChatCompletionRequest{Model: "claude-sonnet-4-5", Messages: msgs, Stream: true}
			if includeUsage {
				req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
			}
			got := collectStream(t, h.client(), req)
			want := 0
			if includeUsage {
				want = 1
				if got.usage == nil || got.usage.PromptTokens == 0 || got.usage.CompletionTokens == 0 {
					t.Errorf("usage chunk %+v", got.usage)
				}
			}
			if got.text == "" || got.finish != openai.FinishReasonStop || got.usageChunks != want {
				t.Errorf("text %q, finish %q, %d usage chunks (want %d)", got.text, got.finish, got.usageChunks, want)
			}
		})
	}

	for _, r := range recs.wait(t, 3) {
		if r.Provider != "anthropic" || r.Status != 200 || r.PromptTokens == 0 || r.CompletionTokens == 0 || r.Model == "" {
			t.Errorf("usage record %+v", r)
		}
	}
}

// TestAnthropicPhotoTagging: the photography workflow's images reach the
// Messages API as image blocks.
func TestAnthropicPhotoTagging(t *testing.T) {
	h := start(t, setup{providers: anthropicProviders})
	img := "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	resp, err := h.client().CreateChatCompletion(ctxT(t), openai.ChatCompletionRequest{Model: "claude-sonnet-4-5",
		Messages: []openai.ChatCompletionMessage{{Role: "user", MultiContent: []openai.ChatMessagePart{
			{Type: openai.ChatMessagePartTypeText, Text: "Tag this wedding photo."},
			{Type: openai.ChatMessagePartTypeImageURL, ImageURL: &openai.ChatMessageImageURL{URL: img, Detail: openai.ImageURLDetailLow}},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.ToLower(resp.Choices[0].Message.Content), "image") {
		t.Errorf("the provider did not see the image: %q", resp.Choices[0].Message.Content)
	}
	if up := h.lastUpstream(); !bytes.Contains(up.Body, []byte(`"type":"image"`)) || !bytes.Contains(up.Body, []byte(`"media_type":"image/png"`)) {
		t.Errorf("upstream body %s", up.Body)
	}
}

// TestAnthropicRefusals: what the Messages API cannot do is refused with
// a clear 400 before anything is sent, and Anthropic's own errors reach the
// client in OpenAI's envelope.
func TestAnthropicRefusals(t *testing.T) {
	h := start(t, setup{providers: anthropicProviders})
	msgs := []openai.ChatCompletionMessage{{Role: "user", Content: "Three toasts"}}
	cases := []struct {
		name       string
		req        openai.ChatCompletionRequest
		status     int
		code       string
		sentNoCall bool
	}{
		{"two choices", openai.ChatCompletionRequest{Model: "claude-haiku-4-5", Messages: msgs, N: 2}, 400, "unsupported_parameter", true},
		{"log probabilities", openai.ChatCompletionRequest{Model: "claude-haiku-4-5", Messages: msgs, LogProbs: true}, 400, "unsupported_parameter", true},
		{"json mode", openai.ChatCompletionRequest{Model: "claude-haiku-4-5", Messages: msgs,
			ResponseFormat: &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject}}, 400, "unsupported_parameter", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.up.Requests())
			_, err := h.client().CreateChatCompletion(ctxT(t), tc.req)
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != tc.status || apiErr.Code != tc.code || apiErr.Message == "" {
				t.Fatalf("err %v, want %d %s", err, tc.status, tc.code)
			}
			if tc.sentNoCall && len(h.up.Requests()) != before {
				t.Error("a refused call reached the provider")
			}
		})
	}
	t.Run("provider error", func(t *testing.T) {
		h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: 400, Path: "/v1/messages"})
		_, err := h.client().CreateChatCompletion(ctxT(t), openai.ChatCompletionRequest{Model: "claude-haiku-4-5", Messages: msgs})
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 400 || apiErr.Type != "invalid_request_error" || apiErr.Message == "" {
			t.Fatalf("err %#v", err)
		}
	})
}

// TestNodeSDKAnthropicTools: the official openai Node SDK streams a tool
// call from the Anthropic fake through veil, assembles it with its stream
// helper, sends the tool's result back and gets the streamed answer.
func TestNodeSDKAnthropicTools(t *testing.T) {
	h := start(t, setup{providers: anthropicProviders})
	out := nodetest.Run(t, "stream_tools", h.baseURL(), h.token, testSupplier, "MODEL=claude-haiku-4-5")
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("SDK printed %q", out)
	}
	var call struct {
		Chunks       int               `json:"chunks"`
		FinishReason string            `json:"finish_reason"`
		Name         string            `json:"name"`
		Arguments    map[string]string `json:"arguments"`
		IDPresent    bool              `json:"id_present"`
		Usage        *struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(lines[0], &call); err != nil {
		t.Fatal(err)
	}
	if call.Name != "check_venue_availability" || call.FinishReason != "tool_calls" || !call.IDPresent || call.Chunks < 3 ||
		call.Arguments["venue"] == "" || call.Usage == nil || call.Usage.PromptTokens == 0 {
		t.Errorf("tool call step %s", lines[0])
	}
	var answer struct {
		FinishReason string `json:"finish_reason"`
		Content      string `json:"content"`
		ToolCalls    []any  `json:"tool_calls"`
	}
	if err := json.Unmarshal(lines[1], &answer); err != nil {
		t.Fatal(err)
	}
	if answer.FinishReason != "stop" || answer.Content == "" || len(answer.ToolCalls) != 0 {
		t.Errorf("answer step %s", lines[1])
	}
	if up := h.lastUpstream(); !bytes.Contains(up.Body, []byte(`"tool_result"`)) {
		t.Errorf("the tool result did not reach the Messages API: %s", up.Body)
	}
}

// TestAzure: calls for gpt-4o-mini go to its Azure deployment with the
// api-version and the api-key header; Azure's prompt-filter preamble and
// headers do not reach the client.
func TestAzure(t *testing.T) {
	h := start(t, setup{
		fake: fakeopenai.Options{AzureDeployments: map[string]string{"wedsync-mini": "gpt-4o-mini"}},
		providers: `
  - name: azure-eu
    type: azure
    base_url: {root}
    api_key: env://PLATFORM_KEY
    azure:
      api_version: 2024-10-21
      deployments:
        gpt-4o-mini: wedsync-mini`})
	ctx := ctxT(t)
	msgs := []openai.ChatCompletionMessage{{Role: "user", Content: "Three winter wedding menu ideas"}}
	resp, err := h.client().CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content == "" || resp.Usage.TotalTokens == 0 {
		t.Errorf("answer %+v", resp)
	}
	for _, hdr := range []string{"Apim-Request-Id", "X-Ms-Region"} {
		if v := resp.Header().Get(hdr); v != "" {
			t.Errorf("%s reached the client: %q", hdr, v)
		}
	}
	up := h.lastUpstream()
	if up.Path != "/openai/deployments/wedsync-mini/chat/completions" || up.Query != "api-version=2024-10-21" ||
		up.Header.Get("Api-Key") != h.platformKey || up.Header.Get("Authorization") != "" {
		t.Errorf("upstream %s?%s %v", up.Path, up.Query, up.Header)
	}

	got := collectStream(t, h.client(), openai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: msgs, Stream: true,
		StreamOptions: &openai.StreamOptions{IncludeUsage: true}})
	if got.bare > 0 {
		t.Errorf("%d chunks without choices or usage reached the client", got.bare)
	}
	if got.text == "" || got.usage == nil {
		t.Errorf("stream text %q, usage %v", got.text, got.usage)
	}

	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: 400, Path: "/openai/*"})
	_, err = h.client().CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: msgs})
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 400 || apiErr.Type == "" || apiErr.Message == "" {
		t.Errorf("Azure error as seen by the client: %#v", err)
	}
}

// TestOpenAICompat: a server without stream_options support and with
// only max_tokens gets a request it accepts.
func TestOpenAICompat(t *testing.T) {
	h := start(t, setup{providers: `
  - name: groq
    type: openaicompat
    base_url: %s
    api_key: env://PLATFORM_KEY
    compat:
      stream_usage: false
      max_tokens_field: max_tokens
      drop_fields: [store]`})
	got := collectStream(t, h.client(), openai.ChatCompletionRequest{Model: "gpt-4o-mini", Stream: true,
		MaxCompletionTokens: 50, Store: true, StreamOptions: &openai.StreamOptions{IncludeUsage: true},
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "A toast for the best man"}}})
	if got.text == "" {
		t.Error("empty answer")
	}
	var body map[string]any
	if err := json.Unmarshal(h.lastUpstream().Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["stream_options"] != nil || body["store"] != nil || body["max_completion_tokens"] != nil || body["max_tokens"] != 50.0 {
		t.Errorf("upstream body %v", body)
	}
}

// TestFailoverOpenAIToAnthropic: OpenAI starts failing in the middle of a
// burst of streamed and plain calls; every call still gets an OpenAI
// answer, the later ones from Claude through model_map, and the usage
// records say who served each and at what price.
func TestFailoverOpenAIToAnthropic(t *testing.T) {
	recs := &tap{}
	h := start(t, setup{tap: recs.add, providers: anthropicProviders + `
    model_map:
      gpt-4o-mini: claude-haiku-4-5`,
		extra: `prices:
  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}
  - {provider: anthropic, model: claude-haiku-4-5, input_per_mtok: 1, output_per_mtok: 5}
`})
	const calls = 40
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	started := make(chan struct{}, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			req := openai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "A timeline note for the first dance"}}}
			if i%2 == 1 {
				req.Stream = true
				st, err := h.client().CreateChatCompletionStream(ctxT(t), req)
				if err != nil {
					errs <- err
					return
				}
				defer st.Close()
				got, err := recvAll(st)
				if err != nil {
					errs <- err
					return
				}
				if got.text == "" {
					errs <- errors.New("empty streamed answer")
				}
				return
			}
			resp, err := h.client().CreateChatCompletion(ctxT(t), req)
			if err == nil && resp.Choices[0].Message.Content == "" {
				err = errors.New("empty answer")
			}
			if err != nil {
				errs <- err
			}
		}()
		if i == calls/4 {
			// A quarter in, OpenAI fails every call from now on.
			for range calls / 4 {
				<-started
			}
			h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: http.StatusServiceUnavailable, Times: -1, Path: "/v1/chat/completions"})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("client saw an error: %v", err)
	}
	byProvider := map[string]int{}
	failovers := 0
	for _, r := range recs.wait(t, calls) {
		byProvider[r.Provider]++
		if r.Status != 200 {
			t.Errorf("record %+v", r)
		}
		if r.Provider != "anthropic" {
			continue
		}
		if r.Model != "claude-haiku-4-5" || r.RequestedModel != "gpt-4o-mini" || r.CostUSD == nil || *r.CostUSD <= 0 ||
			r.PromptTokens == 0 || r.CompletionTokens == 0 {
			t.Errorf("anthropic record %+v", r)
		}
		// Either OpenAI failed this very call first; or OpenAI's breaker
		// opened between this call's plan and its run, so OpenAI was
		// passed over without an attempt (still a failover: the first
		// planned target did not answer); or health and the breaker had
		// already taken OpenAI out and the plan began at Anthropic.
		switch {
		case r.Failover:
			failovers++
			triedOpenAI := len(r.Attempts) >= 2 && r.Attempts[0].Provider == "openai" &&
				r.Attempts[0].Status == http.StatusServiceUnavailable
			passedOver := len(r.Attempts) == 1 && r.Attempts[0].Provider == "anthropic"
			if !triedOpenAI && !passedOver {
				t.Errorf("failover record attempts %+v", r.Attempts)
			}
		case len(r.Attempts) != 1 || r.Attempts[0].Provider != "anthropic":
			t.Errorf("anthropic record without failover has attempts %+v", r.Attempts)
		}
	}
	if byProvider["anthropic"] == 0 || byProvider["openai"]+byProvider["anthropic"] != calls {
		t.Errorf("served by %v, want %d calls with some on anthropic", byProvider, calls)
	}
	if failovers == 0 {
		t.Error("no call failed over from OpenAI to Anthropic in the middle of the burst")
	}
	want := fmt.Sprintf(`veil_failovers_total{from="openai",to="anthropic"} %d`, failovers)
	if _, body := h.admin("/metrics", ""); !strings.Contains(body, want) {
		t.Errorf("metrics lack %s", want)
	}
}
