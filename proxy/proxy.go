// Package proxy is veil's OpenAI-compatible request handler: it authenticates
// the caller, reads what it needs of the request, asks policy for a plan,
// runs the attempt loop against the providers and copies the answer back,
// streaming server-sent events as they arrive.
package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
)

// Options are the proxy's dependencies and limits.
type Options struct {
	Limits  config.Limits
	Auth    *keys.Authenticator
	Policy  *policy.Policy
	Metrics *metrics.Metrics
	Log     *zap.Logger
	// Health receives every attempt's outcome; nil records nothing.
	Health *health.Registry
}

// Server handles client requests on the proxy listener.
type Server struct {
	limits  config.Limits
	auth    *keys.Authenticator
	policy  *policy.Policy
	metrics *metrics.Metrics
	log     *zap.Logger
	health  *health.Registry

	idPrefix [8]byte
	idSeq    atomic.Uint64
	streams  sync.WaitGroup
}

// New creates a proxy server.
func New(o Options) (*Server, error) {
	if o.Auth == nil || o.Policy == nil || o.Metrics == nil || o.Log == nil {
		return nil, errors.New("proxy: auth, policy, metrics and log are required")
	}
	s := &Server{limits: o.Limits, auth: o.Auth, policy: o.Policy, metrics: o.Metrics, log: o.Log, health: o.Health}
	if s.health == nil {
		s.health = health.NewRegistry()
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("proxy: request id prefix: %w", err)
	}
	hex.Encode(s.idPrefix[:], b[:])
	return s, nil
}

// Wait blocks until every stream handed to fasthttp's body writer has
// finished, so that a drain can wait for them.
func (s *Server) Wait() { s.streams.Wait() }

// exchange is the state of one client request. It is pooled; a streamed
// answer owns it until its body writer returns.
type exchange struct {
	s        *Server
	start    time.Time
	deadline time.Time
	reqID    []byte
	ep       endpoint
	fields   jsonfield.Request
	caller   *keys.Caller
	plan     []policy.Attempt
	planBuf  [4]policy.Attempt
	call     provider.Call
	served   *policy.Attempt
	attempts int
	status   int
	err      string

	// streaming
	streamed    bool
	upResp      *fasthttp.Response
	events      int
	bytesOut    int
	interrupted string
}

var exchangePool = sync.Pool{New: func() any { return &exchange{reqID: make([]byte, 0, 64)} }}

func (s *Server) acquire() *exchange {
	x := exchangePool.Get().(*exchange)
	x.s = s
	x.start = time.Now()
	x.deadline = x.start.Add(s.limits.RequestTimeout)
	return x
}

func release(x *exchange) {
	reqID := x.reqID[:0]
	*x = exchange{reqID: reqID}
	exchangePool.Put(x)
}

// Handle is the fasthttp handler of the proxy listener.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	x := s.acquire()
	s.metrics.InFlight(1)
	x.setRequestID(ctx)
	if s.serve(ctx, x) {
		return // the stream writer finishes the exchange
	}
	x.status = ctx.Response.StatusCode()
	s.finish(x)
}

