//go:build linux

// Command soak runs veil for a long time at a constant request rate, with
// a share of the requests bringing injected upstream faults, and reports
// over time veil's RSS, Go heap, goroutines and open file descriptors next
// to the clients' latency, throughput and errors; at the end it says
// whether any of veil's resources grew from the first sample after the
// warm-up to the last. Growth is reported, never a failure.
//
// Usage (from the repository root):
//
//	go run ./bench/soak [-duration 10m] [-rate 200] [-interval 30s] [-warmup 1m]
//	                    [-fault-share 0.05] [-max-growth 0.2] [-out FILE.md]
//	                    [-veil BINARY] [-keep]
//
// veil runs as its own process (veil serve, built from ./cmd/veil), so its
// RSS and file descriptors are its own; two fake OpenAI upstreams run
// inside the soak process: the primary, which misbehaves on a share of
// the calls it gets (500, 503, 429, connection resets, a slow first byte,
// and on streams cuts before and after the first content, error events
// and stalls), and the secondary, which never fails and takes the calls
// veil fails over. The share is chosen so that the faults make up
// -fault-share of all requests while veil plans the primary first. The
// mix is chat completions, streamed and not, and embeddings; some are
// deterministic and answered from veil's cache. The schedule is open loop
// (request i is due at start + i/rate, its latency counted from then), as
// in go run ./bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wedsync/veil/bench/load"
	"github.com/wedsync/veil/internal/fakeopenai"
)

// settings are the parsed command-line flags.
type settings struct {
	duration, interval, warmup, settle time.Duration
	rate                               float64
	faultShare, maxGrowth              float64
	conns                              int
	timeout                            time.Duration
	stall, attemptTimeout              time.Duration
	upstreamLatency, chunkDelay        time.Duration
	streamResume                       bool
	seed                               uint64
	logLevel                           string
	out                                string
	veilBin                            string
	keep                               bool
	args                               []string
}

func parseFlags(args []string, stderr io.Writer) (*settings, error) {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &settings{args: args}
	fs.DurationVar(&s.duration, "duration", 10*time.Minute, "how long to send requests")
	fs.Float64Var(&s.rate, "rate", 200, "requests per second, constant")
	fs.DurationVar(&s.interval, "interval", 30*time.Second, "sampling period: one table row each")
	fs.DurationVar(&s.warmup, "warmup", time.Minute, "samples before this are not the baseline of the growth check")
	fs.DurationVar(&s.settle, "settle", 15*time.Second, "wait after the load before the idle sample (fasthttp ends idle workers after 10s)")
	fs.Float64Var(&s.faultShare, "fault-share", 0.05, "share of all requests that meet an injected upstream fault (while veil plans the primary first)")
	fs.Float64Var(&s.maxGrowth, "max-growth", 0.2, "growth, as a share of the first stable sample, above which a resource is flagged (each also has an absolute floor)")
	fs.IntVar(&s.conns, "conns", 256, "maximum client connections, and sending goroutines")
	fs.DurationVar(&s.timeout, "timeout", 10*time.Second, "per-request timeout, from the scheduled send time")
	fs.DurationVar(&s.stall, "stall", 2*time.Second, "how long a stall fault holds the upstream's answer")
	fs.DurationVar(&s.attemptTimeout, "attempt-timeout", 500*time.Millisecond, "veil's attempt_timeout and ttft_timeout: when it gives up on a stalled upstream")
	fs.DurationVar(&s.upstreamLatency, "upstream-latency", 5*time.Millisecond, "the fake upstreams' delay before their response headers")
	fs.DurationVar(&s.chunkDelay, "chunk-delay", time.Millisecond, "the fake upstreams' delay between streamed chunks")
	fs.BoolVar(&s.streamResume, "stream-resume", true, "run veil with limits.stream_resume, so streams cut after content are continued on the secondary")
	fs.Uint64Var(&s.seed, "seed", 1, "seed of the request mix and the fault draw")
	fs.StringVar(&s.logLevel, "log-level", "info", "veil's log level")
	fs.StringVar(&s.out, "out", "", "also write the report as Markdown to this file")
	fs.StringVar(&s.veilBin, "veil", "", "use this veil binary instead of building ./cmd/veil")
	fs.BoolVar(&s.keep, "keep", false, "keep the temporary directory (config, binary, veil log, usage file)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case s.duration <= 0 || s.interval <= 0:
		return nil, errors.New("-duration and -interval must be positive")
	case s.rate <= 0:
		return nil, errors.New("-rate must be positive")
	case s.warmup < 0 || s.settle < 0:
		return nil, errors.New("-warmup and -settle must not be negative")
	case s.maxGrowth < 0:
		return nil, errors.New("-max-growth must not be negative")
	case s.conns <= 0:
		return nil, errors.New("-conns must be positive")
	case s.timeout <= 0 || s.stall <= 0 || s.attemptTimeout <= 0:
		return nil, errors.New("-timeout, -stall and -attempt-timeout must be positive")
	case s.upstreamLatency < 0 || s.chunkDelay < 0:
		return nil, errors.New("-upstream-latency and -chunk-delay must not be negative")
	}
	if _, err := newPlan(s.seed, s.faultShare, s.stall); err != nil {
		return nil, fmt.Errorf("-fault-share: %w", err)
	}
	return s, nil
}

