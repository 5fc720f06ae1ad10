package redistest_test

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/redistest"
)

// do sends one inline command to addr and returns the first line of the
// answer.
func do(t *testing.T, addr, cmd string) string {
	t.Helper()
	return doLines(t, addr, cmd, 1)[0]
}

// doLines sends one inline command to addr and returns the first n lines of
// the answer.
func doLines(t *testing.T, addr, cmd string, n int) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	lines := make([]string, n)
	for i := range lines {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines[i] = strings.TrimRight(line, "\r\n")
	}
	return lines
}

func TestStart(t *testing.T) {
	s := redistest.Start(t)
	if host, _, err := net.SplitHostPort(s.Addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr = %q, want a loopback host:port", s.Addr)
	}
	if got := do(t, s.Addr, "PING"); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
	if got := do(t, s.Addr, "SET wedding:venue barn"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	if got := do(t, s.Addr, "EXISTS wedding:venue"); got != ":1" {
		t.Fatalf("EXISTS = %q", got)
	}
	// In memory only: no snapshots, no append-only file.
	for _, param := range []string{"save", "appendonly"} {
		got := strings.Join(doLines(t, s.Addr, "CONFIG GET "+param, 5), " ")
		want := "*2 $" + strconv.Itoa(len(param)) + " " + param + " "
		if param == "save" {
			want += "$0 "
		} else {
			want += "$2 no"
		}
		if got != want {
			t.Errorf("CONFIG GET %s = %q, want %q", param, got, want)
		}
	}
}

func TestServersAreSeparate(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("both servers on %s", a.Addr)
	}
	if got := do(t, a.Addr, "SET only:a 1"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	if got := do(t, b.Addr, "EXISTS only:a"); got != ":0" {
		t.Fatalf("EXISTS on the other server = %q, want :0", got)
	}
}

func TestStop(t *testing.T) {
	s := redistest.Start(t)
	s.Stop()
	s.Stop() // a second call, and the cleanup's, do nothing
	conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Stop", s.Addr)
	}
}

func TestPauseResume(t *testing.T) {
	s := redistest.Start(t)
	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s.Pause()
	// A command sent while paused is not answered...
	if err := conn.SetDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("INCR guests\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("paused server answered %q", line)
	}
	// ...but runs once the server resumes, although its caller gave up.
	s.Resume()
	s.Resume() // does nothing
	if got := doLines(t, s.Addr, "GET guests", 2); got[1] != "1" {
		t.Fatalf("GET after resume = %q, want the INCR sent while paused applied", got)
	}
	// Stop resumes a paused server before stopping it.
	s.Pause()
}
