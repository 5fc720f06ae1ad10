package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
)

var fuzzSeeds = []string{
	`{}`,
	baseChat,
	`{"model":"text-embedding-3-small","input":["The Old Barn","A garden party"],"encoding_format":"float"}`,
	`{"model":"gpt-4o","messages":[{"role":"user","content":"caf\u00e9 \ud83d\udc8d \"quoted\" \\ back\/slash\n"}],"temperature":0.0,"stream":true,"user":"u"}`,
	`{"n":[0,-0,1.50,1e2,-2.5E-3,12345678901234567890,0.000]}`,
	`{"a":{"c":[{"z":null,"y":true}],"b":false},"\u00e9":"x","e\u0301":"y"}`,
	`{"response_format":{"type":"json_schema","json_schema":{"name":"menu","schema":{"type":"object","properties":{"course":{"type":"string"}}}}},"stream_options":{"include_usage":true}}`,
}

// FuzzKeyCanonical checks that a semantically equal variant of a body (keys
// reordered, whitespace and string escapes changed, numbers respelled,
// ignored fields added or removed) has the same key, and that changing one
// value, adding or removing a member or changing the scope changes it.
func FuzzKeyCanonical(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add([]byte(s), uint64(i))
	}
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		k, err := NewKey("s", body)
		if err != nil {
			return
		}
		if bytes.Contains(bytes.ToLower(body), []byte(`\ud`)) {
			// encoding/json turns lone surrogates into U+FFFD, which
			// NewKey deliberately keeps distinct.
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("NewKey accepted a body encoding/json rejects: %v\n%q", err, body)
		}
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

		variant := newVariant(rng)
		variant.object(v, true)
		if k2, err := NewKey("s", variant.buf.Bytes()); err != nil || k2 != k {
			c1, _ := Canonical(nil, body)
			c2, _ := Canonical(nil, variant.buf.Bytes())
			t.Fatalf("variant key differs (err %v)\nbody    %q\nvariant %q\ncanon   %s\ncanon'  %s", err, body, variant.buf.Bytes(), c1, c2)
		}

		if ks, _ := NewKey("t", body); ks == k {
			t.Fatalf("scopes s and t share a key for %q", body)
		}

		if !mutate(rng, v) {
			return
		}
		changed := newVariant(rng)
		changed.object(v, true)
		if k3, err := NewKey("s", changed.buf.Bytes()); err != nil || k3 == k {
			t.Fatalf("changed body kept the key (err %v)\nbody    %q\nchanged %q", err, body, changed.buf.Bytes())
		}
	})
}

// variant writes a JSON value with random but meaning-preserving choices.
type variant struct {
	rng *rand.Rand
	buf bytes.Buffer
}

func newVariant(rng *rand.Rand) *variant { return &variant{rng: rng} }

func (w *variant) space() {
	spaces := []string{"", "", " ", "\n", "\t", "\r\n  "}
	w.buf.WriteString(spaces[w.rng.IntN(len(spaces))])
}

func (w *variant) value(v any) {
	w.space()
	switch v := v.(type) {
	case map[string]any:
		w.object(v, false)
	case []any:
		w.buf.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				w.space()
				w.buf.WriteByte(',')
			}
			w.value(e)
		}
		w.space()
		w.buf.WriteByte(']')
	case string:
		w.str(v)
	case json.Number:
		w.buf.WriteString(respell(w.rng, string(v)))
	case bool:
		fmt.Fprint(&w.buf, v)
	case nil:
		w.buf.WriteString("null")
	default:
		panic(fmt.Sprintf("unexpected %T", v))
	}
	w.space()
}

func (w *variant) object(m map[string]any, top bool) {
	keys := make([]string, 0, len(m)+len(IgnoredFields))
	for k := range m {
		if top && slices.Contains(IgnoredFields, k) && w.rng.IntN(2) == 0 {
			continue // dropping an ignored field keeps the key
		}
		keys = append(keys, k)
	}
	extra := map[string]any{}
	if top {
		for i, f := range IgnoredFields {
			if _, ok := m[f]; !ok && w.rng.IntN(2) == 0 {
				keys = append(keys, f)
				extra[f] = []any{"end-user", true, map[string]any{"include_usage": true}}[i%3]
			}
		}
	}
	w.rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	w.buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		w.space()
		w.str(k)
		w.space()
		w.buf.WriteByte(':')
		if v, ok := m[k]; ok {
			w.value(v)
		} else {
			w.value(extra[k])
		}
	}
	w.space()
	w.buf.WriteByte('}')
}

