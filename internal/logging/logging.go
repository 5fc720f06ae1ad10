// Package logging builds veil's zap loggers: JSON lines for a sidecar's log
// pipeline by default, a readable console form for development.
package logging

import (
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger at level ("debug", "info", "warn", "error") writing
// format ("json" or "console") to w; w nil means stderr.
func New(level, format string, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if level == "" {
		level = "info"
	}
	if err := lvl.Set(level); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	if w == nil {
		w = os.Stderr
	}
	var enc zapcore.Encoder
	switch format {
	case "", "json":
		ec := zap.NewProductionEncoderConfig()
		ec.TimeKey = "ts"
		ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		ec.EncodeDuration = zapcore.MillisDurationEncoder
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		ec.EncodeDuration = zapcore.StringDurationEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("log format %q: want json or console", format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}

// Audit returns the audit logger: JSON (or console) lines marked
// "log":"audit", each carrying its chain hash (see ChainSeed), written to
// output ("stderr", "stdout" or an absolute file path, appended to), apart
// from the operational log so that it can be collected and kept on its
// own. A file's chain goes on from its last line; stderr and stdout start
// a new chain at every start. The returned func closes a file output.
func Audit(output, format string) (*zap.Logger, func(), error) {
	var w io.Writer
	closeFn := func() {}
	switch output {
	case "", "stderr":
		w = newChainWriter(os.Stderr, ChainSeed)
	case "stdout":
		w = newChainWriter(os.Stdout, ChainSeed)
	default:
		cw, f, err := openChained(output)
		if err != nil {
			return nil, nil, fmt.Errorf("audit log: %w", err)
		}
		w, closeFn = cw, func() { _ = f.Close() }
	}
	l, err := New("info", format, w)
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return l.With(zap.String("log", "audit")), closeFn, nil
}
