package proxy

import (
	"bytes"
	"context"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/health"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/internal/logging"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
)

// run sends an admitted request to its planned targets in order until one
// answers for the client; it reports true when the answer is streamed and
// the stream writer took over the exchange. What happens after each
// attempt is decided by decide.
func (s *Server) run(ctx *fasthttp.RequestCtx, x *exchange) bool {
	var last *Error
	for i := range x.plan {
		a := &x.plan[i]
		lastPlanned := i == len(x.plan)-1
		if e, ok := s.available(x, a, lastPlanned, last); !ok {
			if e != nil {
				last = e
			}
			continue
		}
		if e := s.takeSlot(x, a); e != nil {
			last = e // this supplier's share of the provider is taken
			continue
		}
		s.health.Budget(a.Provider.Name()).Request(time.Now())
		x.tried = a
		streamed, e := s.runTarget(ctx, x, a, lastPlanned)
		if e == nil {
			if !streamed {
				s.releaseSlot(x) // a stream gives its slot back when it ends
			}
			return streamed // x may belong to the stream writer now
		}
		last = e
		if e == errClientGone || departed(ctx) {
			// The client hung up while the target kept it waiting: no
			// other target is asked for an answer nobody will read.
			s.releaseSlot(x)
			x.clientLeft(ctx)
			return false
		}
		if ok, repeated := s.quiet.Allow("upstream attempt failed:" + a.Provider.Name() + ":" + e.Code); ok {
			fields := []zap.Field{zap.ByteString("request_id", x.reqID), zap.String("provider", a.Provider.Name()),
				zap.Int("attempt", x.attempts), zap.String("error", last.Message)}
			if repeated > 0 { // as the limiter's own lines: only when some were held back
				fields = append(fields, zap.Uint64(logging.RepeatedField, repeated))
			}
			s.log.Warn("upstream attempt failed", fields...)
		}
	}
	s.releaseSlot(x)
	x.failAfterAttempts(ctx, last)
	return false
}

// failAfterAttempts answers with veil's error once no planned target
// served: it names the last provider tried and the attempts made, and
// tells a shed call when to come back.
func (x *exchange) failAfterAttempts(ctx *fasthttp.RequestCtx, last *Error) {
	h := &ctx.Response.Header
	if x.tried != nil {
		h.Set(HeaderProvider, x.tried.Provider.Name())
		h.Set(HeaderAttempts, smallInt(x.attempts))
	}
	if last != nil && (last.Code == codeOverloaded || last.Code == codeSupplierInFlight) {
		h.Set(fasthttp.HeaderRetryAfter, "1")
	}
	x.fail(ctx, last)
}

// available is the one availability check of a planned target: its quota
// (platform keys after the supplier's own), its key's health and its
// provider's breaker. The last planned target is always tried, whatever
// its breaker says, so that the client gets the provider's own answer. It
// returns the reason a target is passed over when there is one to tell.
func (s *Server) available(x *exchange, a *policy.Attempt, lastPlanned bool, last *Error) (*Error, bool) {
	if a.Source == billing.PlatformKey && x.rt.Quota != nil && !x.admitted {
		// A client-first plan falling back to platform keys: the tier
		// applies from here on.
		if e := s.admitFallback(x, a); e != nil {
			return e, false
		}
	}
	now := time.Now()
	if a.Source == billing.ClientKey && !lastPlanned && !s.keyHealth.Allow(a.Provider.Name(), x.supplier, now) {
		// The provider refused this supplier's key moments ago: go
		// straight to the fallback until the cooldown's probe.
		return &Error{Status: fasthttp.StatusUnauthorized, Type: typeAuthentication, Code: "supplier_key_held_out",
			Message: "veil: provider " + a.Provider.Name() + " refused the supplier's own key recently"}, false
	}
	if a != &x.plan[0] && a.Source == billing.PlatformKey && x.plan[0].Source == billing.ClientKey {
		x.reason = "platform_fallback"
		if !x.fellBack {
			x.fellBack = true
			s.auditFallback(x, a, last)
		}
	}
	if !lastPlanned && !s.health.Allow(a.Provider.Name(), now) {
		return nil, false // its breaker's half-open probe is taken by another call
	}
	return nil, true
}

