//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/wedsync/veil/bench/load"
)

// report is everything the bench prints.
type report struct {
	Machine  load.Machine
	Settings *settings
	Phases   []phase
	Added    []added
}

// added is the latency veil adds at one rate: veil minus direct.
type added struct {
	Rate          float64
	Stream        bool
	P50, P90, P99 time.Duration
}

// addedLatency pairs each veil phase with the direct phase of the same
// rate and mode.
func (r *report) addedLatency() {
	r.Added = r.Added[:0]
	for _, v := range r.Phases {
		if v.Via != viaVeil {
			continue
		}
		for _, d := range r.Phases {
			if d.Via == viaDirect && d.Stream == v.Stream && d.TargetRate == v.TargetRate {
				r.Added = append(r.Added, added{
					Rate:   v.TargetRate,
					Stream: v.Stream,
					P50:    v.Latency.P50 - d.Latency.P50,
					P90:    v.Latency.P90 - d.Latency.P90,
					P99:    v.Latency.P99 - d.Latency.P99,
				})
				break
			}
		}
	}
}

// header is the note printed above the numbers.
func (r *report) header() string {
	if s := r.Settings; s != nil && s.VeilCPUs != "" {
		return fmt.Sprintf(
			"NOTE: veil runs alone on CPUs %s of this machine's %d; the load generator and the fake upstream share CPUs %s,\n"+
				"      so the direct phases and the generator's lag are bounded by those CPUs, veil's capacity by its own.",
			s.VeilCPUs, r.Machine.CPUs, s.GenCPUs)
	}
	return fmt.Sprintf(
		"NOTE: the load generator, the fake upstream and veil all run on this machine and share its %d CPUs;\n"+
			"      every number below includes that contention (veil alone would do better).",
		r.Machine.CPUs)
}