// serve runs one request; it reports true when the answer is streamed and
// the stream writer took over the exchange.
func (s *Server) serve(ctx *fasthttp.RequestCtx, x *exchange) bool {
	path := ctx.Path()
	if !bytes.HasPrefix(path, []byte("/v1/")) {
		x.fail(ctx, &Error{Status: fasthttp.StatusNotFound, Type: typeInvalidRequest, Code: "unknown_url",
			Message: "Unknown request URL: " + string(ctx.Method()) + " " + string(path) + ". veil serves the OpenAI API under /v1/."})
		return false
	}
	caller, err := s.auth.Authenticate(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	if err != nil {
		s.log.Warn("caller authentication failed", zap.ByteString("request_id", x.reqID),
			zap.String("remote", ctx.RemoteIP().String()), zap.Error(err))
		code := "invalid_caller_token"
		if errors.Is(err, keys.ErrMissingCredentials) {
			code = "missing_caller_token"
		}
		x.fail(ctx, &Error{Status: fasthttp.StatusUnauthorized, Type: typeAuthentication, Code: code,
			Message: "veil: the caller token is missing or invalid; send Authorization: Bearer <veil caller token>"})
		return false
	}
	x.caller = caller
	x.call.Suffix = path[len("/v1"):]
	x.call.Query = ctx.URI().QueryString()
	x.ep = classify(ctx.Method(), x.call.Suffix)
	if x.ep.understood {
		if e := x.scanBody(ctx.PostBody()); e != nil {
			x.fail(ctx, e)
			return false
		}
	}
	plan, err := s.policy.Plan(x.planBuf[:0], &policy.Request{Model: x.fields.Model, Understood: x.ep.understood})
	if err != nil {
		x.fail(ctx, &Error{Status: fasthttp.StatusNotFound, Type: typeInvalidRequest, Code: "model_not_found", Param: "model",
			Message: "The model `" + string(x.fields.Model) + "` is not served by any provider configured in veil."})
		return false
	}
	x.plan = plan
	stream := !x.ep.understood || (x.ep.streams && x.fields.Stream)
	var last *Error
	for i := range x.plan {
		a := &x.plan[i]
		x.attempts++
		var streamed bool
		streamed, last = s.attempt(ctx, x, a, stream)
		if last == nil {
			return streamed
		}
		s.log.Warn("upstream attempt failed", zap.ByteString("request_id", x.reqID),
			zap.String("provider", a.Provider.Name()), zap.Int("attempt", x.attempts), zap.String("error", last.Message))
	}
	x.fail(ctx, last)
	return false
}

// scanBody reads model and stream settings without decoding the body.
func (x *exchange) scanBody(body []byte) *Error {
	if err := jsonfield.ScanRequest(body, &x.fields); err != nil {
		e := &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "invalid_json",
			Message: "veil could not parse the JSON body of the request: " + err.Error()}
		var fe *jsonfield.FieldError
		if errors.As(err, &fe) {
			e.Code, e.Param = "invalid_type", fe.Field
			e.Message = "Invalid type for '" + fe.Field + "': " + fe.Msg
		}
		return e
	}
	if x.ep.needsModel && len(x.fields.Model) == 0 {
		return &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "missing_required_parameter",
			Param: "model", Message: "you must provide a model parameter"}
	}
	return nil
}

// attempt sends the request to one planned target. A nil error means the
// client has its answer (or a stream writer will give it); an error means
// nothing reached the client and the next attempt may run.
func (s *Server) attempt(ctx *fasthttp.RequestCtx, x *exchange, a *policy.Attempt, stream bool) (bool, *Error) {
	req := fasthttp.AcquireRequest()
	copyRequestHeaders(&req.Header, &ctx.Request.Header, x.ep.understood)
	req.SetBodyRaw(ctx.PostBody())
	x.call.Model = a.Model
	x.call.Key = a.Key
	if err := a.Provider.Prepare(req, &x.call); err != nil {
		fasthttp.ReleaseRequest(req)
		return false, &Error{Status: fasthttp.StatusBadGateway, Type: typeServer, Code: "upstream_request_failed",
			Message: "veil could not prepare the request for provider " + a.Provider.Name() + ": " + err.Error()}
	}
	var resp *fasthttp.Response
	if stream {
		resp = fasthttp.AcquireResponse()
		resp.StreamBody = true
	} else {
		// Read the upstream answer straight into the client response.
		resp = &ctx.Response
	}
	t0 := time.Now()
	err := a.Provider.Do(req, resp, x.deadline)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		s.observeAttempt(a, 0, t0)
		if stream {
			fasthttp.ReleaseResponse(resp)
		} else {
			resp.Reset()
			x.setRequestIDHeader(ctx)
		}
		return false, upstreamError(a.Provider.Name(), err)
	}
	status := resp.StatusCode()
	s.observeAttempt(a, status, t0)
	x.served = a
	if !stream {
		stripResponseHeaders(&ctx.Response.Header)
		x.setServedHeaders(ctx)
		return false, nil
	}
	copyResponseHeaders(&ctx.Response.Header, &resp.Header)
	x.setServedHeaders(ctx)
	if bytes.HasPrefix(resp.Header.ContentType(), []byte("text/event-stream")) {
		x.upResp = resp
		x.streamed = true
		x.status = status
		s.streams.Add(1)
		ctx.SetBodyStreamWriter(x.pump)
		return true, nil
	}
	// A streamed call that did not answer with SSE (an error, or a
	// pass-through download): hand the body on as it arrives.
	ctx.Response.SetBodyStream(&upstreamBody{resp: resp}, resp.Header.ContentLength())
	return false, nil
}

