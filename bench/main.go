//go:build linux

// Command bench is veil's open-loop load report. It builds veil, starts
// the fake OpenAI upstream and veil in front of it as child processes on
// loopback, and for each rate sends constant-rate traffic first directly to
// the fake upstream and then through veil, reporting throughput, errors,
// latency percentiles, veil's peak RSS and CPU time per request, and the
// latency veil adds. It runs on Linux only: it reads /proc for CPU and RSS.
//
// Usage (from the repository root):
//
//	go run ./bench [-rate 2000 | -rates 1000,2000,5000] [-duration 10s]
//	               [-warmup 2s] [-conns 256] [-workers 0] [-timeout 5s]
//	               [-stream] [-cache] [-cache-prompts 8] [-direct=false] [-json FILE]
//	               [-veil-cpus LIST -gen-cpus LIST] [-veil BINARY] [-keep]
//
// The generator is open loop: request i is due at start + i/rate whatever
// happened to earlier requests, and its latency is measured from that due
// time, so a stall in the system under test shows up in the latency of
// every request it delayed (no coordinated omission).
//
// With -cache the requests are deterministic (temperature 0) and rotate
// over a small set of prompts, so that after the warm-up veil answers
// nearly every one from its response cache: the report then measures the
// cache hit path, and counts the hits (X-Veil-Cache: HIT) it saw.
//
// With -veil-cpus and -gen-cpus veil runs on CPUs of its own and the
// generator and the fake upstream on the others, so that veil's capacity
// can be told apart from the generator's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/veil/bench/load"
)

// chatBody is the non-streaming request body of every phase (~300 bytes).
const chatBody = `{"model":"gpt-4o-mini","messages":[` +
	`{"role":"system","content":"You are a helpful wedding planning assistant for WedSync couples."},` +
	`{"role":"user","content":"Write three short, friendly reminders for guests who have not yet replied to our June wedding invitation."}],` +
	`"max_tokens":128,"temperature":0.2`

// requestBody returns the phase's JSON body, streaming or not.
func requestBody(stream bool) []byte {
	if stream {
		return []byte(chatBody + `,"stream":true}`)
	}
	return []byte(chatBody + `}`)
}

// cacheBodies returns the n deterministic bodies of the cache scenario:
// chatBody's request at temperature 0, each with its own month, so that
// each has its own cache entry; streaming or not. veil's cache key leaves
// "stream" out (a plain answer can be given as a stream and back), so the
// streamed prompts differ from the plain ones: their entries are stored
// from streamed misses and their hits replay the stored events.
func cacheBodies(stream bool, n int) [][]byte {
	out := make([][]byte, n)
	kind := "wedding"
	if stream {
		kind = "summer wedding"
	}
	for i := range out {
		b := `{"model":"gpt-4o-mini","messages":[` +
			`{"role":"system","content":"You are a helpful wedding planning assistant for WedSync couples."},` +
			`{"role":"user","content":"Write three short, friendly reminders for guests who have not yet replied to our ` + kind +
			` invitation, for a wedding in month ` + strconv.Itoa(i+1) + `."}],"max_tokens":128,"temperature":0`
		if stream {
			b += `,"stream":true`
		}
		out[i] = []byte(b + `}`)
	}
	return out
}

// bodies returns the request bodies of a phase: the one pass-through
// body, or the cache scenario's rotation.
func (s *settings) bodies(stream bool) [][]byte {
	if s.Cache {
		return cacheBodies(stream, s.CachePrompts)
	}
	return [][]byte{requestBody(stream)}
}

// settings are the parsed command-line flags.
type settings struct {
	Rates    []float64     `json:"rates"`
	Duration time.Duration `json:"-"`
	Warmup   time.Duration `json:"-"`
	Conns    int           `json:"conns"`
	Workers  int           `json:"workers"`
	Timeout  time.Duration `json:"-"`
	Stream   bool          `json:"stream"`
	// Cache runs the cache scenario: CachePrompts deterministic bodies in
	// rotation, answered from veil's cache after the first of each.
	Cache        bool `json:"cache"`
	CachePrompts int  `json:"cache_prompts,omitempty"`
	// Direct runs the direct-to-fake baseline before each veil phase.
	Direct   bool   `json:"direct"`
	LogLevel string `json:"veil_log_level"`
	BodySize int    `json:"body_bytes"`

	// VeilCPUs and GenCPUs pin veil, and the generator with the fake
	// upstream, to CPU lists (empty: not pinned).
	VeilCPUs string `json:"veil_cpus,omitempty"`
	GenCPUs  string `json:"generator_cpus,omitempty"`

	DurationS float64 `json:"duration_s"`
	WarmupS   float64 `json:"warmup_s"`
	TimeoutS  float64 `json:"timeout_s"`

	veilCPUs, genCPUs []int

	// overload holds the overload scenario's flags.
	overload *overloadSettings

	jsonPath   string
	veilBin    string
	keep       bool
	cpuProfile string
}

