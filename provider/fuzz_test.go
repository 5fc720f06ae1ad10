package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/keys"
)

// FuzzTranslateRequest feeds arbitrary chat completion bodies to every
// translator: none may panic, and what goes upstream is valid JSON, or the
// call is refused with a RequestError.
func FuzzTranslateRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/request/*.json")
	for _, name := range files {
		var rc requestCase
		if b, err := os.ReadFile(name); err == nil && json.Unmarshal(b, &rc) == nil && len(rc.Body) > 0 {
			f.Add([]byte(rc.Body))
		}
	}
	f.Add([]byte(`{"messages":[{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]}]}`))
	f.Add([]byte(`{"messages":[{"role":"tool"}],"tools":[{"function":{"parameters":null}}],"tool_choice":{}}`))
	f.Add([]byte(`{"messages":[],"max_tokens":-1,"stop":[1]}`))
	names := []string{"anthropic", "azure", "openai", "groq", "ollama", "vllm"}
	providers := make([]*Provider, len(names))
	for i, n := range names {
		p, err := New(goldenProviders[n], []keys.Secret{keys.NewSecret(goldenKey)}, Options{})
		if err != nil {
			f.Fatal(err)
		}
		providers[i] = p
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range providers {
			var req fasthttp.Request
			req.Header.SetMethod(fasthttp.MethodPost)
			req.SetBody(body)
			c := &Call{Suffix: []byte("/chat/completions"), Model: []byte("m"), Key: p.Platform().Next(time.Now())}
			err := p.Prepare(&req, c)
			var re *RequestError
			switch {
			case err == nil:
				if json.Valid(body) && !json.Valid(req.Body()) {
					t.Fatalf("%s: valid JSON in, invalid out: %q -> %q", p.Name(), body, req.Body())
				}
			case !errors.As(err, &re) || re.Status != fasthttp.StatusBadRequest || re.Message == "":
				t.Fatalf("%s: %v is not a clear client error", p.Name(), err)
			}
		}
	})
}

// FuzzAnthropicStream feeds arbitrary upstream streams to the Messages
// API stream translator: no panic, and every event it makes is valid JSON.
func FuzzAnthropicStream(f *testing.F) {
	files, _ := filepath.Glob("testdata/anthropic/stream/*.sse")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	p, err := New(goldenProviders["anthropic"], []keys.Secret{keys.NewSecret(goldenKey)}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		src := p.Events(sse.NewReader(bytes.NewReader(in), 1<<16), &Call{})
		for range 10000 {
			ev, err := src.Next()
			if err != nil {
				return
			}
			if len(ev.Data) > 0 && !sse.IsDone(ev.Data) && !json.Valid(ev.Data) {
				t.Fatalf("invalid JSON event %q from %q", ev.Data, in)
			}
		}
	})
}
