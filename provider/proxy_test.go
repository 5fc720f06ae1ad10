package provider

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
)

// connectProxy is a local http proxy that tunnels CONNECT requests, or
// refuses them with refuse, noting each target and Proxy-Authorization.
type connectProxy struct {
	url    string
	refuse int

	mu      sync.Mutex
	targets []string
	auth    []string
}

func startConnectProxy(t *testing.T, refuse int) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	p := &connectProxy{url: "http://" + ln.Addr().String(), refuse: refuse}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, req.Host)
	p.auth = append(p.auth, req.Header.Get("Proxy-Authorization"))
	p.mu.Unlock()
	if p.refuse != 0 {
		_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n", p.refuse, http.StatusText(p.refuse))
		return
	}
	up, err := net.Dial("tcp", req.Host)
	if err != nil {
		return
	}
	defer up.Close()
	_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	go func() { _, _ = io.Copy(up, c) }()
	_, _ = io.Copy(c, up)
}

func (p *connectProxy) seen() (targets, auth []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...), append([]string(nil), p.auth...)
}

// TestProviderThroughProxy: with proxy_url, an https provider is reached
// through the proxy's CONNECT tunnel (credentials sent), TLS end to end.
func TestProviderThroughProxy(t *testing.T) {
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(upstream.Close)
	proxy := startConnectProxy(t, 0)
	u, _ := url.Parse(proxy.url)
	u.User = url.UserPassword("veil", "s3cret")
	p, err := New(config.Provider{Name: "p", Type: "openai", BaseURL: upstream.URL, ProxyURL: u.String()},
		[]keys.Secret{keys.NewSecret("sk-x")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	pool := x509.NewCertPool()
	pool.AddCert(upstream.Certificate())
	p.tlsConfig.RootCAs, p.tlsConfig.ServerName = pool, "example.com"
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := p.Do(markableRequest(t, p), resp, time.Now().Add(10*time.Second), time.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	targets, auth := proxy.seen()
	if resp.StatusCode() != 200 || len(targets) != 1 || targets[0] != strings.TrimPrefix(upstream.URL, "https://") {
		t.Fatalf("status %d, tunnels %v", resp.StatusCode(), targets)
	}
	if auth[0] != "Basic dmVpbDpzM2NyZXQ=" {
		t.Errorf("Proxy-Authorization %q", auth[0])
	}
}

// TestProxyRefusal: a proxy that refuses the tunnel fails the call with
// its status, and its credentials are not in the error.
func TestProxyRefusal(t *testing.T) {
	proxy := startConnectProxy(t, http.StatusForbidden)
	p, err := New(config.Provider{Name: "p", Type: "openai", BaseURL: "http://10.255.255.1:9/v1",
		ProxyURL: strings.Replace(proxy.url, "http://", "http://veil:s3cret@", 1)}, []keys.Secret{keys.NewSecret("sk-x")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	err = p.Do(markableRequest(t, p), resp, time.Now().Add(10*time.Second), time.Now().Add(10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "refused the tunnel") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err %v, want the proxy's refusal without its password", err)
	}
}

func TestProxyFor(t *testing.T) {
	base, _ := url.Parse("https://api.openai.com/v1")
	t.Setenv("HTTPS_PROXY", "http://egress.internal:3128")
	t.Setenv("NO_PROXY", "")
	for _, tc := range []struct {
		name, proxyURL, noProxy, want string
	}{
		{"from the environment", "", "", "http://egress.internal:3128"},
		{"NO_PROXY names the host", "", "api.openai.com", ""},
		{"the provider's own", "http://other:8080", "", "http://other:8080"},
		{"direct", config.ProxyDirect, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NO_PROXY", tc.noProxy)
			got, err := proxyFor(tc.proxyURL, base)
			if err != nil {
				t.Fatal(err)
			}
			s := ""
			if got != nil {
				s = got.String()
			}
			if s != tc.want {
				t.Fatalf("proxy %v, want %q", got, tc.want)
			}
		})
	}
}
