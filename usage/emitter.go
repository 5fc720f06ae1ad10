package usage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults for Options.
const (
	DefaultQueueSize     = 65536
	DefaultBatchSize     = 256
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultMaxAttempts   = 5
	DefaultMinBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff    = 5 * time.Second
)

// warnEvery is the least time between two warnings of one kind for one sink.
const warnEvery = 10 * time.Second

// ErrPermanent marks a Write error that retrying will not fix, such as a
// webhook answering 401. The emitter does not retry such a batch: it hands
// it to the sink's Overflow at once, or drops it when the sink has none.
var ErrPermanent = errors.New("permanent sink error")

// PartialError is a Write error for a batch that was written in part: the
// records in Failed were not written, the others were. The emitter does
// not retry it: it counts the others as delivered and overflows or drops
// Failed alone, as for ErrPermanent. A sink that retries by itself (the
// store sink) returns it so that what is counted as dropped is exactly
// what was lost.
type PartialError struct {
	Failed []*Record
	Err    error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d records not written: %v", len(e.Failed), e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// Overflower is implemented by a sink that can keep records it cannot take
// now, such as the webhook sink spilling them to disk. The emitter calls
// Overflow when the sink's queue is full, when a batch failed every attempt
// and when Close runs out of time. Overflow must be safe for concurrent use,
// including concurrently with Write, and must not block for long: Emit may
// call it on a request's path.
type Overflower interface {
	Overflow(r *Record)
}

// Observer receives the emitter's counts, per sink name. Its methods are
// called from Emit's callers and from the sinks' goroutines, so they must be
// safe for concurrent use and cheap.
type Observer interface {
	// QueueDepth reports how many records wait in the sink's queue.
	QueueDepth(sink string, n int)
	// Delivered counts records the sink wrote.
	Delivered(sink string, n int)
	// Retried counts a failed Write that will be tried again.
	Retried(sink string)
	// Spilled counts records handed to the sink's Overflow.
	Spilled(sink string, n int)
	// Dropped counts records lost for the sink.
	Dropped(sink string, n int)
}

// Options configure an Emitter. Zero values take the defaults.
type Options struct {
	// QueueSize is how many records wait per sink before Emit overflows
	// or drops them; default 65536.
	QueueSize int
	// BatchSize is the most records per Write; default 256.
	BatchSize int
	// FlushInterval is the longest a record waits in a partial batch;
	// default 200ms.
	FlushInterval time.Duration
	// MaxAttempts is how many times a batch is written before it is
	// overflowed or dropped; default 5.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles from MinBackoff with jitter; defaults 100ms and 5s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Observer receives counts; nil means none.
	Observer Observer
	// Log receives sink errors; nil means none. Record contents are never
	// logged.
	Log *zap.Logger
	// Spool, when set, is the records' write-ahead log: Emit appends each
	// record to it before queueing it, each sink's handled records move
	// its cursor, and NewEmitter replays to each sink what it had not
	// handled when the last process ended.
	Spool *Spool
}

// Stopper is implemented by a sink that retries on its own: Stop, called
// when Close starts, ends those retries, so that a sink whose destination
// is down does not hold the close up.
type Stopper interface {
	Stop()
}

// Resumer is implemented by a sink that can tell, from what it wrote
// itself, the spool sequence number of the last record it holds, so that
// a replay after a crash does not repeat a record it wrote just before.
type Resumer interface {
	LastSpoolSeq() uint64
}

func (o Options) withDefaults() Options {
	o.QueueSize = positive(o.QueueSize, DefaultQueueSize)
	o.BatchSize = positive(o.BatchSize, DefaultBatchSize)
	o.FlushInterval = positive(o.FlushInterval, DefaultFlushInterval)
	o.MaxAttempts = positive(o.MaxAttempts, DefaultMaxAttempts)
	o.MinBackoff = positive(o.MinBackoff, DefaultMinBackoff)
	o.MaxBackoff = max(positive(o.MaxBackoff, DefaultMaxBackoff), o.MinBackoff)
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return o
}

// positive returns v, or def when v is not positive.
func positive[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

type nopObserver struct{}

func (nopObserver) QueueDepth(string, int) {}
func (nopObserver) Delivered(string, int)  {}
func (nopObserver) Retried(string)         {}
func (nopObserver) Spilled(string, int)    {}
func (nopObserver) Dropped(string, int)    {}

// Emitter hands records to sinks without blocking its callers. Each sink has
// a bounded queue read by its own goroutine, which batches records and
// retries failed writes; the sink's Write and Close are called from one
// more goroutine of its own, so that Close can give up on a Write that
// hangs. A sink that falls behind loses records (counted) or, if it is an
// Overflower, has them overflowed, but never slows Emit.
type Emitter struct {
	opts    Options
	workers []*worker

	// mu orders Emit against Close: Emit sends under the read lock, and
	// Close closes the queues under the write lock, so no record is ever
	// sent on a closed queue or left behind in one.
	mu     sync.RWMutex
	closed bool
	// order is held, with a spool, from a record's append to its queueing,
	// so that every queue holds records in the order of their sequence
	// numbers: the store sink's marks rely on it.
	order sync.Mutex

	spoolWarn limiter

	abort     chan struct{} // closed when Close's context ends
	closing   atomic.Bool
	closeDone chan struct{}
	closeErr  error
}

// NewEmitter starts one goroutine per sink and returns the emitter that
// feeds them. Close must be called to stop them.
func NewEmitter(o Options, sinks ...Sink) *Emitter {
	o = o.withDefaults()
	e := &Emitter{
		opts:      o,
		abort:     make(chan struct{}),
		closeDone: make(chan struct{}),
	}
	for _, s := range sinks {
		if s == nil {
			continue
		}
		w := &worker{
			opts:       o,
			sink:       s,
			name:       s.Name(),
			q:          make(chan *Record, o.QueueSize),
			abort:      e.abort,
			full:       make(chan struct{}, 1),
			closing:    make(chan struct{}),
			drained:    make(chan struct{}),
			done:       make(chan struct{}),
			writeReq:   make(chan []*Record),
			writeRes:   make(chan error, 1),
			writerDone: make(chan struct{}),
		}
		w.over, _ = s.(Overflower)
		e.workers = append(e.workers, w)
		o.Observer.QueueDepth(w.name, 0) // each sink's series exist from the start
		go w.writer()
		go w.run()
	}
	if o.Spool != nil {
		for _, w := range e.workers {
			w.replay(o.Spool)
		}
	}
	return e
}

// replay queues for w the spooled records it had not handled when the last
// process ended, waiting for room in its queue: nothing is emitted before
// NewEmitter returns, so they come first and in order.
func (w *worker) replay(sp *Spool) {
	after, err := sp.Cursor(w.name)
	if err != nil {
		w.opts.Log.Error("usage spool: no cursor; records are not replayed", zap.String("sink", w.name), zap.Error(err))
		return
	}
	if rs, ok := w.sink.(Resumer); ok {
		after = max(after, rs.LastSpoolSeq())
	}
	n := 0
	err = sp.Replay(after, func(r *Record, seq uint64) {
		r.SpoolSeq, r.spoolSource = seq, sp.source(seq)
		w.q <- r
		n++
	})
	if err != nil {
		w.opts.Log.Error("usage spool: replay stopped", zap.String("sink", w.name), zap.Int("replayed", n), zap.Error(err))
	} else if n > 0 {
		w.opts.Log.Info("usage spool: records replayed", zap.String("sink", w.name), zap.Int("records", n))
	}
}

// Emit hands r to every sink's queue and returns at once. A sink whose
// queue is full gets r through Overflow if it is an Overflower; otherwise r
// is dropped for that sink and counted. After Close, r is dropped and
// counted for every sink. Records are shared between sinks: r must not be
// changed after Emit. With a spool, every queue gets the records in the
// order of their sequence numbers, however many goroutines call Emit.
func (e *Emitter) Emit(r *Record) {
	if r == nil {
		return
	}
	if sp := e.opts.Spool; sp != nil {
		data, err := encodeRecord(r)
		e.order.Lock()
		defer e.order.Unlock()
		var seq uint64
		if err == nil {
			seq, err = sp.appendEncoded(data)
		}
		if err != nil {
			e.spoolFailed(err)
		} else {
			r.spoolSource = sp.ID()
		}
		r.SpoolSeq = seq
	}
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		for _, w := range e.workers {
			w.drop(1, "emitter closed")
		}
		return
	}
	for _, w := range e.workers {
		select {
		case w.q <- r:
			if len(w.q) >= w.opts.BatchSize {
				select {
				case w.full <- struct{}{}:
				default:
				}
			}
		default:
			w.giveUpOne(r, "queue full")
		}
	}
	e.mu.RUnlock()
}

// spoolFailed reports a record the spool could not keep (it still goes to
// the sinks), at most every warnEvery.
func (e *Emitter) spoolFailed(err error) {
	e.opts.Observer.Dropped("spool", 1)
	if e.spoolWarn.allow(time.Now()) {
		e.opts.Log.Error("usage spool: a record was not spooled", zap.Error(err))
	}
}

// Close stops accepting records, writes what every queue holds, and closes
// every sink. When ctx ends first, the records still queued or waiting for
// a retry are overflowed or dropped (counted), and Close returns an error
// wrapping ctx.Err(); a sink whose Write was still running then finishes it
// in the background and is closed afterwards. Close is idempotent: later
// calls wait for the first and return its result.
func (e *Emitter) Close(ctx context.Context) error {
	if !e.closing.CompareAndSwap(false, true) {
		select {
		case <-e.closeDone:
			return e.closeErr
		case <-ctx.Done():
			return fmt.Errorf("close usage emitter: %w", ctx.Err())
		}
	}
	e.closeErr = e.close(ctx)
	close(e.closeDone)
	return e.closeErr
}

func (e *Emitter) close(ctx context.Context) error {
	for _, w := range e.workers {
		if st, ok := w.sink.(Stopper); ok {
			st.Stop()
		}
	}
	e.mu.Lock()
	e.closed = true
	for _, w := range e.workers {
		close(w.q)
		close(w.closing)
	}
	e.mu.Unlock()

	allDone := true
	for _, w := range e.workers {
		select {
		case <-w.done:
			continue
		case <-ctx.Done():
		}
		allDone = false
		break
	}
	var errs []error
	if !allDone {
		close(e.abort)
		errs = append(errs, fmt.Errorf("close usage emitter: %w", ctx.Err()))
		for _, w := range e.workers {
			// drained comes without waiting on the sink: after abort,
			// a worker only overflows or drops what it holds.
			<-w.drained
		}
	}
	for _, w := range e.workers {
		select {
		case <-w.done:
			if w.closeErr != nil {
				errs = append(errs, fmt.Errorf("close usage sink %s: %w", w.name, w.closeErr))
			}
		default:
			errs = append(errs, fmt.Errorf("usage sink %s: not closed when the context ended, closing in the background", w.name))
		}
	}
	return errors.Join(errs...)
}

// wait blocks until every sink goroutine has ended, including those Close
// left finishing a Write. Tests use it.
func (e *Emitter) wait() {
	for _, w := range e.workers {
		<-w.done
	}
}

// worker owns one sink: it batches the sink's queue and hands batches to
// the writer goroutine, the only one calling the sink's Write and Close.
type worker struct {
	opts Options
	sink Sink
	over Overflower
	name string

	q     chan *Record
	abort <-chan struct{}
	// full is signalled by Emit when the queue holds a whole batch;
	// closing is closed when Close starts. Both cut the wait for a batch.
	full    chan struct{}
	closing chan struct{}

	drained chan struct{} // closed when the queue is empty and closed, and no batch is held but an unfinished Write
	done    chan struct{} // closed after the sink is closed

	writeReq   chan []*Record
	writeRes   chan error
	writerDone chan struct{}
	closeErr   error // of sink.Close, set before writerDone is closed

	inflight []*Record // a batch whose Write was still running at abort

	dropWarn  limiter
	dropsSeen atomic.Int64 // drops since the last warning
	errWarn   limiter
}

func (w *worker) writer() {
	for b := range w.writeReq {
		w.writeRes <- w.sink.Write(b)
	}
	w.closeErr = w.sink.Close()
	close(w.writerDone)
}

func (w *worker) run() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	var batch []*Record
	for {
		// Wait for the first record of a batch; then let the rest gather in
		// the queue until the flush interval ends, the queue holds a whole
		// batch, or Close starts, rather than waking for every record.
		if len(batch) == 0 {
			select {
			case r, ok := <-w.q:
				if !ok {
					w.finish()
					return
				}
				batch = append(make([]*Record, 0, w.opts.BatchSize), r)
				timer.Reset(w.opts.FlushInterval)
			case <-w.abort:
				w.abandon(nil)
				return
			}
		}
		expired := false
		select {
		case <-timer.C:
			expired = true
		case <-w.full:
		case <-w.closing:
		case <-w.abort:
			timer.Stop()
			w.abandon(batch)
			return
		}
		// Take what is queued, writing whole batches at once.
		for open := true; open; {
			if len(batch) >= w.opts.BatchSize {
				w.flush(batch)
				batch = make([]*Record, 0, w.opts.BatchSize)
			}
			select {
			case r, ok := <-w.q:
				if !ok {
					timer.Stop()
					w.flush(batch)
					w.finish()
					return
				}
				batch = append(batch, r)
			default:
				open = false
			}
		}
		// A partial batch waits for its interval, unless it is over.
		if expired || len(batch) == 0 {
			w.flush(batch)
			batch = nil
			if !expired {
				timer.Stop()
			}
		}
	}
}

