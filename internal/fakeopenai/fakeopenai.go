// Package fakeopenai is an in-process fake of the OpenAI HTTP API built on
// fasthttp. It answers chat completions, legacy completions, embeddings,
// models and the Responses API with the same JSON and SSE shapes, status
// codes, error envelopes and headers as the real service, so that official
// SDKs cannot tell the difference. Answers are deterministic functions of the
// request, timing is configurable, misbehaviour (error statuses, rate limits,
// connection resets, stalls, cut streams, error events) can be scripted, and
// every request is recorded for later inspection.
//
// Chat completions that offer functions, as tools or as the legacy
// functions, answer with calls the way the service does, streamed or not:
// tool_choice "required" or a named function always calls, "none" never
// does, and "auto", the default, calls the functions whose name or
// description shares a significant word with the last user message, unless
// the last message hands call results back, which is answered with text.
// Two functions are called at once when two are mentioned and
// parallel_tool_calls is not false. The rule is spelled out in full on
// toolSpec.choose. Arguments are a JSON object built from the function's
// parameters schema, with string values taken from the prompt.
//
// The same server also speaks two other dialects, so that translators to
// them can be tested against it:
//
//   - The Anthropic Messages API: POST /v1/messages, authenticated by
//     x-api-key (a bearer key is refused) with a required anthropic-version
//     header, validated field by field the way the service does (unknown
//     fields included), answered with text or tool_use blocks, streamed as
//     Anthropic's named events, with Anthropic's error envelope, request-id
//     and anthropic-ratelimit-* headers. GET /v1/models with an
//     anthropic-version header lists the Anthropic models (see
//     Options.AnthropicModels).
//   - The Azure OpenAI URL shape: POST /openai/deployments/{deployment}/
//     chat/completions, completions and embeddings, and GET /openai/models,
//     with an api-version query parameter, authenticated by api-key (or a
//     bearer token); the deployment decides the model (see
//     Options.AzureDeployments), answers carry Azure's content filter
//     results and headers, and Azure's own errors have its
//     {"code","message"} envelope.
//
// Scripted faults apply to every dialect, answering in its shapes.
//
// For answer-similarity tests the fake has a crude, deterministic sense of
// meaning (meaning.go, judge.go). Embeddings are built from a text's
// content words, stemmed, with clock times and numbers normalised and a
// small table of wedding-domain synonyms, so that paraphrases score high,
// partial answers in between and wrong ones low. A chat completion (or an
// Anthropic message) whose system prompt starts with JudgeMarker is
// answered with a similarity judge's JSON verdict, scored by comparing the two delimited answers'
// content and, for timelines, their events: the same times, the same
// things at them, in the same order. Both are stand-ins that rank answers
// sensibly; the thresholds that decide what counts as similar must be
// calibrated on the real provider (docs/operations.md).
package fakeopenai

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/wedsync/veil/internal/connpeek"
)

// ErrClosed is returned by Start and Serve once the server has been closed.
var ErrClosed = errors.New("fakeopenai: server closed")

