package fakeopenai

import (
	"bytes"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// route identifies an endpoint.
type route int

const (
	routeNotFound route = iota
	routeChat
	routeCompletions
	routeEmbeddings
	routeModels
	routeModel
	routeResponses
	routeAudio
	routeEcho
	routeMessages        // Anthropic POST /v1/messages
	routeAnthropicModels // Anthropic GET /v1/models
	routeAnthropicModel  // Anthropic GET /v1/models/{id}
	routeAzureChat       // Azure POST /openai/deployments/{d}/chat/completions
	routeAzureCompletions
	routeAzureEmbeddings
	routeAzureModels   // Azure GET /openai/models
	routeAzureNotFound // any other path under /openai/
)

// streamable reports whether calls to r may ask for a stream.
func (r route) streamable() bool {
	switch r {
	case routeChat, routeCompletions, routeResponses, routeMessages, routeAzureChat, routeAzureCompletions:
		return true
	}
	return false
}

// dialect is the API shape a call is answered in: its error envelopes,
// headers and authentication.
type dialect int

const (
	dialectOpenAI dialect = iota
	dialectAnthropic
	dialectAzure
)

// dialect returns the API shape of calls to r.
func (r route) dialect() dialect {
	switch r {
	case routeMessages, routeAnthropicModels, routeAnthropicModel:
		return dialectAnthropic
	case routeAzureChat, routeAzureCompletions, routeAzureEmbeddings, routeAzureModels, routeAzureNotFound:
		return dialectAzure
	}
	return dialectOpenAI
}

// routeOf maps a request to a route. Calls to /v1/models that carry an
// anthropic-version header are Anthropic's; paths under /openai/ are
// Azure OpenAI's.
func routeOf(ctx *fasthttp.RequestCtx) route {
	method, path := ctx.Method(), ctx.Path()
	if bytes.HasPrefix(path, []byte("/openai/")) {
		return azureRouteOf(method, path)
	}
	rt := openAIRouteOf(method, path)
	if len(ctx.Request.Header.Peek(headerAnthropicVersion)) > 0 {
		switch rt {
		case routeModels:
			return routeAnthropicModels
		case routeModel:
			return routeAnthropicModel
		}
	}
	return rt
}

// openAIRouteOf maps a method and a path under /v1 to a route.
func openAIRouteOf(method, path []byte) route {
	if !bytes.HasPrefix(path, []byte("/v1")) || (len(path) > 3 && path[3] != '/') {
		return routeNotFound
	}
	post := string(method) == fasthttp.MethodPost
	get := string(method) == fasthttp.MethodGet
	switch p := string(path); {
	case post && p == "/v1/chat/completions":
		return routeChat
	case post && p == "/v1/messages":
		return routeMessages
	case post && p == "/v1/completions":
		return routeCompletions
	case post && p == "/v1/embeddings":
		return routeEmbeddings
	case post && p == "/v1/responses":
		return routeResponses
	case get && p == "/v1/models":
		return routeModels
	case get && strings.HasPrefix(p, "/v1/models/") && len(p) > len("/v1/models/"):
		return routeModel
	case post && (p == "/v1/audio/transcriptions" || p == "/v1/audio/translations"):
		return routeAudio
	default:
		return routeEcho
	}
}

// call is the per-request state shared by the endpoint handlers.
type call struct {
	start   time.Time
	reqID   string
	rt      route
	dialect dialect
	// apiVersion, deployment and model are, for Azure calls, the
	// api-version query parameter, the deployment named by the path and the
	// model it serves, which overrides the body's model field.
	apiVersion, deployment, model string
	// fault is the scripted fault taken by this call, if hasFault. Faults
	// acting before the headers are handled in Handler; stream faults are
	// handed to the stream writer.
	fault    Fault
	hasFault bool
	// limits is what the fake's own rate limit says of the call, when it
	// keeps one; account is its key's account (Options.Accounts), nil
	// for the server's own.
	limits  limitState
	account *account
}

// Handler is the fasthttp request handler of the fake. It records the
// request, applies Latency and any scripted fault, authenticates the bearer
// key and serves the endpoint. It may be mounted on a fasthttp server of the
// caller's; Close then releases its stalled and streaming calls but cannot
// stop that server.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	s.inFlight.Add(1)
	handedOff := false
	defer func() {
		if !handedOff {
			s.inFlight.Add(-1)
		}
	}()
	s.record(ctx, start)

	rt := routeOf(ctx)
	c := &call{start: start, rt: rt, dialect: rt.dialect()}
	c.reqID = s.requestID(c.dialect)
	c.account = s.accountOf(ctx)
	if c.dialect == dialectAzure {
		c.apiVersion = string(ctx.QueryArgs().Peek("api-version"))
		c.deployment = azureDeployment(ctx.Path())
	}

	if s.nFaults.Load() > 0 {
		stream := rt.streamable() && gjson.GetBytes(requestBody(ctx), "stream").Bool()
		c.fault, c.hasFault = s.takeFault(string(ctx.Path()), presentedKey(ctx), stream)
	}

	if !s.waited(ctx, c, s.opts.Latency, false) {
		return
	}
	if c.hasFault {
		switch c.fault.Kind {
		case KindStall:
			c.hasFault = false
			if !s.waited(ctx, c, c.fault.Stall, c.fault.Stall == 0) {
				return
			}
		case KindReset:
			handedOff = true
			s.hijack(ctx, nil)
			return
		case KindStatus:
			if c.fault.Status != fasthttp.StatusTooManyRequests || c.dialect == dialectOpenAI {
				s.writeError(ctx, c, faultError(c, c.fault))
				return
			}
			s.writeRateLimited(ctx, c, c.fault)
			return
		case KindRateLimit:
			s.writeRateLimited(ctx, c, c.fault)
			return
		}
	}

	if rt == routeNotFound {
		s.writeError(ctx, c, apiError{
			status:  fasthttp.StatusNotFound,
			message: "Invalid URL (" + string(ctx.Method()) + " " + string(ctx.Path()) + ")",
			typ:     "invalid_request_error",
		})
		return
	}
	if e, ok := s.authenticate(ctx, c); !ok {
		s.writeError(ctx, c, e)
		return
	}
	if !s.spend(ctx, c) {
		s.overBudget(ctx, c)
		return
	}

	switch rt {
	case routeMessages:
		handedOff = s.messages(ctx, c)
	case routeAnthropicModels:
		s.anthropicModels(ctx, c)
	case routeAnthropicModel:
		s.anthropicModel(ctx, c)
	case routeAzureChat, routeAzureCompletions, routeAzureEmbeddings, routeAzureModels, routeAzureNotFound:
		handedOff = s.azure(ctx, c, rt)
	case routeChat:
		handedOff = s.chatCompletions(ctx, c)
	case routeCompletions:
		handedOff = s.completions(ctx, c)
	case routeResponses:
		handedOff = s.responses(ctx, c)
	case routeEmbeddings:
		s.embeddings(ctx, c)
	case routeModels:
		s.writeJSON(ctx, c, s.modelsJSON)
	case routeModel:
		s.model(ctx, c)
	case routeAudio:
		s.audio(ctx, c)
	default:
		s.echo(ctx, c)
	}
}