// runTarget sends the request to one planned target, as often as the
// decision allows: with another key, or again after a wait. A nil error
// means the client has its answer (or a stream writer will give it); an
// error means nothing reached the client and the next target may run.
func (s *Server) runTarget(ctx *fasthttp.RequestCtx, x *exchange, a *policy.Attempt, lastPlanned bool) (bool, *Error) {
	stream := x.streamed()
	x.retrier = targetRetrier{s: s, x: x, a: a}
	for tries := 0; ; tries++ {
		x.attempts++
		o := outcome{last: lastPlanned, tries: tries}
		key, resp, e, v := s.attempt(ctx, x, a, &o, &x.retrier, stream)
		switch v.act {
		case nextTarget:
			if e == nil {
				e = s.passOver(ctx, x, a, key, resp, o.status, stream)
			}
			return false, e
		case retry:
			if e == nil {
				s.discard(ctx, x, resp, stream)
				e = &Error{Status: o.status, Type: typeServer, Code: "upstream_status",
					Message: "veil: provider " + a.Provider.Name() + " answered " + strconv.Itoa(o.status)}
			}
			if x.wait(ctx.Done(), nil, v.wait, func() bool { return departed(ctx) }) != waitTimeout || departed(ctx) {
				return false, e // the client left or veil is draining: no more tries
			}
			continue
		}
		if e != nil {
			return false, e
		}
		return s.deliver(ctx, x, a, key, resp, o.status, stream), nil
	}
}

// attempt makes one try of a target: it sends the call with the key the
// target takes, once more with another key when the decision asks for
// one, and holds a stream back until its first content. It fills in the
// outcome and returns the decision on it, with the answer (nil when there
// is none, e saying why).
func (s *Server) attempt(ctx *fasthttp.RequestCtx, x *exchange, a *policy.Attempt, o *outcome, r retrier,
	stream bool) (*keys.Key, *fasthttp.Response, *Error, verdict) {
	key, e := s.keyFor(x, a)
	if e != nil {
		o.failure = failKey
		return nil, nil, e, decide(o, r)
	}
	for {
		resp, e := s.send(ctx, x, a, key, stream)
		o.client = key.Source() == billing.ClientKey
		if e != nil {
			o.failure = failureOf(e)
			s.noteKey(x, a, key, o, e)
			return key, nil, e, decide(o, r)
		}
		o.failure, o.status = answered, resp.StatusCode()
		if health.Classify(o.status).Transient() {
			o.hint = retryHint(&resp.Header) // only a retry reads it
		}
		o.spareKey = s.hasSpareKey(a, key)
		o.exhausted = o.status == fasthttp.StatusTooManyRequests && !stream && accountExhausted(resp.Body())
		if stream && !o.last && o.status/100 == 2 && isEventStream(resp) {
			// Hold the client's answer until the first content event, so
			// that a stream failing before it fails over invisibly.
			if e = s.holdFirst(ctx, x, a, key, resp); e != nil {
				o.failure = failStream
				s.noteKey(x, a, key, o, e)
				return key, nil, e, decide(o, r)
			}
		}
		v := decide(o, r)
		if v.act == swapKey {
			o.swapped = true
			if next := s.otherKey(x, a, key, resp); next != nil {
				s.discard(ctx, x, resp, stream)
				x.swappedFrom = key
				key = next
				x.attempts++
				continue
			}
			v = decide(o, r)
		}
		s.noteKey(x, a, key, o, nil)
		return key, resp, nil, v
	}
}

// failureOf classifies an error of an attempt that got no answer.
func failureOf(e *Error) failure {
	switch e.Code {
	case "upstream_unavailable", "upstream_timeout":
		return failTransport
	case codeOverloaded:
		return failOverload
	}
	return failRequest
}

// codeOverloaded is the error code of a call veil sheds because no
// upstream connection was free in time.
const codeOverloaded = "overloaded"

