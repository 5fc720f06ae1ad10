package provider

import (
	"bufio"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
)

// silentServer reads each request on its connections and never answers
// it. It counts the requests it read (with their marks) and the
// connections that the client closed.
type silentServer struct {
	base          string
	requests      atomic.Int64
	closed        atomic.Int64
	lastMarkValue atomic.Value
}

func newSilentServer(t *testing.T) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	s := &silentServer{base: "http://" + ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				s.lastMarkValue.Store(req.Header.Get(HeaderAttempt))
				s.requests.Add(1)
				// Wait for the client to give up: a read ends with EOF
				// or a reset when it closes its end.
				_, _ = io.Copy(io.Discard, c)
				s.closed.Add(1)
			}()
		}
	}()
	return s
}

func newTestProvider(t *testing.T, base string) *Provider {
	t.Helper()
	p, err := New(config.Provider{Name: "p", Type: "openai", BaseURL: base}, []keys.Secret{keys.NewSecret("sk-x")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func markableRequest(t *testing.T, p *Provider) *fasthttp.Request {
	t.Helper()
	req := fasthttp.AcquireRequest()
	t.Cleanup(func() { fasthttp.ReleaseRequest(req) })
	req.Header.SetMethod("POST")
	req.SetBodyString(`{"model":"gpt-4o-mini"}`)
	if err := p.Prepare(req, &Call{Suffix: []byte("/chat/completions"), Key: p.Platform().Next(time.Now())}); err != nil {
		t.Fatal(err)
	}
	return req
}

// eventually polls cond until it holds, failing the test after a generous
// bound (the bound catches a hang; it measures nothing).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCutEndsTheWaitForHeaders: a marked call waiting for a silent
// provider's headers ends when it is cut, long before its deadline, and
// the provider sees its connection closed.
func TestCutEndsTheWaitForHeaders(t *testing.T) {
	srv := newSilentServer(t)
	p := newTestProvider(t, srv.base)
	req := markableRequest(t, p)
	m := p.Mark(req)
	done := make(chan error, 1)
	go func() {
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		done <- p.Do(req, resp, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	}()
	eventually(t, "the provider has the request", func() bool { return srv.requests.Load() == 1 })
	if got := srv.lastMarkValue.Load(); got == "" {
		t.Fatalf("the request carried no %s header", HeaderAttempt)
	}
	if !p.Cut(m) {
		t.Fatal("Cut found no connection carrying the call")
	}
	cutEnds(t, done)
	eventually(t, "the provider sees the connection closed", func() bool { return srv.closed.Load() == 1 })
	if p.Cut(m) {
		t.Fatal("a closed connection was cut again")
	}
}

// TestCutSparesTheConnectionsNextCall: cutting a call that already has
// its answer leaves the kept-alive connection's next call alone.
func TestCutSparesTheConnectionsNextCall(t *testing.T) {
	var conns atomic.Int64
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	upstream.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	upstream.Start()
	t.Cleanup(upstream.Close)
	p := newTestProvider(t, upstream.URL)
	do := func() (Mark, error) {
		req := markableRequest(t, p)
		m := p.Mark(req)
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		err := p.Do(req, resp, time.Now().Add(10*time.Second), time.Now().Add(10*time.Second))
		return m, err
	}
	m1, err := do()
	if err != nil {
		t.Fatal(err)
	}
	p.Cut(m1) // late: the call has its answer, its connection is idle
	if _, err := do(); err != nil {
		t.Fatalf("the next call on the connection failed: %v", err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want the kept-alive one reused", n)
	}
}

// TestTLSProviderIsMarkedAndCut: veil dials TLS itself, so an https
// provider's calls are served, and marked calls can be cut, as over http.
func TestTLSProviderIsMarkedAndCut(t *testing.T) {
	var marks atomic.Int64
	release := make(chan struct{})
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderAttempt) != "" {
			marks.Add(1)
		}
		if r.URL.Query().Get("wait") != "" {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(upstream.Close)
	t.Cleanup(func() { close(release) })
	p := newTestProvider(t, upstream.URL)
	pool := x509.NewCertPool()
	pool.AddCert(upstream.Certificate())
	p.tlsConfig.RootCAs = pool
	p.tlsConfig.ServerName = "example.com" // httptest's certificate names it

	req := markableRequest(t, p)
	p.Mark(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := p.Do(req, resp, time.Now().Add(10*time.Second), time.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 200 || marks.Load() != 1 {
		t.Fatalf("status %d, %d marked requests", resp.StatusCode(), marks.Load())
	}

	waiting := markableRequest(t, p)
	waiting.URI().SetQueryString("wait=1")
	m := p.Mark(waiting)
	done := make(chan error, 1)
	go func() {
		r := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(r)
		done <- p.Do(waiting, r, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	}()
	eventually(t, "the provider has the second request", func() bool { return marks.Load() == 2 })
	eventually(t, "the call is cut", func() bool { return p.Cut(m) })
	cutEnds(t, done)
}

// cutEnds fails unless the call reporting on done ends with an error; the
// bound catches a hang and measures nothing.
func cutEnds(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cut call returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cut call still waits for its headers")
	}
}

func TestMarkIn(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Mark
		ok   bool
	}{
		{"request headers", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Veil-Attempt: 1f\r\n\r\n{}", 0x1f, true},
		{"no mark", "POST / HTTP/1.1\r\nHost: x\r\n\r\n", 0, false},
		{"empty value", "POST / HTTP/1.1\r\nX-Veil-Attempt: \r\n\r\n", 0, false},
		{"not hex", "POST / HTTP/1.1\r\nX-Veil-Attempt: zz\r\n\r\n", 0, false},
		{"zero", "POST / HTTP/1.1\r\nX-Veil-Attempt: 0\r\n\r\n", 0, false},
		{"too long", "POST / HTTP/1.1\r\nX-Veil-Attempt: 11111111111111111\r\n\r\n", 0, false},
		{"cut off", "POST / HTTP/1.1\r\nX-Veil-Attempt: 1f", 0, false},
		{"a body alone", `{"messages":[{"content":"X-Veil-Attempt: 1"}]}`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := markIn([]byte(tt.in))
			if got != tt.want || ok != tt.ok {
				t.Fatalf("markIn = %x, %v; want %x, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzMarkIn(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nX-Veil-Attempt: 1f\r\n\r\n"))
	f.Add([]byte("\r\nX-Veil-Attempt: ffffffffffffffff\r"))
	f.Add([]byte("\r\nX-Veil-Attempt: "))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, ok := markIn(b); ok && m == 0 {
			t.Fatal("a zero mark was found")
		}
	})
}
