package provider

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/wedsync/veil/config"
	"golang.org/x/net/http/httpproxy"
)

// A Mark tags one upstream call on the wire (the X-Veil-Attempt request
// header), so that Cut can find the connection carrying it while its
// caller waits for the answer. Marks are unique within the process; the
// zero Mark tags nothing.
type Mark uint64

// HeaderAttempt is the request header that carries a call's Mark
// upstream. It names the attempt, nothing else: providers ignore it.
const HeaderAttempt = "X-Veil-Attempt"

var (
	lastMark atomic.Uint64
	// markPrefix is how the mark's header starts on the wire, as fasthttp
	// writes it after the request line or another header.
	markPrefix = []byte("\r\n" + HeaderAttempt + ": ")
	headerMark = []byte(HeaderAttempt)
)

// markScan bounds how far into a write a mark is looked for: fasthttp
// writes a request's headers first, and veil's headers are far shorter.
const markScan = 8 << 10

// Mark tags req with a new mark and returns it.
func (p *Provider) Mark(req *fasthttp.Request) Mark {
	m := Mark(lastMark.Add(1))
	var buf [16]byte
	req.Header.SetCanonical(headerMark, strconv.AppendUint(buf[:0], uint64(m), 16))
	return m
}

// Cut ends the wait for the answer to the call tagged m, when it is still
// on a connection: the connection's reads fail at once (and fasthttp then
// closes it, which tells the provider to stop). It reports whether a
// connection carried m. A connection taken by a later call since is left
// alone: the cut applies to m's call only.
func (p *Provider) Cut(m Mark) bool {
	if m == 0 {
		return false
	}
	found := false
	p.conns.Range(func(_, v any) bool {
		c := v.(*trackedConn)
		if Mark(c.mark.Load()) != m {
			return true
		}
		c.cut.Store(uint64(m))
		_ = c.Conn.SetReadDeadline(pastDeadline)
		found = true
		return false
	})
	return found
}

// pastDeadline is a deadline already passed: reads fail at once.
var pastDeadline = time.Unix(1, 0)

// tlsConfigFor is the TLS configuration of an https base URL u, nil for
// http: the host checked against the certificate, sessions resumed.
func tlsConfigFor(u *url.URL) *tls.Config {
	if u.Scheme != "https" {
		return nil
	}
	return &tls.Config{
		ServerName:         u.Hostname(),
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
		MinVersion:         tls.VersionTLS12,
	}
}

// dial opens a connection to addr, with TLS for an https provider, and
// tracks it. veil does the TLS handshake itself (fasthttp takes a
// connection with a Handshake method as TLS already), so that the tracked
// connection sees the plain request and can find its mark.
func (p *Provider) dial(addr string, timeout time.Duration) (net.Conn, error) {
	var raw net.Conn
	var err error
	if p.proxy != nil {
		raw, err = dialThrough(p.proxy, addr, timeout)
	} else {
		raw, err = fasthttp.DialTimeout(addr, timeout)
	}
	if err != nil {
		return nil, err
	}
	if p.tlsConfig == nil {
		return p.track(raw), nil
	}
	tc := tls.Client(raw, p.tlsConfig)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return tlsTrackedConn{p.track(tc)}, nil
}

// track registers an upstream connection by its local address until it
// closes.
func (p *Provider) track(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c, conns: &p.conns}
	if key, ok := addrKey(c.LocalAddr()); ok {
		tc.key = key
		p.conns.Store(key, tc)
	}
	return tc
}

// extend moves the read deadline of the connection at local to deadline.
func (p *Provider) extend(local net.Addr, deadline time.Time) {
	if key, ok := addrKey(local); ok {
		if c, ok := p.conns.Load(key); ok {
			_ = c.(*trackedConn).SetReadDeadline(deadline)
		}
	}
}

func addrKey(a net.Addr) (netip.AddrPort, bool) {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort(), true
	}
	return netip.AddrPort{}, false
}

// trackedConn is an upstream connection that knows the mark of the call
// it carries (read from the request as it is written) and whether that
// call was cut, and forgets its registration when it closes.
type trackedConn struct {
	net.Conn
	key   netip.AddrPort
	conns *sync.Map
	once  sync.Once
	// mark is the mark of the latest call written on the connection; cut
	// is the mark of a call that was cut (equal to mark while that call
	// is still the connection's).
	mark, cut atomic.Uint64
}

// Write sends b, noting the mark of a request that starts in it.
func (c *trackedConn) Write(b []byte) (int, error) {
	if m, ok := markIn(b); ok {
		c.mark.Store(uint64(m))
	}
	return c.Conn.Write(b)
}

// markIn finds the mark of a request whose headers are in b.
func markIn(b []byte) (Mark, bool) {
	if len(b) > markScan {
		b = b[:markScan]
	}
	i := bytes.Index(b, markPrefix)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(markPrefix):]
	end := bytes.IndexByte(b, '\r')
	if end <= 0 || end > 16 {
		return 0, false
	}
	m, err := strconv.ParseUint(string(b[:end]), 16, 64)
	if err != nil || m == 0 {
		return 0, false
	}
	return Mark(m), true
}

// cutNow reports whether the call on the connection was cut.
func (c *trackedConn) cutNow() bool {
	m := c.mark.Load()
	return m != 0 && c.cut.Load() == m
}

// Read reads, unless the call on the connection was cut.
func (c *trackedConn) Read(b []byte) (int, error) {
	if c.cutNow() {
		return 0, os.ErrDeadlineExceeded
	}
	return c.Conn.Read(b)
}

// SetReadDeadline sets the read deadline; a cut call's stays in the past.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if c.cutNow() {
		t = pastDeadline
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines; a cut call's read deadline stays in the
// past.
func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// Close closes the connection and drops it from the registry.
func (c *trackedConn) Close() error {
	c.once.Do(func() { c.conns.CompareAndDelete(c.key, c) })
	return c.Conn.Close()
}

// tlsTrackedConn is a tracked TLS connection whose handshake is done; its
// Handshake method tells fasthttp not to wrap it in TLS again.
type tlsTrackedConn struct{ *trackedConn }

// Handshake does nothing: the handshake was done when it was dialled.
func (tlsTrackedConn) Handshake() error { return nil }

// proxyFor is the proxy of a provider at base: its proxy_url ("direct":
// none), else what HTTPS_PROXY, HTTP_PROXY and NO_PROXY say for base, as
// Go's net/http reads them (a loopback host never goes through one).
func proxyFor(proxyURL string, base *url.URL) (*url.URL, error) {
	switch proxyURL {
	case config.ProxyDirect:
		return nil, nil
	case "":
		return httpproxy.FromEnvironment().ProxyFunc()(base)
	}
	return url.Parse(proxyURL)
}

// dialThrough opens a connection to addr through an http proxy's CONNECT
// tunnel, within timeout. The proxy's credentials, when its URL has them,
// go in Proxy-Authorization.
func dialThrough(proxy *url.URL, addr string, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	host := proxy.Host
	if proxy.Port() == "" {
		host = net.JoinHostPort(proxy.Hostname(), "80")
	}
	c, err := fasthttp.DialTimeout(host, timeout)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
	}
	_ = c.SetDeadline(deadline)
	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if u := proxy.User; u != nil {
		pass, _ := u.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)) + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || br.Buffered() > 0 {
		_ = c.Close()
		return nil, fmt.Errorf("proxy %s refused the tunnel to %s: %s", proxy.Redacted(), addr, resp.Status)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
