//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/wedsync/veil/bench/load"
)

// overloadSettings are the flags of the overload scenario (-overload).
type overloadSettings struct {
	On bool `json:"-"`
	// Capacity is the machine's pass-through capacity through veil in
	// requests per second; 0: measure it first.
	Capacity float64 `json:"capacity"`
	// Factor times Capacity is the overload rate.
	Factor float64 `json:"factor"`
	// MaxInFlight is veil's limits.max_in_flight in the overload run.
	MaxInFlight int `json:"max_in_flight"`
	// Conns caps the generator's connections (and requests in flight) in
	// the capacity and overload runs.
	Conns int `json:"conns"`
	// UpstreamLatency is the fake upstream's delay before each answer in
	// the capacity and overload runs.
	UpstreamLatency time.Duration `json:"-"`
	// Streams is the number of slow streams held at once (0: no phase),
	// opened over StreamRamp; the fake sends StreamWords words, one every
	// ChunkDelay.
	Streams     int           `json:"streams"`
	StreamRamp  time.Duration `json:"-"`
	ChunkDelay  time.Duration `json:"-"`
	StreamWords int           `json:"stream_words"`
}

// addOverloadFlags defines the overload scenario's flags on fs.
func addOverloadFlags(fs *flag.FlagSet) *overloadSettings {
	o := &overloadSettings{}
	fs.BoolVar(&o.On, "overload", false, "run the overload scenario instead: capacity, twice the capacity with shedding, then slow streams")
	fs.Float64Var(&o.Capacity, "capacity", 0, "overload: pass-through capacity through veil in req/s (0: measure it first)")
	fs.Float64Var(&o.Factor, "factor", 2, "overload: the overload rate as a multiple of the capacity")
	fs.IntVar(&o.MaxInFlight, "max-in-flight", 256, "overload: veil's limits.max_in_flight in the overload run")
	fs.IntVar(&o.Conns, "overload-conns", 2048, "overload: the generator's connections in the capacity and overload runs")
	fs.DurationVar(&o.UpstreamLatency, "upstream-latency", 20*time.Millisecond, "overload: the fake upstream's delay before each answer")
	fs.IntVar(&o.Streams, "streams", 10000, "overload: slow streams held open at once through veil at its default config (0: skip)")
	fs.DurationVar(&o.StreamRamp, "stream-ramp", 10*time.Second, "overload: the time over which the slow streams are opened")
	fs.DurationVar(&o.ChunkDelay, "chunk-delay", 300*time.Millisecond, "overload: the fake upstream's delay between streamed words")
	fs.IntVar(&o.StreamWords, "stream-words", 100, "overload: words per slow stream, one chunk each")
	return o
}

// check validates the overload flags.
func (o *overloadSettings) check() error {
	switch {
	case o.Capacity < 0 || o.Factor <= 0:
		return errors.New("-capacity must not be negative and -factor must be positive")
	case o.MaxInFlight < 0 || o.Conns <= 0 || o.Streams < 0 || o.StreamWords < 0:
		return errors.New("-max-in-flight, -streams and -stream-words must not be negative, -overload-conns must be positive")
	case o.UpstreamLatency < 0 || o.ChunkDelay < 0 || o.Streams > 0 && o.StreamRamp <= 0:
		return errors.New("-upstream-latency and -chunk-delay must not be negative, -stream-ramp must be positive")
	}
	return nil
}

// overloadReport is what the overload scenario measured.
type overloadReport struct {
	Machine  load.Machine      `json:"machine"`
	Settings *overloadSettings `json:"settings"`
	// FileLimit is the open files limit of the generator and its children.
	FileLimit uint64 `json:"file_limit"`
	// Ladder holds the capacity search's steps, when it ran.
	Ladder []phase `json:"-"`
	// Rate is the overload run's target rate.
	Rate float64 `json:"rate"`
	// Overload is the run at Rate, with its shed split and veil's usage.
	Overload phase       `json:"-"`
	Shed     ShedSummary `json:"shed"`
	// Streams is the slow-streams phase, with veil's peak RSS and open
	// files and the most streams open at once.
	Streams      StreamSummary `json:"streams"`
	StreamsVeil  load.Usage    `json:"streams_veil"`
	StreamsFDs   int           `json:"streams_veil_peak_fds"`
	StreamsPeak  int64         `json:"streams_peak_open"`
	StreamsError string        `json:"streams_error,omitempty"`
}