// observeAttempt records an attempt's status (0: no answer) and time to
// response headers in metrics and health.
func (s *Server) observeAttempt(a *policy.Attempt, status int, t0 time.Time) {
	now := time.Now()
	took := now.Sub(t0)
	s.metrics.ObserveUpstream(a.Provider.Name(), a.Model, status, took.Seconds())
	if t := s.health.Target(a.Provider.Name()); t != nil {
		t.Record(status, took, now)
	}
}

// upstreamError maps a transport failure to veil's own error.
func upstreamError(name string, err error) *Error {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return &Error{Status: fasthttp.StatusGatewayTimeout, Type: typeServer, Code: "upstream_timeout",
			Message: "veil: provider " + name + " did not answer in time"}
	}
	return &Error{Status: fasthttp.StatusBadGateway, Type: typeServer, Code: "upstream_unavailable",
		Message: "veil: provider " + name + " is unreachable: " + err.Error()}
}

// fail answers with veil's own error.
func (x *exchange) fail(ctx *fasthttp.RequestCtx, e *Error) {
	x.err = e.Code
	writeError(ctx, e)
}

// setRequestID keeps a well-formed client X-Request-ID or makes one.
func (x *exchange) setRequestID(ctx *fasthttp.RequestCtx) {
	if id := ctx.Request.Header.Peek(HeaderRequestID); validRequestID(id) {
		x.reqID = append(x.reqID[:0], id...)
	} else {
		x.reqID = append(x.reqID[:0], x.s.idPrefix[:]...)
		x.reqID = append(x.reqID, '-')
		x.reqID = strconv.AppendUint(x.reqID, x.s.idSeq.Add(1), 36)
	}
	x.setRequestIDHeader(ctx)
}

func (x *exchange) setRequestIDHeader(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetBytesV(HeaderRequestID, x.reqID)
}

// validRequestID accepts 1 to 128 characters of [A-Za-z0-9._:-].
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// setServedHeaders tells the client what served the call.
func (x *exchange) setServedHeaders(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	x.setRequestIDHeader(ctx)
	h.Set(HeaderProvider, x.served.Provider.Name())
	if len(x.served.Model) > 0 {
		h.SetBytesV(HeaderModel, x.served.Model)
	}
	h.Set(HeaderKeySource, x.served.Key.Source)
	h.Set(HeaderAttempts, smallInt(x.attempts))
}

var smallInts = [...]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

func smallInt(n int) string {
	if n >= 0 && n < len(smallInts) {
		return smallInts[n]
	}
	return strconv.Itoa(n)
}

// finish records the access line and metrics of a finished exchange and
// returns it to the pool.
func (s *Server) finish(x *exchange) {
	elapsed := time.Since(x.start)
	providerName := ""
	if x.served != nil {
		providerName = x.served.Provider.Name()
	}
	s.metrics.ObserveRequest(x.ep.name, providerName, x.fields.Model, x.status, elapsed.Seconds())
	s.metrics.InFlight(-1)
	if ce := s.log.Check(zap.InfoLevel, "request"); ce != nil {
		callerName := ""
		if x.caller != nil {
			callerName = x.caller.Name
		}
		fields := [...]zap.Field{
			zap.ByteString("request_id", x.reqID),
			zap.String("caller", callerName),
			zap.String("endpoint", x.ep.name),
			zap.String("provider", providerName),
			zap.ByteString("model", x.fields.Model),
			zap.Bool("stream", x.streamed),
			zap.Int("status", x.status),
			zap.Int("attempts", x.attempts),
			zap.String("error", x.err),
			zap.String("interrupted", x.interrupted),
			zap.Duration("latency", elapsed),
		}
		ce.Write(fields[:]...)
	}
	release(x)
}

// upstreamBody hands a non-SSE streamed upstream body to the client and
// releases the upstream response when fasthttp closes it.
type upstreamBody struct {
	resp *fasthttp.Response
}

func (b *upstreamBody) Read(p []byte) (int, error) { return b.resp.BodyStream().Read(p) }

// Close closes the upstream stream and releases the response.
func (b *upstreamBody) Close() error {
	err := b.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(b.resp)
	return err
}
