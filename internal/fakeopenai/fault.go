package fakeopenai

import (
	"strings"
	"time"
)

// FaultKind selects what a scripted Fault does.
type FaultKind int

const (
	// KindStatus answers with the error envelope and HTTP status
	// Fault.Status (500 when zero) instead of serving the call. The envelope
	// is the one of the call's dialect: OpenAI's; Anthropic's, whose error
	// type follows the status (500 api_error, 529 overloaded_error...); or,
	// on Azure paths, Azure's {"code","message"}. On Anthropic and Azure
	// paths a 429 is answered as KindRateLimit.
	KindStatus FaultKind = iota
	// KindRateLimit answers 429 rate_limit_exceeded (Anthropic's
	// rate_limit_error, Azure's code 429). When Fault.RetryAfter is positive
	// the answer carries Retry-After (whole seconds, rounded up) and
	// retry-after-ms headers; Anthropic and Azure answers always do, a
	// second when Fault.RetryAfter is not positive.
	KindRateLimit
	// KindReset closes the TCP connection (with SO_LINGER 0, so the peer sees
	// a reset where the platform allows it) before writing any response.
	KindReset
	// KindStall sleeps for Fault.Stall before the response headers, then
	// serves the call normally. A zero Stall sleeps until Close.
	KindStall
	// KindStallStream applies to streams only: after Fault.After content
	// chunks it sleeps for Fault.Stall, then finishes the stream normally.
	// A zero Stall sleeps until Close.
	KindStallStream
	// KindCut applies to streams only: after Fault.After content chunks the
	// connection is closed abruptly, without the terminating chunk of the
	// chunked encoding and without data: [DONE].
	KindCut
	// KindErrorEvent applies to streams only: after Fault.After content chunks
	// it sends an error event and ends the response cleanly but without
	// data: [DONE]. Chat and legacy completion streams get
	// data: {"error":{...}}; Responses streams get an "event: error" whose
	// data has both the documented flat fields and a nested "error" object;
	// Anthropic streams get an "event: error" with an overloaded_error and
	// no message_stop.
	KindErrorEvent
)

var faultKindNames = [...]string{
	KindStatus:      "status",
	KindRateLimit:   "rate-limit",
	KindReset:       "reset",
	KindStall:       "stall",
	KindStallStream: "stall-stream",
	KindCut:         "cut",
	KindErrorEvent:  "error-event",
}

// String returns a short name of the kind.
func (k FaultKind) String() string {
	if k >= 0 && int(k) < len(faultKindNames) {
		return faultKindNames[k]
	}
	return "FaultKind(" + itoa(int(k)) + ")"
}

// streamOnly reports whether the kind only applies to streaming calls.
func (k FaultKind) streamOnly() bool {
	return k == KindStallStream || k == KindCut || k == KindErrorEvent
}

// Fault is one scripted misbehaviour. It is applied to the next Times calls
// (1 when zero; every matching call until Reset when negative) whose path
// matches Path. Faults of the stream-only kinds (KindStallStream, KindCut,
// KindErrorEvent) only match calls that ask for a stream ("stream": true);
// the others match any call, before authentication and validation.
type Fault struct {
	// Kind selects the misbehaviour; the zero value is KindStatus.
	Kind FaultKind
	// Status is the HTTP status for KindStatus; 500 when zero.
	Status int
	// Times is how many matching calls the fault applies to.
	Times int
	// Path is the exact request path to match, e.g. "/v1/chat/completions".
	// A trailing "*" matches any path with that prefix. Empty matches any
	// path.
	Path string
	// RetryAfter is advertised by KindRateLimit answers when positive.
	RetryAfter time.Duration
	// After is the number of content chunks sent before a stream fault
	// (KindStallStream, KindCut, KindErrorEvent) strikes. The opening chunk
	// (the role chunk of chat streams, which also opens the first function
	// call of an answer with calls; the response.* preamble of Responses
	// streams) is always sent first. In chat streams of function calls each
	// chunk of argument pieces, and the opening of every call after the
	// first, is a content chunk. When After is at least the number of
	// content chunks, the fault strikes after the last one, before the
	// closing chunks.
	After int
	// Stall is the sleep of KindStall and KindStallStream; zero means until
	// Close.
	Stall time.Duration
	// Message, Type and Code override the error envelope of KindStatus,
	// KindRateLimit and KindErrorEvent when not empty.
	Message, Type, Code string
	// Key, when set, restricts the fault to calls made with this API key
	// (bearer, x-api-key or api-key): one customer's key failing while
	// the others are served.
	Key string
}

