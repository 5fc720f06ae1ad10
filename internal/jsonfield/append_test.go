package jsonfield

import (
	"encoding/json"
	"testing"
)

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\"", "back\\slash", "\x00\x1f\n\r\t", "\xff\xfe", "日本語", "<script>&", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("invalid JSON for %q: %s", s, raw)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("%q: got %q, encoding/json gives %q", s, back, wantBack)
		}
	})
}

func TestAppendStringAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	if a := testing.AllocsPerRun(100, func() { buf = AppendString(buf[:0], "a \"wedding\" toast\n") }); a != 0 {
		t.Errorf("%.1f allocations", a)
	}
}