// holdFirst holds a stream's answer back until its first content event;
// a stream that fails first is the target's failure.
func (s *Server) holdFirst(ctx *fasthttp.RequestCtx, x *exchange, a *policy.Attempt, key *keys.Key, resp *fasthttp.Response) *Error {
	rd, err := x.hold(resp, a, func() bool { return departed(ctx) })
	if err == nil {
		x.stream.reader = rd
		return nil
	}
	s.discard(ctx, x, resp, true)
	if errors.Is(err, errClientLeft) {
		// Nobody's fault but the departed client's: the run stops.
		x.markLastAttempt(cutClientGone)
		return errClientGone
	}
	if t := s.health.Target(a.Provider.Name()); t != nil {
		if key.Source() == billing.ClientKey {
			t.RecordKeyFault(0, 0, time.Now()) // the supplier key's, see noteKey
		} else {
			t.Record(0, 0, time.Now()) // a failure of the target, for its breaker
		}
	}
	x.markLastAttempt("upstream_stream_error")
	return &Error{Status: fasthttp.StatusBadGateway, Type: typeServer, Code: "upstream_stream_error",
		Message: "veil: provider " + a.Provider.Name() + "'s stream failed before its first token: " + err.Error()}
}

// noteKey tells the supplier keys' breakers how an attempt with a
// supplier's own key went: a refusal, a used-up account or a failure of
// the provider with this key (e says why there was no answer) is the
// key's fault, held against the key alone; an answer closes its breaker.
// Requests the client got wrong (400, 404, ...) say nothing of the key.
func (s *Server) noteKey(x *exchange, a *policy.Attempt, key *keys.Key, o *outcome, e *Error) {
	if key == nil || key.Source() != billing.ClientKey || e != nil && e.Code == cutClientGone {
		return
	}
	now := time.Now()
	switch class := health.Classify(o.status); {
	case o.failure == failRequest && e != nil && e.Code != "upstream_request_failed":
		// The provider's schema cannot carry the call: not the key's fault.
	case class == health.KeyRejected:
		s.keyHealth.Failed(a.Provider.Name(), x.supplier, health.KeyRefused, now)
		if !o.last {
			s.audit(x, "supplier key refused; falling back to the next planned key", a, key, o.status)
		}
	case o.exhausted:
		s.keyHealth.Failed(a.Provider.Name(), x.supplier, health.KeyOutOfQuota, now)
		s.audit(x, "supplier's own account is out of quota; falling back to the next planned key", a, key, o.status)
	case class == health.Failure, o.failure == failStream:
		s.keyHealth.Failed(a.Provider.Name(), x.supplier, health.KeyFailing, now)
	case class == health.Success:
		s.keyHealth.Served(a.Provider.Name(), x.supplier)
	}
}

// accountExhausted reports whether a 429 body says the key's account is
// used up (OpenAI's insufficient_quota, a billing limit) rather than that
// the caller is going too fast: waiting will not help.
func accountExhausted(body []byte) bool {
	return bytes.Contains(body, []byte(`"insufficient_quota"`)) || bytes.Contains(body, []byte(`"billing_hard_limit_reached"`))
}

// passOver drops an answer the next planned target replaces, and says why.
func (s *Server) passOver(ctx *fasthttp.RequestCtx, x *exchange, a *policy.Attempt, key *keys.Key, resp *fasthttp.Response,
	status int, stream bool) *Error {
	s.discard(ctx, x, resp, stream)
	if key.Source() == billing.ClientKey && (status == fasthttp.StatusUnauthorized || status == fasthttp.StatusForbidden) {
		return &Error{Status: status, Type: typeAuthentication, Code: "supplier_key_refused",
			Message: "veil: provider " + a.Provider.Name() + " refused the supplier's own key"}
	}
	return &Error{Status: status, Type: typeServer, Code: "upstream_status",
		Message: "veil: provider " + a.Provider.Name() + " answered " + strconv.Itoa(status)}
}

// waitEnd says how a wait ended.
type waitEnd uint8

const (
	// waitReady: what the wait was for happened.
	waitReady waitEnd = iota
	// waitTimeout: its time passed.
	waitTimeout
	// waitCut: the request is done (its server shuts down) or veil is
	// draining.
	waitCut
)

// wait is the request path's one way to wait: until ready is closed (nil:
// never), d passes, done (the request's context) ends, veil drains or,
// when gone is set, it reports the client gone (asked every
// clientCheckInterval).
func (x *exchange) wait(done, ready <-chan struct{}, d time.Duration, gone func() bool) waitEnd {
	t := time.NewTimer(d)
	defer t.Stop()
	var check <-chan time.Time
	if gone != nil {
		tick := time.NewTicker(clientCheckInterval)
		defer tick.Stop()
		check = tick.C
	}
	for {
		select {
		case <-ready:
			return waitReady
		case <-t.C:
			return waitTimeout
		case <-done:
			return waitCut
		case <-x.s.stop:
			return waitCut
		case <-check:
			if gone() {
				return waitCut
			}
		}
	}
}

