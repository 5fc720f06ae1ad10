package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

func TestScanRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Request
	}{
		{"chat", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
			Request{Model: []byte("gpt-4o"), HasModel: true}},
		{"streaming", `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
			Request{Model: []byte("gpt-4o"), HasModel: true, Stream: true, HasStreamOptions: true, IncludeUsage: true}},
		{"stream options without usage", `{"stream":false,"stream_options":{}}`,
			Request{HasStreamOptions: true}},
		{"sampling", `{"temperature":0.7,"top_p":1,"seed":-3,"n":2,"user":"u-\"1\""}`,
			Request{Temperature: []byte("0.7"), TopP: []byte("1"), Seed: []byte("-3"), N: 2, User: []byte(`u-\"1\"`)}},
		{"max_tokens", `{"max_tokens":100}`, Request{MaxTokens: 100}},
		{"max_completion_tokens wins", `{"max_completion_tokens":50,"max_tokens":100}`, Request{MaxTokens: 50}},
		{"max_output_tokens", `{"max_output_tokens":7,"max_tokens":9}`, Request{MaxTokens: 7}},
		{"integral forms", `{"n":1.0,"max_tokens":1e3,"seed":2.5e1}`, Request{N: 1, MaxTokens: 1000, Seed: []byte("2.5e1")}},
		{"tools", `{"tools":[{"type":"function"}]}`, Request{HasTools: true}},
		{"empty tools", `{"tools":[ ]}`, Request{}},
		{"functions", `{"tools":[],"functions":[{}]}`, Request{HasTools: true}},
		{"nulls", `{"model":null,"stream":null,"stream_options":null,"temperature":null,"top_p":null,` +
			`"seed":null,"n":null,"max_tokens":null,"tools":null,"functions":null,"user":null}`, Request{}},
		{"null include_usage", `{"stream_options":{"include_usage":null}}`, Request{HasStreamOptions: true}},
		{"last duplicate wins", `{"model":"a","model":"b","stream":true,"stream":false,"tools":[1],"tools":[]}`,
			Request{Model: []byte("b"), HasModel: true}},
		{"null clears", `{"model":"a","model":null,"max_completion_tokens":5,"max_completion_tokens":null,"max_tokens":3}`,
			Request{MaxTokens: 3}},
		{"escaped keys", `{"m\u006fdel":"x","\u0073tream":true}`, Request{Model: []byte("x"), HasModel: true, Stream: true}},
		{"escaped model", `{"model":"gpt\u002d4o"}`, Request{Model: []byte("gpt-4o"), HasModel: true}},
		{"case-sensitive keys", `{"Model":"x","STREAM":"yes"}`, Request{}},
		{"nested fields ignored", `{"messages":[{"model":5,"stream":"x"}],"metadata":{"stream":1}}`, Request{}},
		{"embeddings", `{"model":"text-embedding-3-small","input":"hello","dimensions":256}`,
			Request{Model: []byte("text-embedding-3-small"), HasModel: true}},
		{"responses", `{"model":"o4-mini","input":[{"role":"user","content":"x"}],"max_output_tokens":1000,"stream":true}`,
			Request{Model: []byte("o4-mini"), HasModel: true, MaxTokens: 1000, Stream: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if err := ScanRequest([]byte(tt.body), &r); err != nil {
				t.Fatalf("ScanRequest: %v", err)
			}
			if !requestsEqual(r, tt.want) {
				t.Fatalf("ScanRequest =\n%+v\nwant\n%+v", r, tt.want)
			}
			checkScanRequest(t, []byte(tt.body))
		})
	}
}

func TestScanRequestErrors(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantField string
		wantMsg   string
	}{
		{"model number", `{"model":5}`, "model", msgString},
		{"model object", `{"model":{}}`, "model", msgString},
		{"stream string", `{"stream":"yes"}`, "stream", msgBool},
		{"stream number", `{"stream":1}`, "stream", msgBool},
		{"stream_options array", `{"stream_options":[]}`, "stream_options", msgObject},
		{"include_usage string", `{"stream_options":{"include_usage":"true"}}`, "stream_options.include_usage", msgBool},
		{"temperature string", `{"temperature":"0.5"}`, "temperature", msgNumber},
		{"top_p bool", `{"top_p":true}`, "top_p", msgNumber},
		{"seed fraction", `{"seed":1.5}`, "seed", msgInteger},
		{"seed too large", `{"seed":9223372036854775808}`, "seed", msgRange},
		{"n string", `{"n":"2"}`, "n", msgInteger},
		{"max_tokens fraction", `{"max_tokens":10.5}`, "max_tokens", msgInteger},
		{"max_completion_tokens huge", `{"max_completion_tokens":1e30}`, "max_completion_tokens", msgRange},
		{"max_output_tokens bool", `{"max_output_tokens":false}`, "max_output_tokens", msgInteger},
		{"tools object", `{"tools":{}}`, "tools", msgArray},
		{"functions string", `{"functions":"f"}`, "functions", msgArray},
		{"user number", `{"user":1}`, "user", msgString},
		{"first error wins", `{"stream":"x","model":1}`, "stream", msgBool},
		{"error before duplicate", `{"stream":"x","stream":true}`, "stream", msgBool},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := ScanRequest([]byte(tt.body), &r)
			fe, ok := errors.AsType[*FieldError](err)
			if !ok {
				t.Fatalf("err = %v, want *FieldError", err)
			}
			if fe.Field != tt.wantField || fe.Msg != tt.wantMsg {
				t.Fatalf("FieldError = %q %q, want %q %q", fe.Field, fe.Msg, tt.wantField, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), strconv.Quote(tt.wantField)) {
				t.Errorf("Error() = %q does not name the field", err)
			}
			if !requestsEqual(r, Request{}) {
				t.Errorf("request not reset after error: %+v", r)
			}
			checkScanRequest(t, []byte(tt.body))
		})
	}
	t.Run("syntax error first", func(t *testing.T) {
		var r Request
		err := ScanRequest([]byte(`{"stream":"x","a":}`), &r)
		if _, ok := errors.AsType[*SyntaxError](err); !ok {
			t.Fatalf("err = %v, want *SyntaxError", err)
		}
	})
	t.Run("not an object", func(t *testing.T) {
		var r Request
		if err := ScanRequest([]byte(`[{"model":"x"}]`), &r); !errors.Is(err, ErrNotObject) {
			t.Fatalf("err = %v, want ErrNotObject", err)
		}
	})
}