// requestBody returns the request body, decompressed when the client sent
// it with Content-Encoding gzip, deflate, br or zstd.
func requestBody(ctx *fasthttp.RequestCtx) []byte {
	if len(ctx.Request.Header.ContentEncoding()) == 0 {
		return ctx.Request.Body()
	}
	body, err := ctx.Request.BodyUncompressed()
	if err != nil {
		return ctx.Request.Body()
	}
	return body
}

// shuttingDown answers a call interrupted by Close.
// waited makes the call wait d (until Close when forever) before its
// headers; it reports whether the call goes on, having answered it (or
// given it up) when not.
func (s *Server) waited(ctx *fasthttp.RequestCtx, c *call, d time.Duration, forever bool) bool {
	switch s.waitCall(ctx, d, forever) {
	case waitClosed:
		s.shuttingDown(ctx, c)
		return false
	case waitAbandoned:
		ctx.SetConnectionClose() // nobody reads the answer
		return false
	}
	return true
}

func (s *Server) shuttingDown(ctx *fasthttp.RequestCtx, c *call) {
	ctx.SetConnectionClose()
	s.writeError(ctx, c, apiError{
		status:  fasthttp.StatusServiceUnavailable,
		message: "The server is shutting down.",
		typ:     "server_error",
	})
}

