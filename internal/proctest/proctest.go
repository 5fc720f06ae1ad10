// Package proctest runs the real servers tests need (Vault, redis-server)
// as child processes: output captured for failure reports, stopped with
// SIGTERM then SIGKILL, and killed by the kernel if the test binary dies.
package proctest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a started child process.
type Proc struct {
	name    string
	cmd     *exec.Cmd
	out     syncBuffer
	exited  chan struct{}
	waitErr error
	stop    sync.Once
}

// Start starts cmd with its stdout and stderr captured, set to die with the
// test process (on Linux).
func Start(name string, cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{name: name, cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	cmd.SysProcAttr = SysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Output is everything the process wrote so far; nothing for a nil p.
func (p *Proc) Output() string {
	if p == nil {
		return ""
	}
	return p.out.String()
}

// WaitReady calls ready every interval until it returns nil, failing when
// the process exits first or timeout passes.
func (p *Proc) WaitReady(timeout, interval time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %v", p.name, p.waitErr) //nolint:errorlint // waitErr is nil after a clean exit, which %w would print as %!w(<nil>)
		case <-time.After(interval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %w", p.name, timeout, err)
		}
	}
}

// Stop sends SIGTERM and waits up to timeout, then kills the process. It
// reports whether it had to kill. Calling it again does nothing.
func (p *Proc) Stop(timeout time.Duration) (killed bool) {
	p.stop.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(timeout):
			killed = true
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return killed
}

// Finish stops the process as Stop does, fails t when it had to kill it
// and logs the process's output when t has failed. A nil p does nothing.
func (p *Proc) Finish(t testing.TB, timeout time.Duration) {
	if p == nil {
		return
	}
	if p.Stop(timeout) {
		t.Errorf("%s did not stop within %v after SIGTERM; killed it", p.name, timeout)
	}
	if t.Failed() {
		t.Logf("%s output:\n%s", p.name, p.Output())
	}
}

// Signal sends sig to the process, such as SIGSTOP and SIGCONT to pause
// and resume it.
func (p *Proc) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p.name, err)
	}
	return nil
}

// Kill kills the process at once and waits for it. A nil p does nothing.
func (p *Proc) Kill() {
	if p == nil {
		return
	}
	p.stop.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

// Unavailable ends the test for want of a tool, as msg explains: it fails
// when $CI is true (tests that need a real server or tool must never be
// skipped in CI) and is skipped otherwise.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
