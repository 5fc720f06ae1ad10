// Package sse reads and writes Server-Sent Events (text/event-stream) as
// used by OpenAI-compatible streaming APIs.
//
// Reader splits an upstream stream into events following the HTML
// specification's parsing rules (LF, CRLF and CR line endings, a leading byte
// order mark, comments, fields without a colon) while keeping the exact bytes
// of each event, so that a proxy can inspect events and forward them
// verbatim. It reuses its buffers and does not allocate per event.
package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxEventBytes is the event size limit that NewReader uses when given
// a non-positive limit.
const DefaultMaxEventBytes = 4 << 20

const (
	initialBufferSize = 1 << 10
	// maxRetainedBuffer is the largest buffer that Reset keeps, so that
	// pooled readers do not pin the memory of one huge event.
	maxRetainedBuffer = 64 << 10
	// maxEmptyReads is how many reads in a row may return no data and no
	// error before Next gives up with io.ErrNoProgress.
	maxEmptyReads = 100
)

var (
	// ErrTruncated is returned by Next when the stream ends in the middle
	// of an event. It wraps io.ErrUnexpectedEOF.
	ErrTruncated = fmt.Errorf("sse: stream ended in the middle of an event: %w", io.ErrUnexpectedEOF)
	// ErrEventTooLarge is returned by Next when an event is longer than the
	// reader's limit.
	ErrEventTooLarge = errors.New("sse: event exceeds the size limit")

	errNegativeRead = errors.New("sse: reader returned an invalid count")
)

var bom = []byte("\uFEFF")

// Event is one SSE event: the lines up to and including a blank line.
//
// Its slices alias the Reader's buffers and are valid until the next call to
// Next or Reset.
type Event struct {
	// Raw holds the exact bytes of the event, including the blank line
	// that ends it, suitable to forward verbatim. Concatenating the Raw of
	// all events returned by a Reader, including a truncated one, gives the
	// stream without its byte order mark.
	Raw []byte
	// Data is the concatenation of the values of the event's data fields,
	// joined by "\n". It is nil when the event has no data field.
	Data []byte
	// Name is the value of the event's last event field, or nil.
	Name []byte
	// ID is the value of the event's last id field that holds no NUL byte,
	// or nil.
	ID []byte
	// Comment reports whether the event consists only of comment lines
	// (lines starting with ":").
	Comment bool
}

// Source yields the events of one stream; Next returns io.EOF at its
// clean end. A Reader is one; a provider's translator wraps one to turn
// another schema's events into OpenAI's.
type Source interface {
	Next() (Event, error)
}

var _ Source = (*Reader)(nil)

// Reader reads events from an SSE stream. It is not safe for concurrent
// use.
type Reader struct {
	rd  io.Reader
	max int
	buf []byte

	// Offsets into buf: the current event starts at start, the next line
	// to parse at pos, buffered data ends at end, and no line ending
	// exists in buf[pos:scan].
	start, pos, end, scan int

	eof     bool  // rd returned io.EOF
	err     error // returned by every later call to Next
	bomDone bool  // the start of the stream was checked for a BOM
	// afterCR is set when a line ended with CR as the last buffered byte:
	// a LF that follows belongs to that line ending.
	afterCR bool

	ev   eventState
	data []byte // joined data of events with several data lines
}

// eventState describes the lines of the current event parsed so far, with
// offsets relative to the start of the event.
type eventState struct {
	lines     int // non-blank lines
	comment   bool
	field     bool
	dataLines int
	dataOff   int
	dataLen   int
	hasName   bool
	nameOff   int
	nameLen   int
	hasID     bool
	idOff     int
	idLen     int
}

// NewReader returns a Reader that reads events from r, refusing any event
// longer than maxEventBytes with ErrEventTooLarge; a non-positive
// maxEventBytes means DefaultMaxEventBytes. The reader's buffer grows as
// needed up to maxEventBytes.
func NewReader(r io.Reader, maxEventBytes int) *Reader {
	if maxEventBytes <= 0 {
		maxEventBytes = DefaultMaxEventBytes
	}
	return &Reader{rd: r, max: maxEventBytes}
}

// Reset makes the reader read a new stream from rd, keeping its size limit
// and its buffers unless they grew large, so that readers can be pooled. A
// zero Reader made ready by Reset uses DefaultMaxEventBytes.
func (r *Reader) Reset(rd io.Reader) {
	buf, data := r.buf, r.data
	if cap(buf) > maxRetainedBuffer {
		buf = nil
	}
	if cap(data) > maxRetainedBuffer {
		data = nil
	}
	limit := r.max
	if limit <= 0 {
		limit = DefaultMaxEventBytes
	}
	*r = Reader{rd: rd, max: limit, buf: buf, data: data[:0]}
}

