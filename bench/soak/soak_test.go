//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/cache"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/fakeopenai"
)

func TestParseMetrics(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want map[string]float64
		bad  bool
	}{
		{name: "plain", in: "go_goroutines 42\n", want: map[string]float64{"go_goroutines": 42}},
		{name: "comments and blanks",
			in:   "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\n\ngo_goroutines 7\n",
			want: map[string]float64{"go_goroutines": 7}},
		{name: "float and exponent", in: "go_memstats_heap_inuse_bytes 1.2345e+07\n",
			want: map[string]float64{"go_memstats_heap_inuse_bytes": 12345000}},
		{name: "labels", in: `veil_streams_interrupted_total{reason="upstream_error"} 3` + "\n" + `veil_streams_interrupted_total{reason="client_gone"} 1` + "\n",
			want: map[string]float64{
				`veil_streams_interrupted_total{reason="upstream_error"}`: 3,
				`veil_streams_interrupted_total{reason="client_gone"}`:    1,
			}},
		{name: "label value with spaces and braces", in: `m{a="x y",b="{z}"} 5` + "\n",
			want: map[string]float64{`m{a="x y",b="{z}"}`: 5}},
		{name: "timestamp ignored", in: "m 5 1700000000000\n", want: map[string]float64{"m": 5}},
		{name: "special values", in: "a +Inf\nb NaN\n", want: map[string]float64{"a": math.Inf(1), "b": math.NaN()}},
		{name: "no value", in: "go_goroutines\n", bad: true},
		{name: "not a number", in: "go_goroutines many\n", bad: true},
		{name: "unclosed labels", in: `m{a="x" 5` + "\n", bad: true},
		{name: "too many fields", in: "m 1 2 3\n", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMetrics([]byte(tc.in))
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				g, ok := got[k]
				if !ok || (g != v && !(math.IsNaN(g) && math.IsNaN(v))) {
					t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
				}
			}
		})
	}
}

func TestFamily(t *testing.T) {
	m := map[string]float64{
		`veil_retries_denied_total{provider="primary"}`: 2,
		`veil_retries_denied_total_other`:               9,
		`veil_retries_denied`:                           8,
		`go_goroutines`:                                 5,
	}
	got := family(m, "veil_retries_denied_total")
	if len(got) != 1 || got[`provider="primary"`] != 2 {
		t.Errorf("labelled family: %v", got)
	}
	if got := family(m, "go_goroutines"); len(got) != 1 || got[""] != 5 {
		t.Errorf("plain family: %v", got)
	}
	if got := family(m, "absent"); len(got) != 0 {
		t.Errorf("absent family: %v", got)
	}
}

// samplesOf builds samples a minute apart with the given goroutine
// counts and RSS values in MiB.
func samplesOf(goroutines []int, rssMiB []float64) []sample {
	out := make([]sample, len(goroutines))
	for i := range out {
		out[i] = sample{At: time.Duration(i+1) * time.Minute, Goroutines: goroutines[i], RSS: int64(rssMiB[i] * (1 << 20)),
			Heap: 10 << 20, FDs: 30}
	}
	return out
}

// growthOf returns the growth of the named resource.
func growthOf(t *testing.T, gs []growth, name string) growth {
	t.Helper()
	for _, g := range gs {
		if g.res.name == name {
			return g
		}
	}
	t.Fatalf("no growth for %s in %v", name, gs)
	return growth{}
}

