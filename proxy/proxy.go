// Package proxy is veil's OpenAI-compatible request handler: it authenticates
// the caller, reads what it needs of the request, asks policy for a plan,
// runs the attempt loop against the providers and copies the answer back,
// streaming server-sent events as they arrive.
package proxy

import (
	"bytes"
	"context"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/quota"
	"github.com/wedsync/veil/usage"
)

// exchange is the state of one client request. It is pooled; a streamed
// answer owns it until its body writer returns.
type exchange struct {
	s        *Server
	rt       *Runtime
	start    time.Time
	deadline time.Time
	reqID    []byte
	ep       endpoint
	fields   jsonfield.Request
	caller   *auth.Caller
	supplier []byte
	workflow string
	plan     []policy.Attempt
	planBuf  [4]policy.Attempt
	call     provider.Call
	served   *policy.Attempt
	key      *keys.Key
	attempts int
	status   int
	err      string

	// body is what goes upstream: the client's body, or bodyBuf when veil
	// rewrote it (to ask for stream usage).
	body          []byte
	bodyBuf       []byte
	modelBody     []byte // the body for a fallback target's own model
	queryBuf      []byte // the client's query without credentials
	injectedUsage bool
	tokens        usage.Tokens
	respModel     []byte
	attemptLog    [4]usage.Attempt
	attemptCount  int
	ttft          time.Duration
	attemptStart  time.Time // start of the latest attempt
	fellBack      bool      // the fallback to platform keys was audited
	sawDone       bool
	ticket        quota.Ticket
	admitted      bool
	reason        string
	scratch       []byte
	frame         []byte
	held          []byte
	reader        sse.Source
	// resume is set for streams that may be resumed (limits.stream_resume).
	resume *resumeState
	cache  cacheState
	// migration is the supplier's migration this request is part of.
	migration migration
	// shadow is set when the request is also sent to the other system.
	shadow *shadowState

	// streaming
	streamed    bool
	upResp      *fasthttp.Response
	events      int
	bytesOut    int
	interrupted string
}

var exchangePool = sync.Pool{New: func() any {
	return &exchange{reqID: make([]byte, 0, 64), supplier: make([]byte, 0, 64), respModel: make([]byte, 0, 64)}
}}

func (s *Server) acquire() *exchange {
	x := exchangePool.Get().(*exchange)
	x.s = s
	x.rt = s.rt.Load()
	x.start = time.Now()
	x.deadline = x.start.Add(s.limits.RequestTimeout)
	return x
}

func release(x *exchange) {
	x.releaseResume()
	if x.shadow != nil {
		fasthttp.ReleaseRequest(x.shadow.req)
	}
	*x = exchange{reqID: x.reqID[:0], supplier: x.supplier[:0], bodyBuf: x.bodyBuf[:0], modelBody: x.modelBody[:0], respModel: x.respModel[:0],
		queryBuf: x.queryBuf[:0], scratch: x.scratch[:0], frame: x.frame[:0], held: x.held[:0], cache: x.cache.reset()}
	exchangePool.Put(x)
}

