//go:build linux

// Package load holds what veil's load tools share: building veil and
// running it and other programs as child processes, reading their CPU
// time, memory and open files from /proc, pinning them to CPUs, pacing
// open-loop request schedules and exact latency percentiles. It runs on
// Linux only.
package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// ReadyTimeout bounds how long a child may take to become ready.
const ReadyTimeout = 20 * time.Second

// StopGrace is how long a child gets to exit after SIGTERM before it is
// killed.
const StopGrace = 5 * time.Second

// BuildVeil compiles ./cmd/veil of the enclosing module into dir.
func BuildVeil(ctx context.Context, dir string) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", errors.New("not inside a Go module: run from the veil repository")
	}
	bin := filepath.Join(dir, "veil")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/veil") //nolint:gosec // G204: the output path is the tool's own temp dir
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/veil: %w\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago (listen on :0, close). Another process could grab it in between;
// readiness checks catch that.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return addr, nil
}

// RandomToken returns 32 random bytes in hex.
func RandomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Child is a started subprocess.
type Child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // the result of Wait, valid after done
}

// StartChild starts bin with args, extra environment and output to log.
// The child gets its own process group, so a Ctrl-C in the terminal
// reaches only the parent, which then stops the child in order; should the
// parent die without cleaning up, the kernel kills the child (Pdeathsig).
// Pdeathsig also fires if the OS thread that started the child exits,
// which Go does only for goroutines that exit locked to their thread; the
// load tools lock none.
func StartChild(name, bin string, args, env []string, log io.Writer) (*Child, error) {
	// The child lives until Stop, not for a context: Stop signals it and
	// waits, in order.
	cmd := exec.Command(bin, args...) //nolint:gosec,noctx // G204: the tool's own binaries and flags; see above for the context
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// PID returns the child's process ID as a string, for /proc paths.
func (c *Child) PID() string { return strconv.Itoa(c.cmd.Process.Pid) }

// exited reports whether the child has exited.
func (c *Child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Alive returns an error, with the end of the log at logPath, when the
// child has exited.
func (c *Child) Alive(logPath string) error {
	if c.exited() {
		return fmt.Errorf("%s exited unexpectedly (%v); log %s:\n%s", c.name, c.err, logPath, Tail(logPath, 2048)) //nolint:errorlint // c.err is nil after a clean exit, which %w would print as %!w(<nil>)
	}
	return nil
}

// Stop sends SIGTERM, waits up to grace for the child to exit and kills
// it otherwise. It returns an error only when the child had to be killed.
func (c *Child) Stop(grace time.Duration) error {
	if c.exited() {
		return nil
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
	}
	if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", c.name, err)
	}
	<-c.done
	return fmt.Errorf("%s did not exit within %v of SIGTERM and was killed", c.name, grace)
}

// WaitReady polls url until it answers (with 200 when need200) or
// ReadyTimeout passes, failing early when the child exits; logPath is the
// child's log, quoted in errors.
func (c *Child) WaitReady(ctx context.Context, url string, need200 bool, logPath string) error {
	deadline := time.Now().Add(ReadyTimeout)
	var last error
	for {
		if c.exited() {
			return fmt.Errorf("%s exited during start-up (%v); log %s:\n%s", c.name, c.err, logPath, Tail(logPath, 2048)) //nolint:errorlint // c.err may be nil, as above
		}
		status, _, err := fasthttp.GetTimeout(nil, url, time.Second)
		switch {
		case err != nil:
			last = err
		case need200 && status != fasthttp.StatusOK:
			last = fmt.Errorf("GET %s: status %d", url, status)
		default:
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %w; log %s", c.name, ReadyTimeout, last, logPath)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", c.name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Tail returns at most the last n bytes of the file at path.
func Tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		if _, err := f.Seek(-n, io.SeekEnd); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// Main runs a load tool's run function on the command line and exits:
// with 2 after -h, with 1 and the error on stderr after any other error.
func Main(tool string, run func(args []string, stdout, stderr io.Writer) error) {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, tool+":", err)
		os.Exit(1)
	}
}

// Session is what a load tool's run holds from start to end: a context
// that Ctrl-C or SIGTERM cancels, and a scratch directory.
type Session struct {
	// Ctx ends at Ctrl-C or SIGTERM.
	Ctx context.Context
	*Scratch
	stop context.CancelFunc
}

// NewSession starts a session for tool; what describes the files of its
// scratch directory.
func NewSession(tool, what string) (*Session, error) {
	sc, err := NewScratch(tool, what)
	if err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return &Session{Ctx: ctx, Scratch: sc, stop: stop}, nil
}

// End stops listening for signals and finishes the scratch directory (see
// Scratch.Finish).
func (s *Session) End(keep bool, runErr error, w io.Writer) error {
	s.stop()
	return s.Finish(keep, runErr, w)
}

// Scratch is a load tool's temporary directory: veil's binary, config and
// log go there.
type Scratch struct {
	// Dir is the directory.
	Dir        string
	tool, what string
}

// NewScratch creates a temporary directory for tool, whose files are
// described by what (for the message that keeps them).
func NewScratch(tool, what string) (*Scratch, error) {
	dir, err := os.MkdirTemp("", "veil-"+tool+"-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	return &Scratch{Dir: dir, tool: tool, what: what}, nil
}

// Finish removes the directory, unless keep is set or the run failed
// (runErr), when it says on w where the files are kept instead. It returns
// the error of the removal.
func (s *Scratch) Finish(keep bool, runErr error, w io.Writer) error {
	if keep || runErr != nil {
		fmt.Fprintf(w, "%s: kept %s (%s)\n", s.tool, s.Dir, s.what)
		return nil //nolint:nilerr // the run's error is the caller's; keeping the files is what it asks for
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("remove temp dir: %w", err)
	}
	return nil
}

// Veil returns bin when it is set, else a veil built from ./cmd/veil into
// the directory, saying so on w.
func (s *Scratch) Veil(ctx context.Context, bin string, w io.Writer) (string, error) {
	if bin != "" {
		return bin, nil
	}
	fmt.Fprintf(w, "%s: building ./cmd/veil\n", s.tool)
	return BuildVeil(ctx, s.Dir)
}

// VeilConfigHead returns the start of a veil configuration written by
// tool: the listen addresses and JSON logs at logLevel.
func VeilConfigHead(tool, proxy, admin, logLevel string) string {
	return fmt.Sprintf(`# Written by go run ./%s.
listen:
  proxy: %s
  admin: %s
log:
  level: %s
  format: json
`, tool, proxy, admin, logLevel)
}
