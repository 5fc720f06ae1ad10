// Command go-sdk calls veil with go-openai, as an app would: the base URL
// and the caller token from OPENAI_BASE_URL and OPENAI_API_KEY, and the
// supplier in an X-Supplier-ID header on every call. go-openai has no
// default-header option, so the header is added by a RoundTripper.
//
//	OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=try-it-caller-token \
//	SUPPLIER=rose-venue go run ./deploy/examples/go-sdk
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// supplierHeader adds X-Supplier-ID to every request.
type supplierHeader struct {
	supplier string
	next     http.RoundTripper
}

func (s supplierHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Supplier-ID", s.supplier)
	return s.next.RoundTrip(r)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "go-sdk:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := openai.DefaultConfig(os.Getenv("OPENAI_API_KEY"))
	cfg.BaseURL = os.Getenv("OPENAI_BASE_URL")
	cfg.HTTPClient = &http.Client{Timeout: time.Minute,
		Transport: supplierHeader{supplier: os.Getenv("SUPPLIER"), next: http.DefaultTransport}}
	client := openai.NewClientWithConfig(cfg)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := client.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model:    openai.GPT4oMini,
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Write a two-line welcome for a barn wedding's guests."}},
	})
	if err != nil {
		return err
	}
	h := resp.Header()
	fmt.Printf("%s\n(provider %s, key %s, %d tokens)\n", resp.Choices[0].Message.Content,
		h.Get("X-Veil-Provider"), h.Get("X-Veil-Key-Source"), resp.Usage.TotalTokens)
	return nil
}