func (w *variant) str(s string) {
	w.buf.WriteByte('"')
	for _, r := range s {
		short := map[rune]string{'"': `\"`, '\\': `\\`, '\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`, '/': `\/`}
		switch esc, ok := short[r]; {
		case ok && (r != '/' || w.rng.IntN(2) == 0) && w.rng.IntN(4) > 0:
			w.buf.WriteString(esc)
		case r == '"' || r == '\\' || r < 0x20 || w.rng.IntN(4) == 0:
			w.escape(r)
		default:
			w.buf.WriteRune(r)
		}
	}
	w.buf.WriteByte('"')
}

func (w *variant) escape(r rune) {
	format := `\u%04x`
	if w.rng.IntN(2) == 0 {
		format = `\u%04X`
	}
	if r > 0xffff {
		r1, r2 := utf16.EncodeRune(r)
		fmt.Fprintf(&w.buf, format+format, r1, r2)
		return
	}
	fmt.Fprintf(&w.buf, format, r)
}

// respell returns another spelling of the JSON number n with the same value.
func respell(rng *rand.Rand, n string) string {
	mant, exp, hasExp := strings.Cut(strings.ToLower(n), "e")
	intPart, _, hasFrac := strings.Cut(strings.TrimPrefix(mant, "-"), ".")
	zero := strings.Trim(strings.ReplaceAll(mant, ".", ""), "-0") == ""
	switch rng.IntN(5) {
	case 0:
		return n
	case 1: // a trailing zero in the fraction
		if hasFrac {
			mant += "0"
		} else {
			mant += ".0"
		}
	case 2: // an explicit exponent of zero
		if !hasExp {
			return n + []string{"e0", "E+0", "e-00"}[rng.IntN(3)]
		}
	case 3: // one more digit, one less in the exponent
		if intPart == "0" {
			break
		}
		if hasFrac {
			mant += "0"
			break
		}
		e := new(big.Int)
		if hasExp {
			e.SetString(strings.TrimPrefix(exp, "+"), 10)
		}
		return mant + "0e" + e.Sub(e, big.NewInt(1)).String()
	case 4:
		if zero {
			return []string{"-0", "0.000", "0E7", "-0.0e-3"}[rng.IntN(4)]
		}
	}
	if hasExp {
		return mant + "e" + exp
	}
	return mant
}

// mutate changes one value of v, or adds or removes a member, in a way
// that changes its meaning; it reports false when v offers nothing to
// change outside the ignored fields.
func mutate(rng *rand.Rand, v map[string]any) bool {
	var sites []func()
	var walk func(v any, top bool)
	walk = func(v any, top bool) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["\x00added"]; !ok {
				sites = append(sites, func() { v["\x00added"] = true })
			}
			for k, e := range v {
				if top && slices.Contains(IgnoredFields, k) {
					continue
				}
				sites = append(sites, func() { delete(v, k) })
				switch e := e.(type) {
				case map[string]any, []any:
					walk(e, false)
				default:
					sites = append(sites, func() { v[k] = changed(e) })
				}
			}
		case []any:
			for i, e := range v {
				switch e.(type) {
				case map[string]any, []any:
					walk(e, false)
				default:
					sites = append(sites, func() { v[i] = changed(e) })
				}
			}
		}
	}
	walk(v, true)
	if len(sites) == 0 {
		return false
	}
	sites[rng.IntN(len(sites))]()
	return true
}

// changed returns a scalar of a different meaning than v.
func changed(v any) any {
	switch v := v.(type) {
	case string:
		return v + "x"
	case json.Number:
		if strings.Trim(strings.Split(strings.ToLower(string(v)), "e")[0], "-0.") == "" {
			return json.Number("1")
		}
		return json.Number("0")
	case bool:
		return !v
	default:
		return false
	}
}

// FuzzKey checks that NewKey never panics, accepts only valid JSON, and that
// the canonical form is valid JSON, a fixed point, and has the body's key.
func FuzzKey(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{``, `[]`, `{"a":1,"a":2}`, `{"a":"\ud800"}`, `{"a":1e999999999999999999999}`, "{\"a\":\"\xff\"}", `{"a":[[[[]]]]}`, `{"a":01}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		k, err := NewKey("s", body)
		if err != nil {
			if !errors.Is(err, ErrInvalidJSON) && !errors.Is(err, ErrNotObject) &&
				!errors.Is(err, ErrDuplicateKey) && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("NewKey accepted invalid JSON %q", body)
		}
		canon, err := Canonical(nil, body)
		if err != nil {
			t.Fatalf("Canonical failed where NewKey succeeded: %v", err)
		}
		if !json.Valid(canon) {
			t.Fatalf("canonical form %q of %q is not valid JSON", canon, body)
		}
		again, err := Canonical(nil, canon)
		if err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("canonical form not a fixed point (err %v):\n%q\n%q", err, canon, again)
		}
		if k2, err := NewKey("s", canon); err != nil || k2 != k {
			t.Fatalf("canonical form has another key (err %v)", err)
		}
	})
}
