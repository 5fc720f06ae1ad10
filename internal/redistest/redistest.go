// Package redistest runs a real redis-server for tests: in memory only (no
// RDB snapshots, no AOF), on a free loopback port, stopped when the test
// ends.
//
// redis-server is installed by scripts/setup.sh (make setup); tests skip
// without it, except in CI, where they fail.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Guards against a server that never comes up or never goes down. They
// bound failures only; redis-server starts in a few milliseconds.
const (
	startTimeout = 15 * time.Second
	stopTimeout  = 10 * time.Second
)

// fallbackPath is where Debian's redis-server package puts the binary, for
// when it is not on PATH.
const fallbackPath = "/usr/bin/redis-server"

// Binary returns the path of redis-server: from PATH, else /usr/bin. When
// it is missing the test fails if $CI is true (Redis tests must never be
// skipped in CI) and is skipped otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if _, statErr := exec.LookPath(fallbackPath); statErr == nil {
			return fallbackPath
		}
		msg := fmt.Sprintf("redistest: redis-server not found on PATH or at %s: run `make setup` "+
			"(or apt-get install redis-server)", fallbackPath)
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// Server is a redis-server run for one test.
type Server struct {
	// Addr is the server's host:port, such as 127.0.0.1:41234.
	Addr string

	t        testing.TB
	cmd      *exec.Cmd
	out      *syncBuffer
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// Start starts a redis-server on a free loopback port, waits until it
// answers PING and registers Stop with t.Cleanup. The server keeps its data
// in memory only and has no password.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{t: t}
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		err := s.startProcess(bin, dir)
		if err == nil {
			break
		}
		s.kill()
		// Another process may take the free port between our probe and
		// redis-server's bind: try another one.
		if attempt == 3 || !strings.Contains(s.out.String(), "already in use") {
			t.Fatalf("redistest: starting redis-server: %v\n%s", err, s.out.String())
		}
	}
	t.Cleanup(s.Stop)
	return s
}

// startProcess starts redis-server on a free port and waits until it
// answers PING.
func (s *Server) startProcess(bin, dir string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.out = &syncBuffer{}
	s.exited = make(chan struct{})
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", dir,
		"--logfile", "",
		"--loglevel", "notice",
	)
	cmd.Dir = dir
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		err := ping(s.Addr)
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("redis-server exited: %w", s.waitErr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server not answering PING after %v: %w", startTimeout, err)
		}
	}
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited within
// a guard time. It shows the server's output when the test failed. Start
// registers it with t.Cleanup; calling it again does nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(stopTimeout):
				s.t.Errorf("redistest: redis-server did not stop within %v after SIGTERM; killing it", stopTimeout)
				s.kill()
			}
		}
		if s.t.Failed() && s.out != nil {
			s.t.Logf("redis-server output:\n%s", s.out.String())
		}
	})
}

// kill kills the process and waits for it.
func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// ping sends PING to addr over a new connection and checks for PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("finding a free port: not a TCP address")
	}
	return addr.Port, nil
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
