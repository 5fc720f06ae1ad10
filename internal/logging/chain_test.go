package logging

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
)

// writeAudit opens the audit file at path in format, writes the messages
// and closes it.
func writeAudit(t *testing.T, path, format string, msgs ...string) {
	t.Helper()
	l, closeFn, err := Audit(path, format)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		l.Info(m, zap.String("operator", "alice"), zap.String("role", "operator"))
	}
	_ = l.Sync()
	closeFn()
}

// lines returns the lines of the file at path.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// verifyFile runs VerifyChain on the file at path.
func verifyFile(t *testing.T, path string) (ChainReport, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return VerifyChain(f)
}

// TestChainFollowsTheFormula recomputes the first two lines' hashes from
// the documented formula, without the package's helpers.
func TestChainFollowsTheFormula(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeAudit(t, path, "json", "admin action", "cache purged")
	prev := strings.Repeat("0", 64)
	for i, line := range lines(t, path) {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		got, _ := doc["chain"].(string)
		if doc["operator"] != "alice" {
			t.Errorf("line %d lost its fields: %s", i+1, line)
		}
		content := strings.Replace(line, `,"chain":"`+got+`"`, "", 1)
		sum := sha256.Sum256([]byte(prev + content))
		if want := hex.EncodeToString(sum[:]); got != want {
			t.Fatalf("line %d chain %q, want %q (sha256 of the previous hash and %s)", i+1, got, want, content)
		}
		prev = got
	}
}

// TestChainAcrossOpens: a file written by two logger opens, in either
// format, is one chain.
func TestChainAcrossOpens(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			writeAudit(t, path, format, "config reloaded", "admin action", "comparison started")
			writeAudit(t, path, format, "admin action", "admin call refused")
			rep, err := verifyFile(t, path)
			if err != nil || rep.Lines != 5 || rep.Unchained != 0 {
				t.Fatalf("VerifyChain = %+v, %v; want 5 chained lines", rep, err)
			}
			if format == "console" && !strings.Contains(lines(t, path)[0], "\tchain=") {
				t.Errorf("console line without its chain: %q", lines(t, path)[0])
			}
		})
	}
}

// TestVerifyChainFindsTampering: each change to a chained file is caught
// at the first line it breaks.
func TestVerifyChainFindsTampering(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeAudit(t, path, "json", "one", "two", "three", "four", "five")
	orig := lines(t, path)
	edit := func(i int) []string {
		out := append([]string(nil), orig...)
		out[i] = strings.Replace(out[i], `"operator":"alice"`, `"operator":"mallory"`, 1)
		return out
	}
	tests := []struct {
		name     string
		lines    []string
		wantLine int
	}{
		{"edited line", edit(2), 3},
		{"deleted line", append(append([]string(nil), orig[:1]...), orig[2:]...), 2},
		{"deleted first line", orig[1:], 1},
		{"reordered pair", []string{orig[0], orig[2], orig[1], orig[3], orig[4]}, 2},
		{"added copy", []string{orig[0], orig[1], orig[1], orig[2], orig[3], orig[4]}, 3},
		{"chain field removed", append(append([]string(nil), orig[:3]...), `{"level":"info","msg":"four"}`, orig[4]), 4},
		{"empty line", append(append([]string(nil), orig[:2]...), "", orig[2]), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyChain(strings.NewReader(strings.Join(tt.lines, "\n") + "\n"))
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Line != tt.wantLine {
				t.Fatalf("VerifyChain error %v, want one at line %d", err, tt.wantLine)
			}
		})
	}
	t.Run("intact", func(t *testing.T) {
		if rep, err := VerifyChain(strings.NewReader(strings.Join(orig, "\n") + "\n")); err != nil || rep.Lines != 5 {
			t.Fatalf("VerifyChain = %+v, %v", rep, err)
		}
	})
}

// TestChainAfterUnchainedLines: a file written before chaining keeps its
// lines, which are reported as not covered; a new chain starts after them.
func TestChainAfterUnchainedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	old := `{"level":"info","msg":"admin action","log":"audit"}` + "\n" + `{"level":"warn","msg":"admin authentication failed","log":"audit"}` + "\n"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	writeAudit(t, path, "json", "admin action", "cache purged")
	rep, err := verifyFile(t, path)
	if err != nil || rep.Lines != 4 || rep.Unchained != 2 {
		t.Fatalf("VerifyChain = %+v, %v; want 4 lines, the first 2 unchained", rep, err)
	}
	// An unchained line after chained ones is not allowed.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"level":"info","msg":"admin action","log":"audit"}` + "\n")
	_ = f.Close()
	var ce *ChainError
	if _, err := verifyFile(t, path); !errors.As(err, &ce) || ce.Line != 5 {
		t.Fatalf("VerifyChain error %v, want one at line 5", err)
	}
}

// TestChainAfterACutLine: a file whose last write was cut short gets its
// line ended before the next, and the cut line is what verification names.
func TestChainAfterACutLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeAudit(t, path, "json", "one", "two")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"level":"info","msg":"thr`)
	_ = f.Close()
	writeAudit(t, path, "json", "four")
	ls := lines(t, path)
	if len(ls) != 4 || ls[2] != `{"level":"info","msg":"thr` {
		t.Fatalf("lines %q, want the cut line on its own", ls)
	}
	var ce *ChainError
	if _, err := verifyFile(t, path); !errors.As(err, &ce) || ce.Line != 3 {
		t.Fatalf("VerifyChain error %v, want one at line 3", err)
	}
}

// TestChainUnderConcurrentWriters: lines logged from many goroutines at
// once still form one chain.
func TestChainUnderConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, closeFn, err := Audit(path, "json")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				l.Info("admin action", zap.String("id", fmt.Sprint(g, "-", i)))
			}
		}()
	}
	wg.Wait()
	closeFn()
	if rep, err := verifyFile(t, path); err != nil || rep.Lines != 400 {
		t.Fatalf("VerifyChain = %+v, %v; want 400 lines", rep, err)
	}
}

// TestChainWriterHoldsAPartialLine: a line written in pieces is chained
// once, when its newline comes.
func TestChainWriterHoldsAPartialLine(t *testing.T) {
	var buf bytes.Buffer
	w := newChainWriter(&buf, ChainSeed)
	for _, piece := range []string{`{"msg":"a`, `b"}`, "\n" + `{"msg":"c"}` + "\n"} {
		if n, err := w.Write([]byte(piece)); err != nil || n != len(piece) {
			t.Fatalf("Write(%q) = %d, %v", piece, n, err)
		}
	}
	rep, err := VerifyChain(&buf)
	if err != nil || rep.Lines != 2 {
		t.Fatalf("VerifyChain = %+v, %v; want 2 lines", rep, err)
	}
}
