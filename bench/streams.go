//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/bench/load"
)

// slowStreamBody is the streamed request of the slow-streams phase; its
// answer is as long as the fake upstream's -reply-words make it.
const slowStreamBody = `{"model":"gpt-4o-mini","stream":true,"max_tokens":4096,` +
	`"messages":[{"role":"user","content":"Write a long toast for the couple."}]}`

// streamSuppliers is the number of supplier IDs the held streams spread
// over, so that no supplier reaches the default limits.supplier_in_flight
// (1,000): the phase measures veil's capacity, not one tenant's cap.
const streamSuppliers = 100

// streamResult is the outcome of one held stream.
type streamResult struct {
	// Status is the HTTP status, 0 when there was no answer.
	Status int
	// Done is set when the stream ended with "data: [DONE]".
	Done bool
	// Err is the transport error, if any.
	Err string
	// Took is from the request's send to the stream's end.
	Took time.Duration
}

// StreamSummary condenses the slow-streams phase.
type StreamSummary struct {
	// Streams counts the streams opened; Completed those that ended with
	// [DONE] after a 200; Cut those that ended without it; Bad502 the 502
	// answers; OtherStatus every other status; Failed those that got no
	// answer.
	Streams, Completed, Cut, Bad502, OtherStatus, Failed int
	// StatusCodes counts the statuses other than 200.
	StatusCodes map[int]int
	// Took is the streams' duration, completed ones only.
	Took load.Percentiles
	// Errors holds one example per kind of failure.
	Errors map[string]string
}

// summarizeStreams computes a StreamSummary.
func summarizeStreams(res []streamResult) StreamSummary {
	s := StreamSummary{Streams: len(res)}
	var took []time.Duration
	note := func(kind, msg string) {
		if s.Errors == nil {
			s.Errors = map[string]string{}
		}
		s.Errors[kind] = msg
	}
	for _, r := range res {
		switch {
		case r.Status == 0:
			s.Failed++
			note("transport", r.Err)
		case r.Status == fasthttp.StatusOK && r.Done:
			s.Completed++
			took = append(took, r.Took)
		case r.Status == fasthttp.StatusOK:
			s.Cut++
			note("cut", r.Err)
		default:
			if s.StatusCodes == nil {
				s.StatusCodes = map[int]int{}
			}
			s.StatusCodes[r.Status]++
			if r.Status == fasthttp.StatusBadGateway {
				s.Bad502++
			} else {
				s.OtherStatus++
			}
			note("status "+strconv.Itoa(r.Status), r.Err)
		}
	}
	s.Took = load.ComputePercentiles(took)
	return s
}

// streamHolder opens streams through veil, each to its end, and counts
// how many are open at once.
type streamHolder struct {
	client *fasthttp.HostClient
	uri    string
	token  string
	open   atomic.Int64
	peak   atomic.Int64
}

// newStreamHolder prepares a client that can hold n streams to addr at
// once, each read until its end; readTimeout bounds a whole stream (the
// client sets the read deadline once per response).
func newStreamHolder(addr, token string, n int, readTimeout time.Duration) *streamHolder {
	return &streamHolder{
		uri:   "http://" + addr + "/v1/chat/completions",
		token: token,
		client: &fasthttp.HostClient{
			Addr:                     addr,
			MaxConns:                 n,
			MaxConnWaitTimeout:       readTimeout,
			ReadTimeout:              readTimeout,
			StreamResponseBody:       true,
			NoDefaultUserAgentHeader: true,
			ReadBufferSize:           4096,
			WriteBufferSize:          4096,
		},
	}
}

// run opens n streams, paced evenly over ramp (open loop), and returns
// when every one has ended.
func (h *streamHolder) run(ctx context.Context, n int, ramp time.Duration) []streamResult {
	res := make([]streamResult, n)
	slots := make(chan int64, n)
	interval := float64(ramp) / float64(n)
	start := time.Now().Add(5 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Go(func() { load.Pace(ctx, start, interval, int64(n), slots) })
	for i := range slots {
		wg.Go(func() { res[i] = h.one(int(i)) })
	}
	wg.Wait()
	return res
}

// one holds one stream to its end.
func (h *streamHolder) one(i int) streamResult {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(h.uri)
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("X-Supplier-ID", "bench-supplier-"+strconv.Itoa(i%streamSuppliers))
	req.SetBodyString(slowStreamBody)
	t0 := time.Now()
	h.peak.Store(max(h.peak.Load(), h.open.Add(1)))
	defer h.open.Add(-1)
	if err := h.client.Do(req, resp); err != nil {
		return streamResult{Err: err.Error(), Took: time.Since(t0)}
	}
	r := streamResult{Status: resp.StatusCode()}
	var tail tailWriter
	if _, err := io.Copy(&tail, resp.BodyStream()); err != nil {
		r.Err = err.Error()
	}
	_ = resp.CloseBodyStream()
	r.Took = time.Since(t0)
	r.Done = bytes.HasSuffix(bytes.TrimSpace(tail.b), []byte("data: [DONE]"))
	if r.Status != fasthttp.StatusOK && r.Err == "" {
		r.Err = fmt.Sprintf("%.200s", tail.b)
	}
	return r
}

// tailWriter keeps the last bytes written to it.
type tailWriter struct{ b []byte }

// tailSize is how many bytes tailWriter keeps.
const tailSize = 256

// Write keeps the end of p.
func (w *tailWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	if len(w.b) > tailSize {
		w.b = append(w.b[:0], w.b[len(w.b)-tailSize:]...)
	}
	return len(p), nil
}
