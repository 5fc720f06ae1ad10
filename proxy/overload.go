package proxy

import (
	"errors"
	"syscall"

	"github.com/valyala/fasthttp"
)

// overloaded is the answer to a call veil sheds because it is at
// capacity: 503 overloaded, which clients retry after Retry-After.
func overloaded(message string) *Error {
	return &Error{Status: fasthttp.StatusServiceUnavailable, Type: typeUnavailable, Code: codeOverloaded, Message: message}
}

// atCapacity reports whether an upstream call failed for lack of veil's
// own resources rather than the provider's: no free connection in the
// provider's pool within conn_wait, or no file descriptor for a new one
// (the process's or the system's limit).
func atCapacity(err error) bool {
	return errors.Is(err, fasthttp.ErrNoFreeConns) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// errListenerFull is the answer to a request beyond limits.max_in_flight.
// It is shared: answering with it allocates nothing.
var errListenerFull = overloaded("veil is at capacity (limits.max_in_flight requests in flight); retry in a moment")

// shed answers a request at once, before anything else is read of it, when
// limits.max_in_flight requests are in flight already (streams until they
// end; the count includes this request). It never admits more than the
// cap; two requests that arrive together at the cap may both be shed
// although one would just have fit.
func (s *Server) shed(ctx *fasthttp.RequestCtx, x *exchange) bool {
	limit := int64(s.limits.MaxInFlight)
	if limit <= 0 || s.open.Load() <= limit {
		return true
	}
	s.metrics.ListenerOverloaded()
	ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	x.fail(ctx, errListenerFull)
	return false
}
