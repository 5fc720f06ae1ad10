package logging

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultLimiterKeys is how many distinct event keys a Limiter tracks
// when LimiterOptions.MaxKeys is zero.
const DefaultLimiterKeys = 4096

// RepeatedField is the name of the field that a Limiter adds to a line
// written after others of the same key were held back: how many lines of
// that key it held back since the last one it wrote.
const RepeatedField = "repeated"

// LimiterOptions configure NewLimiter.
type LimiterOptions struct {
	// Every is the least time between two lines of one key; zero or less
	// means a minute.
	Every time.Duration
	// MaxKeys bounds the number of keys tracked; zero means
	// DefaultLimiterKeys. When it is reached, keys whose interval has
	// passed are forgotten, and an event of a new key is written at once
	// without being tracked if none could be forgotten.
	MaxKeys int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Limiter writes log lines of repeated events sparingly: the first
// occurrence of an event key at once, then at most one line per interval
// for that key. A line written after others were held back carries how
// many with the RepeatedField field ("repeated": N). Events held back
// after the last line written are not reported later, so a count is
// always that of the lines held back before a line that was written.
//
// Keys name a kind of event, such as "supplier_key_unavailable/acme", and
// must come from a bounded set: never a request ID. When an event is held
// back, the call allocates nothing, provided the key is not built for the
// call and the fields are of values that need no allocation themselves
// (zap.String, zap.Int, zap.Error of an existing error, and the like).
//
// A Limiter is safe for concurrent use.
type Limiter struct {
	log     *zap.Logger
	every   int64
	maxKeys int
	now     func() time.Time

	mu     sync.RWMutex
	events map[string]*event
}

// event is the state of one key. Its fields change together under mu, so
// that an occurrence held back while another is written is counted
// towards the next line, never the one being written.
type event struct {
	mu sync.Mutex
	// next is when the key's next line may be written (unix nanoseconds).
	next int64
	// held counts the lines held back since the last one written.
	held uint64
}

// NewLimiter returns a Limiter that writes to log.
func NewLimiter(log *zap.Logger, o LimiterOptions) *Limiter {
	if log == nil {
		log = zap.NewNop()
	}
	if o.Every <= 0 {
		o.Every = time.Minute
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultLimiterKeys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Limiter{log: log, every: int64(o.Every), maxKeys: o.MaxKeys, now: o.Now, events: make(map[string]*event)}
}

// Debug writes msg at debug level, unless a line of key was written less
// than an interval ago.
func (l *Limiter) Debug(key, msg string, fields ...zap.Field) {
	l.write(zapcore.DebugLevel, key, msg, fields)
}

// Info writes msg at info level, unless a line of key was written less
// than an interval ago.
func (l *Limiter) Info(key, msg string, fields ...zap.Field) {
	l.write(zapcore.InfoLevel, key, msg, fields)
}

// Warn writes msg at warn level, unless a line of key was written less
// than an interval ago.
func (l *Limiter) Warn(key, msg string, fields ...zap.Field) {
	l.write(zapcore.WarnLevel, key, msg, fields)
}

// Error writes msg at error level, unless a line of key was written less
// than an interval ago.
func (l *Limiter) Error(key, msg string, fields ...zap.Field) {
	l.write(zapcore.ErrorLevel, key, msg, fields)
}

// Allow records an occurrence of key and reports whether a line may be
// written for it now and, if so, how many occurrences were held back
// since the last line allowed. It is for callers that build their lines
// themselves; Warn and its kin call it.
func (l *Limiter) Allow(key string) (ok bool, repeated uint64) {
	now := l.now().UnixNano()
	e := l.event(key, now)
	if e == nil {
		return true, 0 // not tracked: too many keys
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if now < e.next {
		e.held++
		return false, 0
	}
	e.next = now + l.every
	repeated, e.held = e.held, 0
	return true, repeated
}

// write writes one line of key at lvl when the interval allows it. Fields
// are copied before zap sees them, so that the caller's variadic slice
// does not escape to the heap.
func (l *Limiter) write(lvl zapcore.Level, key, msg string, fields []zap.Field) {
	if !l.log.Core().Enabled(lvl) {
		return
	}
	ok, n := l.Allow(key)
	if !ok {
		return
	}
	ce := l.log.Check(lvl, msg)
	if ce == nil {
		return
	}
	out := make([]zap.Field, 0, len(fields)+1)
	out = append(out, fields...)
	if n > 0 {
		out = append(out, zap.Uint64(RepeatedField, n))
	}
	ce.Write(out...)
}

// event returns the state of key, creating it when needed; nil when the
// limiter tracks too many keys to add it.
func (l *Limiter) event(key string, now int64) *event {
	l.mu.RLock()
	e := l.events[key]
	l.mu.RUnlock()
	if e != nil {
		return e
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if again := l.events[key]; again != nil {
		return again
	}
	if len(l.events) >= l.maxKeys {
		l.forget(now)
		if len(l.events) >= l.maxKeys {
			return nil
		}
	}
	e = &event{}
	l.events[key] = e
	return e
}

// forget drops the keys whose interval has passed with nothing held back,
// so that they would be written at once anyway. l.mu must be held.
func (l *Limiter) forget(now int64) {
	for k, e := range l.events {
		e.mu.Lock()
		idle := now >= e.next && e.held == 0
		e.mu.Unlock()
		if idle {
			delete(l.events, k)
		}
	}
}
