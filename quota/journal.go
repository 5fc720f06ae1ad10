package quota

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/wedsync/veil/store"
)

// Journal keeps the reservations a process holds, so that those of a
// process that was killed before settling them can be settled when it
// starts again, from the usage records of their calls (see Reconcile).
type Journal interface {
	// Opened notes a reservation made for the request id.
	Opened(id string, r store.Reservation)
	// Closed notes that the request's reservation was settled.
	Closed(id string)
}

// OpenReservation is a reservation a process left open.
type OpenReservation struct {
	ID          string            `json:"id"`
	Reservation store.Reservation `json:"reservation"`
}

// FileJournal is a Journal in a local file: one line per reservation
// opened ("+", the request ID, the reservation as JSON) and closed ("-"
// and the ID), each one write, which survives the process being killed.
// It rewrites itself with the open reservations only when it grows past
// compactBytes. Its methods are safe for concurrent use.
type FileJournal struct {
	path string

	mu   sync.Mutex
	f    *os.File
	size int64
	open map[string]store.Reservation
	buf  []byte
}

var _ Journal = (*FileJournal)(nil)

// compactBytes is the size past which the journal is rewritten.
const compactBytes = 4 << 20

// OpenJournal opens the journal at path and returns the reservations the
// last process left open. The caller settles them (Reconcile) and then
// calls Forget.
func OpenJournal(path string) (*FileJournal, []OpenReservation, error) {
	left, err := readJournal(path)
	if err != nil {
		return nil, nil, err
	}
	j := &FileJournal{path: path, open: map[string]store.Reservation{}}
	for _, o := range left {
		j.open[o.ID] = o.Reservation
	}
	if err := j.rewrite(); err != nil {
		return nil, nil, err
	}
	return j, left, nil
}

// readJournal reads the reservations a journal file holds open; a line cut
// short by a kill ends it.
func readJournal(path string) ([]OpenReservation, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("quota journal: %w", err)
	}
	defer f.Close()
	open := map[string]store.Reservation{}
	var order []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "+"):
			id, data, ok := strings.Cut(line[1:], "\t")
			var r store.Reservation
			if !ok || json.Unmarshal([]byte(data), &r) != nil {
				continue
			}
			if _, seen := open[id]; !seen {
				order = append(order, id)
			}
			open[id] = r
		case strings.HasPrefix(line, "-"):
			delete(open, line[1:])
		}
	}
	var out []OpenReservation
	for _, id := range order {
		if r, ok := open[id]; ok {
			out = append(out, OpenReservation{ID: id, Reservation: r})
		}
	}
	return out, nil
}

// Opened notes a reservation made for request id.
func (j *FileJournal) Opened(id string, r store.Reservation) {
	data, err := json.Marshal(r)
	if err != nil || strings.ContainsAny(id, "\t\n") {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.open[id] = r
	j.buf = append(append(append(append(j.buf[:0], '+'), id...), '\t'), data...)
	j.write(append(j.buf, '\n'))
}

// Closed notes that request id's reservation was settled.
func (j *FileJournal) Closed(id string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.open[id]; !ok {
		return
	}
	delete(j.open, id)
	j.buf = append(append(append(j.buf[:0], '-'), id...), '\n')
	j.write(j.buf)
	if j.size > compactBytes {
		_ = j.rewrite()
	}
}

// Forget drops reservations that were settled by Reconcile.
func (j *FileJournal) Forget(ids []string) {
	for _, id := range ids {
		j.Closed(id)
	}
}

// write appends one line; a journal that cannot be written only loses the
// chance to settle after a kill.
func (j *FileJournal) write(line []byte) {
	if j.f == nil {
		return
	}
	n, _ := j.f.Write(line)
	j.size += int64(n)
}

// rewrite replaces the file with the open reservations only.
func (j *FileJournal) rewrite() error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("quota journal: %w", err)
	}
	var size int64
	for id, r := range j.open {
		data, err := json.Marshal(r)
		if err != nil {
			continue
		}
		n, err := f.Write(append(append(append([]byte{'+'}, id...), '\t'), append(data, '\n')...))
		size += int64(n)
		if err != nil {
			_ = f.Close()
			return fmt.Errorf("quota journal: %w", err)
		}
	}
	if err := os.Rename(tmp, j.path); err != nil {
		_ = f.Close()
		return fmt.Errorf("quota journal: %w", err)
	}
	if j.f != nil {
		_ = j.f.Close()
	}
	j.f, j.size = f, size
	return nil
}

// Close closes the journal's file.
func (j *FileJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