// Handle is the fasthttp handler of the proxy listener.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	x := s.acquire()
	s.metrics.InFlight(1)
	s.open.Add(1)
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
	if e := framingError(ctx.Request.Header.RawHeaders()); e != nil {
		x.fail(ctx, e)
		ctx.SetConnectionClose()
		return false
	}
	path := ctx.Path()
	if !bytes.HasPrefix(path, []byte("/v1/")) {
		x.fail(ctx, &Error{Status: fasthttp.StatusNotFound, Type: typeInvalidRequest, Code: "unknown_url",
			Message: "Unknown request URL: " + string(ctx.Method()) + " " + string(path) + ". veil serves the OpenAI API under /v1/."})
		return false
	}
	id, failure := x.rt.Auth.Authenticate(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization),
		ctx.Request.Header.Peek("X-Supplier-Id"), ctx.RemoteIP().String())
	if failure != nil {
		x.fail(ctx, &Error{Status: failure.Status, Type: failure.Type(), Code: failure.Code, Message: failure.Message})
		return false
	}
	x.caller = id.Caller
	x.supplier = append(x.supplier[:0], id.Supplier...)
	x.call.Suffix = path[len("/v1"):]
	x.call.Query = ctx.URI().QueryString()
	if len(x.call.Query) > 0 {
		x.queryBuf = appendSafeQuery(x.queryBuf[:0], x.call.Query)
		x.call.Query = x.queryBuf
	}
	x.ep = classify(ctx.Method(), x.call.Suffix)
	if x.ep.understood {
		if e := x.scanBody(ctx.PostBody()); e != nil {
			x.fail(ctx, e)
			return false
		}
		if len(x.fields.Model) > 0 && !validModel(x.fields.Model) {
			x.fail(ctx, &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "invalid_model", Param: "model",
				Message: "The model name is not valid: veil accepts up to 256 letters, digits and . _ - : / @ +, without empty, . or .. path segments."})
			return false
		}
	}
	workflow := ctx.Request.Header.Peek("X-Workflow")
	x.workflow = s.interns.get(workflow)
	spread := s.spread.Add(1) * 0x9E3779B97F4A7C15
	source, fallback := s.route(x, spread)
	plan, err := x.rt.Policy.Plan(x.planBuf[:0], &policy.Request{Model: x.fields.Model, Understood: x.ep.understood,
		Supplier: x.supplier, Workflow: workflow, Now: x.start, Spread: spread, Source: source, Fallback: fallback,
		Health: s.health})
	switch {
	case errors.Is(err, policy.ErrModelNotAllowed):
		x.fail(ctx, &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "model_not_allowed", Param: "model",
			Message: "The model `" + string(x.fields.Model) + "` is not allowed for the " + x.workflow + " workflow."})
		return false
	case err != nil:
		x.fail(ctx, &Error{Status: fasthttp.StatusNotFound, Type: typeInvalidRequest, Code: "model_not_found", Param: "model",
			Message: "The model `" + string(x.fields.Model) + "` is not served by any provider configured in veil."})
		return false
	case x.ep.needsModel && len(plan[0].Model) == 0:
		x.fail(ctx, &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "missing_required_parameter",
			Param: "model", Message: "you must provide a model parameter"})
		return false
	}
	x.plan = plan
	x.body = ctx.PostBody()
	if x.ep.understood && !bytes.Equal(plan[0].Model, x.fields.Model) {
		// An alias or a workflow's model: the provider gets the real one.
		if b, err := jsonfield.SetString(x.bodyBuf[:0], x.body, "model", s.interns.get(plan[0].Model)); err == nil {
			x.bodyBuf, x.body = b, b
		}
	}
	if s.lookup(ctx, x, workflow) {
		return false // answered from the cache: no quota spent, no provider asked
	}
	s.startShadow(ctx, x, spread)
	if x.rt.Quota != nil && x.plan[0].Source == billing.PlatformKey {
		if e := s.capTier(x); e != nil {
			x.fail(ctx, e)
			return false
		}
		if !s.admit(ctx, x) {
			return false
		}
		x.admitted = true
	}
	stream := !x.ep.understood || (x.ep.streams && x.fields.Stream)
	if stream && x.ep.understood && x.ep.usageOption && !x.fields.IncludeUsage {
		// Ask for the usage chunk; pump removes it (and the "usage":null of
		// every other chunk) again, so the client sees what it asked for.
		if b, err := jsonfield.SetIncludeUsage(x.scratch[:0], x.body); err == nil {
			// x.body may live in bodyBuf: the two buffers swap roles.
			x.bodyBuf, x.scratch = b, x.bodyBuf[:0]
			x.body, x.injectedUsage = b, true
		}
	}
	var last *Error
	for i := range x.plan {
		a := &x.plan[i]
		if a.Source == billing.PlatformKey && x.rt.Quota != nil && !x.admitted {
			// A client-first plan falling back to platform keys: the tier
			// applies from here on.
			if last = s.admitFallback(x, a); last != nil {
				continue
			}
		}
		lastPlanned := i == len(x.plan)-1
		if a.Source == billing.ClientKey && !lastPlanned && !s.keyHealth.Allow(a.Provider.Name(), x.supplier, time.Now()) {
			// The provider refused this supplier's key moments ago: go
			// straight to the fallback until the cooldown's probe.
			last = &Error{Status: fasthttp.StatusUnauthorized, Type: typeAuthentication, Code: "supplier_key_held_out",
				Message: "veil: provider " + a.Provider.Name() + " refused the supplier's own key recently"}
			continue
		}
		if i > 0 && a.Source == billing.PlatformKey && x.plan[0].Source == billing.ClientKey {
			x.reason = "platform_fallback"
			if !x.fellBack {
				x.fellBack = true
				s.auditFallback(x, a, last)
			}
		}
		if !lastPlanned && !s.health.Allow(a.Provider.Name(), time.Now()) {
			continue // its breaker's half-open probe is taken by another call
		}
		s.health.Budget(a.Provider.Name()).Request(time.Now())
		var streamed bool
		for tries := 0; ; tries++ {
			x.attempts++
			streamed, last = s.attempt(ctx, x, a, stream, lastPlanned, tries)
			if last == nil {
				return streamed // x may belong to the stream writer now
			}
			if !lastPlanned {
				break
			}
			if !last.retry {
				if wait, ok := s.mayRetry(x, a, tries, 0); ok && transportRetryable(last) {
					last.wait = wait
				} else {
					break
				}
			}
			// The only target left: try it again after a backoff.
			time.Sleep(last.wait)
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
	return nil
}

// attempt sends the request to one planned target. A nil error means the
// client has its answer (or a stream writer will give it); an error means
// nothing reached the client and the next attempt may run. Within one
// attempt, a key the provider refused (401, a supplier key that was just
// rotated) or rate-limited (429, a platform pool key) is swapped for
// another once before the answer goes to the client.
func (s *Server) attempt(ctx *fasthttp.RequestCtx, x *exchange, a *policy.Attempt, stream, lastPlanned bool, tries int) (bool, *Error) {
	key, e := s.keyFor(x, a)
	if e != nil {
		return false, e
	}
	for retried := false; ; retried = true {
		if retried {
			x.attempts++
		}
		resp, err := s.send(ctx, x, a, key, stream)
		if err != nil {
			return false, err
		}
		status := resp.StatusCode()
		if !retried {
			if next := s.swapKey(x, a, key, resp); next != nil {
				s.discard(ctx, x, resp, stream)
				key = next
				continue
			}
		}
		if stream && !lastPlanned && status/100 == 2 && isEventStream(resp) {
			// Hold the client's answer until the first content event, so
			// that a stream failing before it fails over invisibly.
			rd, err := x.hold(resp, a)
			if err != nil {
				s.discard(ctx, x, resp, stream)
				x.tokens = usage.Tokens{}
				if t := s.health.Target(a.Provider.Name()); t != nil {
					t.Record(0, 0, time.Now()) // a failure of the target, for its breaker
				}
				if n := x.attemptCount - 1; n >= 0 && n < len(x.attemptLog) {
					x.attemptLog[n].Error = "upstream_stream_error"
				}
				return false, &Error{Status: fasthttp.StatusBadGateway, Type: typeServer, Code: "upstream_stream_error",
					Message: "veil: provider " + a.Provider.Name() + "'s stream failed before its first token: " + err.Error()}
			}
			x.reader = rd
		}
		if !lastPlanned && key.Source() == billing.ClientKey && (status == fasthttp.StatusUnauthorized || status == fasthttp.StatusForbidden) {
			// The supplier's own key is refused even after a refresh: the
			// plan's platform attempts (hybrid, or a permitted fallback)
			// take over.
			s.discard(ctx, x, resp, stream)
			s.keyHealth.Refused(a.Provider.Name(), x.supplier, time.Now())
			s.audit(x, "supplier key refused; falling back to the next planned key", a, key, status)
			return false, &Error{Status: status, Type: typeAuthentication, Code: "supplier_key_refused",
				Message: "veil: provider " + a.Provider.Name() + " refused the supplier's own key"}
		}
		if key.Source() == billing.ClientKey && status != fasthttp.StatusUnauthorized && status != fasthttp.StatusForbidden {
			s.keyHealth.Served(a.Provider.Name(), x.supplier)
		}
		if failsOver(status) {
			e := &Error{Status: status, Type: typeServer, Code: "upstream_status",
				Message: "veil: provider " + a.Provider.Name() + " answered " + strconv.Itoa(status)}
			if !lastPlanned {
				// Nothing reached the client yet: the next planned target
				// answers instead.
				s.discard(ctx, x, resp, stream)
				return false, e
			}
			if wait, ok := s.mayRetry(x, a, tries, retryHint(&resp.Header)); ok {
				s.discard(ctx, x, resp, stream)
				e.retry, e.wait = true, wait
				return false, e
			}
		}
		x.served, x.key = a, key
		if status == fasthttp.StatusUnauthorized {
			// Providers quote part of a key they refuse ("Incorrect API
			// key provided: sk-ab***wxyz"); the client learns nothing of
			// any key but its fingerprint.
			s.discard(ctx, x, resp, stream)
			x.setServedHeaders(ctx)
			x.fail(ctx, refusedKey(a, key))
			return false, nil
		}
		return s.deliver(ctx, x, resp, status, stream), nil
	}
}

// refusedKey is the answer to a key the provider refused, in OpenAI's
// shape for it.
func refusedKey(a *policy.Attempt, key *keys.Key) *Error {
	whose := "WedSync's platform key"
	if key.Source() == billing.ClientKey {
		whose = "the supplier's own key"
	}
	return &Error{Status: fasthttp.StatusUnauthorized, Type: typeInvalidRequest, Code: "invalid_api_key",
		Message: "Incorrect API key provided: provider " + a.Provider.Name() + " refused " + whose + " (fingerprint " + key.Fingerprint() + ")."}
}

func isEventStream(resp *fasthttp.Response) bool {
	return bytes.HasPrefix(resp.Header.ContentType(), []byte("text/event-stream"))
}

// audit logs a key event of an exchange (fingerprints only).
func (s *Server) audit(x *exchange, msg string, a *policy.Attempt, key *keys.Key, status int) {
	s.auditWarn(msg, zap.ByteString("request_id", x.reqID), zap.ByteString("supplier", x.supplier),
		zap.String("provider", a.Provider.Name()), zap.Object("key", key), zap.Int("status", status))
}

// auditWarn writes one warning to the audit trail and, for operators
// watching the service, to the operational log.
func (s *Server) auditWarn(msg string, fields ...zap.Field) {
	s.log.Warn(msg, fields...)
	s.auditor.Warn(msg, fields...)
}

// auditFallback writes that a call planned on the supplier's own key moves
// to platform keys, billed to the platform, and why.
func (s *Server) auditFallback(x *exchange, a *policy.Attempt, cause *Error) {
	why, status := "client_key_unavailable", 0
	if cause != nil {
		why, status = cause.Code, cause.Status
	}
	s.auditWarn("supplier call falls back to platform keys", zap.ByteString("request_id", x.reqID),
		zap.ByteString("supplier", x.supplier), zap.String("provider", a.Provider.Name()), zap.ByteString("model", a.Model),
		zap.String("cause", why), zap.Int("status", status), zap.String("billed", string(billing.PaidByPlatform)))
}

// mayRetry decides whether the last target left may be tried again, and
// after how long: the upstream's Retry-After when it gave one, else full
// jitter over an exponential backoff; never past the request's deadline or
// limits.max_retry_wait, never more than limits.max_retries times, and only
// while the target's retry budget allows.
func (s *Server) mayRetry(x *exchange, a *policy.Attempt, tries int, hint time.Duration) (time.Duration, bool) {
	if tries >= s.limits.Retries() {
		return 0, false
	}
	wait := hint
	if wait <= 0 {
		ceiling := s.limits.RetryBackoff << tries
		wait = time.Duration(mrand.Int64N(int64(ceiling) + 1)) //nolint:gosec // G404: backoff jitter, not a secret
	}
	now := time.Now()
	if wait > s.limits.MaxRetryWait || now.Add(wait).After(x.deadline) {
		return 0, false
	}
	if !s.health.Budget(a.Provider.Name()).Retry(now) {
		s.metrics.RetryDenied(a.Provider.Name())
		return 0, false
	}
	return wait, true
}

// headerInt reads a non-negative integer header; -1 when absent or not a
// number.
func headerInt(h *fasthttp.ResponseHeader, name string) int64 {
	v := h.Peek(name)
	if len(v) == 0 {
		return -1
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// retryHint is how long a 429 or 503 asks to wait (retry-after-ms, or
// Retry-After in seconds or as a date); 0 when it says nothing.
func retryHint(h *fasthttp.ResponseHeader) time.Duration {
	if len(h.Peek("Retry-After-Ms")) == 0 && len(h.Peek("Retry-After")) == 0 {
		return 0
	}
	return retryAfter(h)
}

// transportRetryable reports whether an attempt that got no answer may be
// tried again: a refused or reset connection or a timeout.
func transportRetryable(e *Error) bool {
	return e.Code == "upstream_unavailable" || e.Code == "upstream_timeout"
}

// failsOver reports whether an upstream status sends the call to the next
// planned target: the provider is overloaded, failing or timing out.
// Request errors (400, 404, 413, 422) and key errors pass through.
func failsOver(status int) bool {
	switch status {
	case 408, 409, 429, 500, 502, 503, 504, 529:
		return true
	}
	return false
}

// keyFor returns the key an attempt uses: the next platform key of the
// provider's pool, or the supplier's own key from memory.
func (s *Server) keyFor(x *exchange, a *policy.Attempt) (*keys.Key, *Error) {
	if a.Source == billing.PlatformKey {
		return a.Provider.Platform().Next(time.Now()), nil
	}
	if s.keys == nil {
		return nil, keyMissing(x.supplier, a.Provider.Name())
	}
	k, err := s.keys.Get(context.Background(), string(x.supplier), a.Provider.Name())
	switch {
	case err == nil:
		return k, nil
	case errors.Is(err, keys.ErrKeyMissing):
		return nil, keyMissing(x.supplier, a.Provider.Name())
	default:
		s.log.Warn("supplier key unavailable", zap.ByteString("request_id", x.reqID), zap.ByteString("supplier", x.supplier),
			zap.String("provider", a.Provider.Name()), zap.Error(err))
		return nil, &Error{Status: fasthttp.StatusServiceUnavailable, Type: typeUnavailable, Code: "supplier_key_unavailable",
			Message: "veil cannot currently load supplier " + string(x.supplier) + "'s own " + a.Provider.Name() +
				" key: its key store has been unreachable for too long; try again later"}
	}
}

func keyMissing(supplier []byte, providerName string) *Error {
	return &Error{Status: fasthttp.StatusForbidden, Type: "permission_error", Code: "supplier_key_missing",
		Message: "supplier " + string(supplier) + " uses its own " + providerName + " key, and none is stored for it; a Vault admin must add it"}
}

// send makes one upstream round trip with key. The answer's headers are
// in; for a stream, its body is still to be read.
func (s *Server) send(ctx *fasthttp.RequestCtx, x *exchange, a *policy.Attempt, key *keys.Key, stream bool) (*fasthttp.Response, *Error) {
	var resp *fasthttp.Response
	if !stream {
		// Read the upstream answer straight into the client response.
		resp = &ctx.Response
	}
	body := x.body
	if x.ep.understood && len(a.Model) > 0 && !bytes.Equal(a.Model, x.plan[0].Model) {
		// A fallback serving another model than the plan's first: the
		// body names the model it asks.
		if b, err := jsonfield.SetString(x.modelBody[:0], body, "model", s.interns.get(a.Model)); err == nil {
			x.modelBody, body = b, b
		}
	}
	resp, e := s.roundTrip(x, a, key, &ctx.Request.Header, body, resp)
	if e != nil && !stream {
		s.discard(ctx, x, resp, false)
	}
	return resp, e
}

// roundTrip sends body with the client's headers hdr to a's provider with
// key, reading the answer into resp, or, when resp is nil, into a pooled
// response whose body is streamed. It records the attempt in health,
// metrics and the exchange's attempt log. A pooled response is released
// when an error is returned.
func (s *Server) roundTrip(x *exchange, a *policy.Attempt, key *keys.Key, hdr *fasthttp.RequestHeader, body []byte,
	resp *fasthttp.Response) (*fasthttp.Response, *Error) {
	req := fasthttp.AcquireRequest()
	copyRequestHeaders(&req.Header, hdr, x.ep.understood)
	req.SetBodyRaw(body)
	x.call.Model = a.Model
	x.call.Key = key
	if err := a.Provider.Prepare(req, &x.call); err != nil {
		fasthttp.ReleaseRequest(req)
		var re *provider.RequestError
		if errors.As(err, &re) {
			// The provider's schema cannot carry the call as asked: the
			// client's to fix, unless a later planned target can serve it.
			return resp, &Error{Status: re.Status, Type: typeInvalidRequest, Code: re.Code, Param: re.Param, Message: re.Message}
		}
		return resp, &Error{Status: fasthttp.StatusBadGateway, Type: typeServer, Code: "upstream_request_failed",
			Message: "veil could not prepare the request for provider " + a.Provider.Name() + ": " + err.Error()}
	}
	pooled := resp == nil
	if pooled {
		resp = fasthttp.AcquireResponse()
		resp.StreamBody = true
	}
	t0 := time.Now()
	err := a.Provider.Do(req, resp, t0.Add(s.limits.AttemptTimeout), x.deadline)
	fasthttp.ReleaseRequest(req)
	if err == nil {
		// From here on the answer is in OpenAI's shape, whoever gave it.
		err = a.Provider.Translate(resp, &x.call)
	}
	if err != nil {
		s.observeAttempt(a, 0, t0)
		e := upstreamError(a.Provider.Name(), err)
		x.logAttempt(a, key, 0, e.Code, t0)
		if pooled {
			_ = resp.CloseBodyStream()
			fasthttp.ReleaseResponse(resp)
			resp = nil
		}
		return resp, e
	}
	s.observeAttempt(a, resp.StatusCode(), t0)
	x.logAttempt(a, key, resp.StatusCode(), "", t0)
	if t := s.health.Target(a.Provider.Name()); t != nil && key.Source() == billing.PlatformKey {
		// The platform keys' capacity left, for peak-season monitoring.
		t.Capacity(headerInt(&resp.Header, "X-Ratelimit-Remaining-Requests"), headerInt(&resp.Header, "X-Ratelimit-Remaining-Tokens"))
	}
	return resp, nil
}

// swapKey decides whether a key should be replaced before the answer goes
// out, and returns the replacement.
func (s *Server) swapKey(x *exchange, a *policy.Attempt, key *keys.Key, resp *fasthttp.Response) *keys.Key {
	switch status := resp.StatusCode(); {
	case status == fasthttp.StatusUnauthorized && key.Source() == billing.ClientKey && s.keys != nil:
		next, err := s.keys.Rejected(context.Background(), string(x.supplier), a.Provider.Name(), key)
		if err == nil {
			s.log.Info("supplier key refused by the provider; retrying with the newer version", zap.ByteString("request_id", x.reqID),
				zap.ByteString("supplier", x.supplier), zap.Object("refused", key), zap.Object("next", next))
			return next
		}
		if prev := s.keys.Previous(string(x.supplier), a.Provider.Name()); prev != nil && prev != key {
			s.log.Info("supplier key refused by the provider; retrying with the previous version", zap.ByteString("request_id", x.reqID),
				zap.ByteString("supplier", x.supplier), zap.Object("refused", key), zap.Object("previous", prev))
			return prev
		}
	case status == fasthttp.StatusTooManyRequests && key.Source() == billing.PlatformKey && a.Provider.Platform().Len() > 1:
		now := time.Now()
		pool := a.Provider.Platform()
		pool.Cooldown(key, now, retryAfter(&resp.Header))
		return pool.Other(key, now)
	}
	return nil
}

// discard drops an upstream answer that will not reach the client.
func (s *Server) discard(ctx *fasthttp.RequestCtx, x *exchange, resp *fasthttp.Response, stream bool) {
	if stream {
		_ = resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
		return
	}
	resp.Reset()
	x.setRequestIDHeader(ctx)
}

// deliver hands the upstream answer to the client; it reports true when a
// stream writer took over the exchange.
func (s *Server) deliver(ctx *fasthttp.RequestCtx, x *exchange, resp *fasthttp.Response, status int, stream bool) bool {
	if !stream {
		stripResponseHeaders(&ctx.Response.Header)
		x.setServedHeaders(ctx)
		if x.ep.understood && status/100 == 2 {
			usage.FromBody(ctx.Response.Body(), &x.tokens)
		}
		if x.cache.store {
			s.storePlain(x, &ctx.Response)
		}
		if x.shadow != nil {
			x.shadow.shadowText(ctx.Response.Body(), false)
		}
		return false
	}
	copyResponseHeaders(&ctx.Response.Header, &resp.Header)
	x.setServedHeaders(ctx)
	if isEventStream(resp) {
		x.cache.collect = x.cache.store && status == fasthttp.StatusOK
		x.startResume(ctx)
		x.upResp = resp
		x.streamed = true
		x.status = status
		s.streams.Add(1)
		ctx.SetBodyStreamWriter(x.pump)
		return true
	}
	// A streamed call that did not answer with SSE (an error, or a
	// pass-through download): hand the body on as it arrives.
	ctx.Response.SetBodyStream(&upstreamBody{resp: resp}, resp.Header.ContentLength())
	return false
}

// retryAfter reads how long a 429 asks to wait: retry-after-ms, or
// Retry-After in seconds or as an HTTP date; 5 seconds when absent.
func retryAfter(h *fasthttp.ResponseHeader) time.Duration {
	if v := h.Peek("Retry-After-Ms"); len(v) > 0 {
		if ms, err := strconv.ParseFloat(string(v), 64); err == nil && ms >= 0 {
			return clampHint(ms / 1000)
		}
	}
	if v := h.Peek("Retry-After"); len(v) > 0 {
		if secs, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return clampHint(float64(secs))
		}
		if t, err := fasthttp.ParseHTTPDate(v); err == nil {
			return clampHint(time.Until(t).Seconds())
		}
	}
	return 5 * time.Second
}

// maxRetryHint bounds what a provider's retry hint can say: a day. Callers
// bound it further (limits.max_retry_wait, provider.MaxCooldown).
const maxRetryHint = 24 * time.Hour

// clampHint turns a hint in seconds into a duration in [0, maxRetryHint],
// so that absurd hints (1e300, an overflowing integer) cannot wrap around.
func clampHint(secs float64) time.Duration {
	switch {
	case !(secs > 0): // negative, zero or NaN
		return 0
	case secs >= maxRetryHint.Seconds():
		return maxRetryHint
	}
	return time.Duration(secs * float64(time.Second))
}

// logAttempt keeps an attempt for the usage record.
func (x *exchange) logAttempt(a *policy.Attempt, key *keys.Key, status int, code string, t0 time.Time) {
	x.attemptStart = t0
	if x.attemptCount < len(x.attemptLog) {
		x.attemptLog[x.attemptCount] = usage.Attempt{Provider: a.Provider.Name(), KeySource: key.Source(), Status: status,
			Error: code, LatencyMS: msSince(t0)}
	}
	x.attemptCount++
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

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
	h.Set(HeaderKeySource, string(x.key.Source()))
	h.Set(HeaderAttempts, smallInt(x.attempts))
	if x.served != &x.plan[0] {
		h.Set(HeaderFailover, "true")
	}
	if x.ep.understood {
		h.Set(HeaderCache, x.cache.header())
	}
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
	if x.streamed {
		s.storeStream(x)
	}
	x.endFlight()
	elapsed := time.Since(x.start)
	providerName := ""
	if x.served != nil {
		providerName = x.served.Provider.Name()
		if t := s.health.Target(providerName); t != nil && x.ttft > 0 {
			t.FirstToken(x.start.Add(x.ttft).Sub(x.attemptStart))
		}
		if x.served != &x.plan[0] {
			s.metrics.Failover(x.plan[0].Provider.Name(), providerName)
		}
	}
	s.metrics.ObserveRequest(x.ep.name, providerName, x.fields.Model, x.status, elapsed.Seconds())
	s.metrics.InFlight(-1)
	defer s.open.Add(-1) // after the usage record is handed on
	if x.caller != nil {
		cost := s.record(x, providerName, elapsed)
		s.settle(x, cost)
		s.observeMigration(x, elapsed, cost)
		s.finishShadow(x, elapsed, cost)
	}
	if ce := s.log.Check(zap.InfoLevel, "request"); ce != nil {
		callerName := ""
		if x.caller != nil {
			callerName = x.caller.Name
		}
		fields := [...]zap.Field{
			zap.ByteString("request_id", x.reqID),
			zap.String("caller", callerName),
			zap.ByteString("supplier", x.supplier),
			zap.String("key_source", string(keySource(x.key))),
			zap.String("endpoint", x.ep.name),
			zap.String("provider", providerName),
			zap.ByteString("model", x.fields.Model),
			zap.Bool("stream", x.streamed),
			zap.Int("status", x.status),
			zap.Int("attempts", x.attempts),
			zap.String("cache", x.cache.header()),
			zap.String("error", x.err),
			zap.String("interrupted", x.interrupted),
			zap.Int64("prompt_tokens", x.tokens.Prompt),
			zap.Int64("completion_tokens", x.tokens.Completion),
			zap.Duration("latency", elapsed),
		}
		ce.Write(fields[:]...)
	}
	release(x)
}

func keySource(k *keys.Key) billing.KeySource {
	if k == nil {
		return ""
	}
	return k.Source()
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