func parseFlags(args []string, stderr io.Writer) (*settings, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &settings{}
	rate := fs.Float64("rate", 2000, "target request rate per second")
	rates := fs.String("rates", "", "comma-separated rates to run in turn (overrides -rate), e.g. 1000,2000,5000")
	fs.DurationVar(&s.Duration, "duration", 10*time.Second, "measured time per phase")
	fs.DurationVar(&s.Warmup, "warmup", 2*time.Second, "unmeasured warm-up per phase, at the same rate")
	fs.IntVar(&s.Conns, "conns", 256, "maximum connections per target")
	fs.IntVar(&s.Workers, "workers", 0, "sending goroutines, the cap on requests in flight (0: same as -conns)")
	fs.DurationVar(&s.Timeout, "timeout", 5*time.Second, "per-request timeout, from the scheduled send time")
	fs.BoolVar(&s.Stream, "stream", false, `also run the phases with "stream": true (latency to the full body)`)
	fs.BoolVar(&s.Cache, "cache", false, "cache scenario: deterministic requests rotating over -cache-prompts prompts, hits after the first of each")
	fs.IntVar(&s.CachePrompts, "cache-prompts", 8, "number of distinct prompts in the cache scenario")
	fs.BoolVar(&s.Direct, "direct", true, "run each phase directly against the fake upstream too, as the baseline (false: through veil only)")
	fs.StringVar(&s.VeilCPUs, "veil-cpus", "", "run veil on these CPUs only, e.g. 1 (needs -gen-cpus)")
	fs.StringVar(&s.GenCPUs, "gen-cpus", "", "run the generator and the fake upstream on these CPUs only, e.g. 0 (needs -veil-cpus)")
	fs.StringVar(&s.LogLevel, "log-level", "info", "veil's log level")
	fs.StringVar(&s.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&s.veilBin, "veil", "", "use this veil binary instead of building ./cmd/veil")
	fs.BoolVar(&s.keep, "keep", false, "keep the temporary directory (config, binary, veil log)")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "write the generator's own CPU profile to this file")
	s.overload = addOverloadFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := s.overload.check(); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *rates == "" {
		s.Rates = []float64{*rate}
	} else {
		for f := range strings.SplitSeq(*rates, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				return nil, fmt.Errorf("-rates: %w", err)
			}
			s.Rates = append(s.Rates, v)
		}
	}
	for _, r := range s.Rates {
		if r <= 0 {
			return nil, fmt.Errorf("rate %v must be positive", r)
		}
	}
	switch {
	case s.Duration <= 0:
		return nil, errors.New("-duration must be positive")
	case s.Warmup < 0:
		return nil, errors.New("-warmup must not be negative")
	case s.Conns <= 0:
		return nil, errors.New("-conns must be positive")
	case s.Workers < 0:
		return nil, errors.New("-workers must not be negative")
	case s.Timeout <= 0:
		return nil, errors.New("-timeout must be positive")
	case s.Cache && s.CachePrompts <= 0:
		return nil, errors.New("-cache-prompts must be positive")
	}
	if s.Workers == 0 {
		s.Workers = s.Conns
	}
	if !s.Cache {
		s.CachePrompts = 0
	}
	if (s.VeilCPUs == "") != (s.GenCPUs == "") {
		return nil, errors.New("-veil-cpus and -gen-cpus go together")
	}
	if s.VeilCPUs != "" {
		var err error
		if s.veilCPUs, err = load.ParseCPUList(s.VeilCPUs); err != nil {
			return nil, fmt.Errorf("-veil-cpus: %w", err)
		}
		if s.genCPUs, err = load.ParseCPUList(s.GenCPUs); err != nil {
			return nil, fmt.Errorf("-gen-cpus: %w", err)
		}
		for _, c := range s.veilCPUs {
			if slices.Contains(s.genCPUs, c) {
				return nil, fmt.Errorf("CPU %d is in both -veil-cpus and -gen-cpus", c)
			}
		}
		s.VeilCPUs, s.GenCPUs = load.FormatCPUList(s.veilCPUs), load.FormatCPUList(s.genCPUs)
	}
	s.BodySize = len(s.bodies(false)[0])
	s.DurationS, s.WarmupS, s.TimeoutS = s.Duration.Seconds(), s.Warmup.Seconds(), s.Timeout.Seconds()
	return s, nil
}