func TestScanRequestAllocs(t *testing.T) {
	bodies := map[string][]byte{
		"1KB":    chatBody(1 << 10),
		"64KB":   chatBody(64 << 10),
		"simple": []byte(seedBodies[1]),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			var r Request
			if err := ScanRequest(body, &r); err != nil {
				t.Fatal(err)
			}
			if !r.HasModel || !r.Stream {
				t.Fatalf("unexpected result %+v", r)
			}
			if n := testing.AllocsPerRun(100, func() { _ = ScanRequest(body, &r) }); n != 0 {
				t.Fatalf("ScanRequest allocates %v times per run, want 0", n)
			}
			if n := testing.AllocsPerRun(100, func() { _, _, _ = Get(body, "stream_options", "include_usage") }); n != 0 {
				t.Fatalf("Get allocates %v times per run, want 0", n)
			}
		})
	}
}

func requestsEqual(a, b Request) bool {
	return bytes.Equal(a.Model, b.Model) && a.HasModel == b.HasModel && a.Stream == b.Stream &&
		a.HasStreamOptions == b.HasStreamOptions && a.IncludeUsage == b.IncludeUsage &&
		bytes.Equal(a.Temperature, b.Temperature) && bytes.Equal(a.TopP, b.TopP) &&
		bytes.Equal(a.Seed, b.Seed) && a.N == b.N && a.MaxTokens == b.MaxTokens &&
		a.HasTools == b.HasTools && bytes.Equal(a.User, b.User) &&
		(a.Model == nil) == (b.Model == nil) && (a.Temperature == nil) == (b.Temperature == nil) &&
		(a.TopP == nil) == (b.TopP == nil) && (a.Seed == nil) == (b.Seed == nil) && (a.User == nil) == (b.User == nil)
}

// checkScanRequest compares ScanRequest with a reference built on
// encoding/json.
func checkScanRequest(t *testing.T, body []byte) {
	t.Helper()
	var r Request
	err := ScanRequest(body, &r)
	i := skipSpace(body, 0)
	if !json.Valid(body) || i >= len(body) || body[i] != '{' || nestingDepth(body) > MaxDepth {
		if err == nil {
			t.Fatalf("ScanRequest accepted %q", body)
		}
		if fe, ok := errors.AsType[*FieldError](err); ok {
			t.Fatalf("ScanRequest(%q) = %v, want a syntax error", body, fe)
		}
		return
	}
	want, wantErr, known := refScanRequest(t, body)
	if !known {
		return
	}
	if wantErr != nil {
		fe, ok := errors.AsType[*FieldError](err)
		if !ok || *fe != *wantErr {
			t.Fatalf("ScanRequest(%q) = %v, want %v", body, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("ScanRequest(%q) = %v, want success", body, err)
	}
	if !requestsEqual(r, want) {
		t.Fatalf("ScanRequest(%q) =\n%+v\nwant\n%+v", body, r, want)
	}
}

type refMember struct {
	key   string
	value json.RawMessage
}

// orderedMembers returns the members of a valid JSON object in document
// order, decoded by encoding/json.
func orderedMembers(t *testing.T, obj []byte) []refMember {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("reference: %q is not an object: %v", obj, err)
	}
	var ms []refMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("reference: %v", err)
		}
		ms = append(ms, refMember{tok.(string), v})
	}
	return ms
}