// hijack takes the connection over after the handler returns, without
// fasthttp writing any response. With a nil f the connection is reset at
// once; otherwise f writes to it and the connection is closed (with a plain
// FIN) when f returns. The caller must have counted the call in s.inFlight;
// it is uncounted when the takeover ends.
func (s *Server) hijack(ctx *fasthttp.RequestCtx, f func(net.Conn)) {
	raw := ctx.Conn()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(hc net.Conn) {
		if f == nil {
			s.inFlight.Add(-1)
			abortiveClose(raw)
			return
		}
		defer s.inFlight.Add(-1)
		if !s.work.add() {
			return
		}
		defer s.work.done()
		f(hc)
	})
}

// authenticate checks the API key the way the call's dialect expects it.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, c *call) (apiError, bool) {
	switch c.dialect {
	case dialectAnthropic:
		return s.anthropicAuth(ctx)
	case dialectAzure:
		return s.azureAuth(ctx)
	}
	return s.bearerAuth(ctx)
}

// acceptsKey reports whether key is an accepted API key.
func (s *Server) acceptsKey(key string) bool {
	ks := *s.keys.Load()
	return key != "" && (len(ks) == 0 || hasKey(ks, key))
}

// bearerAuth checks the bearer key of an OpenAI call.
func (s *Server) bearerAuth(ctx *fasthttp.RequestCtx) (apiError, bool) {
	auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const prefix = "bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(string(auth[:len(prefix)]), prefix) {
		return apiError{
			status: fasthttp.StatusUnauthorized,
			message: "You didn't provide an API key. You need to provide your API key in an Authorization header " +
				"using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank " +
				"username) if you're accessing the API from your browser and are prompted for a username and " +
				"password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
			typ: "invalid_request_error",
		}, false
	}
	key := strings.TrimSpace(string(auth[len(prefix):]))
	if hasKey(s.noQuota, key) {
		return apiError{
			status: fasthttp.StatusTooManyRequests,
			message: "You exceeded your current quota, please check your plan and billing details. For more information " +
				"on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
			typ:  "insufficient_quota",
			code: "insufficient_quota",
		}, false
	}
	if s.acceptsKey(key) {
		return apiError{}, true
	}
	return apiError{
		status: fasthttp.StatusUnauthorized,
		message: "Incorrect API key provided: " + maskKey(key) +
			". You can find your API key at https://platform.openai.com/account/api-keys.",
		typ:  "invalid_request_error",
		code: "invalid_api_key",
	}, false
}

// hasKey reports whether key is in ks.
func hasKey(ks keySet, key string) bool {
	_, ok := ks[key]
	return ok
}

// maskKey hides the middle of key the way OpenAI does in error messages.
func maskKey(key string) string {
	if len(key) < 8 {
		return strings.Repeat("*", len(key))
	}
	return key[:3] + strings.Repeat("*", min(len(key)-7, 20)) + key[len(key)-4:]
}

// apiError is an error answer and its HTTP status. It is rendered as the
// OpenAI envelope, where empty param and code are null; on Anthropic calls
// as Anthropic's envelope (see appendAnthropicError); and on Azure calls,
// when gateway is set, as the {"code","message"} envelope of Azure's
// gateway.
type apiError struct {
	status  int
	message string
	typ     string
	param   string
	code    string
	gateway bool
}

// appendEnvelope appends {"error":{...}} for e.
func (e apiError) appendEnvelope(b []byte) []byte {
	b = append(b, `{"error":`...)
	b = e.appendObject(b)
	return append(b, '}')
}