func main() { load.Main("bench", run) }

// run is the whole program; deferred clean-up runs before main exits.
func run(args []string, stdout, stderr io.Writer) (err error) {
	s, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ses, err := load.NewSession("bench", "config, binary, veil log")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, ses.End(s.keep, err, stderr)) }()
	ctx := ses.Ctx

	if s.cpuProfile != "" {
		f, err := os.Create(s.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	bin, err := ses.Veil(ctx, s.veilBin, stderr)
	if err != nil {
		return err
	}
	if s.overload.On {
		return runOverload(ctx, stdout, stderr, ses.Dir, bin, s)
	}
	if len(s.genCPUs) > 0 {
		// Before the children start: the fake upstream inherits the mask.
		if err := load.PinSelf(s.genCPUs); err != nil {
			return err
		}
	}
	st, err := startStack(ctx, ses.Dir, bin, stackOptions{LogLevel: s.LogLevel, VeilCPUs: s.veilCPUs})
	if err != nil {
		return err
	}
	defer func() {
		if cErr := st.Close(); cErr != nil {
			err = errors.Join(err, fmt.Errorf("stop children: %w", cErr))
		}
	}()
	fmt.Fprintf(stderr, "bench: fake upstream on %s (pid %s), veil on %s (pid %s), log %s\n",
		st.FakeAddr, st.FakePID(), st.ProxyAddr, st.VeilPID(), st.LogPath)
	if len(s.veilCPUs) > 0 {
		for _, c := range []struct{ name, pid, want string }{
			{"veil", st.VeilPID(), s.VeilCPUs}, {"fake upstream", st.FakePID(), s.GenCPUs}, {"generator", "self", s.GenCPUs},
		} {
			got, err := load.AllowedCPUs(c.pid)
			if err != nil {
				return err
			}
			if l, err := load.ParseCPUList(got); err != nil || load.FormatCPUList(l) != c.want {
				return fmt.Errorf("%s runs on CPUs %s, want %s", c.name, got, c.want)
			}
			fmt.Fprintf(stderr, "bench: %s on CPUs %s\n", c.name, got)
		}
	}

	rep := &report{
		Machine:  load.Host(),
		Settings: s,
	}
	var runErr error
phases:
	for _, rate := range s.Rates {
		for _, stream := range streamModes(s.Stream) {
			for _, via := range targets(s.Direct) {
				p, err := runPhase(ctx, stderr, st, s, via, stream, rate)
				if err != nil {
					runErr = err
					break phases
				}
				rep.Phases = append(rep.Phases, p)
			}
		}
	}
	rep.addedLatency()
	if len(rep.Phases) > 0 {
		rep.print(stdout)
		if s.jsonPath != "" {
			if err := rep.writeJSON(s.jsonPath); err != nil {
				return errors.Join(runErr, err)
			}
		}
	}
	return runErr
}

// targets lists the phase targets to run, in order.
func targets(direct bool) []string {
	if direct {
		return []string{viaDirect, viaVeil}
	}
	return []string{viaVeil}
}

// streamModes lists the stream settings to run.
func streamModes(withStream bool) []bool {
	if withStream {
		return []bool{false, true}
	}
	return []bool{false}
}

// Phase targets.
const (
	viaDirect = "direct"
	viaVeil   = "veil"
)

// phase is the outcome of one measured phase.
type phase struct {
	Via    string
	Stream bool
	Summary
	// Veil, Fake and Gen are the processes' resource use over the measured
	// window (from the first scheduled send to the last completion).
	Veil, Fake, Gen load.Usage
	// Window is the measured window's wall time; MachineBusy is the CPU
	// time the whole machine was busy in it.
	Window, MachineBusy time.Duration
}

// OtherCores is the average number of CPUs that processes other than
// veil, the fake upstream and the generator kept busy during the window:
// noise from the rest of the machine.
func (p phase) OtherCores() float64 {
	if p.Window <= 0 {
		return 0
	}
	other := max(p.MachineBusy-p.Veil.CPU-p.Fake.CPU-p.Gen.CPU, 0)
	return other.Seconds() / p.Window.Seconds()
}

// Cores is the average number of CPUs that cpu kept busy over the
// window.
func (p phase) Cores(cpu time.Duration) float64 {
	if p.Window <= 0 {
		return 0
	}
	return cpu.Seconds() / p.Window.Seconds()
}

// Name is the phase's label in reports.
func (p phase) Name() string {
	if p.Stream {
		return p.Via + "-stream"
	}
	return p.Via
}

// runPhase warms up and then measures one target at one rate.
func runPhase(ctx context.Context, stderr io.Writer, st *stack, s *settings, via string, stream bool, rate float64) (phase, error) {
	p, _, err := measurePhase(ctx, stderr, st, s, via, stream, rate)
	return p, err
}

// runPhaseRecords is runPhase through veil, without streams, that also
// returns the measured requests' records.
func runPhaseRecords(ctx context.Context, stderr io.Writer, st *stack, s *settings, rate float64) (phase, []Record, error) {
	return measurePhase(ctx, stderr, st, s, viaVeil, false, rate)
}

// measurePhase warms up, then measures one target at one rate and returns
// the phase and the measured requests' records.
func measurePhase(ctx context.Context, stderr io.Writer, st *stack, s *settings, via string, stream bool, rate float64) (phase, []Record, error) {
	p := phase{Via: via, Stream: stream}
	// The same headers go both ways, so both phases send the same bytes.
	t := Target{Addr: st.FakeAddr, Path: "/v1/chat/completions", Token: "sk-bench-direct", //nolint:gosec // G101: the fake upstream's test key
		Bodies: s.bodies(stream), Headers: map[string]string{"X-Supplier-ID": "bench-supplier"}}
	if via == viaVeil {
		t.Addr, t.Token = st.ProxyAddr, st.Token
	}
	g, err := NewGenerator(t, Options{Conns: s.Conns, Workers: s.Workers, Timeout: s.Timeout})
	if err != nil {
		return p, nil, err
	}
	defer g.Close()
	status, body, err := g.Probe()
	if err != nil {
		return p, nil, fmt.Errorf("%s: %w", p.Name(), err)
	}
	if status != 200 {
		return p, nil, fmt.Errorf("%s: probe request got status %d: %.300s (log %s)", p.Name(), status, body, st.LogPath)
	}
	fmt.Fprintf(stderr, "bench: %-13s %6.0f req/s: warm-up %v, measure %v\n", p.Name(), rate, s.Warmup, s.Duration)
	if s.Warmup > 0 {
		w, err := g.Run(ctx, rate, s.Warmup)
		if err != nil {
			return p, nil, fmt.Errorf("%s warm-up: %w", p.Name(), err)
		}
		if ws := summarize(w); s.Cache && via == viaVeil && ws.OK > 0 && ws.Hits == 0 {
			return p, nil, fmt.Errorf("%s: cache scenario, but none of %d warm-up answers was a cache hit (log %s)",
				p.Name(), ws.OK, st.LogPath)
		}
	}
	if err := ctx.Err(); err != nil {
		return p, nil, fmt.Errorf("%s: interrupted: %w", p.Name(), err)
	}
	if err := st.Alive(); err != nil {
		return p, nil, err
	}
	runtime.GC() // the warm-up's garbage, not the measured window's
	var meters [3]*load.Meter
	for i, pid := range []string{st.VeilPID(), st.FakePID(), "self"} {
		if meters[i], err = load.StartMeter(pid); err != nil {
			return p, nil, err
		}
	}
	busy0, err := load.MachineBusy()
	if err != nil {
		return p, nil, err
	}
	start := time.Now()
	r, runErr := g.Run(ctx, rate, s.Duration)
	p.Window = time.Since(start)
	busy1, err := load.MachineBusy()
	if err != nil && runErr == nil {
		runErr = err
	}
	p.MachineBusy = busy1 - busy0
	var usage [3]load.Usage
	for i, m := range meters {
		u, err := m.Stop()
		if err != nil && runErr == nil {
			runErr = err
		}
		usage[i] = u
	}
	if runErr != nil {
		return p, nil, fmt.Errorf("%s: %w", p.Name(), runErr)
	}
	if err := ctx.Err(); err != nil {
		return p, nil, fmt.Errorf("%s: interrupted: %w", p.Name(), err)
	}
	if err := st.Alive(); err != nil {
		return p, nil, err
	}
	p.Veil, p.Fake, p.Gen = usage[0], usage[1], usage[2]
	p.Summary = summarize(r)
	return p, r.Records, nil
}
