package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// ev is an expected event; nil slices must be nil in the result too.
type ev struct {
	raw, data, name, id  string
	noData, noName, noID bool
	comment              bool
}

func (e ev) String() string {
	return fmt.Sprintf("{raw %q data %q name %q id %q comment %v}", e.raw, e.data, e.name, e.id, e.comment)
}

func data(raw, d string) ev { return ev{raw: raw, data: d, noName: true, noID: true} }

func toEv(e Event) ev {
	return ev{
		raw: string(e.Raw), data: string(e.Data), name: string(e.Name), id: string(e.ID),
		noData: e.Data == nil, noName: e.Name == nil, noID: e.ID == nil, comment: e.Comment,
	}
}

// readAll reads all events from r until an error.
func readAll(r *Reader) ([]ev, error) {
	var evs []ev
	for {
		e, err := r.Next()
		if err == nil || errors.Is(err, ErrTruncated) || (err == io.EOF && e.Raw != nil) {
			evs = append(evs, toEv(e))
		}
		if err != nil {
			return evs, err
		}
	}
}

func TestReader(t *testing.T) {
	chunk := `{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}`
	tests := []struct {
		name    string
		in      string
		want    []ev
		wantErr error
	}{
		{"empty", "", nil, io.EOF},
		{"openai", "data: " + chunk + "\n\ndata: [DONE]\n\n", []ev{
			data("data: "+chunk+"\n\n", chunk), data("data: [DONE]\n\n", "[DONE]"),
		}, io.EOF},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []ev{
			data("data: a\r\n\r\n", "a"), data("data: b\r\n\r\n", "b"),
		}, io.EOF},
		{"cr", "data: a\r\rdata: b\r\r", []ev{data("data: a\r\r", "a"), data("data: b\r\r", "b")}, io.EOF},
		{"mixed endings", "data: a\rdata: b\r\ndata: c\n\r\n", []ev{data("data: a\rdata: b\r\ndata: c\n\r\n", "a\nb\nc")}, io.EOF},
		{"bom", "\uFEFFdata: a\n\n", []ev{data("data: a\n\n", "a")}, io.EOF},
		{"bom only", "\uFEFF", nil, io.EOF},
		{"second bom is data", "\uFEFF\uFEFFdata: a\n\n", []ev{{raw: "\uFEFFdata: a\n\n", noData: true, noName: true, noID: true}}, io.EOF},
		{"multi-line data", "data: a\ndata:b\ndata:  c\ndata\n\n", []ev{data("data: a\ndata:b\ndata:  c\ndata\n\n", "a\nb\n c\n")}, io.EOF},
		{"data without colon", "data\n\n", []ev{data("data\n\n", "")}, io.EOF},
		{"empty data value", "data:\n\n", []ev{data("data:\n\n", "")}, io.EOF},
		{"event and id", "event: response.output_text.delta\nid: 7\ndata: {}\n\n", []ev{
			{raw: "event: response.output_text.delta\nid: 7\ndata: {}\n\n", data: "{}", name: "response.output_text.delta", id: "7"},
		}, io.EOF},
		{"last event and id win", "event: a\nevent: b\nid: 1\nid: 2\n\n", []ev{
			{raw: "event: a\nevent: b\nid: 1\nid: 2\n\n", noData: true, name: "b", id: "2"},
		}, io.EOF},
		{"id with NUL ignored", "id: 1\nid: a\x00b\n\n", []ev{{raw: "id: 1\nid: a\x00b\n\n", noData: true, noName: true, id: "1"}}, io.EOF},
		{"empty event field", "event\n\n", []ev{{raw: "event\n\n", noData: true, noID: true}}, io.EOF},
		{"comment", ": keep-alive\n\n", []ev{{raw: ": keep-alive\n\n", noData: true, noName: true, noID: true, comment: true}}, io.EOF},
		{"comment and data", ": note\ndata: x\n\n", []ev{data(": note\ndata: x\n\n", "x")}, io.EOF},
		{"unknown fields", "retry: 10\nfoo: bar\nDATA: x\n\n", []ev{{raw: "retry: 10\nfoo: bar\nDATA: x\n\n", noData: true, noName: true, noID: true}}, io.EOF},
		{"extra blank lines", "\ndata: a\n\n\n", []ev{
			{raw: "\n", noData: true, noName: true, noID: true}, data("data: a\n\n", "a"),
			{raw: "\n", noData: true, noName: true, noID: true},
		}, io.EOF},
		{"truncated after line", "data: a\n\ndata: b\n", []ev{data("data: a\n\n", "a"), data("data: b\n", "b")}, ErrTruncated},
		{"truncated in line", "data: a\n\ndata: [DO", []ev{data("data: a\n\n", "a"), data("data: [DO", "[DO")}, ErrTruncated},
		{"truncated cr", "data: a\r", []ev{data("data: a\r", "a")}, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(NewReader(strings.NewReader(tt.in), 0))
			if err != tt.wantErr {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events %v, want %v", len(got), got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("event %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
			// Any way of splitting the input gives the same events.
			for name, rd := range readers([]byte(tt.in)) {
				checkStream(t, name, rd(), []byte(tt.in), 0)
			}
		})
	}
}