// appendObject appends the inner error object of e.
func (e apiError) appendObject(b []byte) []byte {
	b = append(b, `{"message":`...)
	b = appendJSONString(b, e.message)
	b = append(b, `,"type":`...)
	b = appendJSONStringOrNull(b, e.typ)
	b = append(b, `,"param":`...)
	b = appendJSONStringOrNull(b, e.param)
	b = append(b, `,"code":`...)
	b = appendJSONStringOrNull(b, e.code)
	return append(b, '}')
}

// faultError returns the envelope of a KindStatus fault in the dialect of c.
func faultError(c *call, f Fault) apiError {
	switch c.dialect {
	case dialectAnthropic:
		return anthropicStatusError(f)
	case dialectAzure:
		return azureStatusError(f)
	}
	return statusError(f)
}

// statusErrors are OpenAI's envelopes for the statuses it documents, but
// 429 (see rateLimitError); statusError fills in the status.
var statusErrors = map[int]apiError{
	fasthttp.StatusBadRequest:   {message: "Invalid request.", typ: "invalid_request_error"},
	fasthttp.StatusUnauthorized: {message: "Incorrect API key provided.", typ: "invalid_request_error", code: "invalid_api_key"},
	fasthttp.StatusForbidden: {message: "Country, region, or territory not supported", typ: "request_forbidden",
		code: "unsupported_country_region_territory"},
	fasthttp.StatusNotFound:           {message: "The requested resource does not exist.", typ: "invalid_request_error"},
	fasthttp.StatusConflict:           {message: "The request conflicts with the current state of the resource.", typ: "invalid_request_error"},
	fasthttp.StatusServiceUnavailable: {message: "The server is overloaded or not ready yet.", typ: "server_error"},
	fasthttp.StatusBadGateway:         {message: "Bad gateway.", typ: "server_error"},
	fasthttp.StatusGatewayTimeout:     {message: "Gateway timeout.", typ: "server_error"},
}

// statusError returns the OpenAI envelope of a KindStatus fault.
func statusError(f Fault) apiError {
	status := f.Status
	if status == 0 {
		status = fasthttp.StatusInternalServerError
	}
	e, known := statusErrors[status]
	switch {
	case status == fasthttp.StatusTooManyRequests:
		e = rateLimitError(f)
	case known:
	case status >= 500:
		e = apiError{message: "The server had an error while processing your request. Sorry about that!", typ: "server_error"}
	default:
		e = apiError{message: "The request failed with status " + strconv.Itoa(status) + ".", typ: "invalid_request_error"}
	}
	e.status = status
	return e.override(f)
}

// rateLimitError returns the envelope of a 429 answer.
func rateLimitError(f Fault) apiError {
	msg := "Rate limit reached for requests in organization org-fakeopenai on requests per min (RPM): " +
		"Limit 10000, Used 10000, Requested 1."
	if f.RetryAfter > 0 {
		msg += " Please try again in " + f.RetryAfter.String() + "."
	}
	msg += " Visit https://platform.openai.com/account/rate-limits to learn more."
	return apiError{
		status:  fasthttp.StatusTooManyRequests,
		message: msg,
		typ:     "requests",
		code:    "rate_limit_exceeded",
	}.override(f)
}

// override applies the envelope overrides of f.
func (e apiError) override(f Fault) apiError {
	if f.Message != "" {
		e.message = f.Message
	}
	if f.Type != "" {
		e.typ = f.Type
	}
	if f.Code != "" {
		e.code = f.Code
	}
	return e
}

// bufPool recycles response buffers.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 4096)
	return &b
}}

// getBuf returns an empty pooled buffer.
func getBuf() *[]byte {
	bp := bufPool.Get().(*[]byte)
	*bp = (*bp)[:0]
	return bp
}

// putBuf returns bp to the pool unless it grew too large.
func putBuf(bp *[]byte) {
	if cap(*bp) <= 1<<20 {
		bufPool.Put(bp)
	}
}

// writeError writes the envelope of e in the dialect of c.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, c *call, e apiError) {
	s.writeErrorLimited(ctx, c, e, -1)
}

