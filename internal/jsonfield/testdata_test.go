package jsonfield

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// chatBody returns a chat completions request of roughly size bytes with
// realistic content: several messages with escapes and non-ASCII text.
func chatBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"model":"gpt-4o-mini","messages":[`)
	b.WriteString(`{"role":"system","content":"You are a helpful assistant.\nAnswer briefly and cite \"sources\" when asked."}`)
	sentence := `The quick brown fox jumps over the lazy dog \u00e9t\u00e9 — café, naïve, 日本語. Tabs\tand \"quotes\" and \\backslashes\\. `
	for i := 0; b.Len() < size-300; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		fmt.Fprintf(&b, `,{"role":%q,"content":"`, role)
		n := (size - b.Len() - 300) / len(sentence)
		n = max(1, min(n, 8))
		b.WriteString(strings.Repeat(sentence, n))
		b.WriteString(`"}`)
	}
	b.WriteString(`],"temperature":0.7,"top_p":1,"max_tokens":512,"stream":true,`)
	b.WriteString(`"stream_options":{"include_usage":true},"n":1,"seed":42,"user":"user-1234",`)
	b.WriteString(`"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}`)
	if !json.Valid(b.Bytes()) {
		panic("chatBody: invalid JSON")
	}
	return b.Bytes()
}

// seedBodies are typical and tricky inputs shared by tests and fuzz seeds.
var seedBodies = []string{
	`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
	`{"model":"text-embedding-3-small","input":["a","b"],"encoding_format":"float","dimensions":256}`,
	`{"model":"o4-mini","input":[{"role":"user","content":[{"type":"input_text","text":"x"}]}],"max_output_tokens":1000,"stream":false}`,
	`{"model":"gpt-4.1","max_completion_tokens":100,"max_tokens":5,"temperature":0.2,"top_p":0.9,"seed":-7,"n":2,"user":"u\"1"}`,
	`{"model":"gpt-\u0034o","\u006dodel2":1,"str\u0065am":true}`,
	`{"model":"\ud83d\ude00","user":"\ud800","x":"\udc00\ud800\u0041"}`,
	`{"functions":[],"tools":null,"seed":1e3,"n":1.0,"max_tokens":2.5e1}`,
	`  {"a" : { "b" : [ 1 , 2 , { "c" : null } ] } , "d" : -0.5e-3 , "e" : "" }  `,
	`{"a":{"b":{"c":{"d":[[[[[]]]]]}}}}`,
	`{}`, `{ }`, "\t{\r\n}\n",
	`{"a":1,"a":2}`,
	`{"stream":"yes"}`, `{"model":5}`, `{"n":1.5}`, `{"seed":99999999999999999999}`,
	`{"stream_options":{"include_usage":"no"}}`, `{"tools":{}}`,
	// Malformed.
	``, `{`, `}`, `[]`, `"x"`, `null`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":+1}`, `{"a":tru}`, `{"a":nul}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"` + "\x01" + `"}`, `{"a":"unterminated}`,
	`{"a":[1,2}`, `{"a":{"b":1]}`, `{"a":1}x`, `{"a":1}{}`, `{'a':1}`, `{"a":NaN}`,
	"{\"a\":\"\xff\xfe\"}", "{\"\xc3\":1}",
}
