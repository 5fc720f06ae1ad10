//go:build linux

package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// resource is one of veil's resources the verdict watches for growth.
type resource struct {
	name string
	get  func(sample) float64
	// floor is the growth below which the resource is never flagged,
	// whatever the share: the noise of a busy process (fasthttp keeps a
	// worker goroutine and a connection per recent client for a while).
	floor float64
	// format writes a value, or a difference, of the resource.
	format func(float64) string
}

// resources are checked in this order.
var resources = []resource{
	{name: "RSS", get: func(s sample) float64 { return float64(s.RSS) }, floor: 8 << 20, format: fmtMiB},
	{name: "heap in use", get: func(s sample) float64 { return float64(s.Heap) }, floor: 8 << 20, format: fmtMiB},
	{name: "goroutines", get: func(s sample) float64 { return float64(s.Goroutines) }, floor: 50, format: fmtCount},
	{name: "open fds", get: func(s sample) float64 { return float64(s.FDs) }, floor: 50, format: fmtCount},
}

func fmtMiB(v float64) string   { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
func fmtCount(v float64) string { return fmt.Sprintf("%.0f", v) }

// growth is the verdict on one resource.
type growth struct {
	res         *resource
	first, last float64
	peak        float64
	// perHour is the least-squares slope over the stable samples, per hour
	// of soak: a steady leak shows as a slope well above the noise.
	perHour float64
	limit   float64 // the growth allowed
	flagged bool
}

// delta is the growth from the first stable sample to the last.
func (g growth) delta() float64 { return g.last - g.first }

// stableFrom returns the index of the first sample taken at or after
// warmup, or the last sample when none was (so that a short run still
// compares something).
func stableFrom(samples []sample, warmup time.Duration) int {
	for i, s := range samples {
		if s.At >= warmup {
			return i
		}
	}
	return max(len(samples)-1, 0)
}

// checkGrowth compares each resource between the first stable sample and
// the last: it is flagged when it grew by more than maxShare of its first
// value and by more than its floor.
func checkGrowth(samples []sample, from int, maxShare float64) []growth {
	if from >= len(samples) {
		return nil
	}
	stable := samples[from:]
	out := make([]growth, 0, len(resources))
	for i := range resources {
		r := &resources[i]
		g := growth{res: r, first: r.get(stable[0]), last: r.get(stable[len(stable)-1])}
		xs := make([]float64, len(stable))
		ys := make([]float64, len(stable))
		for j, s := range stable {
			v := r.get(s)
			g.peak = max(g.peak, v)
			xs[j], ys[j] = s.At.Hours(), v
		}
		g.perHour = slope(xs, ys)
		g.limit = max(r.floor, maxShare*g.first)
		g.flagged = g.delta() > g.limit
		out = append(out, g)
	}
	return out
}

// slope returns the least-squares slope of ys over xs, 0 with fewer than
// two distinct xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if len(xs) < 2 {
		return 0
	}
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/n, sy/n
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return 0
	}
	return sxy / sxx
}

// fmtSigned writes a difference with its sign.
func fmtSigned(v float64, format func(float64) string) string {
	if v < 0 {
		return "-" + format(-v)
	}
	return "+" + format(v)
}

// fmtShare writes d as a share of base.
func fmtShare(d, base float64) string {
	if base == 0 {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", 100*d/base)
}

// fmtDur writes a latency in milliseconds.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 10 {
		return fmt.Sprintf("%.2fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}

// fmtAt writes a sample's time as minutes and seconds.
func fmtAt(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// columns of the table over time.
var columns = []string{"time", "RSS", "heap", "goroutines", "fds", "veil CPUs", "other CPUs", "req/s", "p50", "p99", "max",
	"errors", "absorbed", "faults", "hits"}

// row returns a sample's cells, in the order of columns.
func (s sample) row() []string {
	return []string{
		fmtAt(s.At), fmtMiB(float64(s.RSS)), fmtMiB(float64(s.Heap)), fmtCount(float64(s.Goroutines)),
		fmtCount(float64(s.FDs)), fmt.Sprintf("%.2f", s.CPUs), fmt.Sprintf("%.2f", s.OtherCPUs), fmt.Sprintf("%.1f", s.Throughput),
		fmtDur(s.P50), fmtDur(s.P99), fmtDur(s.Max),
		fmt.Sprint(s.Errors), fmt.Sprint(s.Absorbed), fmt.Sprint(s.Faults), fmt.Sprint(s.Hits),
	}
}

// widths of the text table's columns.
var widths = []int{6, 10, 10, 10, 5, 9, 10, 7, 8, 8, 8, 6, 8, 6, 6}

// textRow writes cells right-aligned in the text table's widths.
func textRow(w io.Writer, cells []string) {
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteString("  ")
		}
		fmt.Fprintf(&b, "%*s", widths[i], c)
	}
	fmt.Fprintln(w, b.String())
}

// mdRow writes cells as a Markdown table row.
func mdRow(w io.Writer, cells []string) {
	fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
}

// verdictLines returns the growth verdict, one line per resource.
func verdictLines(gs []growth) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		status := "ok"
		if g.flagged {
			status = "GREW beyond " + g.res.format(g.limit)
		}
		out = append(out, fmt.Sprintf("%-11s %10s -> %-10s %10s (%s), peak %s, trend %s per hour: %s",
			g.res.name, g.res.format(g.first), g.res.format(g.last), fmtSigned(g.delta(), g.res.format),
			fmtShare(g.delta(), g.first), g.res.format(g.peak), fmtSigned(roundTrend(g.perHour), g.res.format), status))
	}
	return out
}

// roundTrend keeps a trend from printing as -0.
func roundTrend(v float64) float64 {
	if math.Abs(v) < 1e-9 {
		return 0
	}
	return v
}
