package usage

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
)

func openSpool(t *testing.T, dir string, segment int64) *Spool {
	t.Helper()
	sp, err := OpenSpool(dir, segment)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	return sp
}

// replayed returns the request IDs the spool holds after seq.
func replayed(t *testing.T, sp *Spool, after uint64) []string {
	t.Helper()
	var out []string
	if err := sp.Replay(after, func(r *Record, _ uint64) { out = append(out, r.RequestID) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSpoolAppendReplayAck: records are numbered in order, survive a
// reopen, replay from a cursor, and segments every sink has passed are
// deleted.
func TestSpoolAppendReplayAck(t *testing.T) {
	dir := t.TempDir()
	sp := openSpool(t, dir, 600) // a few records per segment
	for i := range 10 {
		seq, err := sp.Append(rec(i))
		if err != nil || seq != uint64(i+1) {
			t.Fatalf("append %d: seq %d, %v", i, seq, err)
		}
	}
	if _, err := sp.Cursor("file"); err != nil {
		t.Fatal(err)
	}
	if err := sp.Ack("file", 4); err != nil {
		t.Fatal(err)
	}
	if got := replayed(t, sp, 4); !slices.Equal(got, ids(recs(10))[4:]) {
		t.Fatalf("replay after 4: %v", got)
	}
	before, _ := filepath.Glob(filepath.Join(dir, "*.spool"))
	if err := sp.Ack("file", 9); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(dir, "*.spool"))
	if len(after) >= len(before) {
		t.Errorf("segments %d before the ack, %d after: none deleted", len(before), len(after))
	}
	_ = sp.Close()

	sp = openSpool(t, dir, 600)
	if c, err := sp.Cursor("file"); err != nil || c != 9 {
		t.Fatalf("cursor after reopen %d, %v; want 9", c, err)
	}
	if got := replayed(t, sp, 9); !slices.Equal(got, []string{rec(9).RequestID}) {
		t.Fatalf("replay after reopen: %v", got)
	}
	if seq, _ := sp.Append(rec(10)); seq != 11 {
		t.Fatalf("the numbering did not go on after reopen: %d", seq)
	}
}

// TestSpoolDropsATornRecord: a record cut short at a segment's end (the
// process died in the write) is dropped and the numbering goes on.
func TestSpoolDropsATornRecord(t *testing.T) {
	dir := t.TempDir()
	sp := openSpool(t, dir, 0)
	for i := range 3 {
		if _, err := sp.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = sp.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.spool"))
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`0000000000000004 {"request_id":"req-torn","sup`); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	sp = openSpool(t, dir, 0)
	if got := replayed(t, sp, 0); !slices.Equal(got, ids(recs(3))) {
		t.Fatalf("replay: %v, want the three whole records", got)
	}
	if seq, _ := sp.Append(rec(3)); seq != 4 {
		t.Fatalf("seq %d after a torn record, want 4", seq)
	}
	if got := replayed(t, sp, 3); !slices.Equal(got, []string{rec(3).RequestID}) {
		t.Fatalf("replay after the torn record: %v", got)
	}
}

// TestEmitterReplaysWhatASinkDidNotTake: records a sink had not handled
// when its emitter ended without flushing (as in a crash) reach it after a
// restart on the same spool, once; records it had handled do not come
// again.
func TestEmitterReplaysWhatASinkDidNotTake(t *testing.T) {
	dir := t.TempDir()
	sp := openSpool(t, dir, 0)
	var stall atomic.Bool
	release := make(chan struct{})
	first := &testSink{name: "s", write: func(int, []*Record) error {
		if stall.Load() {
			<-release
			return errWrite
		}
		return nil
	}}
	e := NewEmitter(fast(Options{Spool: sp}), first)
	all := recs(20)
	for _, r := range all[:10] {
		e.Emit(r)
	}
	first.n.waitUntil(t, "the first ten written", func() bool { return len(first.got) == 10 })
	// The sink stops taking records; the emitter ends without them.
	stall.Store(true)
	for _, r := range all[10:] {
		e.Emit(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = e.Close(ctx)
	close(release)
	e.wait()
	_ = sp.Close()

	sp = openSpool(t, dir, 0)
	second := &testSink{name: "s"}
	e = NewEmitter(fast(Options{Spool: sp}), second)
	closeEmitter(t, e)
	checkOnce(t, ids(second.written()), all[10:])
}

// TestFileSinkResumesAfterItsLastRecord: a file sink that wrote records
// whose cursor the spool had not yet moved past (the process died between
// the two) gets only the records after them on replay.
func TestFileSinkResumesAfterItsLastRecord(t *testing.T) {
	dir := t.TempDir()
	sp := openSpool(t, filepath.Join(dir, "spool"), 0)
	all := recs(6)
	for _, r := range all {
		seq, err := sp.Append(r)
		if err != nil {
			t.Fatal(err)
		}
		r.SpoolSeq = seq
	}
	path := filepath.Join(dir, "usage.ndjson")
	fs, err := NewFileSink(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Write(all[:4]); err != nil { // written, never acknowledged
		t.Fatal(err)
	}
	_ = fs.Close()

	fs, err = NewFileSink(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fs.(Resumer).LastSpoolSeq(); got != 4 {
		t.Fatalf("LastSpoolSeq = %d, want 4", got)
	}
	e := NewEmitter(fast(Options{Spool: sp}), fs)
	closeEmitter(t, e)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range splitLines(data) {
		got = append(got, lineRequestID(t, line))
	}
	checkOnce(t, got, all)
}

// splitLines splits NDJSON into its lines.
func splitLines(data []byte) [][]byte {
	var out [][]byte
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		if len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// lineRequestID reads a record line's request ID.
func lineRequestID(t *testing.T, line []byte) string {
	t.Helper()
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return r.RequestID
}

// TestSpoolRunsNameTheirRecords: each opening of a spool is a run with
// an identity of its own; records replayed carry the identity of the run
// that appended them, and numbers go on after the last even when every
// segment was deleted, so that a store's marks stay true. A directory
// restored from a copy goes on under another identity.
func TestSpoolRunsNameTheirRecords(t *testing.T) {
	dir := t.TempDir()
	sources := func(sp *Spool) map[uint64]string {
		t.Helper()
		got := map[uint64]string{}
		if err := sp.Replay(0, func(_ *Record, seq uint64) { got[seq] = sp.source(seq) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	sp := openSpool(t, dir, 0)
	first := sp.ID()
	for i := range 3 {
		if _, err := sp.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Ack("s", 1); err != nil {
		t.Fatal(err)
	}
	_ = sp.Close()
	copied := t.TempDir()
	if err := os.CopyFS(copied, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}

	// A run that appends nothing, then one that appends a record.
	sp = openSpool(t, dir, 0)
	empty := sp.ID()
	_ = sp.Close()
	sp = openSpool(t, dir, 0)
	second := sp.ID()
	if first == empty || empty == second || first == second {
		t.Fatalf("runs %q, %q and %q share an identity", first, empty, second)
	}
	if _, err := sp.Append(rec(3)); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{1: first, 2: first, 3: first, 4: second}
	if got := sources(sp); !maps.Equal(got, want) {
		t.Errorf("sources %v, want %v", got, want)
	}
	_ = sp.Close()

	// Every record handled: the segments go, the numbers go on.
	sp = openSpool(t, dir, 0)
	if err := sp.Ack("s", 4); err != nil {
		t.Fatal(err)
	}
	_ = sp.Close()
	for range 2 {
		sp = openSpool(t, dir, 0)
		_ = sp.Close()
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*.spool")); len(names) != 1 {
		t.Errorf("segments %v, want only the one started by the last reopen", names)
	}
	sp = openSpool(t, dir, 0)
	if seq, err := sp.Append(rec(4)); err != nil || seq != 5 {
		t.Errorf("Append after the segments were deleted = %d, %v; want 5", seq, err)
	}
	if got := sources(sp); !maps.Equal(got, map[uint64]string{5: sp.ID()}) {
		t.Errorf("sources %v, want only record 5, of %q", got, sp.ID())
	}

	// The copy numbers as the original did, under another identity.
	cp := openSpool(t, copied, 0)
	if seq, err := cp.Append(rec(5)); err != nil || seq != 4 {
		t.Fatalf("Append to the copy = %d, %v; want 4", seq, err)
	}
	if cp.source(4) == second || cp.source(4) == first {
		t.Errorf("the copy's record 4 has source %q, as a run of the original", cp.source(4))
	}
	if cp.source(1) != first {
		t.Errorf("the copy's record 1 has source %q, want %q", cp.source(1), first)
	}
}

// TestSpoolOfAnEarlierVersion: records spooled before runs were listed
// replay without a source, and the records after them have one.
func TestSpoolOfAnEarlierVersion(t *testing.T) {
	dir := t.TempDir()
	sp := openSpool(t, dir, 0)
	if _, err := sp.Append(rec(0)); err != nil {
		t.Fatal(err)
	}
	_ = sp.Close()
	if err := os.Remove(filepath.Join(dir, spoolRunsFile)); err != nil {
		t.Fatal(err)
	}
	sp = openSpool(t, dir, 0)
	if _, err := sp.Append(rec(1)); err != nil {
		t.Fatal(err)
	}
	if got := sp.source(1); got != "" {
		t.Errorf("record of the earlier version has source %q", got)
	}
	if got := sp.source(2); got != sp.ID() {
		t.Errorf("record 2 has source %q, want %q", got, sp.ID())
	}
}