// Options configures the fake's timing and behaviour. The zero value is a
// fast fake that accepts any non-empty API key and records everything.
type Options struct {
	// Latency is the delay before the response headers of every call,
	// including scripted error answers.
	Latency time.Duration
	// TTFT is, for streams, the extra delay after the headers before the
	// first event that carries content. For chat and legacy completion
	// streams that is the first event (the role chunk, immediately followed
	// by the first content chunk); Responses streams send their
	// response.created preamble at once and wait before the first
	// response.output_text.delta; Anthropic streams send message_start at
	// once and wait before the first content_block_start.
	TTFT time.Duration
	// ChunkDelay is, for streams, the delay between two content chunks.
	ChunkDelay time.Duration
	// ChunkWords is the number of words (or, for function calls, pieces of
	// the arguments, about a token each) per streamed content chunk; 1 when
	// zero or negative.
	ChunkWords int
	// ReplyWords, when positive, makes every generated answer exactly that
	// many words long (before max_tokens truncation) instead of two to four
	// sentences. Long answers are handy for cancellation tests and stream
	// benchmarks.
	ReplyWords int
	// Models lists the model IDs served by /v1/models. When empty a realistic
	// default list is used (see DefaultModels).
	Models []string
	// AllowUnknownModels serves calls naming a model that is not in Models
	// instead of answering 404 model_not_found.
	AllowUnknownModels bool
	// Keys, when not empty, are the only API keys accepted (Authorization:
	// Bearer KEY; x-api-key on Anthropic calls; api-key or a bearer token on
	// Azure calls); other keys get 401 in the dialect's shape. When empty
	// any non-empty key is accepted. See also SetKeys.
	Keys []string
	// NoQuotaKeys are keys whose account has no quota left: OpenAI calls
	// made with one are answered 429 insufficient_quota, as OpenAI does
	// for an account out of credit, whether or not Keys lists them.
	NoQuotaKeys []string
	// DiscardBodies keeps request bodies out of the record (Received.Body is
	// nil). Bodies are recorded by default.
	DiscardBodies bool
	// NoRecord disables recording altogether; only Stats are kept. Use it for
	// long load benchmarks, where the record would grow without bound.
	NoRecord bool
	// AnthropicModels lists the model IDs the Anthropic Messages API serves
	// (and lists at GET /v1/models with an anthropic-version header). When
	// empty DefaultAnthropicModels is used. AllowUnknownModels applies to
	// them too.
	AnthropicModels []string
	// RequestLimit, when positive, gives the fake a rate limit of its own,
	// as OpenAI keeps one per organisation: each call to chat
	// completions, completions, embeddings or responses takes one request
	// (and, with TokenLimit, a quarter of its body's bytes plus
	// max_tokens in tokens) from a fixed window of LimitWindow that starts
	// with the first call. The x-ratelimit-* headers then tell the limits,
	// what is left and when the window is whole again, and a call with no
	// room left is answered 429 rate_limit_exceeded with Retry-After until
	// then (counted in Stats.RateLimited). OpenAI dialect only.
	RequestLimit int
	// TokenLimit, with RequestLimit, is the window's token limit; zero
	// leaves tokens unlimited.
	TokenLimit int
	// LimitWindow is the window of RequestLimit and TokenLimit, and of
	// each Account's; DefaultLimitWindow when zero.
	LimitWindow time.Duration
	// Accounts put API keys in organisations of their own, as a pool of
	// platform keys may span several: an OpenAI call made with a key an
	// account lists is answered with the account's Organization in
	// OpenAI-Organization and, with a RequestLimit, takes from the
	// account's own budget (as RequestLimit above, one per account: its
	// keys share it), whose x-ratelimit-* headers it reports. An
	// Anthropic call made with one is answered with the Organization in
	// anthropic-organization-id, and Anthropic's usual rate limits. Calls
	// with other keys keep the server's organisation and limits.
	Accounts []Account
	// AzureDeployments maps the Azure OpenAI deployment names served under
	// /openai/deployments/ to the models they run. When nil, a deployment
	// named like a model of Models runs that model (any name does with
	// AllowUnknownModels).
	AzureDeployments map[string]string
}

// Account is an organisation of Options.Accounts.
type Account struct {
	// Organization is what its answers say in OpenAI-Organization, or
	// in anthropic-organization-id on Anthropic calls.
	Organization string
	// Keys are its API keys.
	Keys []string
	// RequestLimit and TokenLimit are its own rate limit, per
	// Options.LimitWindow; zero RequestLimit reports the server's
	// default limits, untouched by calls.
	RequestLimit, TokenLimit int
}

// DefaultModels is the model list served when Options.Models is empty.
var DefaultModels = []string{
	"gpt-4o-mini",
	"gpt-4o",
	"gpt-4o-2024-08-06",
	"gpt-4.1",
	"gpt-4.1-mini",
	"gpt-4.1-nano",
	"gpt-4-turbo",
	"gpt-4",
	"gpt-3.5-turbo",
	"gpt-3.5-turbo-instruct",
	"gpt-5",
	"gpt-5-mini",
	"gpt-5-nano",
	"o1",
	"o3-mini",
	"o4-mini",
	"text-embedding-3-small",
	"text-embedding-3-large",
	"text-embedding-ada-002",
	"whisper-1",
	"gpt-4o-transcribe",
	"tts-1",
	"dall-e-3",
	"omni-moderation-latest",
}

// Received is one recorded request.
type Received struct {
	// Method is the HTTP method, e.g. "POST".
	Method string
	// Path is the decoded request path, e.g. "/v1/chat/completions".
	Path string
	// Query is the raw query string without the leading '?'.
	Query string
	// Header holds every request header in the order received, with
	// canonical keys and all values, duplicates included.
	Header http.Header
	// Body is a copy of the request body as received (still compressed if
	// it was sent compressed); nil with Options.DiscardBodies.
	Body []byte
	// At is when the request reached the handler.
	At time.Time
}

// Stats are the server's counters.
type Stats struct {
	// Requests is the number of requests received.
	Requests int64
	// Streams is the number of streamed (SSE) responses started.
	Streams int64
	// StreamsCancelled is the number of streams whose client went away
	// mid-stream: a write or flush to it failed.
	StreamsCancelled int64
	// Abandoned is the number of calls whose client closed its
	// connection before the response headers (while the call waited out
	// its latency or a stall), which the server then gave up.
	Abandoned int64
	// InFlight is the number of requests whose response is not finished.
	InFlight int64
	// Faults is the number of scripted faults applied.
	Faults int64
	// RateLimited is the number of calls the fake's own rate limit
	// (Options.RequestLimit) answered with 429.
	RateLimited int64
}

// Server is a fake OpenAI API server. Its methods are safe for concurrent
// use.
type Server struct {
	opts       Options
	chunkWords int
	srv        *fasthttp.Server
	done       chan struct{}
	closeOnce  sync.Once
	closeErr   error
	serving    sync.WaitGroup
	work       tracker

	mu     sync.Mutex // guards closed, lns, addr and conns
	closed bool
	lns    []*trackedListener
	addr   string
	conns  map[*trackedConn]struct{}

	keys atomic.Pointer[keySet]
	// noQuota holds Options.NoQuotaKeys.
	noQuota keySet

	models     map[string]modelInfo
	modelList  []modelInfo
	modelsJSON []byte

	anthModels   map[string]anthropicModel
	anthModelIDs []string

	recMu   sync.Mutex // guards records and recWake
	records []Received
	recWake signal // fired when a request arrives
	waiters atomic.Int32

	faultMu sync.Mutex // guards faults
	faults  []pendingFault
	nFaults atomic.Int64

	requests      atomic.Int64
	streams       atomic.Int64
	cancelledN    atomic.Int64
	abandoned     atomic.Int64
	inFlight      atomic.Int64
	faultsApplied atomic.Int64
	cancelled     chan struct{}

	// budget is the fake's own rate limit (Options.RequestLimit);
	// budgetRefusals counts the calls it, or an account's, refused.
	budget         budget
	budgetRefusals atomic.Int64
	// accounts are Options.Accounts by key.
	accounts map[string]*account

	idSeed uint64
	idCtr  atomic.Uint64
}

// keySet is an immutable set of accepted API keys; empty accepts any.
type keySet map[string]struct{}

// New returns a server configured by opts. Call Start or Serve to serve it,
// or mount Handler on a fasthttp server of your own.
func New(opts Options) *Server {
	s := &Server{
		opts:       opts,
		chunkWords: max(opts.ChunkWords, 1),
		done:       make(chan struct{}),
		conns:      make(map[*trackedConn]struct{}),
		cancelled:  make(chan struct{}, 1024),
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
	}
	s.idSeed = binary.LittleEndian.Uint64(seed[:])
	s.SetKeys(opts.Keys...)
	s.noQuota = make(keySet, len(opts.NoQuotaKeys))
	for _, k := range opts.NoQuotaKeys {
		s.noQuota[k] = struct{}{}
	}
	s.initAccounts()
	s.initModels()
	s.initAnthropicModels()
	s.srv = &fasthttp.Server{
		Handler:                      s.Handler,
		Name:                         "",
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		ReadBufferSize:               64 << 10,
		MaxRequestBodySize:           64 << 20,
		CloseOnShutdown:              true,
		// The worker pool's cleaner only notices Close when it wakes up;
		// keep that short so that Close leaves no goroutine behind for long.
		MaxIdleWorkerDuration: time.Second,
		Logger:                discardLogger{},
	}
	return s
}

// discardLogger drops fasthttp's log lines (mostly connections closed by
// clients or by faults).
type discardLogger struct{}

// Printf implements fasthttp.Logger.
func (discardLogger) Printf(string, ...any) {}

// Start listens on addr (e.g. "127.0.0.1:0") and serves in the background
// until Close.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fakeopenai: listen on %s: %w", addr, err)
	}
	tl, err := s.track(ln)
	if err != nil {
		return err
	}
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		_ = s.serve(tl)
	}()
	return nil
}

// Serve serves on ln until Close, which also closes ln. It returns nil after
// Close.
func (s *Server) Serve(ln net.Listener) error {
	tl, err := s.track(ln)
	if err != nil {
		return err
	}
	return s.serve(tl)
}

