package usage

import (
	"bufio"
	"bytes"
	"cmp"
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
// Each opening of the spool (a run) has an identity of its own, random,
// listed with the first number of the run in the file spool-runs beside
// the segments: a record appended or replayed carries the identity of the
// run that appended it (its source), which names the sequence the store
// sink keys its marks on the aggregates by (see
// store.Aggregates.AddUsageSeq). A run has one writer and numbers its
// records upwards, so a directory restored from a backup, or copied, goes
// on under a new identity and is never taken for the records it had
// numbered alike. Numbers never go back either: a spool whose segments
// were all deleted goes on after the highest of its cursors.
//
// A record reaches the page cache with one write system call, which
// survives the process being killed; surviving the machine losing power
// would need an fsync per record, which the spool does not do.
//
// Spool's methods are safe for concurrent use.
type Spool struct {
	dir          string
	segmentBytes int64
	// runs are the runs whose records the segments may hold, oldest
	// first; the last is this one. Set by OpenSpool, then only read.
	runs []spoolRun

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
	s := &Spool{dir: dir, segmentBytes: segmentBytes, cursors: map[string]*cursor{}}
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
	if err := s.startRun(); err != nil {
		return nil, err
	}
	if err := s.startSegment(); err != nil {
		return nil, err
	}
	return s, nil
}

// spoolRunsFile is the name of the file listing a spool's runs, one a
// line: the run's first number (16 hex digits), a space and its identity.
const spoolRunsFile = "spool-runs"

// spoolRun is one opening of a spool: its identity and its first number.
type spoolRun struct {
	first uint64
	id    string
}

// startRun reads the runs of the records the segments hold and adds this
// one, starting after s.seq, writing the list back. A spool of a version
// before runs has none: its records replay without a source.
func (s *Spool) startRun() error {
	path := filepath.Join(s.dir, spoolRunsFile)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("usage spool: %w", err)
	}
	var runs []spoolRun
	for line := range strings.Lines(string(data)) {
		first, id, ok := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.ParseUint(first, 16, 64)
		if !ok || err != nil || !validSource(id) || (len(runs) > 0 && n < runs[len(runs)-1].first) {
			continue // a line cut short: its run appended nothing that was kept
		}
		runs = append(runs, spoolRun{n, id})
	}
	// Only the runs of the oldest record kept and after are needed, and
	// not a run that appended nothing.
	if len(s.segments) == 0 {
		runs = nil
	} else if i := runAfter(runs, s.segments[0].first); i > 0 {
		runs = runs[i-1:]
	}
	for len(runs) > 0 && runs[len(runs)-1].first > s.seq {
		runs = runs[:len(runs)-1]
	}
	runs = append(runs, spoolRun{s.seq + 1, rand.Text()})
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "%016x %s\n", r.first, r.id)
	}
	// Written aside and renamed: a crash leaves the old list or the new.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("usage spool: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("usage spool: %w", err)
	}
	s.runs = runs
	return nil
}

// validSource reports whether id can name a store.UsageSeq's source.
func validSource(id string) bool {
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

// ID returns the identity of this run of the spool, the source of the
// records it appends.
func (s *Spool) ID() string { return s.runs[len(s.runs)-1].id }

// source returns the identity of the run that appended record seq, or ""
// when no run is known for it (a spool of a version before runs).
func (s *Spool) source(seq uint64) string {
	if i := runAfter(s.runs, seq); i > 0 {
		return s.runs[i-1].id
	}
	return ""
}

// runAfter returns the index of the first run that started after record
// seq: the run before it appended seq.
func runAfter(runs []spoolRun, seq uint64) int {
	i, _ := slices.BinarySearchFunc(runs, seq+1, func(r spoolRun, t uint64) int { return cmp.Compare(r.first, t) })
	return i
}

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
