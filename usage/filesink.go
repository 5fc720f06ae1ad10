package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

var _ Sink = (*fileSink)(nil)

type fileSink struct {
	path     string
	maxBytes int64
	keep     int

	mu     sync.Mutex
	f      *os.File
	size   int64
	closed bool

	// A batch that failed part-way is remembered so that its retry writes
	// only the records not yet written: a disk error never doubles one.
	resumeFirst *Record
	resumeLen   int
	resumeDone  int

	// lastSeq is the spool sequence number of the last record in the
	// files when the sink was opened.
	lastSeq uint64
}

var _ Resumer = (*fileSink)(nil)

// NewFileSink returns a sink appending records to path as NDJSON, one
// encoding/json line per record, in a file of mode 0600. Before a line would
// take the file past maxBytes, the file is rotated: path becomes path.1,
// path.1 becomes path.2 and so on up to path.keep, the oldest being removed
// (keep 0 keeps none). maxBytes <= 0 never rotates. A record larger than
// maxBytes gets a file of its own. Close syncs the file to disk.
func NewFileSink(path string, maxBytes int64, keep int) (Sink, error) {
	if path == "" {
		return nil, errors.New("usage file sink: empty path")
	}
	if keep < 0 {
		return nil, fmt.Errorf("usage file sink: keep %d is negative", keep)
	}
	s := &fileSink{path: path, maxBytes: maxBytes, keep: keep}
	if err := s.open(); err != nil {
		return nil, err
	}
	s.lastSeq = lastSpoolSeq(path)
	if s.lastSeq == 0 && keep > 0 {
		s.lastSeq = lastSpoolSeq(path + ".1") // rotated just before the end
	}
	return s, nil
}

// LastSpoolSeq is the spool sequence number of the last record the files
// held when the sink was opened: a spool replays only what comes after.
func (s *fileSink) LastSpoolSeq() uint64 { return s.lastSeq }

// lastSpoolSeq reads the spool_seq of the last whole line of the file at
// path; 0 when there is none.
func lastSpoolSeq(path string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0
	}
	const tail = 64 << 10
	off := max(st.Size()-tail, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return 0
	}
	lines := bytes.Split(bytes.TrimRight(buf, "\n"), []byte("\n"))
	var r struct {
		SpoolSeq uint64 `json:"spool_seq"`
	}
	if json.Unmarshal(lines[len(lines)-1], &r) != nil {
		return 0
	}
	return r.SpoolSeq
}

func (s *fileSink) open() error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open usage file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat usage file: %w", err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// Name returns "file".
func (s *fileSink) Name() string { return "file" }

// Write appends batch, rotating as needed. A batch with a record that
// cannot be encoded is refused whole with an error wrapping ErrPermanent.
// When writing fails part-way, a retry of the same batch appends only the
// records not yet written.
func (s *fileSink) Write(batch []*Record) error {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("usage file sink is closed")
	}
	start := 0
	if s.resumeFirst == batch[0] && s.resumeLen == len(batch) {
		start = s.resumeDone
	}
	s.resumeFirst = nil

	lines := make([][]byte, 0, len(batch)-start)
	for _, r := range batch[start:] {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("%w: encode usage record: %w", ErrPermanent, err)
		}
		lines = append(lines, append(b, '\n'))
	}

	if s.f == nil { // a rotation failed after closing the file
		if err := s.open(); err != nil {
			s.remember(batch, start)
			return err
		}
	}
	var seg []byte
	segStart := start
	for i, line := range lines {
		n := int64(len(seg) + len(line))
		if s.maxBytes > 0 && len(seg) > 0 && s.size+n > s.maxBytes {
			if err := s.write(seg); err != nil {
				s.remember(batch, segStart)
				return err
			}
			seg, segStart = seg[:0], start+i
		}
		if s.maxBytes > 0 && s.size > 0 && len(seg) == 0 && s.size+int64(len(line)) > s.maxBytes {
			if err := s.rotate(); err != nil {
				s.remember(batch, segStart)
				return err
			}
		}
		seg = append(seg, line...)
	}
	if err := s.write(seg); err != nil {
		s.remember(batch, segStart)
		return err
	}
	return nil
}

func (s *fileSink) remember(batch []*Record, done int) {
	s.resumeFirst, s.resumeLen, s.resumeDone = batch[0], len(batch), done
}

// write appends seg, undoing a partial write on error.
func (s *fileSink) write(seg []byte) error {
	if len(seg) == 0 {
		return nil
	}
	if _, err := s.f.Write(seg); err != nil {
		if terr := s.f.Truncate(s.size); terr != nil {
			err = errors.Join(err, terr)
		}
		return fmt.Errorf("write usage file: %w", err)
	}
	s.size += int64(len(seg))
	return nil
}

// rotate syncs and closes the file, shifts the older ones and opens a new
// one.
func (s *fileSink) rotate() error {
	if err := s.closeFile("rotate"); err != nil {
		return err
	}
	if s.keep == 0 {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate usage file: %w", err)
		}
	} else {
		if err := os.Remove(s.backup(s.keep)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate usage file: %w", err)
		}
		for i := s.keep - 1; i >= 1; i-- {
			if err := os.Rename(s.backup(i), s.backup(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("rotate usage file: %w", err)
			}
		}
		if err := os.Rename(s.path, s.backup(1)); err != nil {
			return fmt.Errorf("rotate usage file: %w", err)
		}
	}
	return s.open()
}

func (s *fileSink) backup(i int) string { return s.path + "." + strconv.Itoa(i) }

// Close syncs and closes the file. It is idempotent.
func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.f == nil {
		return nil
	}
	return s.closeFile("close")
}

// closeFile syncs and closes the file, which it forgets either way; op
// names the step in the error.
func (s *fileSink) closeFile(op string) error {
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		return fmt.Errorf("%s usage file: %w", op, err)
	}
	return nil
}
