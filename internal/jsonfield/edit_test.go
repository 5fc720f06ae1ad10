package jsonfield

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRemoveMember(t *testing.T) {
	cases := []struct{ in, name, want string }{
		{`{"a":1,"usage":null}`, "usage", `{"a":1}`},
		{`{"usage":null,"a":1}`, "usage", `{"a":1}`},
		{`{"a":1, "usage" : null , "b":2}`, "usage", `{"a":1 , "b":2}`},
		{`{"usage":null}`, "usage", `{}`},
		{`{"a":{"usage":null}}`, "usage", `{"a":{"usage":null}}`},
		{`{"id":"x","choices":[{"delta":{"content":"hi"}}],"usage":null}`, "usage", `{"id":"x","choices":[{"delta":{"content":"hi"}}]}`},
	}
	for _, tc := range cases {
		got, _, err := RemoveMember(nil, []byte(tc.in), tc.name)
		if err != nil || string(got) != tc.want {
			t.Errorf("RemoveMember(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("invalid JSON %s", got)
		}
	}
}

func TestSetIncludeUsage(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"model":"m","stream":true}`, `{"stream_options":{"include_usage":true},"model":"m","stream":true}`},
		{`  {"model":"m","stream_options":{"include_usage":false}}`, `  {"model":"m","stream_options":{"include_usage":true}}`},
		{`{"model":"m","stream_options":{"foo":1}}`, `{"model":"m","stream_options":{"include_usage":true,"foo":1}}`},
		{`{"model":"m","stream_options":null}`, `{"model":"m","stream_options":{"include_usage":true}}`},
	}
	for _, tc := range cases {
		got, err := SetIncludeUsage(nil, []byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("SetIncludeUsage(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
		var r Request
		if err := ScanRequest(got, &r); err != nil || !r.IncludeUsage {
			t.Errorf("%s: scan %+v %v", got, r, err)
		}
	}
}

func FuzzRemoveMember(f *testing.F) {
	for _, s := range []string{`{"a":1,"usage":null}`, `{"usage":{"x":1}}`, `{}`, `{"usage":1,"usage":2}`, `[1]`, `{"a":"usage"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, removed, err := RemoveMember(nil, []byte(s), "usage")
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid output %q from %q", out, s)
		}
		var before, after map[string]json.RawMessage
		if json.Unmarshal([]byte(s), &before) != nil {
			return
		}
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatal(err)
		}
		_, had := before["usage"]
		delete(before, "usage")
		if removed != had || len(before) != len(after) {
			t.Fatalf("%q -> %q: removed %v", s, out, removed)
		}
		for k, v := range before {
			var a, b any
			_ = json.Unmarshal(v, &a)
			_ = json.Unmarshal(after[k], &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("member %s changed: %s vs %s", k, v, after[k])
			}
		}
	})
}

func TestSetString(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"model":"wedsync-fast","messages":[]}`, `{"model":"gpt-4o-mini","messages":[]}`},
		{`{"messages":[], "model" : "x"}`, `{"messages":[], "model":"gpt-4o-mini"}`},
		{`{"messages":[]}`, `{"model":"gpt-4o-mini","messages":[]}`},
		{`{}`, `{"model":"gpt-4o-mini"}`},
	}
	for _, tc := range cases {
		got, err := SetString(nil, []byte(tc.in), "model", "gpt-4o-mini")
		if err != nil || string(got) != tc.want {
			t.Errorf("SetString(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestSetRaw(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"id":"a","created":1700000000,"choices":[]}`, `{"id":"a","created":42,"choices":[]}`},
		{`{"id":"a"}`, `{"created":42,"id":"a"}`},
		{`{}`, `{"created":42}`},
	}
	for _, tc := range cases {
		got, err := SetRaw(nil, []byte(tc.in), "created", []byte("42"))
		if err != nil || string(got) != tc.want {
			t.Errorf("SetRaw(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := SetRaw(nil, []byte(`[1]`), "created", []byte("42")); err == nil {
		t.Error("SetRaw on an array: no error")
	}
}
