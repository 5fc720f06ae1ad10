//go:build linux

package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/bench/load"
)

// Outcome classifies one scheduled request.
type Outcome uint8

const (
	// Unsent: the run was cancelled before the request was sent.
	Unsent Outcome = iota
	// OK: the response status was 200.
	OK
	// BadStatus: a response arrived with a status other than 200.
	BadStatus
	// Transport: the request failed without a response (refused, reset, ...).
	Transport
	// Timeout: no complete response before the request's deadline.
	Timeout
)

// String returns the name used in reports.
func (o Outcome) String() string {
	switch o {
	case Unsent:
		return "unsent"
	case OK:
		return "ok"
	case BadStatus:
		return "status"
	case Transport:
		return "transport"
	case Timeout:
		return "timeout"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Record is what the generator keeps for one scheduled request. Durations
// are measured from the request's scheduled send time, so a request that
// waited for a free worker or connection carries that wait in Latency
// (no coordinated omission).
type Record struct {
	// Latency is from the scheduled send time to the end of the response
	// body (or the error).
	Latency time.Duration
	// Lag is from the scheduled send time to the moment the request was
	// actually handed to the client: the generator's own delay.
	Lag time.Duration
	// Status is the HTTP status code, 0 when there was no response.
	Status uint16
	// Outcome classifies the request.
	Outcome Outcome
	// Hit is set when the response said X-Veil-Cache: HIT.
	Hit bool
}

// Target is one HTTP endpoint that the generator hits with the same POST
// request, or the same few in rotation, over and over.
type Target struct {
	// Addr is host:port; the host must be a loopback IP address.
	Addr string
	// Path is the request path, e.g. /v1/chat/completions.
	Path string
	// Token is sent as "Authorization: Bearer <Token>" when not empty.
	Token string
	// Headers are sent with every request, e.g. X-Supplier-ID.
	Headers map[string]string
	// Body is the JSON request body.
	Body []byte
	// Bodies, when not empty, replaces Body: request i sends
	// Bodies[i%len(Bodies)].
	Bodies [][]byte
}

// Options bounds the generator's concurrency and per-request time.
type Options struct {
	// Conns is the maximum number of connections to the target.
	Conns int
	// Workers is the number of goroutines sending requests; at most this
	// many requests are in flight. Zero means Conns.
	Workers int
	// Timeout bounds each request, counted from its scheduled send time.
	Timeout time.Duration
}

// Generator sends open-loop, constant-rate load to one Target. It keeps
// its connections between runs, so a warm-up run primes the measured one.
type Generator struct {
	target  Target
	bodies  [][]byte
	opts    Options
	client  *fasthttp.HostClient
	uri     string
	errMu   sync.Mutex
	lastErr map[Outcome]string
}

// NewGenerator checks the target and options and prepares a client.
func NewGenerator(t Target, o Options) (*Generator, error) {
	if err := load.CheckLoopback(t.Addr); err != nil {
		return nil, err
	}
	if t.Path == "" || t.Path[0] != '/' {
		return nil, fmt.Errorf("target path %q must start with /", t.Path)
	}
	if o.Conns <= 0 {
		return nil, fmt.Errorf("conns must be positive, got %d", o.Conns)
	}
	if o.Workers == 0 {
		o.Workers = o.Conns
	}
	if o.Workers < 0 {
		return nil, fmt.Errorf("workers must not be negative, got %d", o.Workers)
	}
	if o.Timeout <= 0 {
		return nil, fmt.Errorf("timeout must be positive, got %v", o.Timeout)
	}
	bodies := t.Bodies
	if len(bodies) == 0 {
		bodies = [][]byte{t.Body}
	}
	return &Generator{
		target: t,
		bodies: bodies,
		opts:   o,
		uri:    "http://" + t.Addr + t.Path,
		client: &fasthttp.HostClient{
			Addr:                          t.Addr,
			MaxConns:                      o.Conns,
			MaxConnWaitTimeout:            o.Timeout,
			MaxIdleConnDuration:           time.Minute,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
		},
		lastErr: map[Outcome]string{},
	}, nil
}

// Close drops the generator's idle connections.
func (g *Generator) Close() {
	g.client.CloseIdleConnections()
}

// fill writes the fixed request into req once; workers reuse it and swap
// the body when the target rotates bodies. Bodies are set raw, without a
// copy: every worker shares them, and nothing writes to them.
func (g *Generator) fill(req *fasthttp.Request) {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(g.uri)
	req.Header.SetContentType("application/json")
	if g.target.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.target.Token)
	}
	for k, v := range g.target.Headers {
		req.Header.Set(k, v)
	}
	req.SetBodyRaw(g.bodies[0])
}