// clientCheckInterval is how often a wait looks whether its client left.
const clientCheckInterval = 200 * time.Millisecond

// clientLeft ends a request whose client closed its connection before its
// answer: nothing more is sent upstream, and its record says so.
func (x *exchange) clientLeft(ctx *fasthttp.RequestCtx) {
	x.stream.interrupted = cutClientGone
	x.s.metrics.StreamInterrupted(cutClientGone)
	x.fail(ctx, errClientGone)
}

// errClientGone is veil's answer, for the record, to a client that left
// before its answer.
var errClientGone = &Error{Status: statusClientClosed, Type: typeInvalidRequest, Code: cutClientGone,
	Message: "the client closed its connection before the answer"}

// statusClientClosed is the status recorded for a request whose client
// left before its answer (as nginx records it; no client sees it).
const statusClientClosed = 499

// targetRetrier grants retries of the last planned target.
type targetRetrier struct {
	s *Server
	x *exchange
	a *policy.Attempt
}

var _ retrier = (*targetRetrier)(nil)

// retryWait decides whether the last target left may be tried again, and
// after how long: the upstream's Retry-After when it gave one, else full
// jitter over an exponential backoff; never past the request's deadline or
// limits.max_retry_wait, never more than limits.max_retries times, and only
// while the target's retry budget allows.
func (r *targetRetrier) retryWait(tries int, hint time.Duration) (time.Duration, bool) {
	s := r.s
	if tries >= s.limits.Retries() {
		return 0, false
	}
	wait := hint
	if wait <= 0 {
		ceiling := s.limits.RetryBackoff << tries
		wait = time.Duration(mrand.Int64N(int64(ceiling) + 1)) //nolint:gosec // G404: backoff jitter, not a secret
	}
	now := time.Now()
	if wait > s.limits.MaxRetryWait || now.Add(wait).After(r.x.deadline) {
		return 0, false
	}
	if !s.health.Budget(r.a.Provider.Name()).Retry(now) {
		s.metrics.RetryDenied(r.a.Provider.Name())
		return 0, false
	}
	return wait, true
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
	}
	why, logKey := unavailableWhy(err)
	if ok, _ := s.quiet.Allow(logKey); ok {
		s.log.Warn("supplier key unavailable", zap.ByteString("request_id", x.reqID), zap.ByteString("supplier", x.supplier),
			zap.String("provider", a.Provider.Name()), zap.Error(err))
	}
	return nil, &Error{Status: fasthttp.StatusServiceUnavailable, Type: typeUnavailable, Code: "supplier_key_unavailable",
		Message: "veil cannot currently load supplier " + string(x.supplier) + "'s own " + a.Provider.Name() + " key: " + why}
}

// unavailableWhy says which case a supplier key that cannot be had is in,
// for the client, and the key its warnings are rate-limited under.
func unavailableWhy(err error) (why, logKey string) {
	switch {
	case errors.Is(err, keys.ErrCredentialsRejected):
		return "its key store refuses veil's own credentials; an operator must renew them", "supplier_key_unavailable:credentials"
	case errors.Is(err, keys.ErrNotLoaded):
		return "veil has not loaded it yet and its key store cannot be reached; try again later", "supplier_key_unavailable:not_loaded"
	case errors.Is(err, keys.ErrStale):
		return "its key store has not answered for longer than keys.max_staleness; try again later", "supplier_key_unavailable:stale"
	}
	return "its key store is unreachable; try again later", "supplier_key_unavailable:unreachable"
}

func keyMissing(supplier []byte, providerName string) *Error {
	return &Error{Status: fasthttp.StatusForbidden, Type: "permission_error", Code: "supplier_key_missing",
		Message: "supplier " + string(supplier) + " uses its own " + providerName + " key, and none is stored for it; a Vault admin must add it"}
}