// abandon gives up what the worker holds and what is queued when Close's
// context ended, then finishes.
func (w *worker) abandon(held []*Record) {
	w.giveUp(held, "emitter closing")
	for r := range w.q { // Close closed it before aborting
		w.giveUpOne(r, "emitter closing")
	}
	w.finish()
}

// finish waits for an unfinished Write, then closes the sink.
func (w *worker) finish() {
	close(w.drained)
	if w.inflight != nil {
		if err := <-w.writeRes; err == nil {
			w.opts.Observer.Delivered(w.name, len(w.inflight))
			w.ack(w.inflight) // written after all: not to be replayed
		} else if w.partial(w.inflight, err) {
			w.ack(w.inflight)
		} else {
			w.logError("usage sink write failed while closing", err, len(w.inflight))
			w.giveUp(w.inflight, "emitter closing")
		}
		w.inflight = nil
	}
	close(w.writeReq)
	<-w.writerDone
}

// flush writes batch, retrying with backoff; a batch that fails every
// attempt, or fails permanently, is overflowed or dropped.
func (w *worker) flush(batch []*Record) {
	if len(batch) == 0 {
		return
	}
	w.opts.Observer.QueueDepth(w.name, len(w.q))
	backoff := w.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		select {
		case <-w.abort:
			w.giveUp(batch, "emitter closing")
			return
		default:
		}
		w.writeReq <- batch // the writer is idle: writes are one at a time
		var err error
		select {
		case err = <-w.writeRes:
		case <-w.abort:
			w.inflight = batch
			return
		}
		if err == nil {
			w.opts.Observer.Delivered(w.name, len(batch))
			w.ack(batch)
			return
		}
		if w.partial(batch, err) {
			w.ack(batch)
			return
		}
		if errors.Is(err, ErrPermanent) || attempt >= w.opts.MaxAttempts {
			w.logError("usage sink write failed", err, len(batch), zap.Int("attempts", attempt))
			w.giveUp(batch, "write failed")
			w.ack(batch)
			return
		}
		w.opts.Observer.Retried(w.name)
		w.opts.Log.Debug("usage sink write failed; retrying",
			zap.String("sink", w.name), zap.Int("attempt", attempt), zap.Error(err))
		t := time.NewTimer(jitter(backoff))
		select {
		case <-t.C:
		case <-w.abort:
			t.Stop()
			w.giveUp(batch, "emitter closing")
			return
		}
		backoff = min(2*backoff, w.opts.MaxBackoff)
	}
}