// runOverload runs the overload scenario: the capacity (measured unless
// given), an open-loop run at Factor times it against veil with
// limits.max_in_flight set, and the slow-streams phase at veil's default
// config.
func runOverload(ctx context.Context, stdout, stderr io.Writer, dir, bin string, s *settings) error {
	o := s.overload
	lim, err := load.RaiseFileLimit()
	if err != nil {
		return err
	}
	rep := &overloadReport{Machine: load.Host(), Settings: o, FileLimit: lim}
	fmt.Fprintf(stderr, "bench: open files limit %d (generator, fake upstream and veil)\n", lim)
	if o.Capacity == 0 {
		if o.Capacity, err = findCapacity(ctx, stderr, dir, bin, s, rep); err != nil {
			return err
		}
	}
	rep.Rate = o.Capacity * o.Factor
	if err := runShedding(ctx, stderr, dir, bin, s, rep); err != nil {
		return err
	}
	if o.Streams > 0 {
		if err := runStreams(ctx, stderr, dir, bin, s, rep); err != nil {
			rep.StreamsError = err.Error()
			fmt.Fprintf(stderr, "bench: slow streams: %v\n", err)
		}
	}
	rep.print(stdout)
	if s.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode JSON report: %w", err)
		}
		if err := os.WriteFile(s.jsonPath, append(b, '\n'), 0o644); err != nil { //nolint:gosec // G306: a report meant to be shared
			return fmt.Errorf("write JSON report: %w", err)
		}
	}
	return nil
}

// capacityRates are the rates the capacity search tries in turn.
var capacityRates = []float64{2000, 4000, 6000, 8000, 10000, 12000, 14000, 16000, 20000, 24000}

// passes reports whether a capacity step kept up: at least 95% of the
// rate answered 200, no failures, p99 under 50 ms.
func passes(p phase) bool {
	return p.Failures() == 0 && p.OKRate >= 0.95*p.TargetRate && p.Latency.P99 < 50*time.Millisecond
}

// findCapacity measures veil's pass-through capacity at its default
// config: the highest rate of capacityRates that passes.
func findCapacity(ctx context.Context, stderr io.Writer, dir, bin string, s *settings, rep *overloadReport) (float64, error) {
	st, err := startStack(ctx, dir, bin, stackOptions{LogLevel: s.LogLevel, Latency: s.overload.UpstreamLatency})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	cs := *s
	cs.Conns, cs.Workers, cs.Warmup, cs.Duration = s.overload.Conns, s.overload.Conns, time.Second, 3*time.Second
	capacity := 0.0
	for _, rate := range capacityRates {
		p, err := runPhase(ctx, stderr, st, &cs, viaVeil, false, rate)
		if err != nil {
			return 0, fmt.Errorf("capacity at %v/s: %w", rate, err)
		}
		rep.Ladder = append(rep.Ladder, p)
		if !passes(p) {
			if capacity == 0 {
				capacity = p.OKRate
			}
			break
		}
		capacity = rate
	}
	fmt.Fprintf(stderr, "bench: capacity %.0f req/s\n", capacity)
	return capacity, nil
}

// runShedding runs the overload rate against veil with
// limits.max_in_flight set.
func runShedding(ctx context.Context, stderr io.Writer, dir, bin string, s *settings, rep *overloadReport) error {
	o := s.overload
	st, err := startStack(ctx, dir, bin, stackOptions{LogLevel: s.LogLevel, Latency: o.UpstreamLatency,
		Limits: "max_in_flight: " + strconv.Itoa(o.MaxInFlight) + "\n"})
	if err != nil {
		return err
	}
	defer st.Close()
	cs := *s
	cs.Conns, cs.Workers = o.Conns, o.Conns
	p, recs, err := runPhaseRecords(ctx, stderr, st, &cs, rep.Rate)
	if err != nil {
		return err
	}
	rep.Overload, rep.Shed = p, summarizeShed(recs)
	return nil
}

// runStreams holds the slow streams through veil at its default config.
func runStreams(ctx context.Context, stderr io.Writer, dir, bin string, s *settings, rep *overloadReport) error {
	o := s.overload
	st, err := startStack(ctx, dir, bin, stackOptions{LogLevel: s.LogLevel, ChunkDelay: o.ChunkDelay, ReplyWords: o.StreamWords})
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(stderr, "bench: %d slow streams (%d words, one every %v), opened over %v\n", o.Streams, o.StreamWords, o.ChunkDelay, o.StreamRamp)
	runtime.GC()
	m, err := load.StartMeter(st.VeilPID())
	if err != nil {
		return err
	}
	fds := startFDPeak(st.VeilPID())
	// A stream's whole answer must arrive within the read timeout: its
	// words, and the ramp for the veil that is slow to accept under load.
	whole := time.Duration(o.StreamWords)*o.ChunkDelay + o.StreamRamp + time.Minute
	h := newStreamHolder(st.ProxyAddr, st.Token, o.Streams+16, whole)
	res := h.run(ctx, o.Streams, o.StreamRamp)
	rep.StreamsFDs = fds.stop()
	u, err := m.Stop()
	if err != nil {
		return err
	}
	rep.Streams, rep.StreamsVeil, rep.StreamsPeak = summarizeStreams(res), u, h.peak.Load()
	return st.Alive()
}