func main() { load.Main("soak", run) }

// stack is the soak's system under test: two fake upstreams in this
// process and veil as a child process in front of them.
type stack struct {
	primary   *faultyUpstream
	secondary *fakeopenai.Server
	veil      *load.Child
	log       *os.File
	LogPath   string
	ProxyAddr string
	AdminAddr string
	Token     string
}

// veilConfig renders veil's configuration: two OpenAI providers serving
// the same models, so that a failed call on the primary fails over to the
// secondary.
func veilConfig(s *settings, proxy, admin, primary, secondary, usagePath string) string {
	return load.VeilConfigHead("bench/soak", proxy, admin, s.logLevel) + fmt.Sprintf(`limits:
  attempt_timeout: %s
  ttft_timeout: %s
  stream_resume: %t
providers:
  - name: primary
    type: openai
    base_url: http://%s/v1
    api_key: env://SOAK_PRIMARY_KEY
    models: [gpt-4o-mini, text-embedding-3-small]
  - name: secondary
    type: openai
    base_url: http://%s/v1
    api_key: env://SOAK_SECONDARY_KEY
    models: [gpt-4o-mini, text-embedding-3-small]
callers:
  - name: soak
    token: env://SOAK_CALLER_TOKEN
    suppliers: ["*"]
usage:
  sinks:
    - type: file
      path: %s
      max_bytes: 16777216
      keep: 2
`, s.attemptTimeout, s.attemptTimeout, s.streamResume, primary, secondary, usagePath)
}

// startStack starts the fakes and veil from bin, with config, log and
// usage file in dir, and waits until veil is ready.
func startStack(ctx context.Context, s *settings, p plan, dir, bin string) (st *stack, err error) {
	st = &stack{LogPath: filepath.Join(dir, "veil.log")}
	defer func() {
		if err != nil {
			err = errors.Join(err, st.Close())
			st = nil
		}
	}()
	opts := fakeopenai.Options{Latency: s.upstreamLatency, ChunkDelay: s.chunkDelay, NoRecord: true}
	if st.primary, err = startFaulty(fakeopenai.New(opts), p); err != nil {
		return st, err
	}
	st.secondary = fakeopenai.New(opts)
	if err := st.secondary.Start("127.0.0.1:0"); err != nil {
		return st, err
	}
	if st.log, err = os.Create(st.LogPath); err != nil {
		return st, fmt.Errorf("create log: %w", err)
	}
	for _, p := range []*string{&st.ProxyAddr, &st.AdminAddr} {
		if *p, err = load.FreeAddr(); err != nil {
			return st, err
		}
	}
	if st.Token, err = load.RandomToken(); err != nil {
		return st, err
	}
	cfg := veilConfig(s, st.ProxyAddr, st.AdminAddr, st.primary.Addr(), st.secondary.Addr(), filepath.Join(dir, "usage.jsonl"))
	cfgPath := filepath.Join(dir, "veil.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return st, fmt.Errorf("write config: %w", err)
	}
	st.veil, err = load.StartChild("veil", bin, []string{"serve", "--config", cfgPath},
		[]string{"SOAK_PRIMARY_KEY=sk-soak-primary", "SOAK_SECONDARY_KEY=sk-soak-secondary", "SOAK_CALLER_TOKEN=" + st.Token}, st.log)
	if err != nil {
		return st, err
	}
	return st, st.veil.WaitReady(ctx, "http://"+st.AdminAddr+"/readyz", true, st.LogPath)
}

