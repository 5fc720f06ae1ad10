//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// readyTimeout bounds how long a child may take to become ready.
const readyTimeout = 20 * time.Second

// stopGrace is how long a child gets to exit after SIGTERM before it is
// killed.
const stopGrace = 5 * time.Second

// buildVeil compiles ./cmd/veil of the enclosing module into dir.
func buildVeil(ctx context.Context, dir string) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", errors.New("not inside a Go module: run from the veil repository")
	}
	bin := filepath.Join(dir, "veil")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/veil")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/veil: %w\n%s", err, out)
	}
	return bin, nil
}

// freeAddr returns a loopback address with a port that was free a moment
// ago (listen on :0, close). Another process could grab it in between;
// readiness checks catch that.
func freeAddr() (string, error) {
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

// randomToken returns 32 random bytes in hex.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// child is a started subprocess.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // the result of Wait, valid after done
}

// startChild starts bin with args, extra environment and output to log.
// The child gets its own process group, so a Ctrl-C in the terminal
// reaches only the bench, which then stops the child in order; should the
// bench die without cleaning up, the kernel kills the child (Pdeathsig).
// Pdeathsig also fires if the OS thread that started the child exits,
// which Go does only for goroutines that exit locked to their thread; the
// bench locks none.
func startChild(name, bin string, args, env []string, log io.Writer) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// PID returns the child's process ID as a string, for /proc paths.
func (c *child) PID() string { return strconv.Itoa(c.cmd.Process.Pid) }

// exited reports whether the child has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to grace for the child to exit and kills
// it otherwise. It returns an error only when the child had to be killed.
func (c *child) Stop(grace time.Duration) error {
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

// stack is a fake upstream and a veil proxy in front of it, both child
// processes of the bench.
type stack struct {
	// LogPath is the file both children write their output to.
	LogPath string
	// FakeAddr, ProxyAddr and AdminAddr are the listen addresses.
	FakeAddr, ProxyAddr, AdminAddr string
	// Token is the caller token veil accepts.
	Token string

	log        *os.File
	fake, veil *child
}

// startStack starts the fake upstream and veil from bin, with config and
// log in dir, and waits until both are ready; veil is restricted to
// veilCPUs when that is not empty. On error everything already started is
// stopped again.
func startStack(ctx context.Context, dir, bin, logLevel string, veilCPUs []int) (s *stack, err error) {
	s = &stack{LogPath: filepath.Join(dir, "veil.log")}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
			s = nil
		}
	}()
	if s.log, err = os.Create(s.LogPath); err != nil {
		return s, fmt.Errorf("create log: %w", err)
	}
	for _, p := range []*string{&s.FakeAddr, &s.ProxyAddr, &s.AdminAddr} {
		if *p, err = freeAddr(); err != nil {
			return s, err
		}
	}
	if s.Token, err = randomToken(); err != nil {
		return s, err
	}
	platformKey, err := randomToken()
	if err != nil {
		return s, err
	}
	cfgPath := filepath.Join(dir, "veil.yaml")
	if err := os.WriteFile(cfgPath, []byte(veilConfig(s.ProxyAddr, s.AdminAddr, s.FakeAddr, logLevel)), 0o600); err != nil {
		return s, fmt.Errorf("write config: %w", err)
	}

	s.fake, err = startChild("fake-upstream", bin,
		[]string{"fake-upstream", "--listen", s.FakeAddr, "--latency", "0", "--ttft", "0", "--chunk-delay", "0"},
		nil, s.log)
	if err != nil {
		return s, err
	}
	if err := s.waitReady(ctx, s.fake, "http://"+s.FakeAddr+"/v1/models", false); err != nil {
		return s, err
	}
	s.veil, err = startPinned(veilCPUs, "veil", bin, []string{"serve", "--config", cfgPath},
		[]string{"BENCH_PLATFORM_KEY=sk-bench-" + platformKey, "BENCH_CALLER_TOKEN=" + s.Token}, s.log)
	if err != nil {
		return s, err
	}
	if err := s.waitReady(ctx, s.veil, "http://"+s.AdminAddr+"/readyz", true); err != nil {
		return s, err
	}
	return s, nil
}

// veilConfig renders the proxy's YAML configuration.
func veilConfig(proxy, admin, fake, logLevel string) string {
	return fmt.Sprintf(`# Written by go run ./bench.
listen:
  proxy: %s
  admin: %s
log:
  level: %s
  format: json
providers:
  - name: openai
    type: openai
    base_url: http://%s/v1
    api_key: env://BENCH_PLATFORM_KEY
callers:
  - name: bench
    token: env://BENCH_CALLER_TOKEN
    suppliers: ["*"]
`, proxy, admin, logLevel, fake)
}

// waitReady polls url until it answers (with 200 when need200) or
// readyTimeout passes, failing early when the child exits.
func (s *stack) waitReady(ctx context.Context, c *child, url string, need200 bool) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		if c.exited() {
			return fmt.Errorf("%s exited during start-up (%v); log %s:\n%s", c.name, c.err, s.LogPath, tail(s.LogPath, 2048))
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
			return fmt.Errorf("%s not ready after %v: %w; log %s", c.name, readyTimeout, last, s.LogPath)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", c.name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// VeilPID and FakePID return the children's process IDs.
func (s *stack) VeilPID() string { return s.veil.PID() }

// FakePID returns the fake upstream's process ID.
func (s *stack) FakePID() string { return s.fake.PID() }

// Close stops veil, then the fake upstream, and closes the log. It is
// safe on a partly started stack and more than once.
func (s *stack) Close() error {
	var errs []error
	for _, c := range []*child{s.veil, s.fake} {
		if c != nil {
			errs = append(errs, c.Stop(stopGrace))
		}
	}
	if s.log != nil {
		errs = append(errs, s.log.Close())
		s.log = nil
	}
	return errors.Join(errs...)
}

// Alive returns an error when a child has exited unexpectedly.
func (s *stack) Alive() error {
	for _, c := range []*child{s.fake, s.veil} {
		if c.exited() {
			return fmt.Errorf("%s exited unexpectedly (%v); log %s:\n%s", c.name, c.err, s.LogPath, tail(s.LogPath, 2048))
		}
	}
	return nil
}

// tail returns at most the last n bytes of the file at path.
func tail(path string, n int64) string {
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