// ack moves the sink's spool cursor past batch, which the sink has handled
// (written, overflowed or given up for good). Batches given up because the
// emitter is closing are not acknowledged: the next start replays them.
func (w *worker) ack(batch []*Record) {
	sp := w.opts.Spool
	if sp == nil || len(batch) == 0 {
		return
	}
	var last uint64
	for _, r := range batch {
		last = max(last, r.SpoolSeq)
	}
	if last == 0 {
		return
	}
	if err := sp.Ack(w.name, last); err != nil && w.errWarn.allow(time.Now()) {
		w.opts.Log.Error("usage spool: cursor not written", zap.String("sink", w.name), zap.Error(err))
	}
}

// partial handles a Write error that is a *PartialError: it counts the
// records written as delivered and gives up the others. It reports
// whether err was one.
func (w *worker) partial(batch []*Record, err error) bool {
	var pe *PartialError
	if !errors.As(err, &pe) {
		return false
	}
	if n := len(batch) - len(pe.Failed); n > 0 {
		w.opts.Observer.Delivered(w.name, n)
	}
	w.logError("usage sink write failed in part", err, len(pe.Failed))
	w.giveUp(pe.Failed, "write failed")
	return true
}

// jitter returns a duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	half := d / 2
	return half + rand.N(d-half+1) //nolint:gosec // G404: retry jitter, not a secret
}