// hasSpareKey reports whether another key than key may serve a's calls: a
// newer or previous version of a supplier's own key, or another key of
// the platform pool.
func (s *Server) hasSpareKey(a *policy.Attempt, key *keys.Key) bool {
	if key.Source() == billing.ClientKey {
		return s.keys != nil
	}
	return a.Provider.Platform().Len() > 1
}

// otherKey finds the key to send the call with instead of key, which the
// provider refused (401) or rate-limited (429); nil when there is none.
func (s *Server) otherKey(x *exchange, a *policy.Attempt, key *keys.Key, resp *fasthttp.Response) *keys.Key {
	if key.Source() == billing.PlatformKey {
		now := time.Now()
		pool := a.Provider.Platform()
		pool.Cooldown(key, now, retryAfter(&resp.Header))
		return pool.Other(key, now)
	}
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
	return nil
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
	resp, e := s.roundTrip(ctx, x, a, key, &ctx.Request.Header, body, resp)
	if e != nil && !stream {
		s.discard(ctx, x, resp, false)
	}
	return resp, e
}

// roundTrip sends body with the client's headers hdr to a's provider with
// key, reading the answer into resp, or, when resp is nil, into a pooled
// response whose body is streamed. It records the attempt in health,
// metrics and the exchange's attempt log. A pooled response is released
// when an error is returned. When client (optional) leaves while the
// provider's headers are awaited, the call is cut and errClientGone
// returned.
func (s *Server) roundTrip(client *fasthttp.RequestCtx, x *exchange, a *policy.Attempt, key *keys.Key, hdr *fasthttp.RequestHeader, body []byte,
	resp *fasthttp.Response) (*fasthttp.Response, *Error) {
	req := fasthttp.AcquireRequest()
	copyRequestHeaders(&req.Header, hdr, x.ep.understood)
	req.SetBodyRaw(body)
	x.call.Model = a.Model
	x.call.Key = key
	if err := a.Provider.Prepare(req, &x.call); err != nil {
		fasthttp.ReleaseRequest(req)
		return resp, prepareError(a, err)
	}
	if x.trace != nil {
		x.traceAttempt(a, key, &req.Header)
	}
	pooled := resp == nil
	if pooled {
		resp = fasthttp.AcquireResponse()
		resp.StreamBody = true
	}
	t0 := time.Now()
	err := s.do(client, x, a, req, resp, t0)
	fasthttp.ReleaseRequest(req)
	if errors.Is(err, errCut) {
		x.logAttempt(a, key, 0, cutClientGone, t0)
		if pooled {
			fasthttp.ReleaseResponse(resp)
			resp = nil
		}
		return resp, errClientGone
	}
	if err == nil {
		// From here on the answer is in OpenAI's shape, whoever gave it.
		err = a.Provider.Translate(resp, &x.call)
	}
	if atCapacity(err) {
		// veil's own pool to the provider is full, or veil is out of
		// file descriptors: shed the call, and keep it out of the
		// provider's health.
		s.metrics.Overloaded(a.Provider.Name())
		x.logAttempt(a, key, 0, codeOverloaded, t0)
		if pooled {
			fasthttp.ReleaseResponse(resp)
			resp = nil
		}
		return resp, overloaded("veil is at capacity for provider " + a.Provider.Name() + "; retry in a moment")
	}
	if err != nil {
		s.observeAttempt(a, key, 0, t0)
		e := upstreamError(a.Provider.Name(), err)
		x.logAttempt(a, key, 0, e.Code, t0)
		if pooled {
			_ = resp.CloseBodyStream()
			fasthttp.ReleaseResponse(resp)
			resp = nil
		}
		return resp, e
	}
	s.observeAttempt(a, key, resp.StatusCode(), t0)
	x.logAttempt(a, key, resp.StatusCode(), "", t0)
	x.noteUpstreamID(&resp.Header)
	s.noteRateLimits(a, key, &resp.Header, resp.StatusCode()) // the platform keys' capacity, for peak-season monitoring and routing
	s.noteCooldown(a, key, &resp.Header, resp.StatusCode())
	return resp, nil
}

