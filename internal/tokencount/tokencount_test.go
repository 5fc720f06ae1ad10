package tokencount

import (
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"
)

// cookbookMessages are the example messages of OpenAI's cookbook "How to
// count tokens with tiktoken", for which the API reported 129 prompt
// tokens on gpt-3.5-turbo and gpt-4 (cl100k_base) and 124 on gpt-4o and
// gpt-4o-mini (o200k_base).
const cookbookMessages = `[
{"role":"system","content":"You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
{"role":"system","name":"example_user","content":"New synergies will help drive top-line growth."},
{"role":"system","name":"example_assistant","content":"Things working well together will increase revenue."},
{"role":"system","name":"example_user","content":"Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
{"role":"system","name":"example_assistant","content":"Let's talk later when we're less busy about how to do better."},
{"role":"user","content":"This late pivot means we don't have time to boil the ocean for the client deliverable."}]`

func TestMessagesMatchTheAPI(t *testing.T) {
	for _, tt := range []struct {
		model string
		want  int
	}{{"gpt-3.5-turbo", 129}, {"gpt-4-0613", 129}, {"gpt-4o", 124}, {"gpt-4o-mini-2024-07-18", 124}} {
		if got := ForModel(tt.model).Messages(gjson.Parse(cookbookMessages)); got != tt.want {
			t.Errorf("%s: %d prompt tokens, the API reported %d", tt.model, got, tt.want)
		}
	}
}

func TestForModel(t *testing.T) {
	for _, tt := range []struct {
		model, enc string
		exact      bool
	}{
		{"gpt-4o", "o200k_base", true}, {"gpt-4o-mini", "o200k_base", true}, {"chatgpt-4o-latest", "o200k_base", true},
		{"gpt-4.1-nano", "o200k_base", true}, {"gpt-5", "o200k_base", true}, {"o1-mini", "o200k_base", true},
		{"o3", "o200k_base", true}, {"o4-mini", "o200k_base", true}, {"openai/gpt-4o", "o200k_base", true},
		{"gpt-4", "cl100k_base", true}, {"gpt-4-turbo", "cl100k_base", true}, {"gpt-3.5-turbo", "cl100k_base", true},
		{"gpt-35-turbo", "cl100k_base", true}, {"text-embedding-3-small", "cl100k_base", true},
		{"ft:gpt-4o-mini:acme::abc", "o200k_base", true},
		{"claude-sonnet-4-5", "cl100k_base", false}, {"llama-3-70b", "o200k_base", false}, {"", "o200k_base", false},
	} {
		e := ForModel(tt.model)
		if e.Name() != tt.enc || e.Exact() != tt.exact {
			t.Errorf("%q: %s exact %v, want %s exact %v", tt.model, e.Name(), e.Exact(), tt.enc, tt.exact)
		}
	}
}

func TestCount(t *testing.T) {
	for _, tt := range []struct {
		model, text string
		want        int
	}{
		{"gpt-4", "hello world", 2}, {"gpt-4o", "hello world", 2}, {"gpt-4", "", 0},
		{"gpt-4", "tiktoken is great!", 6},
	} {
		if got := ForModel(tt.model).Count(tt.text); got != tt.want {
			t.Errorf("%s %q: %d tokens, want %d", tt.model, tt.text, got, tt.want)
		}
	}
	if a, b := ForModel("gpt-4o").CountBytes([]byte("Café au lait 💐")), ForModel("gpt-4o").Count("Café au lait 💐"); a != b || a == 0 {
		t.Errorf("CountBytes %d, Count %d", a, b)
	}
}

func TestRequest(t *testing.T) {
	e := ForModel("gpt-4o")
	chat := `{"model":"gpt-4o","messages":` + cookbookMessages + `}`
	if got := e.Request([]byte(chat)); got != 124 {
		t.Errorf("chat request: %d tokens, want 124", got)
	}
	withTools := `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"get_weather"}}],"messages":` + cookbookMessages + `}`
	if got := e.Request([]byte(withTools)); got <= 124 {
		t.Errorf("tools add nothing: %d", got)
	}
	if got, want := e.Request([]byte(`{"model":"gpt-4o","prompt":["hello world","hello world"]}`)), 4; got != want {
		t.Errorf("completion prompt: %d, want %d", got, want)
	}
	if got, want := e.Request([]byte(`{"model":"text-embedding-3-small","input":[[1,2,3],[4]]}`)), 4; got != want {
		t.Errorf("token arrays: %d, want %d", got, want)
	}
	if got, want := e.Request([]byte(`{"model":"gpt-4o","instructions":"hello world","input":"hello world"}`)), 4; got != want {
		t.Errorf("responses: %d, want %d", got, want)
	}
}

func TestConcurrent(t *testing.T) {
	text := strings.Repeat("The ceremony begins at four o'clock in the rose garden. ", 20)
	want := ForModel("gpt-4o").Count(text)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if got := ForModel("gpt-4o").Count(text); got != want {
					t.Errorf("%d tokens, want %d", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
