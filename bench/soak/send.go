//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/bench/load"
)

// outcome classifies one answered (or failed) request as the client sees
// it.
type outcome uint8

const (
	// ok: status 200 and, for a stream, a clean end (data: [DONE], no error
	// event).
	ok outcome = iota
	// badStatus: a status other than 200.
	badStatus
	// brokenStream: status 200, but the stream carried an error event or
	// ended without data: [DONE].
	brokenStream
	// transport: no response (refused, reset, cut).
	transport
	// timeout: no complete response before the request's deadline.
	timeout
	nOutcomes
)

var outcomeNames = [nOutcomes]string{"ok", "status", "broken-stream", "transport", "timeout"}

// String returns the name used in reports.
func (o outcome) String() string {
	if o < nOutcomes {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// result is one finished request.
type result struct {
	latency time.Duration
	outcome outcome
	status  int
	// hit: veil's cache answered (X-Veil-Cache: HIT).
	hit bool
	// absorbed: a 200 that took more than one upstream attempt or another
	// provider than the first planned (X-Veil-Attempts > 1 or
	// X-Veil-Failover: true).
	absorbed bool
	// example is an error text, for failures.
	example string
}

// bucket collects the results of one sampling period.
type bucket struct {
	latencies []time.Duration
	outcomes  [nOutcomes]int
	statuses  map[int]int
	hits      int
	absorbed  int
	examples  map[outcome]string
}

// requests is the number of finished requests in the bucket.
func (b *bucket) requests() int { return len(b.latencies) }

// errors is the number of client-visible failures in the bucket.
func (b *bucket) errors() int { return b.requests() - b.outcomes[ok] }

func (b *bucket) add(r result) {
	b.latencies = append(b.latencies, r.latency)
	b.outcomes[r.outcome]++
	if r.hit {
		b.hits++
	}
	if r.absorbed {
		b.absorbed++
	}
	if r.outcome == badStatus {
		if b.statuses == nil {
			b.statuses = map[int]int{}
		}
		b.statuses[r.status]++
	}
	if r.example != "" {
		if b.examples == nil {
			b.examples = map[outcome]string{}
		}
		b.examples[r.outcome] = r.example
	}
}

// merge adds o's counts to b (latencies included).
func (b *bucket) merge(o *bucket) {
	b.latencies = append(b.latencies, o.latencies...)
	for i, n := range o.outcomes {
		b.outcomes[i] += n
	}
	for code, n := range o.statuses {
		if b.statuses == nil {
			b.statuses = map[int]int{}
		}
		b.statuses[code] += n
	}
	for k, v := range o.examples {
		if b.examples == nil {
			b.examples = map[outcome]string{}
		}
		b.examples[k] = v
	}
	b.hits += o.hits
	b.absorbed += o.absorbed
}

// window is the current period's bucket, shared by the workers, which
// add to it, and the sampler, which takes it at the end of each period.
type window struct {
	mu  sync.Mutex
	cur bucket
}

func (w *window) add(r result) {
	w.mu.Lock()
	w.cur.add(r)
	w.mu.Unlock()
}

// take returns the bucket so far and starts a new one.
func (w *window) take() bucket {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.cur
	w.cur = bucket{latencies: make([]time.Duration, 0, cap(b.latencies))}
	return b
}

// sender sends the soak's open-loop schedule to veil.
type sender struct {
	client  *fasthttp.HostClient
	base    string // http://addr
	token   string
	plan    plan
	timeout time.Duration
	win     *window
}

func newSender(addr, token string, p plan, conns int, timeout time.Duration, win *window) (*sender, error) {
	if err := load.CheckLoopback(addr); err != nil {
		return nil, err
	}
	return &sender{
		client: &fasthttp.HostClient{
			Addr:                          addr,
			MaxConns:                      conns,
			MaxConnWaitTimeout:            timeout,
			MaxIdleConnDuration:           time.Minute,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
		},
		base: "http://" + addr, token: token, plan: p, timeout: timeout, win: win,
	}, nil
}

// suppliers are the X-Supplier-ID values the requests rotate over.
var suppliers = []string{"soak-bella-photography", "soak-rose-venue", "soak-oak-catering", "soak-june-planning"}

// run sends n requests at rate per second from start, with workers
// goroutines, and returns when every sent request has finished.
func (s *sender) run(ctx context.Context, start time.Time, rate float64, n int64, workers int) {
	interval := float64(time.Second) / rate
	slots := make(chan int64, workers)
	var wg sync.WaitGroup
	for range min(int64(workers), n) {
		wg.Go(func() { s.work(ctx, start, interval, slots) })
	}
	wg.Go(func() { load.Pace(ctx, start, interval, n, slots) })
	wg.Wait()
}

func (s *sender) work(ctx context.Context, start time.Time, interval float64, slots <-chan int64) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for i := range slots {
		if ctx.Err() != nil {
			continue // drain until the pacer stops
		}
		s.win.add(s.send(req, resp, s.plan.kindAt(i), i, start.Add(time.Duration(float64(i)*interval))))
	}
}

// send sends slot i's request, due at sched, and judges the answer; the
// latency counts from sched.
func (s *sender) send(req *fasthttp.Request, resp *fasthttp.Response, k *kind, i int64, sched time.Time) result {
	s.fill(req, k, i)
	err := s.client.DoDeadline(req, resp, sched.Add(s.timeout))
	r := judge(k, resp, err)
	r.latency = time.Since(sched)
	return r
}

// once sends one request of kind k now.
func (s *sender) once(k *kind, i int64) result {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	return s.send(req, resp, k, i, time.Now())
}

// fill writes slot i's request into req.
func (s *sender) fill(req *fasthttp.Request, k *kind, i int64) {
	req.Reset()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(s.base + k.path)
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("X-Supplier-ID", suppliers[i%int64(len(suppliers))])
	if k.cacheControl != "" {
		req.Header.Set("Cache-Control", k.cacheControl)
	}
	req.SetBodyRaw(k.body(i))
}

// Response headers veil sets.
const (
	headerCache    = "X-Veil-Cache"
	headerAttempts = "X-Veil-Attempts"
	headerFailover = "X-Veil-Failover"
)

// judge classifies a finished request of kind k.
func judge(k *kind, resp *fasthttp.Response, err error) result {
	switch {
	case err != nil:
		o := transport
		if load.IsTimeout(err) {
			o = timeout
		}
		return result{outcome: o, example: err.Error()}
	case resp.StatusCode() != fasthttp.StatusOK:
		return result{outcome: badStatus, status: resp.StatusCode(),
			example: fmt.Sprintf("status %d: %.200s", resp.StatusCode(), resp.Body())}
	}
	r := result{status: fasthttp.StatusOK, hit: string(resp.Header.Peek(headerCache)) == "HIT"}
	if a, _ := strconv.Atoi(string(resp.Header.Peek(headerAttempts))); a > 1 || string(resp.Header.Peek(headerFailover)) == "true" {
		r.absorbed = true
	}
	if k.stream {
		if why := streamProblem(resp.Body()); why != "" {
			r.outcome, r.example = brokenStream, why
		}
	}
	return r
}

// streamProblem returns why an SSE body is not a complete, clean stream,
// or "" when it is: it must end with data: [DONE] and carry no error
// event.
func streamProblem(body []byte) string {
	if bytes.Contains(body, []byte(`data: {"error"`)) {
		i := bytes.Index(body, []byte(`data: {"error"`))
		return fmt.Sprintf("error event: %.200s", body[i:])
	}
	if !bytes.HasSuffix(bytes.TrimRight(body, "\r\n"), []byte("data: [DONE]")) {
		return fmt.Sprintf("stream ended without data: [DONE] after %d bytes", len(body))
	}
	return ""
}
