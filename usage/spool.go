package usage

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// DefaultSpoolSegmentBytes is the size at which the spool starts a new
// segment file.
const DefaultSpoolSegmentBytes = 64 << 20

// Spool is the usage records' write-ahead log: every record is appended to
// a local file, with a sequence number, before the call it records is
// answered, and shipped to the sinks from there. Each sink's cursor (the
// last record it handled) is kept beside the segments, so that after a
// crash, even kill -9, the records a sink had not handled are replayed to
// it on the next start. Segments every sink has moved past are deleted.
//
// A spool has an identity, random and kept in the file spool-id beside
// the segments, which names its sequence: the store sink keys its marks
// on the aggregates by it (see store.Aggregates.AddUsageSeq). Sequence
// numbers never go back within an identity: a spool whose segments were
// all deleted goes on after the highest of its cursors.
//
// A record reaches the page cache with one write system call, which
// survives the process being killed; surviving the machine losing power
// would need an fsync per record, which the spool does not do.
//
// Spool's methods are safe for concurrent use.
type Spool struct {
	dir          string
	segmentBytes int64
	id           string

	mu       sync.Mutex
	f        *os.File // the segment appended to
	size     int64
	seq      uint64    // the last sequence number given
	segments []segment // oldest first; the last is the one appended to
	cursors  map[string]*cursor
	buf      []byte
	closed   bool
}

// segment is one spool file: records first to last, in order.
type segment struct {
	path        string
	first, last uint64
}

// cursor is one sink's position, kept in its own small file.
type cursor struct {
	f   *os.File
	seq uint64
}

// spoolLine is the prefix width of a record's sequence number.
const seqWidth = 16

// OpenSpool opens (creating) the spool in dir and reads where it stands:
// the last sequence number and the sinks' cursors. A record cut short by a
// crash, at a segment's end, is dropped: its call was not answered.
func OpenSpool(dir string, segmentBytes int64) (*Spool, error) {
	if segmentBytes <= 0 {
		segmentBytes = DefaultSpoolSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("usage spool: %w", err)
	}
	id, err := spoolID(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, segmentBytes: segmentBytes, id: id, cursors: map[string]*cursor{}}
	names, err := filepath.Glob(filepath.Join(dir, "*.spool"))
	if err != nil {
		return nil, fmt.Errorf("usage spool: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		seg, err := scanSegment(name)
		if err != nil {
			return nil, err
		}
		if seg.last == 0 {
			_ = os.Remove(name) // nothing whole in it
			continue
		}
		s.segments = append(s.segments, seg)
		s.seq = max(s.seq, seg.last)
	}
	// The segments every sink had moved past are gone: the cursors tell
	// how far the numbers went.
	cursors, err := filepath.Glob(filepath.Join(dir, "cursor-*"))
	if err != nil {
		return nil, fmt.Errorf("usage spool: %w", err)
	}
	for _, name := range cursors {
		if b, err := os.ReadFile(name); err == nil {
			n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			s.seq = max(s.seq, n)
		}
	}
	if err := s.startSegment(); err != nil {
		return nil, err
	}
	return s, nil
}

// spoolIDFile is the name of the file holding a spool's identity.
const spoolIDFile = "spool-id"

// spoolID returns the identity kept in dir, first making one if there is
// none (a new spool, or one of a version before identities).
func spoolID(dir string) (string, error) {
	path := filepath.Join(dir, spoolIDFile)
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); validSpoolID(id) {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("usage spool: %w", err)
	}
	// Written aside and renamed: a crash never leaves half an identity.
	id := rand.Text()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("usage spool: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("usage spool: %w", err)
	}
	return id, nil
}

// validSpoolID reports whether id can name a store.UsageSeq's source.
func validSpoolID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// ID returns the spool's identity: printable ASCII, kept across restarts.
func (s *Spool) ID() string { return s.id }

// scanSegment reads a segment's first and last whole records, cutting off
// a record the writer did not finish.
func scanSegment(name string) (segment, error) {
	seg := segment{path: name}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return seg, fmt.Errorf("usage spool: %w", err)
	}
	defer f.Close()
	var whole int64
	eachLine(f, func(seq uint64, _ []byte, end int64) bool {
		if seg.first == 0 {
			seg.first = seq
		}
		seg.last, whole = seq, end
		return true
	})
	if st, err := f.Stat(); err == nil && st.Size() > whole {
		if err := f.Truncate(whole); err != nil {
			return seg, fmt.Errorf("usage spool: %s: %w", name, err)
		}
	}
	return seg, nil
}

// eachLine calls fn with each whole record line of f (its sequence number,
// its JSON and the offset just after it), stopping at the end, at the
// first line that is not whole (a write cut short, or a read error) or
// when fn returns false.
func eachLine(f *os.File, fn func(seq uint64, data []byte, end int64) bool) {
	rd := bufio.NewReaderSize(f, 64<<10)
	var off int64
	for {
		line, err := rd.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			more, err2 := rd.ReadSlice('\n')
			line, err = append(slices.Clip(line), more...), err2
		}
		if err != nil || len(line) < seqWidth+2 || line[seqWidth] != ' ' {
			return // the end, or a line cut short
		}
		seq, perr := strconv.ParseUint(string(line[:seqWidth]), 16, 64)
		data := line[seqWidth+1 : len(line)-1]
		if perr != nil || !json.Valid(data) {
			return
		}
		off += int64(len(line))
		if !fn(seq, data, off) {
			return
		}
	}
}

