// Package redistest runs real redis-servers for tests: in memory only (no
// RDB snapshots, no AOF), on free loopback ports, stopped when the test
// ends. Start runs one server, StartCluster a Redis Cluster of three
// masters, StartSentinel a primary, a replica and three sentinels (the
// same binary, run with --sentinel) whose primary a test can kill.
//
// redis-server is installed by scripts/setup.sh (make setup); tests skip
// without it, except in CI, where they fail.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/proctest"
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
		proctest.Unavailable(t, msg)
	}
	return path
}

// Server is a redis-server run for one test.
type Server struct {
	// Addr is the server's host:port, such as 127.0.0.1:41234.
	Addr string

	t        testing.TB
	proc     *proctest.Proc
	stopOnce sync.Once

	mu     sync.Mutex // guards paused
	paused bool
}

// Start starts a redis-server on a free loopback port, waits until it
// answers PING and registers Stop with t.Cleanup. The server keeps its data
// in memory only and has no password.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, "redis-server", nil)
}

// args returns the arguments of a redis-server or sentinel that listens on
// port and works in dir; it may write files there.
type args func(port int, dir string) ([]string, error)

// start starts a redis-server with the arguments more returns (none when
// nil) after the common ones, as Start does.
func start(t testing.TB, name string, more args) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{t: t}
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		err := s.startProcess(bin, dir, name, more)
		if err == nil {
			break
		}
		s.proc.Kill()
		// Another process may take the free port between our probe and
		// redis-server's bind: try another one.
		if attempt == 3 || !strings.Contains(s.proc.Output(), "already in use") {
			t.Fatalf("redistest: starting %s: %v\n%s", name, err, s.proc.Output())
		}
	}
	t.Cleanup(s.Stop)
	return s
}

// startProcess starts redis-server on a free port and waits until it
// answers PING.
func (s *Server) startProcess(bin, dir, name string, more args) error {
	port, err := proctest.FreePort()
	if err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var pre []string
	if more != nil {
		if pre, err = more(port, dir); err != nil {
			return err
		}
	}
	argv := append(pre, //nolint:gocritic // appendAssign: argv is pre and the common arguments
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
	cmd := exec.CommandContext(context.Background(), bin, argv...) //nolint:gosec // G204: the test fixture runs the redis-server binary it found
	cmd.Dir = dir
	if s.proc, err = proctest.Start(name, cmd); err != nil {
		return err
	}
	return s.proc.WaitReady(startTimeout, 20*time.Millisecond, func() error { return ping(s.Addr) })
}

// Pause stops the server (SIGSTOP), as a long garbage collection, a
// swapped-out or a frozen VM would: it keeps its connections and its
// listening socket, and the kernel still accepts connections and buffers
// commands, but nothing is answered until Resume. Stop resumes a paused
// server before stopping it.
func (s *Server) Pause() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.proc.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("redistest: pausing: %v", err)
	}
	s.paused = true
}

// Resume resumes a paused server (SIGCONT): it then reads and runs the
// commands that reached it meanwhile. Resuming a server that is not paused
// does nothing.
func (s *Server) Resume() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paused {
		return
	}
	if err := s.proc.Signal(syscall.SIGCONT); err != nil {
		s.t.Errorf("redistest: resuming: %v", err)
	}
	s.paused = false
}

// Kill kills the server at once (SIGKILL), as a crash would; the server
// gets no chance to tell anyone. Stop then does nothing.
func (s *Server) Kill() {
	s.stopOnce.Do(func() {
		s.proc.Kill()
		if s.t.Failed() {
			s.t.Logf("killed redis-server output:\n%s", s.proc.Output())
		}
	})
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited within
// a guard time. It shows the server's output when the test failed. Start
// registers it with t.Cleanup; calling it again does nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.Resume()
		s.proc.Finish(s.t, stopTimeout)
	})
}

// ping sends PING to addr over a new connection and checks for PONG.
func ping(addr string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
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