// print writes the human-readable tables.
func (r *report) print(w io.Writer) {
	s := r.Settings
	fmt.Fprintln(w, "veil load report: open loop, constant rate; latency from each request's scheduled send time (no coordinated omission)")
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s %s\n", r.Machine.CPUs, r.Machine.Model, r.Machine.Go, r.Machine.OS)
	fmt.Fprintln(w, r.header())
	fmt.Fprintf(w, "settings: warm-up %v + measured %v per phase, conns %d, workers %d, timeout %v, body %d B, veil log level %s\n",
		s.Warmup, s.Duration, s.Conns, s.Workers, s.Timeout, s.BodySize, s.LogLevel)
	if s.VeilCPUs != "" {
		fmt.Fprintf(w, "pinned: veil on CPUs %s; the generator and the fake upstream on CPUs %s\n", s.VeilCPUs, s.GenCPUs)
	}
	if s.Cache {
		fmt.Fprintf(w, "scenario: cache hits: %d deterministic prompts (temperature 0) in rotation, each stored by the probe before the warm-up;\n"+
			"          hits = answers with X-Veil-Cache: HIT\n", s.CachePrompts)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	hitsCol := ""
	if s.Cache {
		hitsCol = "hits\t"
	}
	fmt.Fprintln(tw, "phase\ttarget/s\tsent/s\tok/s\trequests\t"+hitsCol+"non-200\ttransport\ttimeout\tp50\tp90\tp99\tp99.9\tmax\t")
	for _, p := range r.Phases {
		hits := ""
		if s.Cache {
			hits = fmtHits(p.Hits, p.OK) + "\t"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.1f\t%d\t%s%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n",
			p.Name(), p.TargetRate, p.SentRate, p.OKRate, p.Requests, hits, p.BadStatus, p.Transport, p.Timeout,
			fmtDur(p.Latency.P50), fmtDur(p.Latency.P90), fmtDur(p.Latency.P99), fmtDur(p.Latency.P999), fmtDur(p.Latency.Max))
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\nresources over the measured window (CPU = utime+stime from /proc/PID/stat per completed request; RSS = peak VmRSS sampled every 100ms)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\ttarget/s\tveil RSS peak\tveil CPU/req\tveil user/req\tveil CPUs\tupstream CPU/req\tgenerator CPU/req\tgen lag p99\tgen lag max\tother procs\t")
	for _, p := range r.Phases {
		veilRSS, veilCPU, veilUser, veilCores := "-", "-", "-", "-"
		if p.Via == viaVeil {
			veilRSS = fmtMiB(p.Veil.PeakRSS)
			veilCPU = fmtCPU(p.Veil.CPU, p.Requests)
			veilUser = fmtCPU(p.Veil.User, p.Requests)
			veilCores = fmt.Sprintf("%.2f", p.Cores(p.Veil.CPU))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f CPUs\t\n",
			p.Name(), p.TargetRate, veilRSS, veilCPU, veilUser, veilCores, fmtCPU(p.Fake.CPU, p.Requests), fmtCPU(p.Gen.CPU, p.Requests),
			fmtDur(p.LagP99), fmtDur(p.LagMax), p.OtherCores())
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "(veil user/req: the user-space part of veil CPU/req, the rest is kernel time; veil CPUs: average CPUs veil kept busy;\n"+
		" gen lag: how late the generator sent requests vs. their schedule, included in latency; other procs: approx. average CPUs used by the rest of the machine, from /proc/stat)")

	if len(r.Added) > 0 {
		fmt.Fprintln(w, "\nlatency added by veil (veil minus direct)")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target/s\tmode\tp50\tp90\tp99\t")
		for _, a := range r.Added {
			mode := "json"
			if a.Stream {
				mode = "stream"
			}
			fmt.Fprintf(tw, "%.0f\t%s\t%s\t%s\t%s\t\n", a.Rate, mode, fmtDur(a.P50), fmtDur(a.P90), fmtDur(a.P99))
		}
		_ = tw.Flush()
	}

	for _, p := range r.Phases {
		for _, kind := range slices.Sorted(maps.Keys(p.Errors)) {
			fmt.Fprintf(w, "%s: %s error, e.g. %s\n", p.Name(), kind, p.Errors[kind])
		}
		for _, code := range slices.Sorted(maps.Keys(p.StatusCodes)) {
			fmt.Fprintf(w, "%s: %d responses with status %d\n", p.Name(), p.StatusCodes[code], code)
		}
	}
}

// fmtDur formats a latency in milliseconds.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms > -10 && ms < 10 {
		return fmt.Sprintf("%.3fms", ms)
	}
	return fmt.Sprintf("%.1fms", ms)
}

// fmtHits formats the share of OK answers that were cache hits.
func fmtHits(hits, ok int) string {
	if ok == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(hits)/float64(ok))
}