// readers returns ways to deliver in in pieces.
func readers(in []byte) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(in) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(in)) },
		"halves":   func() io.Reader { return iotest.HalfReader(bytes.NewReader(in)) },
		"chunks3":  func() io.Reader { return &chunkReader{b: in, sizes: []byte{3, 1, 2}} },
	}
}

// chunkReader returns b in pieces of the given sizes, cycling, with empty
// reads when a size is 0.
type chunkReader struct {
	b     []byte
	sizes []byte
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)])
		c.i++
	}
	n = min(n, len(p), len(c.b))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

// checkStream reads rd to the end and checks the events against a
// reference parser and the concatenation property.
func checkStream(t *testing.T, name string, rd io.Reader, in []byte, limit int) {
	t.Helper()
	r := NewReader(rd, limit)
	if limit <= 0 {
		limit = DefaultMaxEventBytes
	}
	var raw []byte
	var got []ev
	var err error
	for {
		var e Event
		e, err = r.Next()
		if len(e.Raw) > limit {
			t.Fatalf("%s: event of %d bytes exceeds the limit %d", name, len(e.Raw), limit)
		}
		if cap(r.buf) > max(limit, len(bom)) {
			t.Fatalf("%s: buffer of %d bytes exceeds the limit %d", name, cap(r.buf), limit)
		}
		raw = append(raw, e.Raw...)
		if e.Raw != nil && !isEmpty(e) {
			got = append(got, toEv(e))
		}
		if err != nil {
			break
		}
	}
	body := bytes.TrimPrefix(in, bom)
	switch {
	case errors.Is(err, ErrEventTooLarge):
		if len(body)-len(raw) < limit {
			t.Fatalf("%s: ErrEventTooLarge with only %d bytes left, limit %d", name, len(body)-len(raw), limit)
		}
		if !bytes.HasPrefix(body, raw) {
			t.Fatalf("%s: events are not a prefix of the input", name)
		}
		return
	case err == io.EOF, errors.Is(err, ErrTruncated):
	default:
		t.Fatalf("%s: unexpected error %v", name, err)
	}
	if !bytes.Equal(raw, body) {
		t.Fatalf("%s: concatenated Raw %q != input %q", name, raw, body)
	}
	want, truncated := refParse(body)
	if truncated != errors.Is(err, ErrTruncated) {
		t.Fatalf("%s: err = %v, reference truncated = %v", name, err, truncated)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: got events %v, reference %v", name, got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		g.raw, w.raw = "", ""
		if g != w {
			t.Fatalf("%s: event %d = %v, reference %v", name, i, got[i], want[i])
		}
	}
	if e, err := r.Next(); err == nil || e.Raw != nil {
		t.Fatalf("%s: Next after the end = %v, %v", name, toEv(e), err)
	}
}

// isEmpty reports whether e has no lines, only line endings.
func isEmpty(e Event) bool {
	return e.Data == nil && e.Name == nil && e.ID == nil && !e.Comment &&
		len(bytes.Trim(e.Raw, "\r\n")) == 0
}