// writeErrorLimited writes the envelope of e in the dialect of c; a
// non-negative reset marks the answer as rate limited, with that reset
// time.
func (s *Server) writeErrorLimited(ctx *fasthttp.RequestCtx, c *call, e apiError, reset time.Duration) {
	bp := getBuf()
	switch {
	case c.dialect == dialectAnthropic:
		*bp = appendAnthropicError(*bp, e, c.reqID)
	case c.dialect == dialectAzure && e.gateway:
		*bp = appendGatewayError(*bp, e)
	default:
		*bp = e.appendEnvelope(*bp)
	}
	s.writeJSONLimited(ctx, c, e.status, *bp, reset)
	putBuf(bp)
}

// writeRateLimited writes a 429 answer for f. OpenAI answers advertise
// Retry-After only when f.RetryAfter is positive; Anthropic and Azure
// always send it, a second when f.RetryAfter is not positive, and answer
// KindStatus faults of status 429 this way too.
func (s *Server) writeRateLimited(ctx *fasthttp.RequestCtx, c *call, f Fault) {
	e := rateLimitError(f)
	if c.dialect != dialectOpenAI {
		if f.RetryAfter <= 0 {
			f.RetryAfter = time.Second
		}
		e = anthropicRateLimitError(f)
		if c.dialect == dialectAzure {
			e = azureRateLimitError(c, f)
		}
	}
	if f.RetryAfter > 0 {
		secs := int64(math.Ceil(f.RetryAfter.Seconds()))
		ctx.Response.Header.Set("Retry-After", strconv.FormatInt(secs, 10))
		ctx.Response.Header.Set("Retry-After-Ms", strconv.FormatInt(f.RetryAfter.Milliseconds(), 10))
	}
	s.writeErrorLimited(ctx, c, e, f.RetryAfter)
}

// writeJSON writes a 200 JSON answer with the OpenAI headers.
func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, c *call, body []byte) {
	s.writeJSONLimited(ctx, c, fasthttp.StatusOK, body, -1)
}

// writeJSONLimited writes a JSON answer; a non-negative reset marks the
// answer as rate limited, with that reset time.
func (s *Server) writeJSONLimited(ctx *fasthttp.RequestCtx, c *call, status int, body []byte, reset time.Duration) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	s.setHeaders(ctx, c, reset)
	ctx.SetBody(body)
}

// Constant header values advertised on every answer.
const (
	rateLimitRequests = "10000"
	rateLimitTokens   = "30000000"
	openAIVersion     = "2020-10-01"
	openAIOrg         = "user-fakeopenai"
	openAIProject     = "proj_fakeopenai"
)

// headerPair is one response header.
type headerPair struct{ k, v string }

// openAIHeaders returns the headers OpenAI sets on every answer. A
// non-negative reset marks the answer as rate limited.
func (s *Server) openAIHeaders(c *call, reset time.Duration) [10]headerPair {
	limReq, limTok := rateLimitRequests, rateLimitTokens
	remainingReq, remainingTok, resetReq := "9999", "29999000", "6ms"
	if c.limits.on {
		limReq, remainingReq, resetReq, limTok, remainingTok = c.limits.headers()
	}
	if reset >= 0 {
		remainingReq, resetReq = "0", reset.String()
	}
	return [10]headerPair{
		{"X-Request-Id", c.reqID},
		{"Openai-Processing-Ms", strconv.FormatInt(time.Since(c.start).Milliseconds(), 10)},
		{"Openai-Version", openAIVersion},
		{"Openai-Organization", c.organization()},
		{"Openai-Project", openAIProject},
		{"X-Ratelimit-Limit-Requests", limReq},
		{"X-Ratelimit-Remaining-Requests", remainingReq},
		{"X-Ratelimit-Reset-Requests", resetReq},
		{"X-Ratelimit-Limit-Tokens", limTok},
		{"X-Ratelimit-Remaining-Tokens", remainingTok},
	}
}

