package usage

import (
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/internal/jsonfield"
)

// Tokens is the usage an answer reports. Model aliases the answer.
type Tokens struct {
	Prompt, Completion, Cached, Total int64
	// Model is the model the provider says answered, aliasing the body.
	Model []byte
	// Found reports whether a usage object was seen.
	Found bool
}

// FromBody reads the model and the usage object of a non-streamed answer
// (chat completions, completions, embeddings, responses) without decoding
// the body. It reports whether a usage object was found.
func FromBody(body []byte, t *Tokens) bool {
	_ = jsonfield.Each(body, func(key, value []byte) bool {
		switch string(key) {
		case "model":
			if m, err := jsonfield.String(value); err == nil {
				t.Model = m
			}
		case "usage":
			readUsage(value, t)
		}
		return true
	})
	return t.Found
}

// FromChunk reads usage from one streamed event's data: a chat or
// completions chunk whose "usage" is not null, or a Responses API event
// carrying "response" with its usage (response.completed). It reports
// whether the chunk carried usage, and whether it is a usage-only chunk
// (no choices), which veil removes again when it asked for usage itself.
func FromChunk(data []byte, t *Tokens) (hasUsage, usageOnly bool) {
	choices := -1
	_ = jsonfield.Each(data, func(key, value []byte) bool {
		switch string(key) {
		case "model":
			if m, err := jsonfield.String(value); err == nil && len(m) > 0 {
				t.Model = m
			}
		case "usage":
			if readUsage(value, t) {
				hasUsage = true
			}
		case "choices":
			choices = countElements(value)
		case "response":
			if u, ok, _ := jsonfield.Get(value, "usage"); ok && readUsage(u, t) {
				hasUsage = true
			}
			if m, ok, _ := jsonfield.Get(value, "model"); ok {
				if s, err := jsonfield.String(m); err == nil && len(s) > 0 {
					t.Model = s
				}
			}
		}
		return true
	})
	return hasUsage, hasUsage && choices == 0
}

// readUsage reads an OpenAI usage object: prompt/completion tokens (chat,
// completions, embeddings) or input/output tokens (responses), with cached
// tokens from prompt_tokens_details or input_tokens_details. Absurd values
// (negative, or over a billion) count as zero.
func readUsage(u []byte, t *Tokens) bool {
	if len(u) == 0 || u[0] != '{' {
		return false
	}
	found := false
	_ = jsonfield.Each(u, func(key, value []byte) bool {
		switch string(key) {
		case "prompt_tokens", "input_tokens":
			t.Prompt, found = count(value), true
		case "completion_tokens", "output_tokens":
			t.Completion, found = count(value), true
		case "total_tokens":
			t.Total, found = count(value), true
		case "prompt_tokens_details", "input_tokens_details":
			if c, ok, _ := jsonfield.Get(value, "cached_tokens"); ok {
				t.Cached = count(c)
			}
		}
		return true
	})
	if found {
		t.Found = true
		if t.Total == 0 {
			t.Total = t.Prompt + t.Completion
		}
		if t.Cached > t.Prompt {
			t.Cached = t.Prompt
		}
	}
	return found
}

func count(raw []byte) int64 {
	n, err := jsonfield.Int(raw)
	if err != nil || n < 0 || n > billing.MaxTokens {
		return 0
	}
	return n
}

// countElements counts the elements of a JSON array (0 for an empty or
// non-array value, -1 when it cannot be read).
func countElements(raw []byte) int {
	if len(raw) == 0 || raw[0] != '[' {
		return -1
	}
	n := 0
	for i := 1; i < len(raw); i++ {
		switch raw[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case ']':
			return n
		}
		return 1 // non-empty; the exact count is not needed
	}
	return n
}
