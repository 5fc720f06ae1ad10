package config

import (
	"errors"
	"strings"
	"testing"
)

// okProviders and okCallers are valid sections that tests combine with the
// section under test.
const (
	okProviders = `providers:
  - name: openai
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://OPENAI_API_KEY
`
	okCallers = `callers:
  - name: app
    token_sha256: e0462a38da76cf9d76265131d0574db09d038e611e9af445c145672c2e26f9ba
    suppliers: ["*"]
`
)

// noEnv is an empty environment.
func noEnv(string) (string, bool) { return "", false }

// envMap returns a lookup function over m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// fieldErrors flattens err, which may be joined, into its leaves and fails
// the test if a leaf is not a *FieldError.
func fieldErrors(t testing.TB, err error) []*FieldError {
	t.Helper()
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("error %q (%T) is not a *FieldError", err, err)
		}
		out = append(out, fe)
	}
	if err != nil {
		walk(err)
	}
	return out
}

// lineOf returns the 1-based line of the first occurrence of marker in doc,
// or 0 when marker is empty. A marker starting with "last:" finds the last
// occurrence of the rest.
func lineOf(t testing.TB, doc, marker string) int {
	t.Helper()
	if marker == "" {
		return 0
	}
	i := strings.Index(doc, marker)
	if m, ok := strings.CutPrefix(marker, "last:"); ok {
		i = strings.LastIndex(doc, m)
	}
	if i < 0 {
		t.Fatalf("marker %q not found in document", marker)
	}
	return strings.Count(doc[:i], "\n") + 1
}

// wantErr describes an expected *FieldError. The expected line is the line
// of the marker at in the document (see lineOf), or 0 when at is empty.
type wantErr struct {
	field string
	at    string
	env   string
	msg   string
}

// checkErrors asserts that err consists of exactly the wanted errors, in
// order.
func checkErrors(t *testing.T, doc string, err error, want []wantErr) {
	t.Helper()
	got := fieldErrors(t, err)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		g := got[i]
		wantLine := lineOf(t, doc, w.at)
		if g.Field != w.field || g.Line != wantLine || g.Env != w.env || !strings.Contains(g.Msg, w.msg) {
			t.Errorf("error %d = {Field:%q Line:%d Env:%q Msg:%q}, want {Field:%q Line:%d Env:%q Msg containing %q}",
				i, g.Field, g.Line, g.Env, g.Msg, w.field, wantLine, w.env, w.msg)
		}
		if g.Source != "veil.yaml" {
			t.Errorf("error %d: Source = %q, want veil.yaml", i, g.Source)
		}
	}
}
