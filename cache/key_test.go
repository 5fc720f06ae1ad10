package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func mustKey(t testing.TB, scope, body string) Key {
	t.Helper()
	k, err := NewKey(scope, []byte(body))
	if err != nil {
		t.Fatalf("NewKey(%q, %s): %v", scope, body, err)
	}
	return k
}

func canonicalString(t testing.TB, body string) string {
	t.Helper()
	out, err := Canonical(nil, []byte(body))
	if err != nil {
		t.Fatalf("Canonical(%s): %v", body, err)
	}
	return string(out)
}

func TestCanonical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want string
	}{
		{"empty object", ` { } `, `{}`},
		{"sorted keys", `{"b":1,"a":2,"c":{"z":[],"y":{}}}`, `{"a":2,"b":1,"c":{"y":{},"z":[]}}`},
		{"whitespace", "{\n\t\"a\" :\r\n [ 1 , true , null , false ] }", `{"a":[1,true,null,false]}`},
		{"array order kept", `{"a":[3,1,2]}`, `{"a":[3,1,2]}`},
		{"escapes", `{"s":"\u0041\/\"\\\b\f\n\r\t\u0001\u001F\u007f\u00e9"}`, `{"s":"A/\"\\\b\f\n\r\t\u0001\u001f` + "\x7fé" + `"}`},
		{"surrogate pair", `{"s":"\ud83d\udc8D"}`, `{"s":"💍"}`},
		{"lone surrogates", `{"s":"\uD800x\udc00\ud800\u0041"}`, `{"s":"\ud800x\udc00\ud800A"}`},
		{"raw utf-8 and html", `{"s":"é <b> & ` + "\u2028" + `"}`, `{"s":"é <b> & ` + "\u2028" + `"}`},
		{"key sorted by unescaped value", `{"\u0062":1,"a":2}`, `{"a":2,"b":1}`},
		{"integers", `{"a":[0,-0,1,-1,10,100,120]}`, `{"a":[0,0,1,-1,1e1,1e2,12e1]}`},
		{"fractions", `{"a":[1.0,1.50,0.001,-0.0,10e-1,0.1e1]}`, `{"a":[1,15e-1,1e-3,0,1,1]}`},
		{"leading zeros rejected (want error)", `{"a":[1e0,00e0]}`, ``},
		{"big integer", `{"seed":123456789012345678901234567890}`, `{"seed":12345678901234567890123456789e1}`},
		{"huge exponent", `{"a":1e123456789012345678901234567890}`, `{"a":1e123456789012345678901234567890}`},
		{"huge negative exponent", `{"a":10.0e-123456789012345678901234567890}`, `{"a":1e-123456789012345678901234567889}`},
		{"ignored top-level fields", `{"user":"u1","model":"m","stream":true,"stream_options":{"include_usage":true}}`, `{"model":"m"}`},
		{"only ignored fields", `{"stream":false,"user":"x"}`, `{}`},
		{"nested user kept", `{"metadata":{"user":"u"},"user":"v"}`, `{"metadata":{"user":"u"}}`},
		{"ignored between kept", `{"b":1,"stream":true,"a":2}`, `{"a":2,"b":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := Canonical(nil, []byte(tt.body))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("Canonical(%s) = %s, want an error", tt.body, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("Canonical(%s): %v", tt.body, err)
			}
			if string(out) != tt.want {
				t.Errorf("Canonical(%s)\n got %s\nwant %s", tt.body, out, tt.want)
			}
			if !json.Valid(out) {
				t.Errorf("canonical form %s is not valid JSON", out)
			}
		})
	}
}

func TestCanonicalExponents(t *testing.T) {
	t.Parallel()
	got := canonicalString(t, `{"a":[1e0,1E+2,1e-2,0e99,2.5e-3,-0.0e-0]}`)
	if want := `{"a":[1,1e2,1e-2,0,25e-4,0]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestKeyEqual(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b string
	}{
		{"key order", `{"model":"gpt-4o","temperature":0}`, `{"temperature":0,"model":"gpt-4o"}`},
		{"whitespace", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "{ \"model\" : \"gpt-4o\",\n \"messages\" : [ {\"content\":\"hi\" ,\"role\":\"user\"} ] }"},
		{"string escapes", `{"model":"\u0067pt-4o"}`, `{"model":"gpt-4o"}`},
		{"solidus", `{"url":"a\/b"}`, `{"url":"a/b"}`},
		{"unicode escape", `{"c":"caf\u00e9 \ud83d\udc92"}`, `{"c":"café 💒"}`},
		{"escaped key", `{"\u006dodel":"m"}`, `{"model":"m"}`},
		{"one forms", `{"n":1}`, `{"n":1.0}`},
		{"one exponent", `{"n":1}`, `{"n":1e0}`},
		{"one shifted", `{"n":1}`, `{"n":10e-1}`},
		{"negative zero", `{"t":-0}`, `{"t":0}`},
		{"zero forms", `{"t":0}`, `{"t":0.0e5}`},
		{"fraction forms", `{"p":0.95}`, `{"p":95e-2}`},
		{"big integer forms", `{"seed":12345678901234567890}`, `{"seed":1234567890123456789e1}`},
		{"user ignored", `{"model":"m","user":"supplier-42"}`, `{"model":"m"}`},
		{"stream ignored", `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, `{"model":"m","stream":false}`},
		{"nested order", `{"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"b":{},"a":{}}}}}]}`, `{"tools":[{"function":{"parameters":{"properties":{"a":{},"b":{}},"type":"object"},"name":"f"},"type":"function"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if ka, kb := mustKey(t, "s", tt.a), mustKey(t, "s", tt.b); ka != kb {
				t.Errorf("keys differ:\n%s -> %s\n%s -> %s", tt.a, canonicalString(t, tt.a), tt.b, canonicalString(t, tt.b))
			}
		})
	}
}

func TestKeyDifferent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b string
	}{
		{"array order", `{"a":[1,2]}`, `{"a":[2,1]}`},
		{"number value", `{"n":1}`, `{"n":1.5}`},
		{"seed beyond float64", `{"seed":12345678901234567890}`, `{"seed":12345678901234567891}`},
		{"tiny difference", `{"t":0}`, `{"t":1e-400}`},
		{"number and string", `{"n":1}`, `{"n":"1"}`},
		{"bool and string", `{"b":true}`, `{"b":"true"}`},
		{"null and absent", `{"a":null}`, `{}`},
		{"null and false", `{"a":null}`, `{"a":false}`},
		{"empty object and array", `{"a":{}}`, `{"a":[]}`},
		{"nested user kept", `{"metadata":{"user":"a"}}`, `{"metadata":{"user":"b"}}`},
		{"case", `{"model":"GPT-4o"}`, `{"model":"gpt-4o"}`},
		{"lone surrogate and replacement", `{"s":"\ud800"}`, `{"s":"\ufffd"}`},
		{"trailing space in string", `{"s":"a"}`, `{"s":"a "}`},
		{"escaped quote placement", `{"a":"\",\"b\":\""}`, `{"a":"","b":""}`},
		{"store kept", `{"model":"m"}`, `{"model":"m","store":true}`},
		{"metadata kept", `{"model":"m"}`, `{"model":"m","metadata":{"k":"v"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if mustKey(t, "s", tt.a) == mustKey(t, "s", tt.b) {
				t.Errorf("keys equal for %s and %s", tt.a, tt.b)
			}
		})
	}
}

const baseChat = `{
	"model": "gpt-4o-mini",
	"temperature": 0,
	"top_p": 1,
	"max_tokens": 256,
	"seed": 9007199254740993,
	"messages": [
		{"role": "system", "content": "You are the booking assistant of a wedding florist."},
		{"role": "user", "content": "Can you do peonies in June?"}
	],
	"tools": [{"type": "function", "function": {"name": "check_stock", "parameters": {"type": "object", "properties": {"flower": {"type": "string"}}}}}]
}`

// TestKeyChangesWithParameters checks that changing any generation
// parameter of a request changes its key.
func TestKeyChangesWithParameters(t *testing.T) {
	t.Parallel()
	base := mustKey(t, "supplier-1", baseChat)
	tests := []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"model", func(m map[string]any) { m["model"] = "gpt-4o" }},
		{"temperature", func(m map[string]any) { m["temperature"] = json.Number("0.2") }},
		{"top_p", func(m map[string]any) { m["top_p"] = json.Number("0.9") }},
		{"max_tokens", func(m map[string]any) { m["max_tokens"] = json.Number("257") }},
		{"seed last digit", func(m map[string]any) { m["seed"] = json.Number("9007199254740992") }},
		{"message content", func(m map[string]any) {
			m["messages"].([]any)[1].(map[string]any)["content"] = "Can you do peonies in July?"
		}},
		{"message role", func(m map[string]any) {
			m["messages"].([]any)[0].(map[string]any)["role"] = "developer"
		}},
		{"message added", func(m map[string]any) {
			m["messages"] = append(m["messages"].([]any), map[string]any{"role": "user", "content": "Thanks"})
		}},
		{"tool name", func(m map[string]any) {
			m["tools"].([]any)[0].(map[string]any)["function"].(map[string]any)["name"] = "check_price"
		}},
		{"tools removed", func(m map[string]any) { delete(m, "tools") }},
		{"n added", func(m map[string]any) { m["n"] = json.Number("1") }},
		{"stop added", func(m map[string]any) { m["stop"] = []any{"\n"} }},
		{"response_format added", func(m map[string]any) { m["response_format"] = map[string]any{"type": "json_object"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := decodeUseNumber(t, baseChat)
			tt.mutate(m)
			body, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if k := mustKey(t, "supplier-1", string(body)); k == base {
				t.Errorf("key unchanged after changing %s: %s", tt.name, body)
			}
		})
	}
	t.Run("ignored fields keep the key", func(t *testing.T) {
		t.Parallel()
		m := decodeUseNumber(t, baseChat)
		m["user"], m["stream"] = "end-user-7", true
		m["stream_options"] = map[string]any{"include_usage": true}
		body, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if k := mustKey(t, "supplier-1", string(body)); k != base {
			t.Errorf("key changed by ignored fields: %s", body)
		}
	})
}

func decodeUseNumber(t testing.TB, body string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestKeyScopes(t *testing.T) {
	t.Parallel()
	scopes := []string{"", "supplier-1", "supplier-2", "supplier-10", "platform", "supplier-1\x00"}
	seen := make(map[Key]string)
	for _, s := range scopes {
		k := mustKey(t, s, baseChat)
		if prev, ok := seen[k]; ok {
			t.Errorf("scopes %q and %q share key %v", prev, s, k)
		}
		seen[k] = s
		if again := mustKey(t, s, baseChat); again != k {
			t.Errorf("scope %q: key not stable", s)
		}
	}
}

func TestKeyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want error
	}{
		{"empty", ``, ErrInvalidJSON},
		{"blank", "  \n", ErrInvalidJSON},
		{"array", `[1]`, ErrNotObject},
		{"string", `"x"`, ErrNotObject},
		{"number", `1`, ErrNotObject},
		{"unterminated object", `{"a":1`, ErrInvalidJSON},
		{"missing colon", `{"a" 1}`, ErrInvalidJSON},
		{"missing value", `{"a":}`, ErrInvalidJSON},
		{"trailing comma", `{"a":1,}`, ErrInvalidJSON},
		{"trailing comma in array", `{"a":[1,]}`, ErrInvalidJSON},
		{"unquoted key", `{a:1}`, ErrInvalidJSON},
		{"single quotes", `{'a':1}`, ErrInvalidJSON},
		{"trailing data", `{"a":1} {}`, ErrInvalidJSON},
		{"trailing garbage", `{"a":1}x`, ErrInvalidJSON},
		{"leading zero", `{"a":01}`, ErrInvalidJSON},
		{"bare minus", `{"a":-}`, ErrInvalidJSON},
		{"dot without digits", `{"a":1.}`, ErrInvalidJSON},
		{"leading dot", `{"a":.5}`, ErrInvalidJSON},
		{"exponent without digits", `{"a":1e}`, ErrInvalidJSON},
		{"plus sign", `{"a":+1}`, ErrInvalidJSON},
		{"NaN", `{"a":NaN}`, ErrInvalidJSON},
		{"bad literal", `{"a":tru}`, ErrInvalidJSON},
		{"unterminated string", `{"a":"x`, ErrInvalidJSON},
		{"raw newline in string", "{\"a\":\"x\ny\"}", ErrInvalidJSON},
		{"bad escape", `{"a":"\x"}`, ErrInvalidJSON},
		{"short unicode escape", `{"a":"\u12"}`, ErrInvalidJSON},
		{"bad hex", `{"a":"\u12g4"}`, ErrInvalidJSON},
		{"invalid utf-8", "{\"a\":\"\xff\"}", ErrInvalidJSON},
		{"utf-8 surrogate", "{\"a\":\"\xed\xa0\x80\"}", ErrInvalidJSON},
		{"byte order mark", "\xef\xbb\xbf{}", ErrNotObject},
		{"duplicate key", `{"a":1,"a":2}`, ErrDuplicateKey},
		{"duplicate escaped key", `{"a":1,"\u0061":1}`, ErrDuplicateKey},
		{"duplicate nested key", `{"m":[{"role":"user","role":"system"}]}`, ErrDuplicateKey},
		{"duplicate ignored key", `{"stream":true,"stream":false}`, ErrDuplicateKey},
		{"too deep", `{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewKey("s", []byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Errorf("NewKey(%q) error = %v, want %v", tt.body, err, tt.want)
			}
		})
	}
	t.Run("deepest accepted", func(t *testing.T) {
		t.Parallel()
		d := MaxDepth - 1
		body := `{"a":` + strings.Repeat("[", d) + strings.Repeat("]", d) + `}`
		if _, err := NewKey("s", []byte(body)); err != nil {
			t.Errorf("NewKey at depth %d: %v", MaxDepth, err)
		}
	})
}

func TestKeyString(t *testing.T) {
	t.Parallel()
	var k Key
	k[0], k[31] = 0xab, 0x01
	want := "ab" + strings.Repeat("00", 30) + "01"
	if got := k.String(); got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	if got := fmt.Sprint(k); got != want {
		t.Errorf("Sprint = %s, want %s", got, want)
	}
}

// chatBody returns a chat completion request of about size bytes, with its
// keys in the order clients usually send them.
func chatBody(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are the assistant of Rose \u0026 Thorn Florals, a wedding florist in the Cotswolds. Answer briefly."}`)
	for i := 0; b.Len() < size-200; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		fmt.Fprintf(&b, `,{"role":%q,"content":"Message %d: could we have peonies, sweet peas and eucalyptus for twelve tables on 14 June?"}`, role, i)
	}
	b.WriteString(`],"temperature":0,"max_tokens":512,"seed":1234567890123,"stream":true,"stream_options":{"include_usage":true},"user":"couple-77"}`)
	return []byte(b.String())
}

func BenchmarkNewKey(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		body := chatBody(size)
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := NewKey("supplier-1", body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