// refParse is a straightforward reading of the HTML specification's event
// stream parsing, keeping events without data and comment-only events. It
// omits empty events.
func refParse(in []byte) (evs []ev, truncated bool) {
	var cur ev
	var data []string
	lines, fields, comments := 0, 0, 0
	reset := func() {
		cur, data, lines, fields, comments = ev{noName: true, noID: true}, nil, 0, 0, 0
	}
	emit := func() {
		if lines == 0 {
			return
		}
		cur.noData = data == nil
		cur.data = strings.Join(data, "\n")
		cur.comment = comments > 0 && fields == 0
		evs = append(evs, cur)
	}
	reset()
	for len(in) > 0 {
		i := bytes.IndexAny(in, "\r\n")
		var line string
		if i < 0 {
			line, in = string(in), nil
		} else {
			line = string(in[:i])
			if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
				i++
			}
			in = in[i+1:]
		}
		if line == "" {
			emit()
			reset()
			continue
		}
		lines++
		if line[0] == ':' {
			comments++
			if i < 0 {
				truncated = true
			}
			continue
		}
		fields++
		name, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch name {
		case "data":
			data = append(data, value)
		case "event":
			cur.name, cur.noName = value, false
		case "id":
			if !strings.Contains(value, "\x00") {
				cur.id, cur.noID = value, false
			}
		}
		if i < 0 {
			truncated = true
		}
	}
	if lines > 0 {
		truncated = true
		emit()
	}
	return evs, truncated
}