// setHeaders sets the headers of the call's dialect on the response.
func (s *Server) setHeaders(ctx *fasthttp.RequestCtx, c *call, reset time.Duration) {
	if c.dialect != dialectOpenAI {
		for _, h := range s.dialectHeaders(c, reset) {
			ctx.Response.Header.Set(h.k, h.v)
		}
		return
	}
	for _, h := range s.openAIHeaders(c, reset) {
		ctx.Response.Header.Set(h.k, h.v)
	}
	ctx.Response.Header.Set("X-Ratelimit-Reset-Tokens", c.limits.resetTokens())
	ctx.Response.Header.Set("Access-Control-Expose-Headers", "X-Request-ID")
}

// appendRawHead appends the status line and headers of a chunked response
// written straight to a hijacked connection.
func (s *Server) appendRawHead(b []byte, c *call, contentType string) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: "...)
	b = append(b, contentType...)
	b = append(b, "\r\nTransfer-Encoding: chunked\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, "Mon, 02 Jan 2006 15:04:05 GMT")
	b = append(b, "\r\n"...)
	if c.dialect != dialectOpenAI {
		b = appendHeaderPairs(b, s.dialectHeaders(c, -1))
		return append(b, "\r\n"...)
	}
	hs := s.openAIHeaders(c, -1)
	b = appendHeaderPairs(b, hs[:])
	b = append(b, "X-Ratelimit-Reset-Tokens: "...)
	b = append(b, c.limits.resetTokens()...)
	b = append(b, "\r\nAccess-Control-Expose-Headers: X-Request-ID\r\n\r\n"...)
	return b
}

// appendHeaderPairs appends hs as header lines.
func appendHeaderPairs(b []byte, hs []headerPair) []byte {
	for _, h := range hs {
		b = append(b, h.k...)
		b = append(b, ": "...)
		b = append(b, h.v...)
		b = append(b, "\r\n"...)
	}
	return b
}

// dialectHeaders returns the headers Anthropic or Azure set on every
// answer. A non-negative reset marks the answer as rate limited.
func (s *Server) dialectHeaders(c *call, reset time.Duration) []headerPair {
	if c.dialect == dialectAnthropic {
		return anthropicHeaders(c, reset)
	}
	return azureHeaders(c, reset)
}

// requestID returns a fresh request ID in the form of dialect d: OpenAI's
// x-request-id, Anthropic's request-id or Azure's apim-request-id (a
// UUID).
func (s *Server) requestID(d dialect) string {
	switch d {
	case dialectAnthropic:
		return s.token("req_011C", 20, base62)
	case dialectAzure:
		return s.uuid()
	}
	return s.token("req_", 32, hexDigits)
}

// uuid returns a fresh random-looking version 4 UUID.
func (s *Server) uuid() string {
	return formatUUID(s.token("", 32, hexDigits))
}

// formatUUID formats 32 or more hex digits as a version 4 UUID.
func formatUUID(h string) string {
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// token returns prefix followed by n pseudo-random characters of alphabet,
// unique for the server's lifetime.
func (s *Server) token(prefix string, n int, alphabet string) string {
	x := s.idSeed ^ (s.idCtr.Add(1) * golden64)
	b := make([]byte, 0, len(prefix)+n)
	b = append(b, prefix...)
	var r uint64
	for i := range n {
		if i%8 == 0 {
			r = splitmix(&x)
		}
		b = append(b, alphabet[(r&0xff)%uint64(len(alphabet))])
		r >>= 8
	}
	return string(b)
}

// presentedKey is the API key a call carries: the bearer token, or the
// x-api-key (Anthropic) or api-key (Azure) header.
func presentedKey(ctx *fasthttp.RequestCtx) string {
	if k := ctx.Request.Header.Peek("x-api-key"); len(k) > 0 {
		return string(k)
	}
	if k := ctx.Request.Header.Peek("api-key"); len(k) > 0 {
		return string(k)
	}
	auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if len(auth) > 7 && strings.EqualFold(string(auth[:7]), "bearer ") {
		return string(auth[7:])
	}
	return ""
}
