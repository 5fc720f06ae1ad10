//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/bench/load"
)

// sample is one row of the soak's table: veil's state at the end of a
// period and what the clients saw during it.
type sample struct {
	// At is the end of the period, from the start of the schedule;
	// Period its length.
	At, Period time.Duration

	// veil's process, from /proc and its /metrics.
	RSS        int64   // VmRSS, bytes
	Heap       int64   // go_memstats_heap_inuse_bytes
	Goroutines int     // go_goroutines
	FDs        int     // entries of /proc/PID/fd
	CPUs       float64 // CPUs veil kept busy over the period
	// OtherCPUs is what the processes other than veil and the soak kept
	// busy: the contention veil met.
	OtherCPUs float64

	// The clients' view of the period.
	Requests   int // finished in the period
	Errors     int // client-visible: not a clean 200
	Absorbed   int // 200s that needed another attempt or provider
	Hits       int
	Faults     int     // faults the primary upstream applied
	Throughput float64 // finished requests per second
	P50, P99   time.Duration
	Max        time.Duration
}

// veilProbe reads veil's resource use.
type veilProbe struct {
	pid        string
	metricsURL string
	client     *fasthttp.Client
	last       cpuTimes
}

func newVeilProbe(pid, adminAddr string) (*veilProbe, error) {
	p := &veilProbe{pid: pid, metricsURL: "http://" + adminAddr + "/metrics", client: &fasthttp.Client{}}
	var err error
	p.last, err = cpuNow(pid)
	return p, err
}

// read fills the veil part of s; period is the time since the last read.
func (p *veilProbe) read(s *sample, period time.Duration) error {
	var err error
	if s.RSS, err = load.RSS(p.pid); err != nil {
		return err
	}
	if s.FDs, err = load.OpenFDs(p.pid); err != nil {
		return err
	}
	now, err := cpuNow(p.pid)
	if err != nil {
		return err
	}
	if period > 0 {
		c := now.since(p.last, period)
		s.CPUs, s.OtherCPUs = c.veil, c.other
	}
	p.last = now
	m, err := p.metrics()
	if err != nil {
		return err
	}
	g, okG := m["go_goroutines"]
	h, okH := m["go_memstats_heap_inuse_bytes"]
	if !okG || !okH {
		return fmt.Errorf("%s lacks go_goroutines or go_memstats_heap_inuse_bytes", p.metricsURL)
	}
	s.Goroutines, s.Heap = int(g), int64(h)
	return nil
}

// metrics scrapes veil's /metrics.
func (p *veilProbe) metrics() (map[string]float64, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(p.metricsURL)
	if err := p.client.DoTimeout(req, resp, 5*time.Second); err != nil {
		return nil, fmt.Errorf("GET %s: %w", p.metricsURL, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", p.metricsURL, resp.StatusCode())
	}
	return parseMetrics(resp.Body())
}

// cpuTimes are veil's and this process's CPU time and the machine's busy
// time, at one moment.
type cpuTimes struct {
	veil, self, busy time.Duration
}

// cpuShares are the average CPUs each kept busy over a window.
type cpuShares struct {
	veil, self, other float64
}

// cpuNow reads the CPU times of veil (pid) and this process, and the
// machine's busy time.
func cpuNow(veilPID string) (c cpuTimes, err error) {
	if c.veil, _, err = load.CPUTimes(veilPID); err != nil {
		return c, err
	}
	if c.self, _, err = load.CPUTimes("self"); err != nil {
		return c, err
	}
	c.busy, err = load.MachineBusy()
	return c, err
}

// since returns the shares from then to c, a window of length d.
func (c cpuTimes) since(then cpuTimes, d time.Duration) cpuShares {
	secs := d.Seconds()
	v, sf := (c.veil - then.veil).Seconds(), (c.self - then.self).Seconds()
	other := max((c.busy-then.busy).Seconds()-v-sf, 0)
	return cpuShares{veil: v / secs, self: sf / secs, other: other / secs}
}

// parseMetrics reads the Prometheus text format into a map from each
// series, written as in the text (name{labels}), to its value. Comments
// and blank lines are skipped; timestamps are ignored.
func parseMetrics(b []byte) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The series ends at the closing brace of its labels (label values
		// may hold spaces), or at the first space without labels.
		end := strings.IndexByte(line, ' ')
		if i := strings.IndexByte(line, '{'); i >= 0 && (end < 0 || i < end) {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metrics line %d: unclosed labels: %q", n, line)
			}
			end = j + 1
		}
		if end <= 0 || end >= len(line) {
			return nil, fmt.Errorf("metrics line %d: no value: %q", n, line)
		}
		fields := strings.Fields(line[end:])
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("metrics line %d: %q", n, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", n, err)
		}
		out[line[:end]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

// family returns the series of the metric name, by their labels ("" for
// the series without labels).
func family(m map[string]float64, name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		switch {
		case k == name:
			out[""] = v
		case strings.HasPrefix(k, name+"{"):
			out[k[len(name)+1:len(k)-1]] = v
		}
	}
	return out
}
