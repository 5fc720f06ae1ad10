package proxy

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/sse"
)

func TestResumeBody(t *testing.T) {
	body := []byte(`{"model":"wedsync-fast","n":1,"stream":true,"temperature":0.2,` +
		`"messages":[{"role":"system","content":"You plan weddings."},{"role":"user","content":"A June timeline"}]}`)
	out, err := resumeBody(body, []byte("gpt-4o-mini"), []byte("09:00 Hair and make-up\n10:30 \"First look\""))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Model         string            `json:"model"`
		N             *int              `json:"n"`
		Stream        bool              `json:"stream"`
		Temperature   float64           `json:"temperature"`
		StreamOptions map[string]bool   `json:"stream_options"`
		Messages      []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if got.Model != "gpt-4o-mini" || got.N != nil || !got.Stream || got.Temperature != 0.2 || !got.StreamOptions["include_usage"] {
		t.Errorf("fields: %s", out)
	}
	if len(got.Messages) != 4 || string(got.Messages[0]) != `{"role":"system","content":"You plan weddings."}` ||
		string(got.Messages[2]) != `{"content":"09:00 Hair and make-up\n10:30 \"First look\"","role":"assistant"}` ||
		!strings.Contains(string(got.Messages[3]), "Continue it exactly where it stopped") {
		t.Errorf("messages: %s", out)
	}
	for _, bad := range []string{`[]`, `{"messages":{}}`, `{`} {
		if _, err := resumeBody([]byte(bad), []byte("m"), []byte("x")); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestResumeObserve(t *testing.T) {
	tests := []struct {
		name    string
		chunks  []string
		text    string
		blocked bool
	}{
		{"text", []string{
			`{"id":"chatcmpl-1","created":17,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`,
			`{"id":"chatcmpl-1","created":17,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Dear \u00e9"},"finish_reason":null}]}`,
			`{"id":"chatcmpl-1","created":17,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"friends"}}]}`,
		}, "Dear éfriends", false},
		{"tool call", []string{
			`{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1"}]}}]}`,
		}, "", true},
		{"second choice", []string{
			`{"id":"c","created":1,"model":"m","choices":[{"index":1,"delta":{"content":"x"}}]}`,
		}, "", true},
		{"finished", []string{
			`{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Done."},"finish_reason":"stop"}]}`,
		}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := &resumeState{}
			for _, c := range tc.chunks {
				rs.observe([]byte(c))
			}
			if tc.blocked != rs.blocked || !tc.blocked && string(rs.text) != tc.text {
				t.Errorf("text %q blocked %v", rs.text, rs.blocked)
			}
			if tc.name == "text" && (string(rs.id) != `"chatcmpl-1"` || string(rs.created) != "17" || string(rs.model) != `"gpt-4o-mini"`) {
				t.Errorf("identity %s %s %s", rs.id, rs.created, rs.model)
			}
		})
	}
}

func TestRewriteContinuation(t *testing.T) {
	x := &exchange{resume: &resumeState{id: []byte(`"chatcmpl-first"`), created: []byte("100"), model: []byte(`"gpt-4o-mini"`),
		fingerprint: []byte(`"fp_a"`), skipping: true}}
	ev := func(data string) sse.Event {
		return sse.Event{Data: []byte(data), Raw: sse.AppendEvent(nil, []byte(data))}
	}
	role := x.resume.rewriteContinuation(ev(`{"id":"chatcmpl-second","created":200,"model":"gpt-4o-mini-2024","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`))
	if !role.Comment {
		t.Errorf("the continuation's role chunk is not dropped: %q", role.Raw)
	}
	got := x.resume.rewriteContinuation(ev(`{"id":"chatcmpl-second","object":"chat.completion.chunk","created":200,"model":"gpt-4o-mini-2024","system_fingerprint":"fp_b","choices":[{"index":0,"delta":{"content":" more"}}]}`))
	want := `{"id":"chatcmpl-first","object":"chat.completion.chunk","created":100,"model":"gpt-4o-mini","system_fingerprint":"fp_a","choices":[{"index":0,"delta":{"content":" more"}}]}`
	if string(got.Data) != want || string(got.Raw) != "data: "+want+"\n\n" {
		t.Errorf("got %q\nwant %q", got.Raw, want)
	}
	if done := x.resume.rewriteContinuation(ev("[DONE]")); string(done.Data) != "[DONE]" {
		t.Errorf("[DONE] changed: %q", done.Data)
	}
}

func TestMergeResumed(t *testing.T) {
	req := []byte(`{"model":"m","messages":[{"role":"user","content":"Write a long wedding speech."}]}`) // 86 bytes
	x := &exchange{attemptCount: 2, resume: &resumeState{req: fasthttp.AcquireRequest()}}
	defer x.releaseResume()
	x.resume.req.SetBody(req)
	x.resume.text = []byte("Dear friends and family, " + "welcome to the day we have waited for.") // 25 + 38 bytes
	x.resume.parts = []resumePart{{log: 0, estimated: true, from: 0, to: 25}}
	x.usage.tokens.Prompt, x.usage.tokens.Completion = 60, 19 // the continuation's own usage: 19 tokens for 38 bytes
	x.mergeResumed()
	first, second := x.attemptLog[0], x.attemptLog[1]
	// 25 bytes at the continuation's 0.5 tokens a byte; the prompt's share
	// before veil added 25 bytes and the instruction.
	wantPrompt := int64(math.Round(60 * float64(len(req)) / float64(len(req)+25+len(resumeInstruction))))
	if first.CompletionTokens != 13 || first.PromptTokens != wantPrompt || !first.TokensEstimated {
		t.Errorf("first attempt %+v, want 13 completion and %d prompt tokens", first, wantPrompt)
	}
	if second.PromptTokens != 60 || second.CompletionTokens != 19 || second.TokensEstimated {
		t.Errorf("second attempt %+v", second)
	}
	if x.usage.tokens.Prompt != 60+wantPrompt || x.usage.tokens.Completion != 32 || x.usage.tokens.Total != x.usage.tokens.Prompt+32 {
		t.Errorf("totals %+v", x.usage.tokens)
	}
}
