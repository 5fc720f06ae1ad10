package usage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Spill file names: spill-<unix nanoseconds>-<sequence>.ndjson, so that
// names sort by age. The file being written ends in .part; the progress of
// a partly re-sent file is kept in <name>.offset.
const (
	spillPrefix = "spill-"
	spillExt    = ".ndjson"
	partExt     = ".part"
	offsetExt   = ".offset"
	tmpExt      = ".tmp"
)

// spillDirs holds the absolute spill directories in use in this process:
// two sinks sharing one would take each other's files.
var spillDirs sync.Map

// spill is a directory of NDJSON files holding records to be re-sent.
type spill struct {
	dir         string
	rollRecords int
	rollBytes   int64

	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	part   string // path of the file being written
	n      int
	bytes  int64
	seq    uint64
	closed bool
	buf    bytes.Buffer
}

// openSpill creates dir (0700) if needed, claims it for this process and
// readies the files a previous run left: a .part file, cut short by a
// crash, becomes a closed file to re-send; stray progress files go.
func openSpill(dir string, rollRecords int, rollBytes int64) (*spill, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("spill dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("spill dir: %w", err)
	}
	if _, loaded := spillDirs.LoadOrStore(abs, struct{}{}); loaded {
		return nil, fmt.Errorf("spill dir %s is already used by another webhook sink", abs)
	}
	s := &spill{dir: abs, rollRecords: rollRecords, rollBytes: rollBytes}
	if err := s.recover(); err != nil {
		spillDirs.Delete(abs)
		return nil, err
	}
	return s, nil
}

func (s *spill) recover() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read spill dir: %w", err)
	}
	have := make(map[string]bool)
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, spillPrefix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(s.dir, name)
		switch {
		case strings.HasSuffix(name, spillExt+partExt):
			closed := strings.TrimSuffix(p, partExt)
			if err := os.Rename(p, closed); err != nil {
				return fmt.Errorf("recover spill file: %w", err)
			}
			have[closed] = true
		case strings.HasSuffix(name, spillExt):
			have[p] = true
		}
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, spillPrefix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(s.dir, name)
		stray := strings.HasSuffix(name, tmpExt) ||
			strings.HasSuffix(name, offsetExt) && !have[strings.TrimSuffix(p, offsetExt)]
		if stray {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove stray spill file: %w", err)
			}
		}
	}
	return nil
}

// add appends r to the file being written, starting one if needed, and
// closes that file once it is big enough.
func (s *spill) add(r *Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	if err := json.NewEncoder(&s.buf).Encode(r); err != nil {
		return fmt.Errorf("encode spilled usage record: %w", err)
	}
	if s.f == nil {
		if err := s.openLocked(); err != nil {
			return err
		}
	}
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return errors.Join(fmt.Errorf("write spill file: %w", err), s.finishLocked())
	}
	s.n++
	s.bytes += int64(s.buf.Len())
	if s.closed || s.n >= s.rollRecords || s.bytes >= s.rollBytes {
		return s.finishLocked()
	}
	return nil
}

func (s *spill) openLocked() error {
	for range 100 {
		s.seq++
		name := fmt.Sprintf("%s%020d-%06d%s%s", spillPrefix, time.Now().UnixNano(), s.seq, spillExt, partExt)
		p := filepath.Join(s.dir, name)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("create spill file: %w", err)
		}
		if s.w == nil {
			s.w = bufio.NewWriterSize(f, 64<<10)
		} else {
			s.w.Reset(f)
		}
		s.f, s.part, s.n, s.bytes = f, p, 0, 0
		return nil
	}
	return errors.New("create spill file: no free name")
}

// finishLocked flushes, syncs and closes the file being written and gives
// it its closed name, which makes it the resender's.
func (s *spill) finishLocked() error {
	if s.f == nil {
		return nil
	}
	err := s.w.Flush()
	if serr := s.f.Sync(); err == nil {
		err = serr
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	s.w.Reset(nil)
	if s.n == 0 {
		if rerr := os.Remove(s.part); err == nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr
		}
	} else if rerr := os.Rename(s.part, strings.TrimSuffix(s.part, partExt)); err == nil {
		// A file left .part is recovered at the next start.
		err = rerr
	}
	s.n, s.bytes = 0, 0
	if err != nil {
		return fmt.Errorf("close spill file: %w", err)
	}
	return nil
}

// rotate closes the file being written if it holds records, so that the
// resender can take it; it reports whether it did.
func (s *spill) rotate() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil || s.n == 0 {
		return false, nil
	}
	return true, s.finishLocked()
}

// close closes the file being written; a later add writes a file of its
// own and closes it at once.
func (s *spill) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.finishLocked()
}

// release lets another sink use the directory.
func (s *spill) release() { spillDirs.Delete(s.dir) }

// oldest returns the path of the oldest closed spill file, or "".
func (s *spill) oldest() (string, error) {
	entries, err := os.ReadDir(s.dir) // sorted by name, hence by age
	if err != nil {
		return "", fmt.Errorf("read spill dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, spillPrefix) && strings.HasSuffix(name, spillExt) && e.Type().IsRegular() {
			return filepath.Join(s.dir, name), nil
		}
	}
	return "", nil
}

// readOffset returns how many bytes of the spill file at p were delivered.
func readOffset(p string) (int64, error) {
	b, err := os.ReadFile(p + offsetExt)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read spill offset: %w", err)
	}
	off, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || off < 0 {
		return 0, fmt.Errorf("spill offset of %s is corrupt", filepath.Base(p))
	}
	return off, nil
}

// writeOffset records that the first off bytes of the spill file at p were
// delivered, atomically.
func writeOffset(p string, off int64) error {
	tmp := p + offsetExt + tmpExt
	if err := os.WriteFile(tmp, strconv.AppendInt(nil, off, 10), 0o600); err != nil {
		return fmt.Errorf("write spill offset: %w", err)
	}
	if err := os.Rename(tmp, p+offsetExt); err != nil {
		return fmt.Errorf("write spill offset: %w", err)
	}
	return nil
}