// do makes the upstream call of roundTrip, watching client, when set,
// while the headers are awaited. It returns errCut when the client left
// and the call was cut.
func (s *Server) do(client *fasthttp.RequestCtx, x *exchange, a *policy.Attempt, req *fasthttp.Request,
	resp *fasthttp.Response, t0 time.Time) error {
	headerDeadline := t0.Add(s.limits.AttemptTimeout)
	if client == nil {
		return a.Provider.Do(req, resp, headerDeadline, x.deadline)
	}
	s.waits.begin(&x.headerWait, client, a.Provider, a.Provider.Mark(req), t0)
	err := a.Provider.Do(req, resp, headerDeadline, x.deadline)
	if s.waits.end(&x.headerWait) && err != nil {
		return errCut
	}
	return err
}

// errCut says that an upstream call was cut because its client left.
var errCut = errors.New("the client left: upstream call cut")

// prepareError is veil's answer to a call a provider could not prepare.
func prepareError(a *policy.Attempt, err error) *Error {
	var re *provider.RequestError
	if errors.As(err, &re) {
		// The provider's schema cannot carry the call as asked: the
		// client's to fix, unless a later planned target can serve it.
		return &Error{Status: re.Status, Type: typeInvalidRequest, Code: re.Code, Param: re.Param, Message: re.Message}
	}
	return &Error{Status: fasthttp.StatusBadGateway, Type: typeServer, Code: "upstream_request_failed",
		Message: "veil could not prepare the request for provider " + a.Provider.Name() + ": " + err.Error()}
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
func (s *Server) deliver(ctx *fasthttp.RequestCtx, x *exchange, a *policy.Attempt, key *keys.Key, resp *fasthttp.Response,
	status int, stream bool) bool {
	x.served, x.key = a, key
	if status == fasthttp.StatusUnauthorized {
		// Providers quote part of a key they refuse ("Incorrect API key
		// provided: sk-ab***wxyz"); the client learns nothing of any key
		// but its fingerprint.
		s.discard(ctx, x, resp, stream)
		x.setServedHeaders(ctx)
		x.fail(ctx, refusedKey(a, x.swappedFrom, key))
		return false
	}
	x.ownHeaders(&resp.Header, key)
	if !stream {
		stripResponseHeaders(&ctx.Response.Header)
		x.setServedHeaders(ctx)
		if x.ep.understood && status/100 == 2 {
			x.usage.fromBody(ctx.Response.Body())
			if x.trace != nil {
				x.trace.noteFinish(ctx.Response.Body())
			}
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
		x.startStream(ctx, resp, status)
		return true
	}
	// A streamed call that did not answer with SSE (an error, or a
	// pass-through download): hand the body on as it arrives.
	ctx.Response.SetBodyStream(&upstreamBody{resp: resp}, resp.Header.ContentLength())
	return false
}

// refusedKey is the answer to a key the provider refused, in OpenAI's
// shape for it. first, when set, is the key refused before key was tried
// in its place (the supplier's current version before its previous one):
// it is the one named first, as the one to replace.
func refusedKey(a *policy.Attempt, first, key *keys.Key) *Error {
	whose := "WedSync's platform key"
	if key.Source() == billing.ClientKey {
		whose = "the supplier's own key"
	}
	which := "fingerprint " + key.Fingerprint()
	if first != nil && first != key && first.Source() == key.Source() {
		which = "fingerprint " + first.Fingerprint() + ", and the other version tried, " + key.Fingerprint()
	}
	return &Error{Status: fasthttp.StatusUnauthorized, Type: typeInvalidRequest, Code: "invalid_api_key",
		Message: "Incorrect API key provided: provider " + a.Provider.Name() + " refused " + whose + " (" + which + ")."}
}

// observeAttempt records an attempt's status (0: no answer) and time to
// response headers in metrics and health. A failure with a supplier's own
// key is that key's (see noteKey), not the provider's: it does not move
// the provider's breaker, which every supplier shares.
func (s *Server) observeAttempt(a *policy.Attempt, key *keys.Key, status int, t0 time.Time) {
	now := time.Now()
	took := now.Sub(t0)
	s.metrics.ObserveUpstream(a.Provider.Name(), a.Model, status, took.Seconds())
	t := s.health.Target(a.Provider.Name())
	switch {
	case t == nil:
	case key.Source() == billing.ClientKey && health.Classify(status) != health.Success:
		t.RecordKeyFault(status, took, now)
	default:
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
