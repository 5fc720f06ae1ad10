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
//	               [-stream] [-json FILE] [-veil BINARY] [-keep]
//
// The generator is open loop: request i is due at start + i/rate whatever
// happened to earlier requests, and its latency is measured from that due
// time, so a stall in the system under test shows up in the latency of
// every request it delayed (no coordinated omission).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
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

// settings are the parsed command-line flags.
type settings struct {
	Rates    []float64     `json:"rates"`
	Duration time.Duration `json:"-"`
	Warmup   time.Duration `json:"-"`
	Conns    int           `json:"conns"`
	Workers  int           `json:"workers"`
	Timeout  time.Duration `json:"-"`
	Stream   bool          `json:"stream"`
	LogLevel string        `json:"veil_log_level"`
	BodySize int           `json:"body_bytes"`

	DurationS float64 `json:"duration_s"`
	WarmupS   float64 `json:"warmup_s"`
	TimeoutS  float64 `json:"timeout_s"`

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
	fs.StringVar(&s.LogLevel, "log-level", "info", "veil's log level")
	fs.StringVar(&s.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&s.veilBin, "veil", "", "use this veil binary instead of building ./cmd/veil")
	fs.BoolVar(&s.keep, "keep", false, "keep the temporary directory (config, binary, veil log)")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "write the generator's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
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
	}
	if s.Workers == 0 {
		s.Workers = s.Conns
	}
	s.BodySize = len(requestBody(false))
	s.DurationS, s.WarmupS, s.TimeoutS = s.Duration.Seconds(), s.Warmup.Seconds(), s.Timeout.Seconds()
	return s, nil
}

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run is the whole program; deferred clean-up runs before main exits.
func run(args []string, stdout, stderr io.Writer) (err error) {
	s, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "veil-bench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer func() {
		if s.keep || err != nil {
			fmt.Fprintf(stderr, "bench: kept %s (config, binary, veil log)\n", dir)
			return
		}
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			err = fmt.Errorf("remove temp dir: %w", rmErr)
		}
	}()

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

	bin := s.veilBin
	if bin == "" {
		fmt.Fprintln(stderr, "bench: building ./cmd/veil")
		if bin, err = buildVeil(ctx, dir); err != nil {
			return err
		}
	}
	st, err := startStack(ctx, dir, bin, s.LogLevel)
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

	rep := &report{
		Machine: machine{
			CPUs:  runtime.NumCPU(),
			Model: cpuModel(),
			Go:    runtime.Version(),
			OS:    runtime.GOOS + "/" + runtime.GOARCH,
		},
		Settings: s,
	}
	var runErr error
phases:
	for _, rate := range s.Rates {
		for _, stream := range streamModes(s.Stream) {
			for _, via := range []string{viaDirect, viaVeil} {
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
	Veil, Fake, Gen Usage
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

// Name is the phase's label in reports.
func (p phase) Name() string {
	if p.Stream {
		return p.Via + "-stream"
	}
	return p.Via
}

// runPhase warms up and then measures one target at one rate.
func runPhase(ctx context.Context, stderr io.Writer, st *stack, s *settings, via string, stream bool, rate float64) (phase, error) {
	p := phase{Via: via, Stream: stream}
	// The same headers go both ways, so both phases send the same bytes.
	t := Target{Addr: st.FakeAddr, Path: "/v1/chat/completions", Token: "sk-bench-direct", Body: requestBody(stream),
		Headers: map[string]string{"X-Supplier-ID": "bench-supplier"}}
	if via == viaVeil {
		t.Addr, t.Token = st.ProxyAddr, st.Token
	}
	g, err := NewGenerator(t, Options{Conns: s.Conns, Workers: s.Workers, Timeout: s.Timeout})
	if err != nil {
		return p, err
	}
	defer g.Close()
	status, body, err := g.Probe()
	if err != nil {
		return p, fmt.Errorf("%s: %w", p.Name(), err)
	}
	if status != 200 {
		return p, fmt.Errorf("%s: probe request got status %d: %.300s (log %s)", p.Name(), status, body, st.LogPath)
	}
	fmt.Fprintf(stderr, "bench: %-13s %6.0f req/s: warm-up %v, measure %v\n", p.Name(), rate, s.Warmup, s.Duration)
	if s.Warmup > 0 {
		if _, err := g.Run(ctx, rate, s.Warmup); err != nil {
			return p, fmt.Errorf("%s warm-up: %w", p.Name(), err)
		}
	}
	if err := ctx.Err(); err != nil {
		return p, fmt.Errorf("%s: interrupted: %w", p.Name(), err)
	}
	if err := st.Alive(); err != nil {
		return p, err
	}
	runtime.GC() // the warm-up's garbage, not the measured window's
	var meters [3]*Meter
	for i, pid := range []string{st.VeilPID(), st.FakePID(), "self"} {
		if meters[i], err = StartMeter(pid); err != nil {
			return p, err
		}
	}
	busy0, err := machineBusy()
	if err != nil {
		return p, err
	}
	start := time.Now()
	r, runErr := g.Run(ctx, rate, s.Duration)
	p.Window = time.Since(start)
	busy1, err := machineBusy()
	if err != nil && runErr == nil {
		runErr = err
	}
	p.MachineBusy = busy1 - busy0
	var usage [3]Usage
	for i, m := range meters {
		u, err := m.Stop()
		if err != nil && runErr == nil {
			runErr = err
		}
		usage[i] = u
	}
	if runErr != nil {
		return p, fmt.Errorf("%s: %w", p.Name(), runErr)
	}
	if err := ctx.Err(); err != nil {
		return p, fmt.Errorf("%s: interrupted: %w", p.Name(), err)
	}
	if err := st.Alive(); err != nil {
		return p, err
	}
	p.Veil, p.Fake, p.Gen = usage[0], usage[1], usage[2]
	p.Summary = summarize(r)
	return p, nil
}
