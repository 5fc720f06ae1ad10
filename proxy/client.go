package proxy

import (
	"errors"
	"net"
	"syscall"

	"github.com/valyala/fasthttp"
)

// departed reports whether the client of ctx has closed its connection: a
// peek at the socket that neither blocks nor consumes anything finds its
// end. Bytes waiting (a pipelined request) and a connection veil cannot
// look at count as the client still being there.
func departed(ctx *fasthttp.RequestCtx) bool {
	sc, ok := ctx.Conn().(syscall.Conn)
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
