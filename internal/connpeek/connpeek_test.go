package connpeek

import (
	"net"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return client, server
}

func TestClosed(t *testing.T) {
	t.Run("open and idle", func(t *testing.T) {
		_, server := pair(t)
		if Closed(server) {
			t.Fatal("an open connection looks closed")
		}
	})
	t.Run("bytes waiting", func(t *testing.T) {
		client, server := pair(t)
		if _, err := client.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = client.(*net.TCPConn).CloseWrite()
		// The unread request comes before the end: the peer counts as there.
		waitFor(t, func() bool { return !Closed(server) })
	})
	t.Run("closed by the peer", func(t *testing.T) {
		client, server := pair(t)
		_ = client.Close()
		waitFor(t, func() bool { return Closed(server) })
		var b [1]byte
		if n, _ := server.Read(b[:]); n != 0 {
			t.Fatal("the peek consumed nothing, yet a byte was read")
		}
	})
	t.Run("closed, through a wrapper", func(t *testing.T) {
		client, server := pair(t)
		_ = client.Close()
		waitFor(t, func() bool { return Closed(wrapped{server}) })
	})
	t.Run("not a socket", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if Closed(a) {
			t.Fatal("a pipe looks closed")
		}
	})
}

// waitFor polls cond; the bound catches a hang and measures nothing.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatal("condition never held")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wrapped hides a connection's SyscallConn, as connection trackers do,
// and gives it back with NetConn.
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }
