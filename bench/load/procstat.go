//go:build linux

package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks returns the kernel's clock ticks per second (the unit of
// utime and stime in /proc/PID/stat), asking getconf once and falling back
// to 100, the value on every common Linux platform.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
})

// CPUTimes returns the user plus system CPU time the process pid ("self"
// for this process) has used so far, and the user part of it.
func CPUTimes(pid string) (total, user time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read cpu time: %w", err)
	}
	utime, stime, err := ParseStatTimes(b)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
	}
	return ticksToDuration(utime + stime), ticksToDuration(utime), nil
}

// ticksToDuration converts clock ticks to a duration.
func ticksToDuration(ticks uint64) time.Duration {
	return time.Duration(float64(ticks) / clockTicks() * float64(time.Second))
}

// ParseStatTimes returns utime and stime, in clock ticks, from the
// contents of /proc/PID/stat. The command name (field 2) is in parentheses
// and may itself contain spaces and parentheses, so fields are counted
// from the last ')'.
func ParseStatTimes(b []byte) (utime, stime uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("no ')' after the command name")
	}
	// After ')' come field 3 (state) onwards; utime and stime are fields
	// 14 and 15.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("only %d fields after the command name", len(f))
	}
	if utime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("utime: %w", err)
	}
	if stime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stime: %w", err)
	}
	return utime, stime, nil
}

// MachineBusy returns the CPU time all CPUs of the machine have spent
// busy (not idle or waiting for I/O) since boot, from /proc/stat.
func MachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read machine cpu time: %w", err)
	}
	ticks, err := ParseMachineBusy(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/stat: %w", err)
	}
	return time.Duration(float64(ticks) / clockTicks() * float64(time.Second)), nil
}

// ParseMachineBusy sums the busy fields of the aggregate "cpu" line of
// /proc/stat: user, nice, system, irq and softirq; not idle, iowait or
// steal, and not guest time, which user time already contains.
func ParseMachineBusy(b []byte) (uint64, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected first line %q", line)
	}
	var busy uint64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", i+2, err)
		}
		if i != 3 && i != 4 && i != 7 {
			busy += n
		}
	}
	return busy, nil
}

// RSS returns the resident set size (VmRSS) of the process pid in bytes.
func RSS(pid string) (int64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	defer f.Close()
	v, err := ParseVMRSS(f)
	if err != nil {
		return 0, fmt.Errorf("/proc/%s/status: %w", pid, err)
	}
	return v, nil
}

// ParseVMRSS extracts VmRSS from /proc/PID/status contents, in bytes.
func ParseVMRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("scan: %w", err)
	}
	return 0, errors.New("no VmRSS line")
}

// Usage is a process's resource use over a measured window.
type Usage struct {
	// CPU is user+system time spent in the window.
	CPU time.Duration
	// User is the user-space part of CPU; the rest is the kernel's work
	// for the process (system calls, networking).
	User time.Duration
	// PeakRSS is the largest VmRSS sampled in the window, in bytes.
	PeakRSS int64
}

// Meter measures one process over a window: CPU time from /proc/PID/stat
// at both ends, peak RSS by sampling /proc/PID/status every 100ms.
type Meter struct {
	pid      string
	cpu0     time.Duration
	user0    time.Duration
	peak     int64
	stop     context.CancelFunc
	done     chan struct{}
	firstErr error
}

// StartMeter begins measuring pid ("self" for this process).
func StartMeter(pid string) (*Meter, error) {
	cpu0, user0, err := CPUTimes(pid)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Meter{pid: pid, cpu0: cpu0, user0: user0, stop: cancel, done: make(chan struct{})}
	m.sample()
	go m.loop(ctx)
	return m, nil
}

func (m *Meter) loop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.sample()
		}
	}
}

func (m *Meter) sample() {
	v, err := RSS(m.pid)
	if err != nil {
		if m.firstErr == nil {
			m.firstErr = err
		}
		return
	}
	m.peak = max(m.peak, v)
}

// Stop ends the window and returns the usage.
func (m *Meter) Stop() (Usage, error) {
	m.stop()
	<-m.done
	m.sample()
	cpu1, user1, err := CPUTimes(m.pid)
	if err != nil {
		return Usage{}, err
	}
	if m.firstErr != nil {
		return Usage{}, m.firstErr
	}
	return Usage{CPU: cpu1 - m.cpu0, User: user1 - m.user0, PeakRSS: m.peak}, nil
}

// Machine describes the host for the report header.
type Machine struct {
	CPUs  int    `json:"cpus"`
	Model string `json:"cpu_model"`
	Go    string `json:"go_version"`
	OS    string `json:"os_arch"`
}

// Host describes this machine.
func Host() Machine {
	return Machine{
		CPUs:  runtime.NumCPU(),
		Model: CPUModel(),
		Go:    runtime.Version(),
		OS:    runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// OpenFDs returns the number of file descriptors the process pid has
// open: the entries of /proc/PID/fd.
func OpenFDs(pid string) (int, error) {
	d, err := os.Open("/proc/" + pid + "/fd")
	if err != nil {
		return 0, fmt.Errorf("open fds: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, fmt.Errorf("open fds of %s: %w", pid, err)
	}
	return len(names), nil
}

// CPUModel returns the first "model name" from /proc/cpuinfo, or
// "unknown".
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