func TestReaderLimit(t *testing.T) {
	event := "data: 0123456789\n\n" // 18 bytes
	tests := []struct {
		name    string
		in      string
		limit   int
		wantN   int // events read before the error
		wantErr error
	}{
		{"fits exactly", event + event, 18, 2, io.EOF},
		{"one byte over", event, 17, 0, ErrEventTooLarge},
		{"second too large", event + "data: 01234567890\n\n", 18, 1, ErrEventTooLarge},
		{"huge line", event + strings.Repeat("x", 1<<20), 1 << 10, 1, ErrEventTooLarge},
		{"truncated within limit", "data: 01234", 18, 1, ErrTruncated},
		{"truncated over limit", "data: 01234", 4, 0, ErrEventTooLarge},
		{"tiny limit with BOM", "\uFEFF\n\n", 1, 2, io.EOF},
		{"tiny limit without BOM", "a\n\n", 2, 0, ErrEventTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, rd := range readers([]byte(tt.in)) {
				r := NewReader(rd(), tt.limit)
				n := 0
				var err error
				for {
					var e Event
					e, err = r.Next()
					if len(e.Raw) > 0 {
						n++
					}
					if cap(r.buf) > max(tt.limit, len(bom)) {
						t.Fatalf("%s: buffer grew to %d, limit %d", name, cap(r.buf), tt.limit)
					}
					if err != nil {
						break
					}
				}
				if err != tt.wantErr || n != tt.wantN {
					t.Fatalf("%s: %d events then %v, want %d then %v", name, n, err, tt.wantN, tt.wantErr)
				}
				if _, again := r.Next(); again != err && !(err == ErrTruncated && again == io.EOF) {
					t.Fatalf("%s: error not sticky: %v then %v", name, err, again)
				}
				checkStream(t, name, rd(), []byte(tt.in), tt.limit)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReaderErrors(t *testing.T) {
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("connection reset")
		r := NewReader(io.MultiReader(strings.NewReader("data: a\n\ndata: b"), errReader{boom}), 0)
		if e, err := r.Next(); err != nil || string(e.Data) != "a" {
			t.Fatalf("Next = %v, %v", toEv(e), err)
		}
		_, err := r.Next()
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want it to wrap %v", err, boom)
		}
		if _, again := r.Next(); again != err {
			t.Fatalf("error not sticky: %v", again)
		}
	})
	t.Run("no progress", func(t *testing.T) {
		r := NewReader(errReader{nil}, 0)
		if _, err := r.Next(); !errors.Is(err, io.ErrNoProgress) {
			t.Fatalf("err = %v, want io.ErrNoProgress", err)
		}
	})
	t.Run("truncated wraps ErrUnexpectedEOF", func(t *testing.T) {
		if !errors.Is(ErrTruncated, io.ErrUnexpectedEOF) {
			t.Fatal("ErrTruncated does not wrap io.ErrUnexpectedEOF")
		}
	})
}

func TestReaderCRAtBufferEnd(t *testing.T) {
	// With one byte per read, the LF of a CRLF that ends an event arrives
	// after the event was returned: it starts the next event's Raw.
	in := "data: a\r\n\r\ndata: b\r\n\r\n"
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)), 0)
	got, err := readAll(r)
	if err != io.EOF {
		t.Fatal(err)
	}
	want := []ev{data("data: a\r\n\r", "a"), data("\ndata: b\r\n\r", "b"), {raw: "\n", noData: true, noName: true, noID: true}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestReset(t *testing.T) {
	r := NewReader(strings.NewReader("data: a\n\ndata: b"), 64)
	if _, err := readAll(r); err != ErrTruncated {
		t.Fatal(err)
	}
	r.Reset(strings.NewReader("\uFEFFdata: c\n\n"))
	got, err := readAll(r)
	if err != io.EOF || len(got) != 1 || got[0].data != "c" {
		t.Fatalf("after Reset: %v, %v", got, err)
	}
	var zero Reader
	zero.Reset(strings.NewReader("data: d\n\n"))
	if e, err := zero.Next(); err != nil || string(e.Data) != "d" {
		t.Fatalf("zero Reader after Reset: %v, %v", toEv(e), err)
	}
}

// openAIStream returns a stream of n chat completion chunks and [DONE].
func openAIStream(n int) []byte {
	var b []byte
	for i := range n - 1 {
		chunk := fmt.Sprintf(`{"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1700000000,`+
			`"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,`+
			`"delta":{"content":"token%d "},"logprobs":null,"finish_reason":null}]}`, i)
		b = AppendEvent(b, []byte(chunk))
		if i%50 == 49 {
			b = AppendComment(b, "keep-alive")
		}
	}
	return AppendEvent(b, []byte("[DONE]"))
}

func TestReaderAllocs(t *testing.T) {
	stream := openAIStream(200)
	var br bytes.Reader
	r := NewReader(nil, 0)
	read := func() {
		br.Reset(stream)
		r.Reset(&br)
		n, done := 0, false
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			done = IsDone(e.Data)
			n++
		}
		if n != 203 || !done {
			t.Fatalf("read %d events, done %v; want 203 ending with [DONE]", n, done)
		}
	}
	read()
	if allocs := testing.AllocsPerRun(20, read); allocs != 0 {
		t.Fatalf("reading a stream allocates %v times, want 0", allocs)
	}
	// Multi-line data reuses its buffer too.
	multi := bytes.Repeat([]byte("data: a\ndata: b\n\n"), 100)
	if allocs := testing.AllocsPerRun(20, func() {
		br.Reset(multi)
		r.Reset(&br)
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}); allocs != 0 {
		t.Fatalf("reading multi-line events allocates %v times, want 0", allocs)
	}
}

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		data string
		want string
	}{
		{"", "data: \n\n"},
		{`{"a":1}`, "data: {\"a\":1}\n\n"},
		{"[DONE]", "data: [DONE]\n\n"},
		{"a\nb", "data: a\ndata: b\n\n"},
		{"a\r\nb\rc\n", "data: a\ndata: b\ndata: c\ndata: \n\n"},
		{"\n", "data: \ndata: \n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.data, func(t *testing.T) {
			got := AppendEvent([]byte("x"), []byte(tt.data))
			if string(got) != "x"+tt.want {
				t.Fatalf("AppendEvent = %q, want %q", got, "x"+tt.want)
			}
			e, err := NewReader(bytes.NewReader(got[1:]), 0).Next()
			wantData := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(tt.data)
			if err != nil || string(e.Data) != wantData || string(e.Raw) != tt.want {
				t.Fatalf("reading back: %v, %v; want data %q", toEv(e), err, wantData)
			}
		})
	}
	dst := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { _ = AppendEvent(dst, []byte("a\nb")) }); n != 0 {
		t.Fatalf("AppendEvent allocates %v times", n)
	}
}

