//go:build linux

package load

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// cpuSet is a CPU affinity mask as sched_setaffinity takes it.
type cpuSet [16]uint64 // 1024 CPUs

// ParseCPUList parses a CPU list such as "1", "0,2" or "0-3" into sorted,
// distinct CPU numbers.
func ParseCPUList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("CPU list %q: %w", s, err)
			}
		}
		if a < 0 || b < a || b >= len(cpuSet{})*64 {
			return nil, fmt.Errorf("CPU list %q: bad range %q", s, part)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus), nil
}

// FormatCPUList writes cpus back as a comma-separated list.
func FormatCPUList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

func maskOf(cpus []int) *cpuSet {
	var m cpuSet
	for _, c := range cpus {
		m[c/64] |= 1 << (c % 64)
	}
	return &m
}

// setAffinity sets the CPU mask of thread tid (0: the calling thread).
func setAffinity(tid int, m *cpuSet) error {
	// sched_setaffinity takes the mask by address; m outlives the call.
	_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(*m), uintptr(unsafe.Pointer(m))) //nolint:gosec // G103: see above
	if errno != 0 {
		return errno
	}
	return nil
}

// getAffinity returns the CPU mask of the calling thread.
func getAffinity() (*cpuSet, error) {
	var m cpuSet
	_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, unsafe.Sizeof(m), uintptr(unsafe.Pointer(&m))) //nolint:gosec // G103: the kernel fills m by address
	if errno != 0 {
		return nil, errno
	}
	return &m, nil
}

// PinSelf restricts every thread of this process to cpus; threads started
// later inherit the mask from the thread that starts them, and so do child
// processes. GOMAXPROCS follows.
func PinSelf(cpus []int) error {
	m := maskOf(cpus)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := setAffinity(tid, m); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pin thread %d to CPUs %s: %w", tid, FormatCPUList(cpus), err)
		}
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

// StartPinned starts a child as StartChild does, restricted to cpus: the
// child inherits the mask of the thread that forks it, so that thread
// takes the mask for the moment of the start.
func StartPinned(cpus []int, name, bin string, args, env []string, log io.Writer) (*Child, error) {
	if len(cpus) == 0 {
		return StartChild(name, bin, args, env, log)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := getAffinity()
	if err != nil {
		return nil, fmt.Errorf("pin %s: %w", name, err)
	}
	if err := setAffinity(0, maskOf(cpus)); err != nil {
		return nil, fmt.Errorf("pin %s to CPUs %s: %w", name, FormatCPUList(cpus), err)
	}
	c, startErr := StartChild(name, bin, args, env, log)
	if err := setAffinity(0, old); err != nil {
		if c != nil {
			_ = c.Stop(StopGrace)
		}
		return nil, fmt.Errorf("restore CPU mask after starting %s: %w", name, err)
	}
	return c, startErr
}

// AllowedCPUs returns the Cpus_allowed_list of process pid.
func AllowedCPUs(pid string) (string, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("/proc/%s/status: no Cpus_allowed_list", pid)
}