// Close stops veil, then the fakes, and closes the log; it is safe on a
// partly started stack.
func (st *stack) Close() error {
	var errs []error
	if st.veil != nil {
		errs = append(errs, st.veil.Stop(load.StopGrace))
	}
	if st.primary != nil {
		errs = append(errs, st.primary.Close())
	}
	if st.secondary != nil {
		errs = append(errs, st.secondary.Close())
	}
	if st.log != nil {
		errs = append(errs, st.log.Close())
	}
	return errors.Join(errs...)
}

// run is the whole program; deferred clean-up runs before main exits.
func run(args []string, stdout, stderr io.Writer) (err error) {
	s, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ses, err := load.NewSession("soak", "config, binary, veil log, usage file")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, ses.End(s.keep, err, stderr)) }()
	ctx := ses.Ctx
	bin, err := ses.Veil(ctx, s.veilBin, stderr)
	if err != nil {
		return err
	}
	p, err := newPlan(s.seed, s.faultShare, s.stall)
	if err != nil {
		return err
	}
	st, err := startStack(ctx, s, p, ses.Dir, bin)
	if err != nil {
		return err
	}
	defer func() {
		if cErr := st.Close(); cErr != nil {
			err = errors.Join(err, fmt.Errorf("stop: %w", cErr))
		}
	}()
	fmt.Fprintf(stderr, "soak: veil on %s (pid %s, admin %s), primary upstream %s, secondary %s, log %s\n",
		st.ProxyAddr, st.veil.PID(), st.AdminAddr, st.primary.Addr(), st.secondary.Addr(), st.LogPath)
	rep, err := soak(ctx, s, p, st, stdout)
	if rep != nil {
		rep.print(stdout)
		if s.out != "" {
			if wErr := rep.writeMarkdown(s.out); wErr != nil {
				err = errors.Join(err, wErr)
			}
		}
	}
	return err
}

// report is what a soak found.
type report struct {
	s                   *settings
	machine             load.Machine
	samples             []sample
	before, after       sample // veil idle, before and after the load
	total               bucket
	drawn, applied      int64 // faults drawn and applied over the load
	byKind              map[string]int64
	interrupted, denied map[string]float64
	from                int // first stable sample
	cpu                 cpuShares
}