// Next returns the next event. At the end of the stream it returns io.EOF
// when the stream ended after a complete event, and ErrTruncated with the
// partial event when it ended in the middle of one; the partial event's
// fields are parsed from all its lines, including an unterminated last line.
//
// An event longer than the limit yields ErrEventTooLarge without being
// buffered whole; errors from the underlying reader are wrapped. After any
// error, Next returns the same error again.
//
// A blank line with nothing before it is returned as an event of its own,
// with only Raw set. When a CR line ending was the last byte available and
// the next event begins with a LF, that LF is part of the next event's Raw.
func (r *Reader) Next() (Event, error) {
	if r.err != nil {
		return Event{}, r.err
	}
	r.start = r.pos
	r.scan = r.pos
	r.ev = eventState{}
	for {
		if !r.bomDone {
			avail := r.buf[r.pos:r.end]
			if len(avail) < len(bom) && !r.eof && bytes.HasPrefix(bom, avail) {
				if err := r.fill(); err != nil {
					return Event{}, r.fail(err)
				}
				continue
			}
			if bytes.HasPrefix(avail, bom) {
				r.pos += len(bom)
				r.start, r.scan = r.pos, r.pos
			}
			r.bomDone = true
		}
		if r.afterCR {
			if r.pos == r.end && !r.eof {
				if err := r.fill(); err != nil {
					return Event{}, r.fail(err)
				}
				continue
			}
			if r.pos < r.end && r.buf[r.pos] == '\n' {
				r.pos++
				r.scan = r.pos
			}
			r.afterCR = false
		}
		i := indexLineEnd(r.buf[r.scan:r.end])
		if i < 0 {
			if r.eof {
				return r.finish()
			}
			r.scan = r.end
			if err := r.fill(); err != nil {
				return Event{}, r.fail(err)
			}
			continue
		}
		lineEnd := r.scan + i
		next := lineEnd + 1
		if r.buf[lineEnd] == '\r' {
			if next < r.end {
				if r.buf[next] == '\n' {
					next++
				}
			} else if !r.eof {
				r.afterCR = true
			}
		}
		lineStart := r.pos
		r.pos, r.scan = next, next
		if lineStart == lineEnd {
			if r.pos-r.start > r.max {
				return Event{}, r.fail(ErrEventTooLarge)
			}
			return r.event(), nil
		}
		r.parseLine(lineStart, lineEnd)
	}
}

// Buffered reports whether the next call to Next returns without reading
// from the underlying reader: an error or the end of the stream is due, or
// a whole event (up to its blank line) is in the buffer. A writer relaying
// events can leave its output unflushed while Buffered is true, and still
// flush each event as soon as no later one has arrived.
func (r *Reader) Buffered() bool {
	return r.err != nil || r.eof || hasBlankLine(r.buf[r.pos:r.end])
}

// Buffered reports whether src's next event is ready without reading
// more: src, or the translator wrapping it, says so with a Buffered method.
// A source that cannot tell is never buffered.
func Buffered(src Source) bool {
	b, ok := src.(interface{ Buffered() bool })
	return ok && b.Buffered()
}

// hasBlankLine reports whether b holds two line endings in a row (LF, CR
// or CRLF each), which end an event.
func hasBlankLine(b []byte) bool {
	for {
		i := indexLineEnd(b)
		if i < 0 {
			return false
		}
		next := i + 1
		if b[i] == '\r' && next < len(b) && b[next] == '\n' {
			next++
		}
		if next < len(b) && (b[next] == '\n' || b[next] == '\r') {
			return true
		}
		b = b[next:]
	}
}

// fail records err as sticky and returns it.
func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

// finish handles the end of the stream when no further line ending is
// buffered.
func (r *Reader) finish() (Event, error) {
	if r.pos < r.end {
		r.parseLine(r.pos, r.end)
		r.pos, r.scan = r.end, r.end
	}
	if r.pos-r.start > r.max {
		return Event{}, r.fail(ErrEventTooLarge)
	}
	r.err = io.EOF
	if r.start == r.pos {
		return Event{}, io.EOF
	}
	ev := r.event()
	if r.ev.lines == 0 {
		// Only the LF of a CRLF whose CR ended the previous event.
		return ev, nil
	}
	return ev, ErrTruncated
}

