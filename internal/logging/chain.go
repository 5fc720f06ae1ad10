package logging

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"go.uber.org/zap/zapcore"
)

// The audit log is hash-chained: every line carries the chain hash
//
//	hash_n = hex(SHA-256(hash_{n-1} || line_n))
//
// where hash_{n-1} is the previous line's chain hash as its 64 hexadecimal
// characters (ChainSeed before the first line) and line_n is the line as
// written without its chain field and without its newline. A JSON line
// carries it as its last field, "chain":"<hash>"; any other line (the
// console format) ends with a tab and chain=<hash>. Editing, removing,
// adding or moving a line breaks the chain from there on, which
// VerifyChain finds.

// ChainSeed is the chain hash before a chain's first line: 64 zeros.
const ChainSeed = "0000000000000000000000000000000000000000000000000000000000000000"

const (
	// chainHexLen is the length of a chain hash in hexadecimal.
	chainHexLen = 2 * sha256.Size
	// jsonChainKey starts a JSON line's chain field.
	jsonChainKey = `"chain":"`
	// consoleChainKey starts a console line's chain field.
	consoleChainKey = "\tchain="
	// maxTail bounds how far back the last line of an audit file is looked
	// for when the file is opened.
	maxTail = 1 << 20
	// maxVerifyLine bounds one line that VerifyChain reads.
	maxVerifyLine = 16 << 20
)

// chainHash returns the chain hash of line after prev.
func chainHash(prev string, line []byte) string {
	h := sha256.New()
	_, _ = io.WriteString(h, prev)
	_, _ = h.Write(line)
	return hex.EncodeToString(h.Sum(nil))
}

// withChain returns line with its chain hash added.
func withChain(line []byte, hash string) []byte {
	out := make([]byte, 0, len(line)+len(jsonChainKey)+chainHexLen+len(consoleChainKey))
	if n := len(line); n >= 2 && line[0] == '{' && line[n-1] == '}' {
		body := line[:n-1]
		out = append(out, body...)
		if t := bytes.TrimRight(body, " \t"); t[len(t)-1] != '{' {
			out = append(out, ',')
		}
		out = append(out, jsonChainKey...)
		out = append(out, hash...)
		return append(out, '"', '}')
	}
	out = append(out, line...)
	out = append(out, consoleChainKey...)
	return append(out, hash...)
}

// splitChain returns line without its chain field, and the chain hash;
// ok is false when the line carries none.
func splitChain(line []byte) (content []byte, hash string, ok bool) {
	n := len(line)
	// A JSON line: ...,"chain":"<hash>"} or {"chain":"<hash>"}.
	if tail := len(jsonChainKey) + chainHexLen + 2; n >= tail+1 && line[0] == '{' && bytes.HasSuffix(line, []byte(`"}`)) {
		at := n - tail
		if bytes.HasPrefix(line[at:], []byte(jsonChainKey)) {
			hash = string(line[at+len(jsonChainKey) : n-2])
			if isHex(hash) {
				switch line[at-1] {
				case ',':
					return append(append([]byte(nil), line[:at-1]...), '}'), hash, true
				case '{':
					return append(append([]byte(nil), line[:at]...), '}'), hash, true
				}
			}
		}
	}
	// Any other line: ...\tchain=<hash>.
	if tail := len(consoleChainKey) + chainHexLen; n >= tail && bytes.HasPrefix(line[n-tail:], []byte(consoleChainKey)) {
		hash = string(line[n-chainHexLen:])
		if isHex(hash) {
			return line[:n-tail], hash, true
		}
	}
	return nil, "", false
}

