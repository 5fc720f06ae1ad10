package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// endpoint answers from a script and keeps what it received.
type endpoint struct {
	*httptest.Server

	mu       sync.Mutex
	statuses []int // answered in turn; the last one repeats; empty: 200
	bodies   []string
	headers  []http.Header
	hosts    []string
}

func newEndpoint(t *testing.T, statuses ...int) *endpoint {
	t.Helper()
	e := &endpoint{statuses: statuses}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		status := http.StatusOK
		if len(e.statuses) > 0 {
			status = e.statuses[0]
			if len(e.statuses) > 1 {
				e.statuses = e.statuses[1:]
			}
		}
		e.bodies = append(e.bodies, r.Method+" "+string(body))
		e.headers = append(e.headers, r.Header.Clone())
		e.hosts = append(e.hosts, r.Host)
		e.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) posts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.bodies)
}

func newPoster(t *testing.T, o Options) *Poster {
	t.Helper()
	if o.Name == "" {
		o.Name = "test webhook"
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"https", Options{URL: "https://hooks.example/x"}, ""},
		{"empty", Options{}, "want http(s)://host/"},
		{"not http", Options{URL: "ftp://hooks.example/x"}, "want http(s)://host/"},
		{"no host", Options{URL: "http:///x"}, "want http(s)://host/"},
		{"unparsable", Options{URL: "http://exa mple.com/%zz?token=s3cret"}, "url:"},
		{"bad header value", Options{URL: "https://hooks.example/x", Headers: map[string]string{"Authorization": "s3cret\r\nX: y"}},
			`header "Authorization": invalid name or value`},
		{"bad header name", Options{URL: "https://hooks.example/x", Headers: map[string]string{"Bad Name": "s3cret"}},
			`header "Bad Name": invalid name or value`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Name = "test webhook"
			p, err := New(tc.o)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New: %v, want %q", err, tc.wantErr)
			case err != nil && !strings.HasPrefix(err.Error(), "test webhook "):
				t.Errorf("New: %v, want the name first", err)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Errorf("New: %v shows a secret", err)
			}
			if p != nil {
				p.Close()
			}
		})
	}
}

func TestPostClassifiesAnswers(t *testing.T) {
	tests := []struct {
		code      int
		wantErr   bool
		permanent bool
	}{
		{200, false, false},
		{202, false, false},
		{204, false, false},
		{400, true, true},
		{401, true, true},
		{404, true, true},
		{408, true, false},
		{413, true, true},
		{429, true, false},
		{500, true, false},
		{503, true, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			e := newEndpoint(t, tc.code)
			p := newPoster(t, Options{URL: e.URL})
			err := p.Post(context.Background(), []byte(`{}`))
			if (err != nil) != tc.wantErr || Permanent(err) != tc.permanent {
				t.Fatalf("Post = %v; want error %v, permanent %v", err, tc.wantErr, tc.permanent)
			}
			var se *StatusError
			if tc.wantErr && (!errors.As(err, &se) || se.StatusCode != tc.code) {
				t.Errorf("Post = %v, want a StatusError %d", err, tc.code)
			}
			if tc.wantErr && !strings.HasPrefix(err.Error(), "test webhook: answered ") {
				t.Errorf("Post = %q, want the name and the status", err)
			}
		})
	}
}

func TestPostSendsHeadersAndBody(t *testing.T) {
	e := newEndpoint(t)
	p := newPoster(t, Options{URL: e.URL, ContentType: "application/x-ndjson", ContentEncoding: "gzip",
		Headers: map[string]string{"Authorization": "Bearer tok", "host": "hooks.internal"}})
	if err := p.Post(context.Background(), []byte("line\n")); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.headers[0]
	for name, want := range map[string]string{"Authorization": "Bearer tok", "Content-Type": "application/x-ndjson",
		"Content-Encoding": "gzip"} {
		if got := h.Get(name); got != want {
			t.Errorf("%s %q, want %q", name, got, want)
		}
	}
	if e.hosts[0] != "hooks.internal" {
		t.Errorf("host %q, want the Host header's", e.hosts[0])
	}
	if e.bodies[0] != "POST line\n" {
		t.Errorf("received %q", e.bodies[0])
	}
}

// A redirect that would turn the POST into a GET is a permanent error, not
// a delivery, also with a client of the caller's.
func TestPostDoesNotFollowRedirectsToGET(t *testing.T) {
	e := newEndpoint(t)
	redirect := httptest.NewServer(http.RedirectHandler(e.URL, http.StatusFound))
	defer redirect.Close()
	p := newPoster(t, Options{URL: redirect.URL, Client: redirect.Client()})
	if err := p.Post(context.Background(), []byte(`{}`)); !Permanent(err) {
		t.Errorf("Post = %v, want a permanent error", err)
	}
	if n := e.posts(); n != 0 {
		t.Errorf("%d requests reached the target", n)
	}
}

func TestPostErrorsHideTheURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/hooks/secret-path?token=s3cret"
	_ = l.Close()
	p := newPoster(t, Options{URL: dead, Timeout: time.Second})
	err = p.Post(context.Background(), []byte(`{}`))
	if err == nil || Permanent(err) {
		t.Fatalf("Post = %v, want a network error worth retrying", err)
	}
	if strings.Contains(err.Error(), "secret-path") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q shows the URL", err)
	}
}

func TestPostTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	p := newPoster(t, Options{URL: srv.URL, Timeout: 20 * time.Millisecond})
	start := time.Now()
	if err := p.Post(context.Background(), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Post = %v, want the timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Post took %v", d)
	}
}

func TestSendRetries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		attempts int
		posts    int
		wantErr  bool
	}{
		{"500s then success", []int{500, 503, 200}, 4, 3, false},
		{"429 is tried again", []int{429, 200}, 4, 2, false},
		{"gives up after the attempts", []int{500}, 4, 4, true},
		{"one attempt by default", []int{500}, 0, 1, true},
		{"a 400 is final", []int{400}, 4, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, tc.statuses...)
			p := newPoster(t, Options{URL: e.URL, Attempts: tc.attempts, Backoff: time.Millisecond})
			err := p.Send(context.Background(), []byte(`{}`))
			if (err != nil) != tc.wantErr {
				t.Errorf("Send = %v, want error %v", err, tc.wantErr)
			}
			if n := e.posts(); n != tc.posts {
				t.Errorf("%d posts, want %d", n, tc.posts)
			}
		})
	}
}

func TestSendStopsWhenTheContextEnds(t *testing.T) {
	e := newEndpoint(t, 503)
	p := newPoster(t, Options{URL: e.URL, Attempts: 100, Backoff: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Send(ctx, []byte(`{}`)) }()
	for e.posts() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		var se *StatusError
		if !errors.As(err, &se) || se.StatusCode != 503 {
			t.Errorf("Send = %v, want the last answer", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send kept waiting after the context ended")
	}
	if n := e.posts(); n != 1 {
		t.Errorf("%d posts, want 1", n)
	}
}