func TestCheckGrowth(t *testing.T) {
	for _, tc := range []struct {
		name       string
		goroutines []int
		rss        []float64
		from       int
		share      float64
		wantG      bool // goroutines flagged
		wantR      bool // RSS flagged
	}{
		{name: "flat", goroutines: []int{80, 80, 80}, rss: []float64{40, 40, 40}, share: 0.2},
		{name: "noise under the floors", goroutines: []int{80, 120, 125}, rss: []float64{40, 46, 47}, share: 0.2},
		{name: "goroutines past floor and share", goroutines: []int{80, 200, 300}, rss: []float64{40, 40, 40}, share: 0.2, wantG: true},
		{name: "RSS past floor and share", goroutines: []int{80, 80, 80}, rss: []float64{40, 50, 60}, share: 0.2, wantR: true},
		{name: "RSS past floor but not share", goroutines: []int{80, 80, 80}, rss: []float64{100, 105, 115}, share: 0.2},
		{name: "shrinking", goroutines: []int{300, 200, 80}, rss: []float64{90, 60, 40}, share: 0.2},
		{name: "peak in the middle, back at the end", goroutines: []int{80, 900, 85}, rss: []float64{40, 200, 41}, share: 0.2},
		{name: "warm-up growth left out", goroutines: []int{10, 80, 82}, rss: []float64{10, 40, 41}, from: 1, share: 0.2},
		{name: "warm-up growth counted", goroutines: []int{10, 80, 82}, rss: []float64{10, 40, 41}, share: 0.2, wantG: true, wantR: true},
		{name: "zero share: the floor alone", goroutines: []int{80, 80, 131}, rss: []float64{40, 40, 48.5}, share: 0, wantG: true, wantR: true},
		{name: "one stable sample", goroutines: []int{10, 500}, rss: []float64{10, 500}, from: 1, share: 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs := checkGrowth(samplesOf(tc.goroutines, tc.rss), tc.from, tc.share)
			if len(gs) != len(resources) {
				t.Fatalf("%d verdicts, want %d", len(gs), len(resources))
			}
			if g := growthOf(t, gs, "goroutines"); g.flagged != tc.wantG {
				t.Errorf("goroutines %v -> %v (limit %v): flagged %v, want %v", g.first, g.last, g.limit, g.flagged, tc.wantG)
			}
			if g := growthOf(t, gs, "RSS"); g.flagged != tc.wantR {
				t.Errorf("RSS %v -> %v (limit %v): flagged %v, want %v", g.first, g.last, g.limit, g.flagged, tc.wantR)
			}
			for _, name := range []string{"heap in use", "open fds"} {
				if g := growthOf(t, gs, name); g.flagged || g.delta() != 0 || g.perHour != 0 {
					t.Errorf("%s: %+v, want flat", name, g)
				}
			}
		})
	}
	if gs := checkGrowth(nil, 0, 0.2); gs != nil {
		t.Errorf("no samples: %v", gs)
	}
}

func TestGrowthPeakAndTrend(t *testing.T) {
	// One goroutine more per minute: 60 an hour.
	gs := checkGrowth(samplesOf([]int{100, 101, 102, 103, 104}, []float64{40, 40, 40, 40, 40}), 0, 0.2)
	g := growthOf(t, gs, "goroutines")
	if g.peak != 104 || g.delta() != 4 || math.Abs(g.perHour-60) > 1e-6 {
		t.Errorf("peak %v, delta %v, per hour %v; want 104, 4, 60", g.peak, g.delta(), g.perHour)
	}
	lines := verdictLines(gs)
	if len(lines) != len(resources) || !strings.Contains(lines[2], "+60 per hour: ok") {
		t.Errorf("verdict lines %q", lines)
	}
}