// soak runs the schedule, sampling every interval, and returns the report;
// on an error it returns what it has so far.
func soak(ctx context.Context, s *settings, p plan, st *stack, stdout io.Writer) (*report, error) {
	win := &window{}
	snd, err := newSender(st.ProxyAddr, st.Token, p, s.conns, s.timeout, win)
	if err != nil {
		return nil, err
	}
	if err := probe(snd, st); err != nil {
		return nil, err
	}
	probeRun := win.take()
	if probeRun.errors() > 0 {
		return nil, fmt.Errorf("probe requests failed: %v (log %s)", probeRun.examples, st.LogPath)
	}
	vp, err := newVeilProbe(st.veil.PID(), st.AdminAddr)
	if err != nil {
		return nil, err
	}
	rep := &report{s: s, machine: load.Host()}
	// Idle before the load as after it: the probe's connections closed,
	// veil's idle workers gone.
	if err := settle(ctx, snd, s.settle); err != nil {
		return nil, err
	}
	if err := vp.read(&rep.before, 0); err != nil {
		return nil, err
	}
	cpu0, err := cpuNow(st.veil.PID())
	if err != nil {
		return nil, err
	}
	at0 := time.Now()
	st.primary.arm()
	n := max(int64(s.rate*s.duration.Seconds()), 1)
	start := time.Now().Add(50 * time.Millisecond)
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	done := make(chan struct{})
	go func() {
		defer close(done)
		snd.run(sendCtx, start, s.rate, n, s.conns)
	}()
	fmt.Fprintf(stdout, "soak: %v at %.0f req/s (%d requests), sampling every %v; fault share %.3f; columns as in the final table\n",
		s.duration, s.rate, n, s.interval, s.faultShare)
	textRow(stdout, columns)
	last, lastFaults := start, st.primary.fake.Stats().Faults
	takeSample := func(now time.Time) (sample, error) {
		b := win.take()
		f := st.primary.fake.Stats().Faults
		smp := sampleOf(&b, now.Sub(start), now.Sub(last), int(f-lastFaults))
		last, lastFaults = now, f
		rep.total.merge(&b)
		err := vp.read(&smp, smp.Period)
		return smp, err
	}
	next := start.Add(s.interval)
	var runErr error
loop:
	for {
		t := time.NewTimer(time.Until(next))
		select {
		case <-done:
			t.Stop()
			break loop
		case now := <-t.C:
			smp, err := takeSample(now)
			if err == nil {
				err = st.veil.Alive(st.LogPath)
			}
			if err != nil {
				runErr = err
				break loop
			}
			rep.samples = append(rep.samples, smp)
			textRow(stdout, smp.row())
			next = next.Add(s.interval)
		}
	}
	if runErr != nil {
		stopSending()
		<-done // the requests in flight finish (or time out) first
		return rep, runErr
	}
	<-done
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("interrupted: %w", err)
	}
	// The stragglers after the last full period count in the totals; a
	// period of at least half an interval gets its own row.
	now := time.Now()
	if now.Sub(last) >= s.interval/2 || len(rep.samples) == 0 {
		smp, err := takeSample(now)
		if err != nil {
			return rep, err
		}
		rep.samples = append(rep.samples, smp)
		textRow(stdout, smp.row())
	} else {
		b := win.take()
		rep.total.merge(&b)
	}
	rep.drawn, rep.byKind = st.primary.faults()
	rep.applied = st.primary.fake.Stats().Faults
	rep.from = stableFrom(rep.samples, s.warmup)
	cpu1, err := cpuNow(st.veil.PID())
	if err != nil {
		return rep, err
	}
	rep.cpu = cpu1.since(cpu0, time.Since(at0))

	if err := settle(ctx, snd, s.settle); err != nil {
		return rep, err
	}
	if err := vp.read(&rep.after, 0); err != nil {
		return rep, err
	}
	m, err := vp.metrics()
	if err != nil {
		return rep, err
	}
	rep.interrupted = family(m, "veil_streams_interrupted_total")
	rep.denied = family(m, "veil_retries_denied_total")
	return rep, st.veil.Alive(st.LogPath)
}

// settle drops the clients' idle connections and waits d, for veil's
// idle workers to end.
func settle(ctx context.Context, snd *sender, d time.Duration) error {
	snd.client.CloseIdleConnections()
	select {
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case <-time.After(d):
		return nil
	}
}

// probe sends one request of each kind, without faults, and checks that
// each is answered: a misconfigured stack fails here, with the answer.
func probe(snd *sender, st *stack) error {
	for i := range kinds {
		k := &kinds[i]
		r := snd.once(k, int64(i))
		if r.outcome != ok {
			return fmt.Errorf("probe %s: %s: %s (log %s)", k.name, r.outcome, r.example, st.LogPath)
		}
		snd.win.add(r)
	}
	return nil
}

// sampleOf condenses a period's bucket into a sample (veil's part left
// for the probe).
func sampleOf(b *bucket, at, period time.Duration, faults int) sample {
	smp := sample{At: at, Period: period, Requests: b.requests(), Errors: b.errors(), Absorbed: b.absorbed,
		Hits: b.hits, Faults: faults}
	if period > 0 {
		smp.Throughput = float64(smp.Requests) / period.Seconds()
	}
	pc := load.ComputePercentiles(b.latencies) // sorts; the order does not matter to the totals
	smp.P50, smp.P99, smp.Max = pc.P50, pc.P99, pc.Max
	return smp
}

// idleResources are compared between the idle samples before and after
// the load; memory is left out, since the load's first minutes grow it
// for good (caches, pools, the heap's target).
var idleResources = []string{"goroutines", "open fds"}

// print writes the report as text.
func (r *report) print(w io.Writer) {
	fmt.Fprintln(w)
	for _, l := range r.summaryLines() {
		fmt.Fprintln(w, l)
	}
}

