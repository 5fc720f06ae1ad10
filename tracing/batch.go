package tracing

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"

	"github.com/wedsync/veil/internal/logging"
)

// batcher is the span processor between the request path and the
// exporter: an ended span is put in a bounded queue without waiting (a
// full queue drops it, and counts it), and one goroutine sends the queue
// in batches, when a batch is full or its timeout passes. The SDK's own
// batch processor does the same but does not tell how many spans it
// dropped.
type batcher struct {
	exp          sdktrace.SpanExporter
	queue        chan sdktrace.ReadOnlySpan
	batchSize    int
	batchTimeout time.Duration
	timeout      time.Duration
	quiet        *logging.Limiter

	exported, failed, dropped atomic.Uint64

	flush    chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	stopped  atomic.Bool
}

var _ sdktrace.SpanProcessor = (*batcher)(nil)

func newBatcher(exp sdktrace.SpanExporter, queueSize, batchSize int, batchTimeout, timeout time.Duration, log *zap.Logger) *batcher {
	b := &batcher{exp: exp, queue: make(chan sdktrace.ReadOnlySpan, queueSize), batchSize: batchSize,
		batchTimeout: batchTimeout, timeout: timeout, quiet: logging.NewLimiter(log, logging.LimiterOptions{Every: time.Minute}),
		flush: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// OnStart does nothing: spans are seen once ended.
func (b *batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span for export, or drops it when the queue is
// full; it never waits.
func (b *batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() || b.stopped.Load() {
		return
	}
	select {
	case b.queue <- s:
	default:
		b.dropped.Add(1)
	}
}

// ForceFlush exports what is queued, waiting until ctx ends.
func (b *batcher) ForceFlush(ctx context.Context) error {
	if b.stopped.Load() {
		return nil
	}
	ch := make(chan struct{})
	select {
	case b.flush <- ch:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued and stops the loop and the exporter,
// waiting until ctx ends.
func (b *batcher) Shutdown(ctx context.Context) error {
	b.stopOnce.Do(func() {
		b.stopped.Store(true)
		close(b.stop)
	})
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.exp.Shutdown(ctx)
}

func (b *batcher) stats() Stats {
	return Stats{Exported: b.exported.Load(), Failed: b.failed.Load(), Dropped: b.dropped.Load(), Queued: len(b.queue)}
}

// run is the export loop.
func (b *batcher) run() {
	defer close(b.done)
	batch := make([]sdktrace.ReadOnlySpan, 0, b.batchSize)
	timer := time.NewTimer(b.batchTimeout)
	defer timer.Stop()
	send := func() {
		batch = b.export(batch)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(b.batchTimeout)
	}
	for {
		select {
		case s := <-b.queue:
			if batch = append(batch, s); len(batch) >= b.batchSize {
				send()
			}
		case <-timer.C:
			batch = b.export(batch)
			timer.Reset(b.batchTimeout)
		case ch := <-b.flush:
			batch = b.drain(batch)
			send()
			close(ch)
		case <-b.stop:
			b.export(b.drain(batch))
			return
		}
	}
}

// drain moves the queued spans into batch, exporting each full batch.
func (b *batcher) drain(batch []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	for {
		select {
		case s := <-b.queue:
			if batch = append(batch, s); len(batch) >= b.batchSize {
				batch = b.export(batch)
			}
		default:
			return batch
		}
	}
}

// export sends batch, counting its spans as exported or failed, and
// returns it emptied.
func (b *batcher) export(batch []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	if len(batch) == 0 {
		return batch
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	err := b.exp.ExportSpans(ctx, batch)
	cancel()
	n := uint64(len(batch))
	if err != nil {
		b.failed.Add(n)
		b.quiet.Warn("tracing export failed", "tracing export failed; the spans are lost", zap.Uint64("spans", n), zap.Error(err))
	} else {
		b.exported.Add(n)
	}
	clear(batch)
	return batch[:0]
}
