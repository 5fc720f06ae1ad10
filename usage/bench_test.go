package usage

import (
	"testing"

	"go.uber.org/zap/zapcore"
)

// discardSink counts and forgets.
type discardSink struct{}

func (discardSink) Name() string                { return "discard" }
func (discardSink) Write(batch []*Record) error { return nil }
func (discardSink) Close() error                { return nil }

func BenchmarkEmit(b *testing.B) {
	e := NewEmitter(Options{}, discardSink{})
	defer closeEmitter(b, e)
	r := rec(1)
	b.ReportAllocs()
	for b.Loop() {
		e.Emit(r)
	}
}

func BenchmarkEmitParallel(b *testing.B) {
	e := NewEmitter(Options{}, discardSink{})
	defer closeEmitter(b, e)
	r := rec(1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e.Emit(r)
		}
	})
}

func TestEmitDoesNotAllocate(t *testing.T) {
	e := NewEmitter(Options{QueueSize: 10000}, discardSink{})
	defer closeEmitter(t, e)
	r := rec(1)
	if allocs := testing.AllocsPerRun(1000, func() { e.Emit(r) }); allocs != 0 {
		t.Errorf("Emit: %v allocations, want 0", allocs)
	}
}

func BenchmarkCost(b *testing.B) {
	pt := testPrices(b)
	b.ReportAllocs()
	for b.Loop() {
		pt.Cost("openai", "gpt-4o", jun, 1000, 100, 200)
	}
}

func BenchmarkMarshalLogObject(b *testing.B) {
	r := rec(1)
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{})
	b.ReportAllocs()
	for b.Loop() {
		buf, err := enc.EncodeEntry(zapcore.Entry{Message: "usage"}, []zapcore.Field{{Key: "", Type: zapcore.InlineMarshalerType, Interface: r}})
		if err != nil {
			b.Fatal(err)
		}
		buf.Free()
	}
}

// BenchmarkEmitSpool measures what the write-ahead spool adds to Emit:
// the record's JSON and one write to the spool file, side by side with
// the spool off. Each record is a fresh copy, as on the request path.
func BenchmarkEmitSpool(b *testing.B) {
	tmpl := rec(1)
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			o := Options{QueueSize: 1 << 20}
			if on {
				sp, err := OpenSpool(b.TempDir(), 0)
				if err != nil {
					b.Fatal(err)
				}
				defer sp.Close()
				o.Spool = sp
			}
			e := NewEmitter(o, discardSink{})
			defer closeEmitter(b, e)
			b.ReportAllocs()
			for b.Loop() {
				r := *tmpl
				e.Emit(&r)
			}
		})
	}
}
