package app

import (
	"context"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/usage"
)

// buildUsage makes the usage emitter with the configured sinks.
func (a *App) buildUsage() error {
	u := a.cfg.Usage
	var sinks []usage.Sink
	for i, sc := range u.Sinks {
		s, err := a.buildSink(sc)
		if err != nil {
			for _, done := range sinks {
				_ = done.Close()
			}
			return fmt.Errorf("usage.sinks[%d] (%s): %w", i, sc.Type, err)
		}
		sinks = append(sinks, s)
	}
	// Daily aggregates in the store, for the usage report and tier budgets.
	sinks = append(sinks, usage.NewStoreSink(a.store))
	if u.SpoolDir != "" {
		sp, err := usage.OpenSpool(u.SpoolDir, 0)
		if err != nil {
			for _, done := range sinks {
				_ = done.Close()
			}
			return fmt.Errorf("usage.spool_dir: %w", err)
		}
		a.spool = sp
	}
	a.usage = usage.NewEmitter(usage.Options{QueueSize: u.QueueSize, BatchSize: u.BatchSize,
		FlushInterval: u.FlushInterval, Observer: a.metrics, Log: a.log, Spool: a.spool}, sinks...)
	return nil
}

func (a *App) buildSink(sc config.UsageSink) (usage.Sink, error) {
	switch sc.Type {
	case config.SinkStdout:
		// One JSON object per line whose ts is the record's own.
		return usage.NewJSONLogSink(os.Stdout), nil
	case config.SinkFile:
		return usage.NewFileSink(sc.Path, int64(sc.MaxBytes), sc.Keep)
	case config.SinkWebhook:
		headers, err := a.resolveHeaders(sc.Headers)
		if err != nil {
			return nil, err
		}
		return usage.NewWebhookSink(usage.WebhookOptions{URL: sc.URL, Headers: headers, SpillDir: sc.SpillDir, Log: a.log})
	case config.SinkRedis:
		pw, err := resolveOptional(sc.Password, a.resolve)
		if err != nil {
			return nil, fmt.Errorf("password: %w", err)
		}
		spw, err := resolveOptional(sc.Sentinel.Password, a.resolve)
		if err != nil {
			return nil, fmt.Errorf("sentinel.password: %w", err)
		}
		o := usage.RedisOptions{Addr: sc.Addr, Addrs: sc.Addrs, SentinelMaster: sc.Sentinel.Master,
			SentinelAddrs: sc.Sentinel.Addrs, SentinelPassword: spw, Password: pw,
			Stream: sc.Stream, MaxLen: int64(sc.MaxLen)}
		redis.SetLogger(redisLogger{a.log})
		return usage.NewRedisSink(o)
	}
	return nil, fmt.Errorf("unknown sink type %q", sc.Type)
}

// redisLogger sends go-redis's own messages (dial failures) to veil's log
// instead of plain text on stderr.
type redisLogger struct{ log *zap.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn("redis", zap.String("detail", fmt.Sprintf(format, v...)))
}

// tapEmitter hands every record to the app's emitter and to a tap.
type tapEmitter struct {
	next *usage.Emitter
	tap  func(*usage.Record)
}

func (t tapEmitter) Emit(r *usage.Record) {
	t.tap(r)
	t.next.Emit(r)
}