// giveUp overflows batch to the sink, or drops it.
func (w *worker) giveUp(batch []*Record, why string) {
	if len(batch) == 0 {
		return
	}
	if w.over == nil {
		w.drop(len(batch), why)
		return
	}
	for _, r := range batch {
		w.over.Overflow(r)
	}
	w.opts.Observer.Spilled(w.name, len(batch))
}

func (w *worker) giveUpOne(r *Record, why string) {
	if w.over == nil {
		w.drop(1, why)
		return
	}
	w.over.Overflow(r)
	w.opts.Observer.Spilled(w.name, 1)
}

// drop counts n lost records and warns at most every warnEvery.
func (w *worker) drop(n int, why string) {
	w.opts.Observer.Dropped(w.name, n)
	w.dropsSeen.Add(int64(n))
	if w.dropWarn.allow(time.Now()) {
		w.opts.Log.Warn("usage records dropped",
			zap.String("sink", w.name), zap.String("reason", why),
			zap.Int64("dropped_since_last_warning", w.dropsSeen.Swap(0)))
	}
}

func (w *worker) logError(msg string, err error, n int, fields ...zap.Field) {
	if !w.errWarn.allow(time.Now()) {
		return
	}
	fields = append(fields, zap.String("sink", w.name), zap.Int("records", n), zap.Error(err))
	w.opts.Log.Error(msg, fields...)
}

// limiter allows one event per warnEvery.
type limiter struct {
	next atomic.Int64 // unix nanoseconds
}

func (l *limiter) allow(now time.Time) bool {
	t := now.UnixNano()
	n := l.next.Load()
	return t >= n && l.next.CompareAndSwap(n, t+int64(warnEvery))
}
