// Package connpeek tells whether the far end of a connection has closed
// it, without reading from it: how a server notices that a client gave up
// on a call while it is still working on the answer.
package connpeek

import (
	"errors"
	"net"
	"syscall"
)

// Closed reports whether the peer of c has closed the connection: a peek
// at the socket that neither blocks nor consumes anything finds its end
// (or a reset). Bytes waiting (a pipelined request) and a connection that
// cannot be looked at (not a socket) count as the peer still being there.
// A wrapper is looked through when it has a NetConn method (as tls.Conn
// has).
func Closed(c net.Conn) bool {
	for {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	var buf [1]byte
	_ = raw.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = n == 0 && err == nil || errors.Is(err, syscall.ECONNRESET)
	})
	return gone
}

var _ syscall.Conn = (*net.TCPConn)(nil)