// serve runs the fasthttp server on tl.
func (s *Server) serve(tl *trackedListener) error {
	err := s.srv.Serve(tl)
	if s.isClosed() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fakeopenai: serve: %w", err)
	}
	return nil
}

// track registers ln so that Close can close it and every connection it
// accepted.
func (s *Server) track(ln net.Listener) (*trackedListener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = ln.Close()
		return nil, ErrClosed
	}
	tl := &trackedListener{Listener: ln, s: s}
	s.lns = append(s.lns, tl)
	if s.addr == "" {
		s.addr = dialableAddr(ln.Addr())
	}
	return tl, nil
}

// dialableAddr returns a's host:port with an unspecified host (0.0.0.0, ::)
// replaced by 127.0.0.1.
func dialableAddr(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok && (ta.IP == nil || ta.IP.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(ta.Port))
	}
	return a.String()
}

// Addr returns the address the server listens on, e.g. "127.0.0.1:41234",
// or "" before Start or Serve.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL returns the API base URL, e.g. "http://127.0.0.1:41234/v1", suitable as
// an SDK base URL.
func (s *Server) URL() string {
	return "http://" + s.Addr() + "/v1"
}

// isClosed reports whether Close has been called.
func (s *Server) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Close stops the server: it releases stalled and streaming handlers, closes
// the listeners and every open connection, and waits for the handlers to
// return. It is safe to call more than once; later calls return the first
// result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.mu.Lock()
		s.closed = true
		lns := s.lns
		conns := make([]*trackedConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()

		var errs []error
		for _, ln := range lns {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, fmt.Errorf("fakeopenai: close listener: %w", err))
			}
		}
		for _, c := range conns {
			_ = c.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.srv.ShutdownWithContext(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("fakeopenai: shutdown: %w", err))
		}
		if err := s.work.wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("fakeopenai: wait for streams: %w", err))
		}
		s.serving.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// SetKeys replaces the accepted API keys. With no keys any non-empty bearer
// key is accepted.
func (s *Server) SetKeys(keys ...string) {
	ks := make(keySet, len(keys))
	for _, k := range keys {
		ks[k] = struct{}{}
	}
	s.keys.Store(&ks)
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Requests:         s.requests.Load(),
		Streams:          s.streams.Load(),
		StreamsCancelled: s.cancelledN.Load(),
		Abandoned:        s.abandoned.Load(),
		InFlight:         s.inFlight.Load(),
		Faults:           s.faultsApplied.Load(),
		RateLimited:      s.budgetRefusals.Load(),
	}
}

// Cancelled returns a channel that receives one value per stream whose
// client went away (see Stats.StreamsCancelled). The channel is buffered;
// values are dropped when nobody drains it.
func (s *Server) Cancelled() <-chan struct{} {
	return s.cancelled
}

// streamCancelled counts a stream whose client went away.
func (s *Server) streamCancelled() {
	if s.isClosed() {
		return // Close tore the connection down, not the client.
	}
	s.cancelledN.Add(1)
	select {
	case s.cancelled <- struct{}{}:
	default:
	}
}

