package proxy

import (
	"errors"

	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/jsonfield"
)

// Error is an error veil itself answers with, rendered as OpenAI's error
// envelope {"error":{"message","type","param","code"}}.
type Error struct {
	Status  int
	Type    string
	Code    string
	Param   string
	Message string
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Error types as OpenAI names them.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typeServer         = "server_error"
	typeUnavailable    = "service_unavailable"
)

// AppendEnvelope appends the JSON envelope of e to dst.
func (e *Error) AppendEnvelope(dst []byte) []byte {
	return jsonfield.AppendErrorEnvelope(dst, e.Message, e.Type, e.Param, e.Code)
}

// writeError answers the client with e, replacing any response so far but
// keeping X-Request-ID.
func writeError(ctx *fasthttp.RequestCtx, e *Error) {
	ctx.Response.Header.SetStatusCode(e.Status)
	ctx.Response.Header.SetContentType("application/json")
	buf := envelopePool.Get()
	buf.B = e.AppendEnvelope(buf.B[:0])
	ctx.Response.SetBody(buf.B)
	envelopePool.Put(buf)
}

var envelopePool bytebufferpool.Pool

// HandleServerError answers requests fasthttp rejected before the handler
// ran (too large, malformed) with an OpenAI envelope and closes the
// connection, since its framing can no longer be trusted.
func HandleServerError(ctx *fasthttp.RequestCtx, err error) {
	e := &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "malformed_request",
		Message: "veil could not read the request: " + err.Error()}
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e.Status, e.Code = fasthttp.StatusRequestEntityTooLarge, "request_too_large"
		e.Message = "the request body is larger than veil accepts"
	case errors.As(err, &small):
		e.Status, e.Code = fasthttp.StatusRequestHeaderFieldsTooLarge, "headers_too_large"
		e.Message = "the request headers are larger than veil accepts"
	case errors.Is(err, fasthttp.ErrTimeout) || isTimeout(err):
		e.Status, e.Code = fasthttp.StatusRequestTimeout, "request_timeout"
		e.Message = "the request was not received in time"
	}
	writeError(ctx, e)
	ctx.SetConnectionClose()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