// fmtMiB formats a byte count in MiB.
func fmtMiB(b int64) string {
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// cpuPerReq returns CPU time per request in microseconds.
func cpuPerReq(cpu time.Duration, reqs int) float64 {
	if reqs == 0 {
		return 0
	}
	return float64(cpu) / float64(time.Microsecond) / float64(reqs)
}

// fmtCPU formats CPU time per request.
func fmtCPU(cpu time.Duration, reqs int) string {
	return fmt.Sprintf("%.1fµs", cpuPerReq(cpu, reqs))
}

// JSON shapes: durations are float microseconds, sizes bytes.
type (
	jsonReport struct {
		Machine  load.Machine `json:"machine"`
		Note     string       `json:"note"`
		Settings *settings    `json:"settings"`
		Phases   []jsonPhase  `json:"phases"`
		Added    []jsonAdded  `json:"added_latency"`
	}
	jsonLatency struct {
		P50  float64 `json:"p50_us"`
		P90  float64 `json:"p90_us"`
		P99  float64 `json:"p99_us"`
		P999 float64 `json:"p99_9_us"`
		Max  float64 `json:"max_us"`
	}
	jsonErrors struct {
		Status    int `json:"status"`
		Transport int `json:"transport"`
		Timeout   int `json:"timeout"`
	}
	jsonPhase struct {
		Name              string            `json:"name"`
		Target            string            `json:"target"`
		Stream            bool              `json:"stream"`
		TargetRate        float64           `json:"target_rate"`
		SentRate          float64           `json:"sent_rate"`
		OKRate            float64           `json:"ok_rate"`
		Requests          int               `json:"requests"`
		OK                int               `json:"ok"`
		CacheHits         int               `json:"cache_hits"`
		Errors            jsonErrors        `json:"errors"`
		Unsent            int               `json:"unsent,omitempty"`
		StatusCodes       map[string]int    `json:"status_codes,omitempty"`
		ErrorExamples     map[string]string `json:"error_examples,omitempty"`
		Latency           jsonLatency       `json:"latency"`
		GenLagP99         float64           `json:"generator_lag_p99_us"`
		GenLagMax         float64           `json:"generator_lag_max_us"`
		VeilPeakRSS       int64             `json:"veil_peak_rss_bytes,omitempty"`
		VeilCPUPerReq     float64           `json:"veil_cpu_per_request_us,omitempty"`
		VeilUserPerReq    float64           `json:"veil_user_cpu_per_request_us,omitempty"`
		UpstreamCPUPerReq float64           `json:"upstream_cpu_per_request_us"`
		GenCPUPerReq      float64           `json:"generator_cpu_per_request_us"`
		WindowS           float64           `json:"window_s"`
		OtherCPUs         float64           `json:"other_processes_cpus"`
	}
	jsonAdded struct {
		Rate   float64 `json:"target_rate"`
		Stream bool    `json:"stream"`
		P50    float64 `json:"p50_us"`
		P90    float64 `json:"p90_us"`
		P99    float64 `json:"p99_us"`
	}
)

// us converts a duration to float microseconds.
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// writeJSON writes the report as indented JSON to path.
func (r *report) writeJSON(path string) error {
	out := jsonReport{Machine: r.Machine, Note: r.header(), Settings: r.Settings, Phases: []jsonPhase{}, Added: []jsonAdded{}}
	for _, p := range r.Phases {
		jp := jsonPhase{
			Name: p.Name(), Target: p.Via, Stream: p.Stream,
			TargetRate: p.TargetRate, SentRate: p.SentRate, OKRate: p.OKRate,
			Requests: p.Requests, OK: p.OK, CacheHits: p.Hits, Unsent: p.Unsent,
			Errors:        jsonErrors{Status: p.BadStatus, Transport: p.Transport, Timeout: p.Timeout},
			ErrorExamples: p.Errors,
			Latency: jsonLatency{
				P50: us(p.Latency.P50), P90: us(p.Latency.P90), P99: us(p.Latency.P99),
				P999: us(p.Latency.P999), Max: us(p.Latency.Max),
			},
			GenLagP99:         us(p.LagP99),
			GenLagMax:         us(p.LagMax),
			UpstreamCPUPerReq: cpuPerReq(p.Fake.CPU, p.Requests),
			GenCPUPerReq:      cpuPerReq(p.Gen.CPU, p.Requests),
			WindowS:           p.Window.Seconds(),
			OtherCPUs:         p.OtherCores(),
		}
		if len(p.StatusCodes) > 0 {
			jp.StatusCodes = map[string]int{}
			for code, n := range p.StatusCodes {
				jp.StatusCodes[strconv.Itoa(code)] = n
			}
		}
		if p.Via == viaVeil {
			jp.VeilPeakRSS = p.Veil.PeakRSS
			jp.VeilCPUPerReq = cpuPerReq(p.Veil.CPU, p.Requests)
			jp.VeilUserPerReq = cpuPerReq(p.Veil.User, p.Requests)
		}
		out.Phases = append(out.Phases, jp)
	}
	for _, a := range r.Added {
		out.Added = append(out.Added, jsonAdded{Rate: a.Rate, Stream: a.Stream, P50: us(a.P50), P90: us(a.P90), P99: us(a.P99)})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil { //nolint:gosec // G306: a report meant to be read and shared
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}
