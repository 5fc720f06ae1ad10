package usage

import "testing"

func TestFromBody(t *testing.T) {
	cases := []struct {
		name, body            string
		prompt, compl, cached int64
		total                 int64
		model                 string
	}{
		{"chat", `{"id":"c","model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":4}}}`, 12, 30, 4, 42, "gpt-4o-mini-2024-07-18"},
		{"embeddings", `{"object":"list","data":[],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}`, 8, 0, 0, 8, "text-embedding-3-small"},
		{"responses", `{"id":"resp_1","model":"gpt-4o","usage":{"input_tokens":20,"output_tokens":5,"total_tokens":25,"input_tokens_details":{"cached_tokens":10}}}`, 20, 5, 10, 25, "gpt-4o"},
		{"no total", `{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, 3, 4, 0, 7, ""},
		{"absurd", `{"usage":{"prompt_tokens":1e30,"completion_tokens":-5,"total_tokens":99999999999999}}`, 0, 0, 0, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tk Tokens
			if !FromBody([]byte(tc.body), &tk) {
				t.Fatal("no usage found")
			}
			if tk.Prompt != tc.prompt || tk.Completion != tc.compl || tk.Cached != tc.cached || tk.Total != tc.total || string(tk.Model) != tc.model {
				t.Errorf("got %+v (model %s)", tk, tk.Model)
			}
		})
	}
	var tk Tokens
	if FromBody([]byte(`{"error":{"message":"x"}}`), &tk) {
		t.Error("usage found in an error body")
	}
}

func TestFromChunk(t *testing.T) {
	cases := []struct {
		name, data          string
		hasUsage, usageOnly bool
		prompt              int64
	}{
		{"content chunk", `{"id":"c","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}`, false, false, 0},
		{"usage chunk", `{"id":"c","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`, true, true, 9},
		{"usage with choices", `{"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":9,"completion_tokens":2}}`, true, false, 9},
		{"responses completed", `{"type":"response.completed","response":{"id":"r","model":"gpt-4o","usage":{"input_tokens":7,"output_tokens":3,"total_tokens":10}}}`, true, false, 7},
		{"responses delta", `{"type":"response.output_text.delta","delta":"Hi"}`, false, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tk Tokens
			has, only := FromChunk([]byte(tc.data), &tk)
			if has != tc.hasUsage || only != tc.usageOnly || tk.Prompt != tc.prompt {
				t.Errorf("has %v only %v tokens %+v", has, only, tk)
			}
		})
	}
}

func TestFromChunkAllocs(t *testing.T) {
	data := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" garden"},"finish_reason":null}],"usage":null}`)
	var tk Tokens
	if a := testing.AllocsPerRun(100, func() { FromChunk(data, &tk) }); a != 0 {
		t.Errorf("%.1f allocations per chunk", a)
	}
}

func BenchmarkFromChunk(b *testing.B) {
	data := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" garden"},"finish_reason":null}],"usage":null}`)
	var tk Tokens
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		FromChunk(data, &tk)
	}
}

func BenchmarkFromBody(b *testing.B) {
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"The barn seats 120 guests with a garden terrace for the drinks reception."},"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":17,"total_tokens":41,"prompt_tokens_details":{"cached_tokens":0}}}`)
	var tk Tokens
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		tk = Tokens{}
		FromBody(body, &tk)
	}
}
