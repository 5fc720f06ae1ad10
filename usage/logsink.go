package usage

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

var _ Sink = (*logSink)(nil)

type logSink struct {
	l *zap.Logger
}

// NewLogSink returns the sink that writes each record as one info line of
// l, with message "usage" and the record's fields at the top level. It is a
// sidecar's default sink: the log pipeline collects the lines. l must enable
// the info level, or the records are lost; a dedicated logger is best, since
// a logger whose time key is "ts" writes that key twice (the log time, then
// the record's), and most JSON readers keep the last.
func NewLogSink(l *zap.Logger) Sink {
	if l == nil {
		l = zap.NewNop()
	}
	if !l.Core().Enabled(zap.InfoLevel) {
		l.Warn("usage log sink: the logger does not enable info, usage records will not be written")
	}
	return &logSink{l: l}
}

// NewJSONLogSink returns a log sink writing JSON lines to w (os.Stdout for
// a sidecar) through a logger of its own: level, msg "usage" and the
// record's fields, with no log time of its own, so that "ts" is the
// record's alone.
func NewJSONLogSink(w io.Writer) Sink {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = ""
	ec.CallerKey = ""
	ec.StacktraceKey = ""
	core := zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel)
	return &logSink{l: zap.New(core)}
}

// Name returns "log".
func (s *logSink) Name() string { return "log" }

// Write logs every record of batch; it never fails.
func (s *logSink) Write(batch []*Record) error {
	for _, r := range batch {
		s.l.Info("usage", zap.Inline(r))
	}
	return nil
}

// Close syncs the logger, ignoring the errors of terminals and pipes that
// cannot be synced.
func (s *logSink) Close() error {
	err := s.l.Sync()
	if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTTY) {
		return nil
	}
	return fmt.Errorf("sync usage log: %w", err)
}