// refScanRequest is a slow reference for ScanRequest. known is false when
// it cannot judge the body quickly (huge exponents).
func refScanRequest(t *testing.T, body []byte) (r Request, fe *FieldError, known bool) {
	var limits [3]*int
	var tools, functions bool
	for _, m := range orderedMembers(t, body) {
		v := m.value
		null := string(v) == "null"
		isNum := v[0] == '-' || (v[0] >= '0' && v[0] <= '9')
		switch m.key {
		case "model":
			r.Model, r.HasModel = nil, false
			if null {
				continue
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return Request{}, &FieldError{"model", msgString}, true
			}
			r.Model, r.HasModel = []byte(s), true
		case "stream":
			r.Stream = false
			if null {
				continue
			}
			if err := json.Unmarshal(v, &r.Stream); err != nil {
				return Request{}, &FieldError{"stream", msgBool}, true
			}
		case "stream_options":
			r.HasStreamOptions, r.IncludeUsage = false, false
			if null {
				continue
			}
			if v[0] != '{' {
				return Request{}, &FieldError{"stream_options", msgObject}, true
			}
			r.HasStreamOptions = true
			for _, o := range orderedMembers(t, v) {
				if o.key != "include_usage" {
					continue
				}
				r.IncludeUsage = false
				if string(o.value) == "null" {
					continue
				}
				if err := json.Unmarshal(o.value, &r.IncludeUsage); err != nil {
					return Request{}, &FieldError{"stream_options.include_usage", msgBool}, true
				}
			}
		case "temperature", "top_p":
			var p *[]byte
			if m.key == "temperature" {
				p = &r.Temperature
			} else {
				p = &r.TopP
			}
			*p = nil
			if null {
				continue
			}
			if !isNum {
				return Request{}, &FieldError{m.key, msgNumber}, true
			}
			*p = v
		case "seed", "n", "max_tokens", "max_output_tokens", "max_completion_tokens":
			if null {
				switch m.key {
				case "seed":
					r.Seed = nil
				case "n":
					r.N = 0
				default:
					limits[limitRank(m.key)] = nil
				}
				continue
			}
			n, msg, ok := refInt(v)
			if !ok {
				return Request{}, nil, false
			}
			if msg != "" {
				return Request{}, &FieldError{m.key, msg}, true
			}
			switch m.key {
			case "seed":
				r.Seed = v
			case "n":
				r.N = int(n)
			default:
				limits[limitRank(m.key)] = new(int(n))
			}
		case "tools", "functions":
			var arr []json.RawMessage
			if err := json.Unmarshal(v, &arr); err != nil {
				return Request{}, &FieldError{m.key, msgArray}, true
			}
			if m.key == "tools" {
				tools = len(arr) > 0
			} else {
				functions = len(arr) > 0
			}
		case "user":
			r.User = nil
			if null {
				continue
			}
			if v[0] != '"' {
				return Request{}, &FieldError{"user", msgString}, true
			}
			r.User = v[1 : len(v)-1]
		}
	}
	r.HasTools = tools || functions
	for i := 2; i >= 0; i-- {
		if limits[i] != nil {
			r.MaxTokens = *limits[i]
			break
		}
	}
	return r, nil, true
}

func limitRank(key string) int {
	switch key {
	case "max_tokens":
		return 0
	case "max_output_tokens":
		return 1
	}
	return 2
}

// refInt classifies a JSON value as an int with exact arithmetic.
func refInt(v []byte) (n int64, msg string, known bool) {
	if !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
		return 0, msgInteger, true
	}
	if e := bytes.IndexAny(v, "eE"); e >= 0 {
		exp, err := strconv.Atoi(strings.TrimPrefix(string(v[e+1:]), "+"))
		if err != nil || exp > 400 || exp < -400 {
			return 0, "", false
		}
	}
	var r big.Rat
	if _, ok := r.SetString(string(v)); !ok {
		return 0, "", false
	}
	switch {
	case !r.IsInt():
		return 0, msgInteger, true
	case !r.Num().IsInt64() || r.Num().Int64() > math.MaxInt || r.Num().Int64() < math.MinInt:
		return 0, msgRange, true
	}
	return r.Num().Int64(), "", true
}

func FuzzEach(f *testing.F) {
	for _, s := range seedBodies {
		f.Add([]byte(s))
	}
	f.Add(chatBody(2048))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkEach(t, body)
	})
}

func FuzzScanRequest(f *testing.F) {
	for _, s := range seedBodies {
		f.Add([]byte(s))
	}
	f.Add(chatBody(2048))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkScanRequest(t, body)
	})
}

// chatRequest is what a handler using encoding/json would decode to read
// the same fields as ScanRequest.
type chatRequest struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Temperature         *float64          `json:"temperature"`
	TopP                *float64          `json:"top_p"`
	Seed                *int64            `json:"seed"`
	N                   int               `json:"n"`
	MaxTokens           int               `json:"max_tokens"`
	MaxCompletionTokens int               `json:"max_completion_tokens"`
	Tools               []json.RawMessage `json:"tools"`
	User                string            `json:"user"`
}

func BenchmarkScanRequest(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		body := chatBody(size)
		name := strconv.Itoa(size>>10) + "KB"
		b.Run(name+"/jsonfield", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var r Request
			for b.Loop() {
				if err := ScanRequest(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var r chatRequest
				if err := json.Unmarshal(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	body := chatBody(1 << 10)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, ok, err := Get(body, "stream_options", "include_usage"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
