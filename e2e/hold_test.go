package e2e

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
)

const twoProviders = `
  - name: primary
    type: openai
    base_url: %[1]s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]
  - name: secondary
    type: openai
    base_url: %[1]s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]`

// TestStreamFailsOverBeforeFirstToken: a stream whose provider fails before
// its first content event (an error event, a cut, or silence past the time
// to first token) is answered by the next provider; the client sees one
// clean stream, identical to a direct one.
func TestStreamFailsOverBeforeFirstToken(t *testing.T) {
	h := start(t, setup{providers: twoProviders, limits: "  ttft_timeout: 300ms\n"})
	req := weddingChat
	req.Stream = true
	want := collectStream(t, h.direct(), req)
	cases := map[string]fakeopenai.Fault{
		"error event":    {Kind: fakeopenai.KindErrorEvent, After: 0},
		"cut":            {Kind: fakeopenai.KindCut, After: 0},
		"no first token": {Kind: fakeopenai.KindStallStream, After: 0, Stall: 5 * time.Second},
	}
	for name, fault := range cases {
		t.Run(name, func(t *testing.T) {
			h.up.Script(fault)
			s, err := h.client().CreateChatCompletionStream(ctxT(t), req)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Header().Get("X-Veil-Provider") != "secondary" || s.Header().Get("X-Veil-Failover") != "true" {
				t.Errorf("served by %q, failover %q", s.Header().Get("X-Veil-Provider"), s.Header().Get("X-Veil-Failover"))
			}
			var text strings.Builder
			for {
				chunk, err := s.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("the client saw an error: %v", err)
				}
				if len(chunk.Choices) > 0 {
					text.WriteString(chunk.Choices[0].Delta.Content)
				}
			}
			if text.String() != want.text {
				t.Errorf("text %q, want %q", text.String(), want.text)
			}
		})
	}

	// After content went out, a cut is an in-band error, not a failover.
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindCut, After: 3})
	s, err := h.client().CreateChatCompletionStream(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var streamErr error
	for {
		if _, streamErr = s.Recv(); streamErr != nil {
			break
		}
	}
	var apiErr *openai.APIError
	if errors.Is(streamErr, io.EOF) || (!errors.As(streamErr, &apiErr) && !strings.Contains(streamErr.Error(), "upstream_stream_error")) {
		t.Errorf("a stream cut after content ended with %v, want the in-band error", streamErr)
	}
}
