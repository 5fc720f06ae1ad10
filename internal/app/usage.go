package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/quota"
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
		j, left, err := quota.OpenJournal(filepath.Join(u.SpoolDir, "reservations.journal"))
		if err != nil {
			_ = sp.Close()
			for _, done := range sinks {
				_ = done.Close()
			}
			return fmt.Errorf("usage.spool_dir: %w", err)
		}
		a.journal, a.left = j, left
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

// journalOrNil is the quota journal, or a nil interface without one.
func (a *App) journalOrNil() quota.Journal {
	if a.journal == nil {
		return nil
	}
	return a.journal
}

// reconcileReservations settles the quota reservations a killed process
// left open: with what their calls used, from the usage records in the
// spool, or by giving them back when a call has no record.
func (a *App) reconcileReservations(rt *generation.Runtime) {
	if len(a.left) == 0 || rt.Quota == nil || a.spool == nil {
		return
	}
	want := make(map[string]bool, len(a.left))
	for _, o := range a.left {
		want[o.ID] = true
	}
	found := map[string]quota.Used{}
	err := a.spool.Replay(0, func(r *usage.Record, _ uint64) {
		if !want[r.RequestID] {
			return
		}
		u := quota.Used{OK: r.Status/100 == 2 && r.Error == "", PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens}
		if r.CostMicros != nil {
			u.CostMicros = *r.CostMicros
		}
		found[r.RequestID] = u
	})
	if err != nil {
		a.log.Error("quota: reading the usage spool for open reservations", zap.Error(err))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	settled, refunded, err := rt.Quota.Reconcile(ctx, a.left, func(id string) (quota.Used, bool) {
		u, ok := found[id]
		return u, ok
	})
	if err != nil {
		a.log.Error("quota: reservations of a killed process not all reconciled; they count until their windows end",
			zap.Int("settled", settled), zap.Int("refunded", refunded), zap.Error(err))
		return
	}
	ids := make([]string, len(a.left))
	for i, o := range a.left {
		ids[i] = o.ID
	}
	a.journal.Forget(ids)
	a.left = nil
	a.log.Info("quota: reservations a killed process left open were reconciled", zap.Int("settled_from_records", settled),
		zap.Int("refunded", refunded))
}