// Status returns a KindStatus fault answering code for the next times calls.
func Status(code, times int) Fault {
	return Fault{Kind: KindStatus, Status: code, Times: times}
}

// RateLimit returns a KindRateLimit fault advertising retryAfter.
func RateLimit(retryAfter time.Duration) Fault {
	return Fault{Kind: KindRateLimit, RetryAfter: retryAfter}
}

// ConnReset returns a KindReset fault.
func ConnReset() Fault {
	return Fault{Kind: KindReset}
}

// Stall returns a KindStall fault sleeping d (until Close when zero).
func Stall(d time.Duration) Fault {
	return Fault{Kind: KindStall, Stall: d}
}

// StallStream returns a KindStallStream fault sleeping d (until Close when
// zero) after after content chunks.
func StallStream(after int, d time.Duration) Fault {
	return Fault{Kind: KindStallStream, After: after, Stall: d}
}

// Cut returns a KindCut fault dropping the connection after after content
// chunks.
func Cut(after int) Fault {
	return Fault{Kind: KindCut, After: after}
}

// ErrorEvent returns a KindErrorEvent fault sending an error event after
// after content chunks.
func ErrorEvent(after int) Fault {
	return Fault{Kind: KindErrorEvent, After: after}
}

// OnPath returns a copy of f restricted to calls whose path matches path.
func (f Fault) OnPath(path string) Fault {
	f.Path = path
	return f
}

// ForKey returns a copy of f restricted to calls made with key.
func (f Fault) ForKey(key string) Fault {
	f.Key = key
	return f
}

// Repeat returns a copy of f applied to the next n matching calls; a
// negative n applies it to every matching call until Reset.
func (f Fault) Repeat(n int) Fault {
	f.Times = n
	return f
}

// matches reports whether f applies to a call to path.
func (f *Fault) matches(path, key string, stream bool) bool {
	if f.Kind.streamOnly() && !stream || f.Key != "" && f.Key != key {
		return false
	}
	switch {
	case f.Path == "":
		return true
	case strings.HasSuffix(f.Path, "*"):
		return strings.HasPrefix(path, f.Path[:len(f.Path)-1])
	default:
		return f.Path == path
	}
}

// pendingFault is a scripted fault and the number of calls it still applies
// to (negative: unlimited).
type pendingFault struct {
	f    Fault
	left int
}

// Script enqueues faults. Each call takes the first pending fault, in the
// order they were scripted, that matches it.
func (s *Server) Script(f ...Fault) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	for _, ft := range f {
		left := ft.Times
		if left == 0 {
			left = 1
		}
		s.faults = append(s.faults, pendingFault{f: ft, left: left})
	}
	s.nFaults.Store(int64(len(s.faults)))
}

// takeFault consumes and returns the first pending fault matching a call to
// path with key.
func (s *Server) takeFault(path, key string, stream bool) (Fault, bool) {
	if s.nFaults.Load() == 0 {
		return Fault{}, false
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	for i := range s.faults {
		pf := &s.faults[i]
		if !pf.f.matches(path, key, stream) {
			continue
		}
		f := pf.f
		if pf.left > 0 {
			pf.left--
			if pf.left == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
				s.nFaults.Store(int64(len(s.faults)))
			}
		}
		s.faultsApplied.Add(1)
		return f, true
	}
	return Fault{}, false
}
