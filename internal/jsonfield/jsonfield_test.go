package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

type member struct {
	key, value string
}

func collect(t *testing.T, body []byte) ([]member, error) {
	t.Helper()
	var got []member
	err := Each(body, func(k, v []byte) bool {
		got = append(got, member{string(k), string(v)})
		return true
	})
	return got, err
}

func TestEach(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []member
	}{
		{"empty", `{}`, nil},
		{"spaces", " \t\r\n{ \n} \n", nil},
		{"scalars", `{"a":1,"b":"x","c":true,"d":false,"e":null,"f":-1.5e+3}`, []member{
			{"a", "1"}, {"b", `"x"`}, {"c", "true"}, {"d", "false"}, {"e", "null"}, {"f", "-1.5e+3"},
		}},
		{"nested", `{"a" : { "b" : [1, {"c":[]}] } , "d":[ ]}`, []member{
			{"a", `{ "b" : [1, {"c":[]}] }`}, {"d", `[ ]`},
		}},
		{"escaped key", `{"a\"b\u0041":"\\\"}"}`, []member{{`a\"b\u0041`, `"\\\"}"`}}},
		{"duplicates", `{"a":1,"a":2}`, []member{{"a", "1"}, {"a", "2"}}},
		{"brackets in strings", `{"a":"]}[{","b":["}"]}`, []member{{"a", `"]}[{"`}, {"b", `["}"]`}}},
		{"utf8", `{"κλειδί":"値"}`, []member{{"κλειδί", `"値"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(t, []byte(tt.body))
			if err != nil {
				t.Fatalf("Each: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("member %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
			checkEach(t, []byte(tt.body))
		})
	}
}

func TestEachErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr error // nil means any *SyntaxError
	}{
		{"empty", ``, nil},
		{"only space", `  `, nil},
		{"array", `[1]`, ErrNotObject},
		{"string", `"x"`, ErrNotObject},
		{"null", `null`, ErrNotObject},
		{"number", `12`, ErrNotObject},
		{"bad top-level array", `[1,]`, nil},
		{"unclosed", `{"a":1`, nil},
		{"missing colon", `{"a" 1}`, nil},
		{"missing value", `{"a":}`, nil},
		{"trailing comma", `{"a":1,}`, nil},
		{"trailing comma array", `{"a":[1,]}`, nil},
		{"leading comma", `{,"a":1}`, nil},
		{"missing comma", `{"a":1 "b":2}`, nil},
		{"unquoted key", `{a:1}`, nil},
		{"single quotes", `{'a':1}`, nil},
		{"leading zero", `{"a":01}`, nil},
		{"bare point", `{"a":1.}`, nil},
		{"no int part", `{"a":.5}`, nil},
		{"plus", `{"a":+1}`, nil},
		{"bare minus", `{"a":-}`, nil},
		{"bad exponent", `{"a":1e+}`, nil},
		{"hex", `{"a":0x1}`, nil},
		{"NaN", `{"a":NaN}`, nil},
		{"short literal", `{"a":tru}`, nil},
		{"long literal", `{"a":truee}`, nil},
		{"bad escape", `{"a":"\x"}`, nil},
		{"short unicode escape", `{"a":"\u12"}`, nil},
		{"bad unicode escape", `{"a":"\u12g4"}`, nil},
		{"control char", "{\"a\":\"\x1f\"}", nil},
		{"newline in string", "{\"a\":\"\n\"}", nil},
		{"unterminated string", `{"a":"x}`, nil},
		{"mismatched close", `{"a":[1}`, nil},
		{"mismatched empty", `{"a":[}`, nil},
		{"trailing data", `{"a":1} x`, nil},
		{"two objects", `{}{}`, nil},
		{"too deep", `{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, ErrTooDeep},
		{"too deep objects", strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1), ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := collect(t, []byte(tt.body))
			if err == nil {
				t.Fatal("Each succeeded, want an error")
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			} else if _, ok := errors.AsType[*SyntaxError](err); !ok {
				t.Fatalf("err = %v (%T), want *SyntaxError", err, err)
			}
			checkEach(t, []byte(tt.body))
		})
	}
}

func TestEachMaxDepth(t *testing.T) {
	// The top-level object is depth 1, so MaxDepth-1 more levels fit.
	ok := `{"a":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`
	if _, err := collect(t, []byte(ok)); err != nil {
		t.Fatalf("depth %d: %v", MaxDepth, err)
	}
	if _, _, err := Get([]byte(strings.Repeat(`{"a":`, MaxDepth)+"1"+strings.Repeat("}", MaxDepth)), "a"); err != nil {
		t.Fatalf("Get at depth %d: %v", MaxDepth, err)
	}
}

func TestEachStopsEarly(t *testing.T) {
	calls := 0
	err := Each([]byte(`{"a":1,"b":2,"c":garbage`), func(k, v []byte) bool {
		calls++
		return string(k) != "b"
	})
	if err != nil || calls != 2 {
		t.Fatalf("Each = %v after %d calls, want nil after 2", err, calls)
	}
}

func TestSyntaxErrorOffset(t *testing.T) {
	_, err := collect(t, []byte(`{"a":1,"b":x}`))
	se, ok := errors.AsType[*SyntaxError](err)
	if !ok || se.Offset != 11 {
		t.Fatalf("err = %v, want *SyntaxError at offset 11", err)
	}
	if !strings.Contains(err.Error(), "offset 11") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestGet(t *testing.T) {
	body := []byte(`{"id":"x","usage":{"prompt_tokens":12,"completion_tokens":3,"details":{"cached":1}},"usage2":null,` +
		`"a":1,"a":{"b":2},"e\u0073c":"y","arr":[{"k":1}]}`)
	tests := []struct {
		path   []string
		want   string
		wantOK bool
	}{
		{[]string{"id"}, `"x"`, true},
		{[]string{"usage", "prompt_tokens"}, "12", true},
		{[]string{"usage", "details", "cached"}, "1", true},
		{[]string{"usage", "missing"}, "", false},
		{[]string{"missing"}, "", false},
		{[]string{"usage2", "x"}, "", false},
		{[]string{"id", "x"}, "", false},
		{[]string{"arr", "k"}, "", false},
		{[]string{"a", "b"}, "2", true}, // the last duplicate wins
		{[]string{"esc"}, `"y"`, true},
		{nil, string(body), true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.path, "."), func(t *testing.T) {
			got, ok, err := Get(body, tt.path...)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if ok != tt.wantOK || string(got) != tt.want {
				t.Fatalf("Get = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	t.Run("invalid", func(t *testing.T) {
		// Get validates the whole body even after finding the key.
		if _, _, err := Get([]byte(`{"a":1,"b":}`), "a"); err == nil {
			t.Fatal("Get accepted invalid JSON")
		}
		if _, _, err := Get([]byte(`[]`), "a"); !errors.Is(err, ErrNotObject) {
			t.Fatalf("Get on array: err = %v, want ErrNotObject", err)
		}
	})
}

func TestString(t *testing.T) {
	tests := []struct {
		raw  string
		want string
	}{
		{`""`, ""},
		{`"plain"`, "plain"},
		{`"日本"`, "日本"},
		{`"a\"b\\c\/d\b\f\n\r\t"`, "a\"b\\c/d\b\f\n\r\t"},
		{`"\u0041\u00e9\u65e5"`, "Aé日"},
		{`"\ud83d\ude00"`, "😀"},
		{`"\uD83D\uDE00x"`, "😀x"},
		{`"\ud83d"`, "\ufffd"},
		{`"\ude00"`, "\ufffd"},
		{`"\ud83d\u0041"`, "\ufffdA"},
		{`"\ud83d\ud83d\ude00"`, "\ufffd😀"},
		{"\"\xff\"", "\ufffd"},
		{"\"a\xc3\"", "a\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := String([]byte(tt.raw))
			if err != nil {
				t.Fatalf("String: %v", err)
			}
			if string(got) != tt.want {
				t.Fatalf("String = %q, want %q", got, tt.want)
			}
			var std string
			if err := json.Unmarshal([]byte(tt.raw), &std); err != nil || std != tt.want {
				t.Fatalf("encoding/json disagrees: %q, %v", std, err)
			}
		})
	}
	for _, raw := range []string{``, `"`, `x`, `"a`, `"a"b"`, `"a" `, `"\x"`, `"\u00"`, "\"\n\"", `1`} {
		t.Run("invalid "+raw, func(t *testing.T) {
			if got, err := String([]byte(raw)); err == nil {
				t.Fatalf("String(%q) = %q, want an error", raw, got)
			}
		})
	}
	t.Run("aliases", func(t *testing.T) {
		raw := []byte(`"model-name"`)
		got, _ := String(raw)
		if &got[0] != &raw[1] {
			t.Fatal("String copied a string without escapes")
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = String(raw) }); n != 0 {
			t.Fatalf("String allocates %v times", n)
		}
	})
}

func TestBool(t *testing.T) {
	tests := []struct {
		raw     string
		want    bool
		wantErr bool
	}{
		{"true", true, false},
		{"false", false, false},
		{"null", false, true},
		{`"true"`, false, true},
		{"1", false, true},
		{"True", false, true},
		{" true", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := Bool([]byte(tt.raw))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("Bool = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestInt(t *testing.T) {
	tests := []struct {
		raw     string
		want    int64
		wantErr error
	}{
		{"0", 0, nil},
		{"-0", 0, nil},
		{"7", 7, nil},
		{"-42", -42, nil},
		{"9223372036854775807", 9223372036854775807, nil},
		{"-9223372036854775808", -9223372036854775808, nil},
		{"9223372036854775808", 0, errRange},
		{"-9223372036854775809", 0, errRange},
		{"18446744073709551616", 0, errRange},
		{"99999999999999999999", 0, errRange},
		{"123456789012345678901234567890", 0, errRange},
		{"1e3", 1000, nil},
		{"1E+3", 1000, nil},
		{"1.0", 1, nil},
		{"2.50e1", 25, nil},
		{"100e-2", 1, nil},
		{"0.0001e4", 1, nil},
		{"0e999999999999", 0, nil},
		{"-0.0e-5", 0, nil},
		{"9.223372036854775807e18", 9223372036854775807, nil},
		{"92233720368547758070e-1", 9223372036854775807, nil},
		{"1000000000000000000000000000000e-25", 100000, nil},
		{"1.5", 0, errNotInteger},
		{"1e-1", 0, errNotInteger},
		{"0.1", 0, errNotInteger},
		{"1.00000000000000000000000000001", 0, errNotInteger},
		{"1e19", 0, errRange},
		{"1e999999999999", 0, errRange},
		{"1e-999999999999", 0, errNotInteger},
		{"", 0, errNotNumber},
		{"-", 0, errNotNumber},
		{"01", 0, errNotNumber},
		{"1.", 0, errNotNumber},
		{`"1"`, 0, errNotNumber},
		{"true", 0, errNotNumber},
		{"1 ", 0, errNotNumber},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := Int([]byte(tt.raw))
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Int = %d, %v; want %d, %v", got, err, tt.want, tt.wantErr)
			}
			if tt.wantErr != errNotNumber {
				checkInt(t, []byte(tt.raw))
			}
		})
	}
}

// checkInt compares Int with exact rational arithmetic.
func checkInt(t *testing.T, raw []byte) {
	t.Helper()
	got, err := Int(raw)
	// Exponents too large for big.Rat to handle quickly: zero, or far out
	// of range, or not integral.
	if e := bytes.IndexAny(raw, "eE"); e >= 0 {
		exp, perr := strconv.Atoi(strings.TrimPrefix(string(raw[e+1:]), "+"))
		if perr != nil || exp > 400 || exp < -400 {
			return
		}
	}
	var r big.Rat
	if _, ok := r.SetString(string(raw)); !ok {
		t.Fatalf("big.Rat cannot parse %q", raw)
	}
	switch {
	case !r.IsInt():
		if !errors.Is(err, errNotInteger) {
			t.Fatalf("Int(%q) = %d, %v; want errNotInteger", raw, got, err)
		}
	case !r.Num().IsInt64():
		if !errors.Is(err, errRange) {
			t.Fatalf("Int(%q) = %d, %v; want errRange", raw, got, err)
		}
	default:
		if err != nil || got != r.Num().Int64() {
			t.Fatalf("Int(%q) = %d, %v; want %d", raw, got, err, r.Num().Int64())
		}
	}
}

func TestIntRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		checkInt(t, []byte(randomNumber(rng)))
	}
}

func randomNumber(rng *rand.Rand) string {
	var b strings.Builder
	if rng.IntN(3) == 0 {
		b.WriteByte('-')
	}
	digits := func(n int, first bool) {
		for i := range n {
			if first && i == 0 && n > 1 {
				b.WriteByte(byte('1' + rng.IntN(9)))
				continue
			}
			// Bias towards zeros to hit trailing-zero cases.
			if rng.IntN(3) == 0 {
				b.WriteByte('0')
			} else {
				b.WriteByte(byte('0' + rng.IntN(10)))
			}
		}
	}
	digits(1+rng.IntN(24), true)
	if rng.IntN(2) == 0 {
		b.WriteByte('.')
		digits(1+rng.IntN(24), false)
	}
	if rng.IntN(2) == 0 {
		b.WriteString([]string{"e", "E", "e+", "e-"}[rng.IntN(4)])
		b.WriteString(strconv.Itoa(rng.IntN(45)))
	}
	return b.String()
}

// checkEach checks Each on body against encoding/json.
func checkEach(t *testing.T, body []byte) {
	t.Helper()
	var got []member
	err := Each(body, func(k, v []byte) bool {
		got = append(got, member{string(k), string(v)})
		return true
	})
	valid := json.Valid(body)
	i := skipSpace(body, 0)
	isObject := i < len(body) && body[i] == '{'
	if err != nil {
		if !valid {
			return
		}
		if errors.Is(err, ErrTooDeep) && nestingDepth(body) > MaxDepth {
			return
		}
		if !isObject && errors.Is(err, ErrNotObject) {
			return
		}
		t.Fatalf("Each rejected valid JSON %q: %v", body, err)
	}
	if !valid || !isObject {
		t.Fatalf("Each accepted %q, which is not a valid JSON object", body)
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	gotMap := make(map[string]string, len(got))
	for _, m := range got {
		quoted := []byte(`"` + m.key + `"`)
		var k string
		if err := json.Unmarshal(quoted, &k); err != nil {
			t.Fatalf("raw key %q is not a JSON string: %v", m.key, err)
		}
		s, err := String(quoted)
		if err != nil || string(s) != k {
			t.Fatalf("String(%q) = %q, %v; want %q", quoted, s, err, k)
		}
		if !json.Valid([]byte(m.value)) {
			t.Fatalf("value %q of key %q is not valid JSON", m.value, k)
		}
		gotMap[k] = m.value
	}
	if len(gotMap) != len(want) {
		t.Fatalf("Each found keys %q, encoding/json %q", keysOf(gotMap), keysOf(want))
	}
	for k, w := range want {
		g, ok := gotMap[k]
		if !ok {
			t.Fatalf("Each missed key %q", k)
		}
		if g != string(w) {
			t.Fatalf("key %q: Each value %q, encoding/json %q", k, g, w)
		}
		v, ok, err := Get(body, k)
		if err != nil || !ok || string(v) != g {
			t.Fatalf("Get(%q) = %q, %v, %v; want %q", k, v, ok, err, g)
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// nestingDepth returns the deepest nesting of valid JSON.
func nestingDepth(b []byte) int {
	depth, deepest := 0, 0
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// TestEachRandom compares Each with encoding/json on random documents and
// random corruptions of them.
func TestEachRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		var b []byte
		b = appendRandomObject(b, rng, 0)
		checkEach(t, b)
		checkScanRequest(t, b)
		for range 4 {
			m := mutate(b, rng)
			checkEach(t, m)
			checkScanRequest(t, m)
		}
	}
}

var randomKeys = []string{
	"model", "stream", "stream_options", "include_usage", "temperature", "top_p", "seed", "n",
	"max_tokens", "max_completion_tokens", "max_output_tokens", "tools", "functions", "user",
	"messages", "m\\u006fdel", "a", "", "\\\"", "\\ud83d\\ude00", "κ",
}

func appendRandomObject(b []byte, rng *rand.Rand, depth int) []byte {
	b = append(b, '{')
	n := rng.IntN(6)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSpace(b, rng)
		b = append(b, '"')
		b = append(b, randomKeys[rng.IntN(len(randomKeys))]...)
		b = append(b, '"')
		b = appendSpace(b, rng)
		b = append(b, ':')
		b = appendSpace(b, rng)
		b = appendRandomValue(b, rng, depth+1)
		b = appendSpace(b, rng)
	}
	return append(b, '}')
}

func appendRandomValue(b []byte, rng *rand.Rand, depth int) []byte {
	k := rng.IntN(10)
	if depth > 4 && k >= 8 {
		k = 0
	}
	switch k {
	case 0:
		return append(b, []string{"true", "false", "null"}[rng.IntN(3)]...)
	case 1, 2:
		return append(b, randomNumber(rng)...)
	case 3, 4, 5:
		return appendRandomString(b, rng)
	case 6, 7:
		b = append(b, '[')
		for i := range rng.IntN(4) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSpace(b, rng)
			b = appendRandomValue(b, rng, depth+1)
		}
		return append(b, ']')
	default:
		return appendRandomObject(b, rng, depth)
	}
}

var stringPieces = []string{
	"a", "gpt-4o", " ", "日本", "é", `\"`, `\\`, `\/`, `\n`, `\t`, `\u0041`, `\u00e9`, `\ud83d\ude00`,
	`\ud83d`, `\udc00`, "\xff", "}", "]", ",", ":", "{", "[",
}

func appendRandomString(b []byte, rng *rand.Rand) []byte {
	b = append(b, '"')
	for range rng.IntN(6) {
		b = append(b, stringPieces[rng.IntN(len(stringPieces))]...)
	}
	return append(b, '"')
}

func appendSpace(b []byte, rng *rand.Rand) []byte {
	if rng.IntN(4) == 0 {
		b = append(b, " \t\n\r"[rng.IntN(4)])
	}
	return b
}

func mutate(b []byte, rng *rand.Rand) []byte {
	m := bytes.Clone(b)
	if len(m) == 0 {
		return m
	}
	i := rng.IntN(len(m))
	const alphabet = "{}[]\",:\\ 01-.eEtfnu\x00\x1f\xff"
	switch rng.IntN(3) {
	case 0:
		m[i] = alphabet[rng.IntN(len(alphabet))]
	case 1:
		m = append(m[:i], m[i+1:]...)
	default:
		m = append(m[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, m[i:]...)...)
	}
	return m
}

func TestStringRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		raw := appendRandomString(nil, rng)
		got, err := String(raw)
		var want string
		if jerr := json.Unmarshal(raw, &want); (err != nil) != (jerr != nil) || string(got) != want {
			t.Fatalf("String(%q) = %q, %v; encoding/json %q, %v", raw, got, err, want, jerr)
		}
	}
}

func TestEachAllocs(t *testing.T) {
	body := chatBody(1 << 10)
	n := 0
	if allocs := testing.AllocsPerRun(100, func() {
		_ = Each(body, func(k, v []byte) bool { n += len(v); return true })
	}); allocs != 0 {
		t.Fatalf("Each allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkEach(b *testing.B) {
	body := chatBody(64 << 10)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := Each(body, func(k, v []byte) bool { return true }); err != nil {
			b.Fatal(err)
		}
	}
}
