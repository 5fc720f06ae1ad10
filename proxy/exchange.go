package proxy

import (
	"bytes"
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

// exchange is the state of one client request. Admission fills in who
// asks, what and the plan (the request's ticket); the run records the
// attempts and what served; the stream and the taps hold what a streamed
// answer needs. It is pooled; a streamed answer owns it until its body
// writer returns.
type exchange struct {
	s        *Server
	rt       *Runtime
	start    time.Time
	deadline time.Time
	reqID    []byte

	// What admission learns of the request.
	ep       endpoint
	fields   jsonfield.Request
	caller   *auth.Caller
	supplier []byte
	workflow string
	spread   uint64
	plan     []policy.Attempt
	planBuf  [4]policy.Attempt
	// quotaLater holds the targets a reservation is priced over.
	quotaLater [4]quota.Target
	ticket     quota.Ticket
	admitted   bool
	// body is what goes upstream: the client's body, or bodyBuf when veil
	// rewrote it (the real model, a tier's output cap, stream usage).
	body      []byte
	bodyBuf   []byte
	modelBody []byte // the body for a fallback target's own model
	queryBuf  []byte // the client's query without credentials
	scratch   []byte
	// migration is the supplier's migration this request is part of.
	migration migration

	// What the run records.
	call         provider.Call
	served       *policy.Attempt
	tried        *policy.Attempt // the last target an attempt went to
	swappedFrom  *keys.Key       // a refused or rate-limited key swapped for another
	slot         inflightKey     // the supplier's slot at the provider tried
	holdsSlot    bool
	key          *keys.Key
	attempts     int
	attemptLog   [4]usage.Attempt
	attemptCount int
	attemptStart time.Time // start of the latest attempt
	headerWait   headerWait
	// completed is set once the exchange is recorded (see complete).
	completed bool
	// upstreamID is the provider's ID of its latest answer.
	upstreamID []byte
	fellBack   bool // the fallback to platform keys was audited
	retrier    targetRetrier
	status     int
	err        string
	reason     string

	// The answer: its stream, and the taps that see its events.
	stream stream
	usage  usageTap
	cache  cacheState
	// resume is set for streams that may be resumed (limits.stream_resume).
	resume *resumeState
	// shadow is set when the request is also sent to the other system.
	shadow *shadowState
	taps   tapChain
	// trace holds the request's spans; nil when tracing is off.
	trace *traceState
}

var exchangePool = sync.Pool{New: func() any {
	return &exchange{reqID: make([]byte, 0, 64), supplier: make([]byte, 0, 64)}
}}

func (s *Server) acquire() *exchange {
	x := exchangePool.Get().(*exchange)
	x.s = s
	x.rt = s.rt.Load()
	x.start = time.Now()
	x.deadline = x.start.Add(s.limits.RequestTimeout)
	return x
}

// release returns x to the pool, keeping its buffers.
func release(x *exchange) {
	x.releaseResume()
	if x.shadow != nil {
		fasthttp.ReleaseRequest(x.shadow.req)
	}
	if x.trace != nil {
		x.trace.release()
	}
	*x = exchange{reqID: x.reqID[:0], supplier: x.supplier[:0], bodyBuf: x.bodyBuf[:0], modelBody: x.modelBody[:0],
		queryBuf: x.queryBuf[:0], scratch: x.scratch[:0], upstreamID: x.upstreamID[:0], stream: x.stream.reset(), usage: x.usage.reset(), cache: x.cache.reset()}
	exchangePool.Put(x)
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

// setRequestIDHeader gives the response veil's request ID, replacing the
// provider's (which goes to X-Veil-Upstream-Request-Id), so that there is
// exactly one.
func (x *exchange) setRequestIDHeader(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Del(HeaderRequestID)
	h.SetBytesV(HeaderRequestID, x.reqID)
	if len(x.upstreamID) > 0 {
		h.SetBytesV(HeaderUpstreamRequestID, x.upstreamID)
	}
}

// noteUpstreamID keeps the provider's ID of its answer: OpenAI's and
// Azure's X-Request-Id, Anthropic's Request-Id.
func (x *exchange) noteUpstreamID(h *fasthttp.ResponseHeader) {
	id := h.Peek(HeaderRequestID)
	if len(id) == 0 {
		id = h.Peek("Request-Id")
	}
	if len(id) > 0 && len(id) <= 256 {
		x.upstreamID = append(x.upstreamID[:0], id...)
	}
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
	if x.failedOver() {
		h.Set(HeaderFailover, "true")
	}
	if x.ep.understood {
		h.Set(HeaderCache, x.cache.header())
	}
}

// failedOver reports whether another target than the plan's first served.
func (x *exchange) failedOver() bool { return x.served != nil && x.served != &x.plan[0] }

var smallInts = [...]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

func smallInt(n int) string {
	if n >= 0 && n < len(smallInts) {
		return smallInts[n]
	}
	return strconv.Itoa(n)
}

// fail answers with veil's own error.
func (x *exchange) fail(ctx *fasthttp.RequestCtx, e *Error) {
	x.err = e.Code
	writeError(ctx, e)
}

// logAttempt keeps an attempt for the usage record.
func (x *exchange) logAttempt(a *policy.Attempt, key *keys.Key, status int, code string, t0 time.Time) {
	x.attemptStart = t0
	if x.attemptCount < len(x.attemptLog) {
		x.attemptLog[x.attemptCount] = usage.Attempt{Provider: a.Provider.Name(), Model: x.s.interns.get(a.Model),
			KeySource: key.Source(), Status: status, Error: code, LatencyMS: msSince(t0)}
	}
	x.attemptCount++
	if x.trace != nil {
		x.trace.attemptDone(status, code)
	}
}

// markLastAttempt sets the error code of the latest logged attempt.
func (x *exchange) markLastAttempt(code string) {
	if n := x.attemptCount - 1; n >= 0 && n < len(x.attemptLog) {
		x.attemptLog[n].Error = code
	}
	if x.trace != nil {
		x.trace.attemptDone(x.trace.attStatus, code)
	}
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// finish completes the exchange, unless a stream's end did already, and
// returns it to the pool.
func (s *Server) finish(x *exchange) {
	if !x.completed {
		s.complete(x)
	}
	s.open.Add(-1) // after the usage record is handed on
	release(x)
}

// complete records the access line, metrics, usage record and quota
// settlement of an exchange whose answer is complete. A stream completes
// as its [DONE] passes, before it is sent, so that its usage record is
// spooled before the client has the whole answer.
func (s *Server) complete(x *exchange) {
	x.completed = true
	s.releaseSlot(x)
	if x.stream.streamed {
		s.storeStream(x)
	}
	x.endFlight()
	elapsed := time.Since(x.start)
	providerName := ""
	if x.served == nil && x.tried != nil {
		providerName = x.tried.Provider.Name() // veil's own error names what it tried
	}
	if x.served != nil {
		providerName = x.served.Provider.Name()
		if t := s.health.Target(providerName); t != nil && x.stream.ttft > 0 {
			t.FirstToken(x.start.Add(x.stream.ttft).Sub(x.attemptStart))
		}
		if x.failedOver() {
			s.metrics.Failover(x.plan[0].Provider.Name(), providerName)
		}
		if x.stream.streamed {
			s.metrics.ObserveStream(providerName, x.fields.Model, x.stream.ttft.Seconds(), elapsed.Seconds())
		}
	}
	s.metrics.ObserveRequest(x.ep.name, providerName, x.fields.Model, x.status, elapsed.Seconds())
	s.metrics.InFlight(-1)
	if x.caller != nil {
		micros := s.record(x, providerName, elapsed)
		s.settle(x, micros)
		cost := usage.MicrosToUSD(micros) // for the comparisons' display
		s.observeMigration(x, elapsed, cost)
		s.finishShadow(x, elapsed, cost)
	}
	s.logAccess(x, providerName, elapsed)
	if x.trace != nil {
		x.endTrace()
	}
}

// logAccess writes the request's access line.
func (s *Server) logAccess(x *exchange, providerName string, elapsed time.Duration) {
	ce := s.log.Check(zap.InfoLevel, "request")
	if ce == nil {
		return
	}
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
		zap.Bool("stream", x.stream.streamed),
		zap.Int("status", x.status),
		zap.Int("attempts", x.attempts),
		zap.String("cache", x.cache.header()),
		zap.String("error", x.err),
		zap.String("interrupted", x.stream.interrupted),
		zap.Int64("prompt_tokens", x.usage.tokens.Prompt),
		zap.Int64("completion_tokens", x.usage.tokens.Completion),
		zap.ByteString("upstream_request_id", x.upstreamID),
		zap.Duration("latency", elapsed),
	}
	ce.Write(fields[:]...)
}

func keySource(k *keys.Key) billing.KeySource {
	if k == nil {
		return ""
	}
	return k.Source()
}

func isEventStream(resp *fasthttp.Response) bool {
	return bytes.HasPrefix(resp.Header.ContentType(), []byte("text/event-stream"))
}

// upstreamEvents reads the server-sent events of a's streamed answer resp,
// in OpenAI's shape whatever the provider's schema.
func (x *exchange) upstreamEvents(resp *fasthttp.Response, a *policy.Attempt) sse.Source {
	return a.Provider.Events(sse.NewReader(resp.BodyStream(), x.s.limits.MaxEventBytes), &x.call)
}
