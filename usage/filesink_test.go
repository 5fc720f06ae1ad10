package usage

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// readNDJSON returns the request IDs in the file at p, in order.
func readNDJSON(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: line %q: %v", filepath.Base(p), sc.Text(), err)
		}
		out = append(out, r.RequestID)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeBatches writes rs in batches of n.
func writeBatches(t *testing.T, s Sink, rs []*Record, n int) {
	t.Helper()
	for b := range slices.Chunk(rs, n) {
		if err := s.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

func lineLen(t *testing.T, r *Record) int64 {
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(b) + 1)
}

// fileCounts returns how many records each file of a rotation at maxBytes
// gets, oldest first.
func fileCounts(t *testing.T, rs []*Record, maxBytes int64) []int {
	counts := []int{0}
	var size int64
	for _, r := range rs {
		l := lineLen(t, r)
		if maxBytes > 0 && size > 0 && size+l > maxBytes {
			counts = append(counts, 0)
			size = 0
		}
		size += l
		counts[len(counts)-1]++
	}
	return counts
}

func TestFileSinkRotates(t *testing.T) {
	rs := recs(100)
	line := lineLen(t, rs[0])
	tests := []struct {
		name     string
		maxBytes int64
		keep     int
		wantAll  bool
	}{
		{"keeps every file", 10 * line, 20, true},
		{"removes the oldest", 10 * line, 2, false},
		{"keeps none", 10 * line, 0, false},
		{"never rotates", 0, 2, true},
		{"record bigger than the limit", line / 2, 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "usage.ndjson")
			s, err := NewFileSink(p, tt.maxBytes, tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			writeBatches(t, s, rs, 7)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			files := []string{p}
			for i := 1; ; i++ {
				b := fmt.Sprintf("%s.%d", p, i)
				if _, err := os.Stat(b); errors.Is(err, os.ErrNotExist) {
					break
				}
				files = append(files, b)
			}
			counts := fileCounts(t, rs, tt.maxBytes)
			if wantFiles := min(len(counts), tt.keep+1); len(files) != wantFiles {
				t.Errorf("%d files, want %d", len(files), wantFiles)
			}
			var got []string
			for _, f := range slices.Backward(files) { // oldest first
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v, want 0600", filepath.Base(f), st.Mode().Perm())
				}
				if tt.maxBytes > line && st.Size() > tt.maxBytes {
					t.Errorf("%s: %d bytes, over the %d limit", filepath.Base(f), st.Size(), tt.maxBytes)
				}
				got = append(got, readNDJSON(t, f)...)
			}
			want := ids(rs)
			if !tt.wantAll {
				want = want[len(want)-len(got):] // the newest survive
			}
			if !slices.Equal(got, want) {
				t.Errorf("records across files = %v\nwant %v", got, want)
			}
		})
	}
}

func TestFileSinkAppendsAcrossRestarts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "usage.ndjson")
	rs := recs(20)
	line := lineLen(t, rs[0])
	for _, part := range [][]*Record{rs[:7], rs[7:]} {
		s, err := NewFileSink(p, 8*line, 10)
		if err != nil {
			t.Fatal(err)
		}
		writeBatches(t, s, part, 3)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
	got := append(append(readNDJSON(t, p+".2"), readNDJSON(t, p+".1")...), readNDJSON(t, p)...)
	if !slices.Equal(got, ids(rs)) {
		t.Errorf("records = %v, want %v", got, ids(rs))
	}
}

// A batch that fails part-way through, at a rotation, is resumed by its
// retry: no record is written twice.
func TestFileSinkRetryDoesNotDouble(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "usage.ndjson")
	rs := recs(10)
	s, err := NewFileSink(p, 4*lineLen(t, rs[0]), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A non-empty directory where the backup goes makes the rotation fail.
	if err := os.MkdirAll(filepath.Join(p+".1", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(rs); err == nil {
		t.Fatal("Write succeeded despite the failing rotation")
	}
	first := fileCounts(t, rs, 4*lineLen(t, rs[0]))[0]
	if got := readNDJSON(t, p); !slices.Equal(got, ids(rs[:first])) {
		t.Fatalf("after the failure the file holds %v, want the first %d", got, first)
	}
	if err := os.RemoveAll(p + ".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(rs); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// keep 1: the oldest files went to later rotations; what is left is
	// the newest, each once.
	got := append(readNDJSON(t, p+".1"), readNDJSON(t, p)...)
	if want := ids(rs[len(rs)-len(got):]); len(got) <= first || !slices.Equal(got, want) {
		t.Errorf("records = %v, want %v", got, want)
	}
}

func TestNewFileSinkValidates(t *testing.T) {
	tests := []struct {
		name string
		path string
		keep int
	}{
		{"empty path", "", 1},
		{"negative keep", filepath.Join(t.TempDir(), "u"), -1},
		{"missing dir", filepath.Join(t.TempDir(), "no", "u"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := NewFileSink(tt.path, 100, tt.keep); err == nil {
				s.Close()
				t.Error("no error")
			}
		})
	}
}