// Requests returns a copy of every request recorded so far, in arrival
// order.
func (s *Server) Requests() []Received {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	out := make([]Received, len(s.records))
	for i, r := range s.records {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// WaitRequests blocks until at least n requests have been received since New
// (as counted by Stats.Requests) or ctx is done.
func (s *Server) WaitRequests(ctx context.Context, n int) error {
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	for {
		s.recMu.Lock()
		if s.requests.Load() >= int64(n) {
			s.recMu.Unlock()
			return nil
		}
		wake := s.recWake.next()
		s.recMu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("fakeopenai: wait for %d requests: %w", n, ctx.Err())
		}
	}
}

// Reset clears the recorded requests and the pending faults. Counters are
// kept.
func (s *Server) Reset() {
	s.recMu.Lock()
	s.records = nil
	s.recMu.Unlock()
	s.faultMu.Lock()
	s.faults = nil
	s.nFaults.Store(0)
	s.faultMu.Unlock()
}

// record counts the request and, unless disabled, appends it to the record.
func (s *Server) record(ctx *fasthttp.RequestCtx, now time.Time) {
	if s.opts.NoRecord {
		// Count before looking for waiters: a waiter that registers after
		// the look sees the new count itself.
		s.requests.Add(1)
		if s.waiters.Load() > 0 {
			s.recMu.Lock()
			s.recWake.fire()
			s.recMu.Unlock()
		}
		return
	}
	r := Received{
		Method: string(ctx.Method()),
		Path:   string(ctx.Path()),
		Query:  string(ctx.URI().QueryString()),
		Header: make(http.Header, 16),
		At:     now,
	}
	for k, v := range ctx.Request.Header.AllInOrder() {
		key := http.CanonicalHeaderKey(string(k))
		r.Header[key] = append(r.Header[key], string(v))
	}
	if len(r.Header) == 0 {
		for k, v := range ctx.Request.Header.All() {
			key := http.CanonicalHeaderKey(string(k))
			r.Header[key] = append(r.Header[key], string(v))
		}
	}
	if !s.opts.DiscardBodies {
		r.Body = bytes.Clone(ctx.Request.Body())
	}
	s.recMu.Lock()
	s.records = append(s.records, r)
	s.requests.Add(1)
	s.recWake.fire()
	s.recMu.Unlock()
}

// signal wakes the goroutines waiting for an event, each time it happens.
// The mutex of the struct it is part of guards it.
type signal struct {
	ch chan struct{}
}

// next returns a channel closed when the event next happens.
func (g *signal) next() <-chan struct{} {
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	return g.ch
}

// fire wakes the goroutines waiting for the event.
func (g *signal) fire() {
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

// sleep waits for d and reports whether it did; it returns false early when
// the server is closed. A non-positive d returns true at once.
func (s *Server) sleep(d time.Duration) bool {
	if d <= 0 {
		return !s.isClosed()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// stall waits for d, or until Close when d is zero, and reports whether the
// server is still open.
func (s *Server) stall(d time.Duration) bool {
	if d > 0 {
		return s.sleep(d)
	}
	<-s.done
	return false
}

// wait is how a wait before a call's headers ended.
type wait int

const (
	// waitDone: the wait is over, the call goes on.
	waitDone wait = iota
	// waitClosed: the server is closing.
	waitClosed
	// waitAbandoned: the client closed its connection meanwhile.
	waitAbandoned
)

// abandonCheck is how often a wait before a call's headers looks whether
// its client is still there.
const abandonCheck = 20 * time.Millisecond

// waitCall waits d before a call's headers (until Close when forever),
// the time a provider works on an answer. Like a provider, it gives the
// call up when its client closes the connection meanwhile, which counts
// in Stats.Abandoned.
func (s *Server) waitCall(ctx *fasthttp.RequestCtx, d time.Duration, forever bool) wait {
	if d <= 0 && !forever {
		if s.isClosed() {
			return waitClosed
		}
		return waitDone
	}
	var timeout <-chan time.Time
	if !forever {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	tick := time.NewTicker(abandonCheck)
	defer tick.Stop()
	for {
		select {
		case <-timeout:
			return waitDone
		case <-s.done:
			return waitClosed
		case <-tick.C:
			if connpeek.Closed(ctx.Conn()) {
				s.abandoned.Add(1)
				return waitAbandoned
			}
		}
	}
}

// tracker counts background work (stream writers and hijacked connections)
// so that Close can wait for it.
type tracker struct {
	mu      sync.Mutex
	n       int
	closing bool
	idle    signal // fired when n drops to zero
}

// add registers one piece of work; it returns false once closing.
func (t *tracker) add() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.n++
	return true
}

// done unregisters one piece of work.
func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		t.idle.fire()
	}
}

// wait refuses new work and waits for the registered work to finish.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	t.closing = true
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	idle := t.idle.next()
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// trackedListener records accepted connections so that Close can close them.
type trackedListener struct {
	net.Listener
	s    *Server
	once sync.Once
	err  error
}

// Accept implements net.Listener.
func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	if l.s.closed {
		l.s.mu.Unlock()
		_ = c.Close()
		return nil, net.ErrClosed
	}
	l.s.conns[tc] = struct{}{}
	l.s.mu.Unlock()
	return tc, nil
}

// Close implements net.Listener; closing twice is not an error.
func (l *trackedListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// trackedConn removes itself from the server's set when closed.
type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
	err  error
}

// NetConn returns the connection it wraps.
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

// Close implements net.Conn; closing twice is not an error.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.err = c.Conn.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.err
}

// abortiveClose closes c so that the peer sees a reset where possible.
func abortiveClose(c net.Conn) {
	raw := c
	if tc, ok := c.(*trackedConn); ok {
		raw = tc.Conn
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = c.Close()
}

// itoa formats n in decimal.
func itoa(n int) string {
	return strconv.Itoa(n)
}