// isHex reports whether s is a chain hash: 64 lowercase hexadecimal
// characters.
func isHex(s string) bool {
	if len(s) != chainHexLen {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// chainWriter adds the chain hash to every line written through it. zap
// writes one entry, one line, per Write; a line written in pieces is held
// until its newline.
type chainWriter struct {
	mu   sync.Mutex
	w    io.Writer
	prev string
	// partial is the start of a line not yet ended.
	partial []byte
	// newline is set when the file ended in the middle of a line (a write
	// cut short): the next write ends that line first.
	newline bool
}

var _ zapcore.WriteSyncer = (*chainWriter)(nil)

// newChainWriter returns a writer that chains the lines it writes to w,
// after prev.
func newChainWriter(w io.Writer, prev string) *chainWriter {
	return &chainWriter{w: w, prev: prev}
}

// Write chains every complete line of p and writes them to the underlying
// writer in one call. A chain hash moves on only once its line is written.
func (c *chainWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []byte
	if c.newline {
		out = append(out, '\n')
	}
	prev := c.prev
	rest := p
	if len(c.partial) > 0 {
		rest = slices.Concat(c.partial, p)
	}
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := rest[:i]
		prev = chainHash(prev, line)
		out = append(append(out, withChain(line, prev)...), '\n')
		rest = rest[i+1:]
	}
	if len(out) > 0 {
		if _, err := c.w.Write(out); err != nil {
			return 0, err
		}
	}
	c.prev, c.newline = prev, false
	c.partial = slices.Clone(rest)
	return len(p), nil
}

// Sync flushes the underlying writer when it can be.
func (c *chainWriter) Sync() error {
	if s, ok := c.w.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

// openChained opens the audit file at path for appending, and continues
// the chain of its last line; a new or empty file, or one whose last line
// carries no chain hash (written before chaining), starts a new chain from
// ChainSeed.
func openChained(path string) (*chainWriter, *os.File, error) {
	prev, cut, err := lastChainHash(path)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	cw := newChainWriter(f, prev)
	cw.newline = cut
	return cw, f, nil
}

// lastChainHash returns the chain hash of the file's last line (ChainSeed
// when it has none or the file does not exist), and whether the file ends
// in the middle of a line.
func lastChainHash(path string) (hash string, cut bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return ChainSeed, false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return "", false, err
	}
	size := fi.Size()
	if size == 0 {
		return ChainSeed, false, nil
	}
	n := min(size, maxTail)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("read the end of %s: %w", path, err)
	}
	cut = buf[len(buf)-1] != '\n'
	last := bytes.TrimSuffix(buf, []byte{'\n'})
	i := bytes.LastIndexByte(last, '\n')
	if i < 0 && n < size {
		return ChainSeed, cut, nil // a last line longer than maxTail: not veil's
	}
	if _, h, ok := splitChain(last[i+1:]); ok {
		return h, cut, nil
	}
	return ChainSeed, cut, nil
}

// ChainReport is what VerifyChain found in an intact audit log.
type ChainReport struct {
	// Lines is how many lines the log has.
	Lines int
	// Unchained is how many lines at its start carry no chain hash: lines
	// written before the log was chained, which the chain does not cover.
	Unchained int
}

// ChainError is where and why an audit log's chain breaks.
type ChainError struct {
	// Line is the number of the first line that breaks the chain, from 1.
	Line int
	// Reason says how it breaks it.
	Reason string
}

// Error returns the line number and the reason.
func (e *ChainError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// VerifyChain reads an audit log and checks its chain: the first chained
// line must follow ChainSeed and every line after it must carry the hash
// of its content after the line before it. Lines without a chain hash are
// allowed only at the start (written before chaining). It returns a
// *ChainError naming the first line that breaks the chain, or an error
// reading r.
func VerifyChain(r io.Reader) (ChainReport, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var rep ChainReport
	prev := ""
	for {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) && line == nil {
			return rep, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return rep, fmt.Errorf("read line %d: %w", rep.Lines+1, err)
		}
		rep.Lines++
		content, hash, ok := splitChain(line)
		switch {
		case !ok && prev == "":
			rep.Unchained++
		case !ok && len(line) == 0:
			return rep, &ChainError{Line: rep.Lines, Reason: "empty line in the chain"}
		case !ok:
			return rep, &ChainError{Line: rep.Lines, Reason: "carries no chain hash: the line was changed, added or cut short"}
		default:
			if prev == "" {
				prev = ChainSeed
			}
			if want := chainHash(prev, content); hash != want {
				return rep, &ChainError{Line: rep.Lines, Reason: "the chain breaks here: the line was changed, or a line before it was removed, added or moved"}
			}
			prev = hash
		}
		if errors.Is(err, io.EOF) {
			return rep, nil
		}
	}
}

// readLine reads one line without its newline; at the end of r it returns
// the last line, if it has no newline, with io.EOF, or nil and io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxVerifyLine {
			return nil, fmt.Errorf("longer than %d bytes", maxVerifyLine)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, io.EOF
		default:
			return nil, err
		}
	}
}