// startSegment opens a new segment for the records after s.seq.
func (s *Spool) startSegment() error {
	if s.f != nil {
		if err := s.f.Close(); err != nil {
			return fmt.Errorf("usage spool: %w", err)
		}
	}
	path := filepath.Join(s.dir, fmt.Sprintf("%016x.spool", s.seq+1))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("usage spool: %w", err)
	}
	s.f, s.size = f, 0
	s.segments = append(s.segments, segment{path: path})
	return nil
}

// Append writes r to the spool and returns its sequence number.
func (s *Spool) Append(r *Record) (uint64, error) {
	data, err := encodeRecord(r)
	if err != nil {
		return 0, err
	}
	return s.appendEncoded(data)
}

// encodeRecord returns r as the spool writes it.
func encodeRecord(r *Record) ([]byte, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("usage spool: %w", err)
	}
	return data, nil
}

// appendEncoded writes a record encoded by encodeRecord and returns its
// sequence number.
func (s *Spool) appendEncoded(data []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errors.New("usage spool: closed")
	}
	if s.size >= s.segmentBytes {
		if err := s.startSegment(); err != nil {
			return 0, err
		}
	}
	seq := s.seq + 1
	s.buf = fmt.Appendf(s.buf[:0], "%016x ", seq)
	s.buf = append(append(s.buf, data...), '\n')
	n, err := s.f.Write(s.buf)
	s.size += int64(n)
	if err != nil {
		return 0, fmt.Errorf("usage spool: %w", err)
	}
	s.seq = seq
	seg := &s.segments[len(s.segments)-1]
	if seg.first == 0 {
		seg.first = seq
	}
	seg.last = seq
	return seq, nil
}

// Cursor returns the last record sink handled (0: none), opening its
// cursor file.
func (s *Spool) Cursor(sink string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.cursor(sink)
	if err != nil {
		return 0, err
	}
	return c.seq, nil
}

func (s *Spool) cursor(sink string) (*cursor, error) {
	if c, ok := s.cursors[sink]; ok {
		return c, nil
	}
	path := filepath.Join(s.dir, "cursor-"+safeName(sink))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("usage spool: %w", err)
	}
	c := &cursor{f: f}
	var b [32]byte
	if n, _ := f.ReadAt(b[:], 0); n > 0 {
		c.seq, _ = strconv.ParseUint(strings.TrimSpace(string(b[:n])), 10, 64)
	}
	s.cursors[sink] = c
	return c, nil
}

// safeName keeps a sink name usable as part of a file name.
func safeName(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, name)
}

// Ack moves sink's cursor to seq (never back), writing it at once, and
// deletes the segments every sink has moved past.
func (s *Spool) Ack(sink string, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	c, err := s.cursor(sink)
	if err != nil {
		return err
	}
	if seq <= c.seq {
		return nil
	}
	c.seq = seq
	// Fixed width, written in place: one write, never a half-written
	// number.
	if _, err := c.f.WriteAt(fmt.Appendf(nil, "%020d\n", seq), 0); err != nil {
		return fmt.Errorf("usage spool: cursor of %s: %w", sink, err)
	}
	s.collect()
	return nil
}

// collect deletes the segments, but the one appended to, whose records
// every sink has handled.
func (s *Spool) collect() {
	low := s.seq
	for _, c := range s.cursors {
		low = min(low, c.seq)
	}
	for len(s.segments) > 1 && s.segments[0].last <= low {
		_ = os.Remove(s.segments[0].path)
		s.segments = s.segments[1:]
	}
}

// Replay calls fn, in order, with every record after seq, and its
// sequence number.
func (s *Spool) Replay(after uint64, fn func(r *Record, seq uint64)) error {
	s.mu.Lock()
	paths := make([]string, 0, len(s.segments))
	for _, seg := range s.segments {
		if seg.last > after {
			paths = append(paths, seg.path)
		}
	}
	s.mu.Unlock()
	for _, p := range paths {
		if err := replayFile(p, after, fn); err != nil {
			return err
		}
	}
	return nil
}

func replayFile(path string, after uint64, fn func(*Record, uint64)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("usage spool: %w", err)
	}
	defer f.Close()
	var bad error
	eachLine(f, func(seq uint64, data []byte, _ int64) bool {
		if seq <= after {
			return true
		}
		r := new(Record)
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(r); err != nil {
			bad = fmt.Errorf("usage spool: %s: record %d: %w", path, seq, err)
			return false
		}
		fn(r, seq)
		return true
	})
	return bad
}

// Close closes the spool's files.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	errs := []error{s.f.Close()}
	for _, c := range s.cursors {
		errs = append(errs, c.f.Close())
	}
	return errors.Join(errs...)
}