// Probe sends each of the target's bodies once, in turn, and returns the
// status and body of the first answer other than 200, or of the last; it
// is used to fail early, with a useful message, when the target is
// misconfigured (and, against a cache, stores every answer).
func (g *Generator) Probe() (int, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	g.fill(req)
	for _, b := range g.bodies {
		req.SetBodyRaw(b)
		if err := g.client.DoTimeout(req, resp, g.opts.Timeout); err != nil {
			return 0, nil, fmt.Errorf("probe %s: %w", g.uri, err)
		}
		if resp.StatusCode() != fasthttp.StatusOK {
			break
		}
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

// Run is the result of one generator run.
type Run struct {
	// Rate is the target rate in requests per second.
	Rate float64
	// Duration is the scheduling window.
	Duration time.Duration
	// Start is the scheduled send time of the first request.
	Start time.Time
	// End is when the last worker finished.
	End time.Time
	// Records holds one entry per scheduled request, in schedule order.
	Records []Record
	// Errors holds the most recent error text per outcome kind.
	Errors map[string]string
}

// Run sends requests at rate per second for d, each one scheduled at
// Start + i/rate no matter how earlier requests fare, and returns when
// every sent request has completed or failed. A pacer hands the slots out
// on time to a fixed pool of workers; when every worker is busy, later
// requests go out late and the lateness shows up in their latency. Run
// ends by itself after about d plus the request timeout; cancelling ctx
// stops it sooner, leaving the remaining requests Unsent. Runs of one
// Generator must not overlap.
func (g *Generator) Run(ctx context.Context, rate float64, d time.Duration) (*Run, error) {
	if rate <= 0 || d <= 0 {
		return nil, fmt.Errorf("rate (%v) and duration (%v) must be positive", rate, d)
	}
	n := int64(rate * d.Seconds())
	if n < 1 {
		n = 1
	}
	const maxRequests = 1 << 26 // 1.5 GiB of records; a sanity bound.
	if n > maxRequests {
		return nil, fmt.Errorf("%v at %v req/s is %d requests, more than %d", d, rate, n, maxRequests)
	}
	g.errMu.Lock()
	clear(g.lastErr)
	g.errMu.Unlock()

	r := &Run{Rate: rate, Duration: d, Records: make([]Record, n)}
	interval := float64(time.Second) / rate
	workers := int(min(int64(g.opts.Workers), n))
	slots := make(chan int64, workers)
	// Give the workers a moment to start so the first slots are not late.
	r.Start = time.Now().Add(5 * time.Millisecond)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { g.work(ctx, r, slots, interval) })
	}
	wg.Go(func() { load.Pace(ctx, r.Start, interval, n, slots) })
	wg.Wait()
	r.End = time.Now()
	g.errMu.Lock()
	r.Errors = make(map[string]string, len(g.lastErr))
	for k, v := range g.lastErr {
		r.Errors[k.String()] = v
	}
	g.errMu.Unlock()
	return r, nil
}

// work is one worker: take the next due slot, send, record.
func (g *Generator) work(ctx context.Context, r *Run, slots <-chan int64, interval float64) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	g.fill(req)
	for i := range slots {
		if ctx.Err() != nil {
			continue // leave it Unsent; drain until the pacer stops
		}
		if len(g.bodies) > 1 {
			req.SetBodyRaw(g.bodies[i%int64(len(g.bodies))])
		}
		sched := r.Start.Add(time.Duration(float64(i) * interval))
		sent := time.Now()
		err := g.client.DoDeadline(req, resp, sched.Add(g.opts.Timeout))
		rec := &r.Records[i]
		rec.Latency = time.Since(sched)
		rec.Lag = sent.Sub(sched)
		switch {
		case err != nil:
			rec.Outcome = classify(err)
			g.noteErr(rec.Outcome, err.Error())
		case resp.StatusCode() == fasthttp.StatusOK:
			rec.Outcome = OK
			rec.Status = fasthttp.StatusOK
			rec.Hit = string(resp.Header.Peek(headerCache)) == "HIT"
		default:
			rec.Outcome = BadStatus
			rec.Status = uint16(resp.StatusCode())
			g.noteErr(BadStatus, fmt.Sprintf("status %d: %.200s", resp.StatusCode(), resp.Body()))
		}
	}
}

// headerCache is veil's response header that says whether its cache
// answered.
const headerCache = "X-Veil-Cache"

// noteErr remembers the latest error text of a kind; only failing requests
// pay for it.
func (g *Generator) noteErr(o Outcome, msg string) {
	g.errMu.Lock()
	g.lastErr[o] = msg
	g.errMu.Unlock()
}

// classify sorts a client error into Timeout or Transport.
func classify(err error) Outcome {
	if load.IsTimeout(err) {
		return Timeout
	}
	return Transport
}