// summaryLines are the report's text after the table.
func (r *report) summaryLines() []string {
	s := r.s
	var out []string
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	add("machine: %d CPUs, %s, %s %s; the soak process (sender and both fake upstreams) and veil share them",
		r.machine.CPUs, r.machine.Model, r.machine.Go, r.machine.OS)
	add("CPUs kept busy over the load: veil %.2f, the soak process %.2f, other processes %.2f",
		r.cpu.veil, r.cpu.self, r.cpu.other)
	t := r.total
	pc := load.ComputePercentiles(slices.Clone(t.latencies))
	add("requests: %d finished of %.0f/s for %v; p50 %s, p99 %s, p99.9 %s, max %s over the whole run",
		t.requests(), s.rate, s.duration, fmtDur(pc.P50), fmtDur(pc.P99), fmtDur(pc.P999), fmtDur(pc.Max))
	add("cache hits: %d; answers absorbed by retry or failover (200 after more than one attempt): %d", t.hits, t.absorbed)
	faults := make([]string, 0, len(r.byKind))
	for _, k := range slices.Sorted(maps.Keys(r.byKind)) {
		faults = append(faults, fmt.Sprintf("%s %d", k, r.byKind[k]))
	}
	add("faults: %d drawn and %d applied by the primary upstream (%.2f%% of the requests): %s", r.drawn, r.applied,
		100*float64(r.applied)/float64(max(t.requests(), 1)), strings.Join(faults, ", "))
	errs := make([]string, 0, nOutcomes)
	for o := ok + 1; o < nOutcomes; o++ {
		if t.outcomes[o] > 0 {
			errs = append(errs, fmt.Sprintf("%s %d", o, t.outcomes[o]))
		}
	}
	for _, code := range slices.Sorted(maps.Keys(t.statuses)) {
		errs = append(errs, fmt.Sprintf("status %d: %d", code, t.statuses[code]))
	}
	share := 0.0
	if t.requests() > 0 {
		share = 100 * float64(t.errors()) / float64(t.requests())
	}
	add("client-visible errors: %d (%.3f%%)%s", t.errors(), share, prefixed(": ", strings.Join(errs, ", ")))
	for _, o := range slices.Sorted(maps.Keys(t.examples)) {
		add("  e.g. %s: %s", o, t.examples[o])
	}
	add("veil_streams_interrupted_total: %s; veil_retries_denied_total: %s", fmtFamily(r.interrupted), fmtFamily(r.denied))
	if len(r.samples) > 0 {
		add("growth from the first stable sample (%s) to the last (%s), flagged above max(%.0f%%, floor):",
			fmtAt(r.samples[r.from].At), fmtAt(r.samples[len(r.samples)-1].At), 100*s.maxGrowth)
		for _, l := range verdictLines(checkGrowth(r.samples, r.from, s.maxGrowth)) {
			add("  %s", l)
		}
	}
	add("idle, before the load and %v after it:", s.settle)
	for _, g := range checkGrowth([]sample{r.before, r.after}, 0, s.maxGrowth) {
		if slices.Contains(idleResources, g.res.name) {
			status := "ok"
			if g.flagged {
				status = "GREW beyond " + g.res.format(g.limit)
			}
			add("  %-11s %s -> %s (%s): %s", g.res.name, g.res.format(g.first), g.res.format(g.last),
				fmtSigned(g.delta(), g.res.format), status)
		}
	}
	return out
}

// prefixed returns p+s, or "" when s is empty.
func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// fmtFamily writes a metric family's series as labels=value.
func fmtFamily(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// writeMarkdown writes the settings, the table over time and the verdict
// as Markdown to path.
func (r *report) writeMarkdown(path string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "`go run ./bench/soak %s`\n\n", strings.Join(r.s.args, " "))
	mdRow(&b, columns)
	sep := make([]string, len(columns))
	for i := range sep {
		sep[i] = "---"
	}
	mdRow(&b, sep)
	for _, smp := range r.samples {
		mdRow(&b, smp.row())
	}
	b.WriteString("\n```\n")
	for _, l := range r.summaryLines() {
		b.WriteString(l + "\n")
	}
	b.WriteString("```\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil { //nolint:gosec // G306: a report meant to be read and shared
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}