func TestAppendComment(t *testing.T) {
	tests := []struct {
		text string
		want string
	}{
		{"", ":\n\n"},
		{"keep-alive", ": keep-alive\n\n"},
		{"a\nb", ": a\n: b\n\n"},
		{"a\r\n\nb", ": a\n:\n: b\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got := AppendComment(nil, tt.text)
			if string(got) != tt.want {
				t.Fatalf("AppendComment = %q, want %q", got, tt.want)
			}
			e, err := NewReader(bytes.NewReader(got), 0).Next()
			if err != nil || !e.Comment || string(e.Raw) != tt.want {
				t.Fatalf("reading back: %v, %v", toEv(e), err)
			}
		})
	}
}

func TestIsDone(t *testing.T) {
	tests := []struct {
		data string
		want bool
	}{
		{"[DONE]", true},
		{"[DONE] ", false},
		{" [DONE]", false},
		{"[done]", false},
		{"", false},
		{`{"choices":[]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.data, func(t *testing.T) {
			if got := IsDone([]byte(tt.data)); got != tt.want {
				t.Fatalf("IsDone(%q) = %v", tt.data, got)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	seeds := []string{
		string(openAIStream(5)),
		"data: a\r\n\r\ndata: b\r\n\r\n",
		"data: a\r\rdata: b\r\r\n",
		"\uFEFFdata: x\n\n",
		"\xEF\xBB",
		": ping\n\n: pong\r\n\r\n",
		"event: response.created\nid: 1\ndata: {}\n\nevent: response.completed\ndata: {\"a\":\ndata: 1}\n\n",
		"data\n\ndata:\n\nfoo\n\n\n\n",
		"data: " + strings.Repeat("x", 5000) + "\n\n",
		"data: partial",
		"data: a\n\ndata: b\r",
		"id: a\x00\nretry: 5\n\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), []byte{1, 7, 0, 3}, uint16(0))
		f.Add([]byte(s), []byte{}, uint16(32))
	}
	f.Fuzz(func(t *testing.T, in []byte, sizes []byte, limit uint16) {
		rd := io.Reader(bytes.NewReader(in))
		if len(sizes) > 0 {
			if len(sizes) > 16 {
				sizes = sizes[:16]
			}
			for i := range sizes {
				sizes[i] %= 9 // 0 means an empty read
			}
			sizes = append(sizes, 5) // guarantee progress
			rd = &chunkReader{b: in, sizes: sizes}
		}
		checkStream(t, "fuzz", rd, in, int(limit))
	})
}

func BenchmarkReader(b *testing.B) {
	stream := openAIStream(200)
	var br bytes.Reader
	r := NewReader(nil, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		br.Reset(stream)
		r.Reset(&br)
		for {
			if _, err := r.Next(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	data := []byte(`{"id":"chatcmpl-abc123","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}`)
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendEvent(dst[:0], data)
	}
}

// TestBuffered: the reader says a next event is ready only when a whole
// event, an error or the end is already in its buffer, so that a relay
// that waits for Buffered to turn false before flushing never holds an
// event back while the upstream is silent.
func TestBuffered(t *testing.T) {
	cases := []struct {
		name, in string
		want     bool
	}{
		{"one event then a partial one", "data: a\n\ndata: b", false},
		{"two whole events", "data: a\n\ndata: b\n\n", true},
		{"CRLF endings", "data: a\r\n\r\ndata: b\r\n\r\n", true},
		{"CR endings", "data: a\r\rdata: b\r\r", true},
		{"mixed endings", "data: a\n\ndata: b\r\n\n", true},
		{"a line end split from its blank line", "data: a\n\ndata: b\n", false},
		{"end of stream", "data: a\n\n", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var src io.Reader = strings.NewReader(c.in)
			if c.name != "end of stream" {
				src = &stallingReader{data: []byte(c.in)}
			}
			r := NewReader(src, 0)
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			if c.name == "end of stream" {
				_, _ = r.Next() // reads to the end
			}
			if got := r.Buffered(); got != c.want {
				t.Errorf("Buffered() = %v, want %v", got, c.want)
			}
		})
	}
}

// stallingReader hands out its data in one read, then blocks the test
// with an error if read again (Buffered must not need another read).
type stallingReader struct {
	data []byte
	read bool
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.read {
		return 0, errors.New("read past the data: the upstream would block here")
	}
	s.read = true
	return copy(p, s.data), nil
}
