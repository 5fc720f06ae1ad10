package fakeopenai_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
)

func Example() {
	s := fakeopenai.New(fakeopenai.Options{Keys: []string{"sk-demo"}})
	if err := s.Start("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	cfg := openai.DefaultConfig("sk-demo")
	cfg.BaseURL = s.URL()
	client := openai.NewClientWithConfig(cfg)
	req := openai.ChatCompletionRequest{
		Model:     "gpt-4o-mini",
		Messages:  []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "When does it start?"}},
		MaxTokens: 8, //nolint:staticcheck // SA1019: clients still send the deprecated max_tokens; the fake must honour it
	}

	// The next call is rate limited.
	s.Script(fakeopenai.RateLimit(2 * time.Second))
	_, err := client.CreateChatCompletion(context.Background(), req)
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.HTTPStatusCode, apiErr.Code)
	}

	// The answer is a deterministic function of the request, cut at the
	// last whole word within max_tokens, counted as the model's tokenizer
	// counts them.
	resp, err := client.CreateChatCompletion(context.Background(), req)
	if err != nil {
		log.Fatal(err) //nolint:gocritic // exitAfterDefer: an example's failure path; the process ends there anyway
	}
	fmt.Println(resp.Choices[0].FinishReason, resp.Usage.CompletionTokens)
	fmt.Println(len(s.Requests()), s.Requests()[1].Header.Get("Authorization"))
	// Output:
	// 429 rate_limit_exceeded
	// length 5
	// 2 Bearer sk-demo
}