// fill reads more data into the buffer, making room first.
func (r *Reader) fill() error {
	limit := r.max
	if !r.bomDone {
		// A BOM is not part of any event; room for it keeps tiny limits
		// from failing on a stream that starts with one.
		limit = max(limit, len(bom))
	}
	if r.end-r.start >= limit {
		return ErrEventTooLarge
	}
	if free := len(r.buf) - r.end; r.start > 0 && free < len(r.buf)/2 {
		n := copy(r.buf, r.buf[r.start:r.end])
		shift := r.start
		r.start, r.pos, r.end, r.scan = 0, r.pos-shift, n, r.scan-shift
	}
	if r.end == len(r.buf) {
		size := min(max(2*len(r.buf), initialBufferSize), limit)
		buf := make([]byte, size)
		n := copy(buf, r.buf[r.start:r.end])
		shift := r.start
		r.buf = buf
		r.start, r.pos, r.end, r.scan = 0, r.pos-shift, n, r.scan-shift
	}
	// Never read more than the current event may still grow by.
	dst := r.buf[r.end:min(len(r.buf), r.start+limit)]
	for range maxEmptyReads {
		n, err := r.rd.Read(dst)
		if n < 0 || n > len(dst) {
			return errNegativeRead
		}
		r.end += n
		if err == io.EOF {
			r.eof = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("sse: reading stream: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// indexLineEnd returns the index of the first CR or LF in b, or -1.
func indexLineEnd(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	if lf < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if cr := bytes.IndexByte(b[:lf], '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// parseLine records the non-blank line buf[ls:le] in the event state.
func (r *Reader) parseLine(ls, le int) {
	ev := &r.ev
	ev.lines++
	line := r.buf[ls:le]
	if line[0] == ':' {
		ev.comment = true
		return
	}
	ev.field = true
	name, vs := line, le
	if colon := bytes.IndexByte(line, ':'); colon >= 0 {
		name, vs = line[:colon], ls+colon+1
		if vs < le && r.buf[vs] == ' ' {
			vs++
		}
	}
	off, n := vs-r.start, le-vs
	switch string(name) {
	case "data":
		ev.dataLines++
		switch ev.dataLines {
		case 1:
			ev.dataOff, ev.dataLen = off, n
		case 2:
			first := r.buf[r.start+ev.dataOff : r.start+ev.dataOff+ev.dataLen]
			r.data = append(append(r.data[:0], first...), '\n')
			r.data = append(r.data, r.buf[vs:le]...)
		default:
			r.data = append(append(r.data, '\n'), r.buf[vs:le]...)
		}
	case "event":
		ev.hasName, ev.nameOff, ev.nameLen = true, off, n
	case "id":
		if bytes.IndexByte(r.buf[vs:le], 0) < 0 {
			ev.hasID, ev.idOff, ev.idLen = true, off, n
		}
	}
}

// event returns the event made of buf[start:pos].
func (r *Reader) event() Event {
	ev := &r.ev
	e := Event{
		Raw:     r.buf[r.start:r.pos:r.pos],
		Comment: ev.comment && !ev.field,
	}
	switch {
	case ev.dataLines == 1:
		e.Data = r.slice(ev.dataOff, ev.dataLen)
	case ev.dataLines > 1:
		e.Data = r.data[:len(r.data):len(r.data)]
	}
	if ev.hasName {
		e.Name = r.slice(ev.nameOff, ev.nameLen)
	}
	if ev.hasID {
		e.ID = r.slice(ev.idOff, ev.idLen)
	}
	return e
}

func (r *Reader) slice(off, n int) []byte {
	i := r.start + off
	return r.buf[i : i+n : i+n]
}

// IsDone reports whether data is the "[DONE]" sentinel that ends OpenAI
// streams.
func IsDone(data []byte) bool {
	return string(data) == "[DONE]"
}

// AppendEvent appends to dst an event carrying data: one "data: " line per
// line of data, then a blank line. CR and CRLF in data count as line breaks,
// since SSE cannot carry them.
func AppendEvent(dst, data []byte) []byte {
	for {
		i := indexLineEnd(data)
		dst = append(dst, "data: "...)
		if i < 0 {
			dst = append(dst, data...)
			return append(dst, "\n\n"...)
		}
		dst = append(append(dst, data[:i]...), '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// AppendComment appends to dst a comment event, ": text" and a blank line,
// for example a keep-alive. Line breaks in text start new comment lines.
func AppendComment(dst []byte, text string) []byte {
	for {
		i := indexLineEndString(text)
		dst = append(dst, ':')
		line := text
		if i >= 0 {
			line = text[:i]
		}
		if line != "" {
			dst = append(append(dst, ' '), line...)
		}
		dst = append(dst, '\n')
		if i < 0 {
			return append(dst, '\n')
		}
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
}

func indexLineEndString(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' {
			return i
		}
	}
	return -1
}