func TestSlope(t *testing.T) {
	for _, tc := range []struct {
		name   string
		xs, ys []float64
		want   float64
	}{
		{name: "empty"},
		{name: "one point", xs: []float64{1}, ys: []float64{5}},
		{name: "same x", xs: []float64{1, 1}, ys: []float64{5, 9}},
		{name: "line", xs: []float64{0, 1, 2, 3}, ys: []float64{1, 3, 5, 7}, want: 2},
		{name: "falling", xs: []float64{0, 1, 2}, ys: []float64{6, 4, 2}, want: -2},
		{name: "noise around flat", xs: []float64{0, 1, 2, 3}, ys: []float64{5, 6, 5, 6}, want: 0.2},
	} {
		if got := slope(tc.xs, tc.ys); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: slope %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStableFrom(t *testing.T) {
	s := []sample{{At: 30 * time.Second}, {At: time.Minute}, {At: 90 * time.Second}}
	for _, tc := range []struct {
		warmup time.Duration
		want   int
	}{{0, 0}, {30 * time.Second, 0}, {45 * time.Second, 1}, {time.Minute, 1}, {80 * time.Second, 2}, {time.Hour, 2}} {
		if got := stableFrom(s, tc.warmup); got != tc.want {
			t.Errorf("warm-up %v: %d, want %d", tc.warmup, got, tc.want)
		}
	}
	if got := stableFrom(nil, time.Minute); got != 0 {
		t.Errorf("no samples: %d", got)
	}
}

func TestStreamProblem(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		bad        bool
	}{
		{name: "clean", body: "data: {\"choices\":[]}\n\ndata: [DONE]\n\n"},
		{name: "clean, CRLF", body: "data: {\"choices\":[]}\r\n\r\ndata: [DONE]\r\n\r\n"},
		{name: "keep-alive comments before the end", body: ": keep-alive\n\ndata: {}\n\ndata: [DONE]\n\n"},
		{name: "no DONE", body: "data: {\"choices\":[]}\n\n", bad: true},
		{name: "empty", body: "", bad: true},
		{name: "error event", body: "data: {}\n\ndata: {\"error\":{\"message\":\"upstream cut\"}}\n\n", bad: true},
		{name: "error event, then DONE", body: "data: {\"error\":{}}\n\ndata: [DONE]\n\n", bad: true},
	} {
		if got := streamProblem([]byte(tc.body)); (got != "") != tc.bad {
			t.Errorf("%s: %q, want bad %v", tc.name, got, tc.bad)
		}
	}
}

func TestJudge(t *testing.T) {
	stream, plain := &kinds[1], &kinds[0]
	if !stream.stream || plain.stream {
		t.Fatal("kinds[0] must be plain and kinds[1] streamed")
	}
	resp := func(status int, body string, headers ...string) *fasthttp.Response {
		r := &fasthttp.Response{}
		r.SetStatusCode(status)
		r.SetBodyString(body)
		for i := 0; i+1 < len(headers); i += 2 {
			r.Header.Set(headers[i], headers[i+1])
		}
		return r
	}
	for _, tc := range []struct {
		name     string
		k        *kind
		resp     *fasthttp.Response
		err      error
		want     outcome
		hit, abs bool
	}{
		{name: "ok", k: plain, resp: resp(200, `{}`), want: ok},
		{name: "hit", k: plain, resp: resp(200, `{}`, headerCache, "HIT"), want: ok, hit: true},
		{name: "miss", k: plain, resp: resp(200, `{}`, headerCache, "MISS"), want: ok},
		{name: "retried", k: plain, resp: resp(200, `{}`, headerAttempts, "2"), want: ok, abs: true},
		{name: "failed over", k: plain, resp: resp(200, `{}`, headerAttempts, "1", headerFailover, "true"), want: ok, abs: true},
		{name: "one attempt", k: plain, resp: resp(200, `{}`, headerAttempts, "1"), want: ok},
		{name: "status", k: plain, resp: resp(502, `{"error":{}}`), want: badStatus},
		{name: "stream ok", k: stream, resp: resp(200, "data: {}\n\ndata: [DONE]\n\n"), want: ok},
		{name: "stream broken", k: stream, resp: resp(200, "data: {}\n\n"), want: brokenStream},
		{name: "plain body not checked as a stream", k: plain, resp: resp(200, `{"x":1}`), want: ok},
		{name: "timeout", k: plain, resp: resp(200, ""), err: fasthttp.ErrTimeout, want: timeout},
		{name: "transport", k: plain, resp: resp(200, ""), err: errors.New("connection reset by peer"), want: transport},
	} {
		r := judge(tc.k, tc.resp, tc.err)
		if r.outcome != tc.want || r.hit != tc.hit || r.absorbed != tc.abs {
			t.Errorf("%s: %+v, want %s, hit %v, absorbed %v", tc.name, r, tc.want, tc.hit, tc.abs)
		}
		if (r.outcome != ok) != (r.example != "") {
			t.Errorf("%s: outcome %s with example %q", tc.name, r.outcome, r.example)
		}
	}
}

func TestBucket(t *testing.T) {
	var w window
	w.add(result{latency: 2 * time.Millisecond, hit: true})
	w.add(result{latency: 4 * time.Millisecond, absorbed: true})
	w.add(result{latency: 9 * time.Millisecond, outcome: badStatus, status: 503, example: "status 503"})
	b := w.take()
	if b.requests() != 3 || b.errors() != 1 || b.hits != 1 || b.absorbed != 1 || b.statuses[503] != 1 {
		t.Errorf("bucket %+v", b)
	}
	if c := w.take(); c.requests() != 0 || c.errors() != 0 {
		t.Errorf("second take %+v, want empty", c)
	}
	var total bucket
	total.merge(&b)
	total.merge(&b)
	if total.requests() != 6 || total.errors() != 2 || total.statuses[503] != 2 || total.examples[badStatus] != "status 503" {
		t.Errorf("merged %+v", total)
	}
	smp := sampleOf(&b, time.Minute, 10*time.Second, 4)
	if smp.Requests != 3 || smp.Errors != 1 || smp.Throughput != 0.3 || smp.P50 != 4*time.Millisecond || smp.Max != 9*time.Millisecond || smp.Faults != 4 {
		t.Errorf("sample %+v", smp)
	}
}

func TestPlan(t *testing.T) {
	const n = 200_000
	p, err := newPlan(7, 0.05, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string]int{}
	for i := range int64(n) {
		byKind[p.kindAt(i).name]++
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	for _, k := range kinds {
		want := float64(k.weight) / float64(total)
		if got := float64(byKind[k.name]) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("%s: share %.4f, want %.4f", k.name, got, want)
		}
	}
	// Every request that goes upstream makes one call to the primary:
	// faults on those calls are the asked share of all requests.
	up := int(math.Round(n * upstreamShare()))
	for _, stream := range []bool{false, true} {
		faults := 0
		for c := range uint64(up) {
			i := p.faultAt(c+1, stream)
			if i < 0 {
				continue
			}
			faults++
			if faultKinds[i].streamOnly && !stream {
				t.Fatalf("call %d: stream fault %s on a plain call", c, faultKinds[i].name)
			}
		}
		if got := float64(faults) / n; math.Abs(got-0.05) > 0.005 {
			t.Errorf("stream %v: fault share %.4f of all requests, want 0.05", stream, got)
		}
	}
	q, _ := newPlan(7, 0.05, time.Second)
	r, _ := newPlan(8, 0.05, time.Second)
	same, differ := true, false
	for i := range int64(1000) {
		same = same && p.kindAt(i) == q.kindAt(i) && p.faultAt(uint64(i), true) == q.faultAt(uint64(i), true)
		differ = differ || p.kindAt(i) != r.kindAt(i)
	}
	if !same || !differ {
		t.Errorf("same seed gives the same draws: %v; another seed others: %v", same, differ)
	}
	none, _ := newPlan(7, 0, time.Second)
	for c := range uint64(10_000) {
		if i := none.faultAt(c, true); i >= 0 {
			t.Fatalf("fault share 0, but call %d brings %s", c, faultKinds[i].name)
		}
	}
	for _, share := range []float64{-0.1, 0.9} {
		if _, err := newPlan(1, share, time.Second); err == nil {
			t.Errorf("share %v accepted", share)
		}
	}
}

// TestFaultyUpstream: the primary passes calls to its fake untouched
// until armed; armed with every call faulted, each chat and embeddings
// call misbehaves and the model list does not.
func TestFaultyUpstream(t *testing.T) {
	all, err := newPlan(3, upstreamShare(), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	u, err := startFaulty(fakeopenai.New(fakeopenai.Options{NoRecord: true}), all)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := u.Close(); err != nil {
			t.Error(err)
		}
	}()
	c := &fasthttp.Client{}
	call := func(path string, body []byte) (int, error) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + u.Addr() + path)
		req.Header.Set("Authorization", "Bearer sk-test")
		if body != nil {
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			req.SetBody(body)
		}
		err := c.DoTimeout(req, resp, 5*time.Second)
		if err == nil && bytes.Contains(body, []byte(`"stream":true`)) && streamProblem(resp.Body()) != "" {
			return -1, nil // a broken stream
		}
		return resp.StatusCode(), err
	}
	plain, stream := kinds[0].body(1), kinds[1].body(1)
	for _, b := range [][]byte{plain, stream} {
		if status, err := call(pathChat, b); status != 200 || err != nil {
			t.Fatalf("before arm: %d, %v", status, err)
		}
	}
	u.arm()
	const n = 20
	for i := range n {
		b := plain
		if i%2 == 1 {
			b = stream
		}
		// The stalls only delay the answer.
		f := faultKinds[all.faultAt(uint64(i+1), i%2 == 1)]
		slow := strings.HasPrefix(f.name, "slow") || strings.HasPrefix(f.name, "stall")
		status, err := call(pathChat, b)
		if clean := status == 200 && err == nil; clean != slow {
			t.Errorf("call %d, fault %s: status %d, %v", i, f.name, status, err)
		}
	}
	if status, err := call("/v1/models", nil); status != 200 || err != nil {
		t.Errorf("models: %d, %v", status, err)
	}
	drawn, byKind := u.faults()
	if drawn != n || u.fake.Stats().Faults != n {
		t.Errorf("drawn %d (%v), applied %d; want %d", drawn, byKind, u.fake.Stats().Faults, n)
	}
}

