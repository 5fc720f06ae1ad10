//go:build linux

package load

import (
	"io"
	"os"
	"strings"
	"testing"
)

func TestParseStatTimes(t *testing.T) {
	line := "4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 1 2 3 4 250 50 0 0 20 0 1 0 100 0 0\n"
	if u, st, err := ParseStatTimes([]byte(line)); err != nil || u != 250 || st != 50 {
		t.Errorf("utime %d, stime %d, %v; want 250, 50", u, st, err)
	}
	if _, _, err := ParseStatTimes([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("short line accepted")
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		if _, _, err := CPUTimes("self"); err != nil {
			t.Error(err)
		}
		if v, err := RSS("self"); err != nil || v <= 0 {
			t.Errorf("RSS(self) = %d, %v", v, err)
		}
		if n, err := OpenFDs("self"); err != nil || n < 3 {
			t.Errorf("OpenFDs(self) = %d, %v", n, err)
		}
	}
}

func TestParseMachineBusy(t *testing.T) {
	got, err := ParseMachineBusy([]byte("cpu  100 2 30 5000 7 1 4 9 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil || got != 137 {
		t.Errorf("got %d, %v; want 137", got, err)
	}
	if _, err := ParseMachineBusy([]byte("intr 1 2 3\n")); err == nil {
		t.Error("bad first line accepted")
	}
}

func TestParseVMRSS(t *testing.T) {
	got, err := ParseVMRSS(strings.NewReader("Name:\tveil\nVmPeak:\t 9999 kB\nVmRSS:\t   12345 kB\nThreads: 4\n"))
	if err != nil || got != 12345*1024 {
		t.Errorf("got %d, %v", got, err)
	}
	if _, err := ParseVMRSS(strings.NewReader("Name:\tveil\n")); err == nil {
		t.Error("missing VmRSS accepted")
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]string{"1": "1", "0,2": "0,2", "0-3": "0,1,2,3", "3,1-2,1": "1,2,3"} {
		got, err := ParseCPUList(in)
		if err != nil || FormatCPUList(got) != want {
			t.Errorf("%q: %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "2-1", "-1", "0-99999"} {
		if _, err := ParseCPUList(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// TestStartPinned starts a child on one CPU and checks that it runs
// there while this process keeps its own mask.
func TestStartPinned(t *testing.T) {
	before, err := AllowedCPUs("self")
	if err != nil {
		t.Skip(err)
	}
	cpus, err := ParseCPUList(before)
	if err != nil {
		t.Fatal(err)
	}
	want := cpus[len(cpus)-1:]
	c, err := StartPinned(want, "sleep", "/bin/sleep", []string{"5"}, nil, io.Discard)
	if err != nil {
		t.Skip(err)
	}
	defer func() { _ = c.Stop(StopGrace) }()
	got, err := AllowedCPUs(c.PID())
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := ParseCPUList(got); FormatCPUList(l) != FormatCPUList(want) {
		t.Errorf("child on CPUs %s, want %s", got, FormatCPUList(want))
	}
	if after, _ := AllowedCPUs("self"); after != before {
		t.Errorf("this process went from CPUs %s to %s", before, after)
	}
}