// fdPeak samples a process's open files until stopped.
type fdPeak struct {
	peak atomic.Int64
	done chan struct{}
	quit chan struct{}
}

// startFDPeak starts sampling pid's open files every 250 ms.
func startFDPeak(pid string) *fdPeak {
	f := &fdPeak{done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(f.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if n, err := load.OpenFDs(pid); err == nil {
				f.peak.Store(max(f.peak.Load(), int64(n)))
			}
			select {
			case <-f.quit:
				return
			case <-t.C:
			}
		}
	}()
	return f
}

// stop ends the sampling and returns the peak.
func (f *fdPeak) stop() int {
	close(f.quit)
	<-f.done
	return int(f.peak.Load())
}

// print writes the overload report's tables.
func (r *overloadReport) print(w io.Writer) {
	o := r.Settings
	fmt.Fprintln(w, "veil overload report: open loop; latency from each request's scheduled send time unless said otherwise")
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s %s; open files limit %d\n", r.Machine.CPUs, r.Machine.Model, r.Machine.Go, r.Machine.OS, r.FileLimit)
	fmt.Fprintf(w, "fake upstream latency %v; generator connections %d\n\n", o.UpstreamLatency, o.Conns)
	if len(r.Ladder) > 0 {
		fmt.Fprintln(w, "capacity search (veil at its default config; a step passes with >= 95% answered, no failures, p99 < 50ms)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target/s\tok/s\tfailures\tp50\tp99\tmax\tveil CPUs\tgen lag p99\tpasses\t")
		for _, p := range r.Ladder {
			fmt.Fprintf(tw, "%.0f\t%.0f\t%d\t%s\t%s\t%s\t%.2f\t%s\t%v\t\n", p.TargetRate, p.OKRate, p.Failures(),
				fmtDur(p.Latency.P50), fmtDur(p.Latency.P99), fmtDur(p.Latency.Max), p.Cores(p.Veil.CPU), fmtDur(p.LagP99), passes(p))
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "capacity %.0f req/s\n\n", o.Capacity)
	r.printShed(w)
	if o.Streams > 0 {
		r.printStreams(w)
	}
}

// printShed writes the overload run's table.
func (r *overloadReport) printShed(w io.Writer) {
	p, s := r.Overload, r.Shed
	fmt.Fprintf(w, "overload: %.0f req/s (%.1f x capacity) for %v, veil limits.max_in_flight %d\n", r.Rate, r.Settings.Factor,
		p.Window.Round(time.Millisecond), r.Settings.MaxInFlight)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sent\tsent/s\tadmitted (200)\tshed (503/429)\t502\tother status\ttransport\ttimeout\t")
	fmt.Fprintf(tw, "%d\t%.0f\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.Requests, p.SentRate, s.Admitted, s.Shed, s.Bad502, s.OtherStatus, s.Transport, s.Timeout)
	_ = tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "answers\tp50\tp90\tp99\tmax\t")
	for _, l := range []struct {
		name string
		p    load.Percentiles
	}{{"admitted, from schedule", s.AdmittedLatency}, {"shed, from schedule", s.ShedLatency}, {"shed, from send (veil's time)", s.ShedService}} {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", l.name, fmtDur(l.p.P50), fmtDur(l.p.P90), fmtDur(l.p.P99), fmtDur(l.p.Max))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "shed answers within 10ms of their send: %.2f%%; veil peak RSS %s, veil CPUs %.2f, generator lag p99 %s\n",
		100*s.ShedWithin10ms, fmtMiB(p.Veil.PeakRSS), p.Cores(p.Veil.CPU), fmtDur(p.LagP99))
	for kind, msg := range p.Errors {
		fmt.Fprintf(w, "overload: %s, e.g. %s\n", kind, msg)
	}
	fmt.Fprintln(w)
}

// printStreams writes the slow-streams table.
func (r *overloadReport) printStreams(w io.Writer) {
	s := r.Streams
	fmt.Fprintf(w, "slow streams at veil's default config: %d streams of %d words, one every %v\n", r.Settings.Streams,
		r.Settings.StreamWords, r.Settings.ChunkDelay)
	if r.StreamsError != "" {
		fmt.Fprintf(w, "phase failed: %s\n", r.StreamsError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "streams\tpeak open\tcompleted\tcut\t502\tother status\tno answer\tduration p50\tmax\tveil peak RSS\tveil peak fds\tveil CPU\t")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%v\t\n", s.Streams, r.StreamsPeak, s.Completed, s.Cut, s.Bad502,
		s.OtherStatus, s.Failed, fmtDur(s.Took.P50), fmtDur(s.Took.Max), fmtMiB(r.StreamsVeil.PeakRSS), r.StreamsFDs,
		r.StreamsVeil.CPU.Round(time.Millisecond))
	_ = tw.Flush()
	for kind, msg := range s.Errors {
		fmt.Fprintf(w, "streams: %s, e.g. %.300s\n", kind, msg)
	}
}