func TestBodies(t *testing.T) {
	for _, k := range kinds {
		distinct := map[string]bool{}
		for i := range int64(100) {
			b := k.body(i)
			var v struct {
				Model       string          `json:"model"`
				Stream      bool            `json:"stream"`
				Temperature json.RawMessage `json:"temperature"`
				Input       string          `json:"input"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("%s, slot %d: %v: %s", k.name, i, err, b)
			}
			if v.Stream != k.stream || v.Model == "" {
				t.Errorf("%s: %+v", k.name, v)
			}
			if k.path == pathChat {
				c := cache.Cacheable(cache.Request{Endpoint: cache.EndpointChatCompletions, Temperature: v.Temperature})
				if want := !k.upstream || k.cacheControl != ""; c != want {
					t.Errorf("%s: cacheable %v, want %v", k.name, c, want)
				}
			}
			distinct[string(b)] = true
		}
		switch cached := !k.upstream || k.cacheControl == "no-cache"; {
		case cached && len(distinct) != cachedPrompts:
			t.Errorf("%s: %d distinct bodies in 100 slots, want %d", k.name, len(distinct), cachedPrompts)
		case !cached && len(distinct) != 100:
			t.Errorf("%s: %d distinct bodies in 100 slots, want 100", k.name, len(distinct))
		}
	}
}

func TestVeilConfigValid(t *testing.T) {
	s, err := parseFlags(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	yaml := veilConfig(s, "127.0.0.1:18080", "127.0.0.1:19090", "127.0.0.1:18081", "127.0.0.1:18082", "/tmp/usage.jsonl")
	c, err := config.ParseWithEnv([]byte(yaml), "soak.yaml", nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	if len(c.Providers) != 2 || !c.Limits.StreamResume || c.Limits.AttemptTimeout != 500*time.Millisecond || len(c.Usage.Sinks) != 1 {
		t.Errorf("parsed %+v", c)
	}
}

func TestParseFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "0"}, {"-rate", "-1"}, {"-interval", "0"}, {"-fault-share", "0.9"}, {"-fault-share", "-0.1"},
		{"-warmup", "-1s"}, {"-conns", "0"}, {"-max-growth", "-1"}, {"extra"},
	} {
		if _, err := parseFlags(args, nil); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	s, err := parseFlags([]string{"-duration", "11m", "-rate", "300", "-fault-share", "0.1"}, nil)
	if err != nil || s.duration != 11*time.Minute || s.rate != 300 || s.faultShare != 0.1 {
		t.Errorf("%+v, %v", s, err)
	}
}

// TestSmoke runs a two-second soak at a low rate against a real veil and
// checks that it reports; it asserts nothing about timings.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs veil")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "soak.md")
	var stdout, stderr strings.Builder
	err := run([]string{"-duration", "2s", "-rate", "25", "-interval", "500ms", "-warmup", "0", "-settle", "0",
		"-fault-share", "0.3", "-out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"goroutines", "requests: 50 finished", "growth from the first stable sample", "idle, before the load"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| time | RSS | heap |") || !strings.Contains(string(md), "client-visible errors") {
		t.Errorf("markdown:\n%s", md)
	}
}

func TestCPUShares(t *testing.T) {
	then := cpuTimes{veil: time.Second, self: 2 * time.Second, busy: 10 * time.Second}
	for _, tc := range []struct {
		name string
		now  cpuTimes
		want cpuShares
	}{
		{name: "idle", now: then},
		{name: "veil and soak only", now: cpuTimes{veil: 3 * time.Second, self: 3 * time.Second, busy: 13 * time.Second},
			want: cpuShares{veil: 0.2, self: 0.1}},
		{name: "others busy", now: cpuTimes{veil: 2 * time.Second, self: 3 * time.Second, busy: 17 * time.Second},
			want: cpuShares{veil: 0.1, self: 0.1, other: 0.5}},
		// /proc/stat and /proc/PID/stat tick apart: never a negative share.
		{name: "tick skew", now: cpuTimes{veil: 2 * time.Second, self: 3 * time.Second, busy: 11 * time.Second},
			want: cpuShares{veil: 0.1, self: 0.1}},
	} {
		got := tc.now.since(then, 10*time.Second)
		if math.Abs(got.veil-tc.want.veil) > 1e-9 || math.Abs(got.self-tc.want.self) > 1e-9 || math.Abs(got.other-tc.want.other) > 1e-9 {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
