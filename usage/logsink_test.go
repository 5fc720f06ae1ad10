package usage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// syncBuffer is a goroutine-safe log destination.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Sync() error { return nil }

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// jsonLogger logs JSON lines without a time, so that the record's ts is the
// only one.
func jsonLogger(w zapcore.WriteSyncer, lvl zapcore.Level) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = ""
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), w, lvl))
}

func TestLogSinkWritesRecordFieldsAsJSON(t *testing.T) {
	full := rec(7)
	full.Workflow = "quote-reply"
	full.TTFTMS = 3.25
	full.MigrationID = "mig-2"
	full.Error = "upstream_timeout"
	full.Stream, full.Failover, full.Shadow, full.Partial = true, true, true, true
	full.CachedTokens = 64
	full.SavedTokens = 120
	full.Attempts = append(full.Attempts, Attempt{Provider: "azure", KeySource: "client", Status: 503, Error: "overloaded", LatencyMS: 30.5},
		Attempt{Provider: "openai", KeySource: "client", Status: 200, LatencyMS: 9, PromptTokens: 40, CompletionTokens: 12, TokensEstimated: true})
	bare := &Record{RequestID: "req-bare"} // nil cost, nil attempts, omitted fields

	tests := []struct {
		name string
		r    *Record
	}{
		{"every field", full},
		{"nil cost and attempts", bare},
		{"empty attempts", &Record{RequestID: "req-empty", Attempts: []Attempt{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf syncBuffer
			s := NewLogSink(jsonLogger(&buf, zapcore.InfoLevel))
			if err := s.Write([]*Record{tt.r}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(buf.String()), &got); err != nil {
				t.Fatalf("log line is not JSON: %v\n%s", err, buf.String())
			}
			if got["msg"] != "usage" || got["level"] != "info" {
				t.Errorf("msg %v level %v, want usage info", got["msg"], got["level"])
			}
			delete(got, "msg")
			delete(got, "level")

			b, err := json.Marshal(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("log fields differ from the JSON form\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestLogSinkOneLinePerRecord(t *testing.T) {
	var buf syncBuffer
	s := NewLogSink(jsonLogger(&buf, zapcore.InfoLevel))
	rs := recs(5)
	if err := s.Write(rs); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewBufferString(buf.String()))
	var got []string
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if !r.TS.Equal(rs[len(got)].TS) {
			t.Errorf("ts %v, want %v", r.TS, rs[len(got)].TS)
		}
		got = append(got, r.RequestID)
	}
	if !reflect.DeepEqual(got, ids(rs)) {
		t.Errorf("lines %v, want %v", got, ids(rs))
	}
}

func TestJSONLogSinkHasOneTS(t *testing.T) {
	var buf syncBuffer
	s := NewJSONLogSink(&buf)
	r := rec(3)
	if err := s.Write([]*Record{r}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	if n := strings.Count(line, `"ts":`); n != 1 {
		t.Errorf("%d ts keys in %s, want 1", n, line)
	}
	var got Record
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatal(err)
	}
	if got.RequestID != r.RequestID || !got.TS.Equal(r.TS) {
		t.Errorf("decoded %s at %v, want %s at %v", got.RequestID, got.TS, r.RequestID, r.TS)
	}
}

func TestLogSinkWarnsWhenInfoIsOff(t *testing.T) {
	var buf syncBuffer
	s := NewLogSink(jsonLogger(&buf, zapcore.WarnLevel))
	if !bytes.Contains([]byte(buf.String()), []byte("does not enable info")) {
		t.Errorf("no warning that records will be lost; log: %s", buf.String())
	}
	if s.Name() != "log" {
		t.Errorf("Name() = %q", s.Name())
	}
}

func TestMarshalLogObjectNilRecord(t *testing.T) {
	enc := zapcore.NewMapObjectEncoder()
	if err := (*Record)(nil).MarshalLogObject(enc); err != nil {
		t.Fatal(err)
	}
	if len(enc.Fields) != 0 {
		t.Errorf("fields %v, want none", enc.Fields)
	}
}
