package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/health"
)

// hook is a webhook endpoint that answers from a script and keeps what it
// received.
type hook struct {
	srv *httptest.Server

	mu       sync.Mutex
	statuses []int // answered in turn; the last one repeats; empty: 200
	got      []received
	arrived  chan received
}

type received struct {
	payload Payload
	header  http.Header
	at      time.Time
}

func newHook(t *testing.T, statuses ...int) *hook {
	h := &hook{statuses: statuses, arrived: make(chan received, 64)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil || r.Method != http.MethodPost {
			t.Errorf("%s with body %q: %v", r.Method, body, err)
		}
		rc := received{payload: p, header: r.Header.Clone(), at: time.Now()}
		h.mu.Lock()
		status := 200
		if len(h.statuses) > 0 {
			status = h.statuses[0]
			if len(h.statuses) > 1 {
				h.statuses = h.statuses[1:]
			}
		}
		h.got = append(h.got, rc)
		h.mu.Unlock()
		w.WriteHeader(status)
		if status < 300 {
			h.arrived <- rc
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) received() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.got...)
}

// counts is an Observer.
type counts struct{ sent, failed, dropped atomic.Int64 }

func (c *counts) AlertSent()    { c.sent.Add(1) }
func (c *counts) AlertFailed()  { c.failed.Add(1) }
func (c *counts) AlertDropped() { c.dropped.Add(1) }

func (c *counts) String() string {
	return fmt.Sprintf("sent %d, failed %d, dropped %d", c.sent.Load(), c.failed.Load(), c.dropped.Load())
}

var _ Observer = (*counts)(nil)

func closeNow(t *testing.T, n *Notifier) {
	t.Helper()
	if err := n.Close(context.Background()); err != nil {
		t.Errorf("close: %v", err)
	}
}

var (
	at0       = time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	openaiOut = Event{Provider: "openai", Source: SourceBreaker, Breaker: health.Open,
		Cause: "5 consecutive failures", At: at0}
	openaiBack = Event{Provider: "openai", Source: SourceBreaker, Breaker: health.Closed, Up: true,
		At: at0.Add(time.Minute)}
	azureOut = Event{Provider: "azure", Source: SourceProbe, Cause: "status 503", At: at0}
)

func TestNotifierPosts(t *testing.T) {
	h := newHook(t)
	c := &counts{}
	n, err := New(Options{URL: h.srv.URL + "/alerts", Headers: map[string]string{"Authorization": "Bearer hook-token"},
		Instance: "pod-1", Observer: c})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(openaiOut)
	closeNow(t, n)
	got := h.received()
	if len(got) != 1 {
		t.Fatalf("%d posts, want 1", len(got))
	}
	want := Payload{Event: "provider_down", Provider: "openai", Source: "breaker", Breaker: "open",
		Cause: "5 consecutive failures", At: at0, Changes: 1, Instance: "pod-1",
		Text: "veil: provider openai is down on pod-1 (breaker open: 5 consecutive failures)"}
	if got[0].payload != want {
		t.Errorf("payload %+v\nwant    %+v", got[0].payload, want)
	}
	if a := got[0].header.Get("Authorization"); a != "Bearer hook-token" {
		t.Errorf("authorization %q", a)
	}
	if ct := got[0].header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	if c.sent.Load() != 1 || c.failed.Load() != 0 {
		t.Errorf("counts: %v", c)
	}
}

// TestNotifierSupplierKey: a supplier's refused own key is its own alert,
// debounced apart from another supplier's at the same provider.
func TestNotifierSupplierKey(t *testing.T) {
	h := newHook(t)
	n, err := New(Options{URL: h.srv.URL, Debounce: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	bella := Event{Provider: "openai", Supplier: "bella-photography", Source: SourceSupplierKey, Breaker: "open",
		Cause: "refused", At: at0}
	rose := bella
	rose.Supplier = "rose-venue"
	n.Notify(bella)
	n.Notify(rose)
	closeNow(t, n)
	got := h.received()
	if len(got) != 2 {
		t.Fatalf("%d posts, want one per supplier", len(got))
	}
	want := Payload{Event: "supplier_key_down", Provider: "openai", Supplier: "bella-photography", Source: "supplier_key",
		Breaker: "open", Cause: "refused", At: at0, Changes: 1,
		Text: "veil: supplier bella-photography's own key is refused by openai; its calls fall back to platform keys"}
	if got[0].payload != want {
		t.Errorf("payload %+v\nwant    %+v", got[0].payload, want)
	}
}

func TestNotifierDebounce(t *testing.T) {
	t.Run("a flap becomes its latest state, sent on close", func(t *testing.T) {
		h := newHook(t)
		n, err := New(Options{URL: h.srv.URL, Debounce: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		n.Notify(openaiOut)
		n.Notify(azureOut)
		n.Notify(openaiBack)
		n.Notify(openaiOut)
		closeNow(t, n)
		byTarget := map[string][]Payload{}
		for _, r := range h.received() {
			byTarget[r.payload.Provider] = append(byTarget[r.payload.Provider], r.payload)
		}
		if o := byTarget["openai"]; len(o) != 2 || o[0].Up || o[0].Changes != 1 || o[1].Up || o[1].Changes != 2 ||
			!strings.HasSuffix(o[1].Text, ", after 2 changes") {
			t.Errorf("openai: %+v, want down at once, then down after 2 changes", o)
		}
		if a := byTarget["azure"]; len(a) != 1 || a[0].Source != "probe" || a[0].Text != "veil: provider azure is down (probe: status 503)" {
			t.Errorf("azure: %+v, want one probe alert", a)
		}
	})
	t.Run("the held state goes once the debounce settles", func(t *testing.T) {
		h := newHook(t)
		// The debounce decides on this clock, which only the test moves; its
		// timer, 20ms of real time, just makes it look again.
		var clock atomic.Int64
		clock.Store(at0.UnixNano())
		now := func() time.Time { return time.Unix(0, clock.Load()) }
		n, err := New(Options{URL: h.srv.URL, Debounce: 20 * time.Millisecond, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		defer closeNow(t, n)
		n.Notify(openaiOut)
		if first := <-h.arrived; first.payload.Up {
			t.Fatalf("first %+v", first.payload)
		}
		n.Notify(openaiBack) // at the same instant: held
		select {
		case early := <-h.arrived:
			t.Fatalf("sent before the debounce settled: %+v", early.payload)
		case <-time.After(100 * time.Millisecond): // the timer looked a few times meanwhile
		}
		settled := time.Now()
		clock.Add(int64(20 * time.Millisecond))
		second := <-h.arrived // without Close: the debounce's own timer sent it
		if !second.payload.Up || second.payload.Changes != 1 {
			t.Errorf("second %+v, want the provider back", second.payload)
		}
		if second.at.Before(settled) {
			t.Error("the held alert went before its debounce settled")
		}
	})
}

func TestNotifierRetries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		posts    int
		sent     int64
	}{
		{"500s then success", []int{500, 503, 200}, 3, 1},
		{"429 is tried again", []int{429, 200}, 2, 1},
		{"gives up after the attempts", []int{500}, 4, 0},
		{"a 400 is final", []int{400}, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHook(t, tc.statuses...)
			c := &counts{}
			n, err := New(Options{URL: h.srv.URL, Attempts: 4, Backoff: time.Millisecond, Observer: c})
			if err != nil {
				t.Fatal(err)
			}
			n.Notify(openaiOut)
			closeNow(t, n)
			if got := len(h.received()); got != tc.posts {
				t.Errorf("%d posts, want %d", got, tc.posts)
			}
			if c.sent.Load() != tc.sent || c.failed.Load() != 1-tc.sent {
				t.Errorf("counts: %v", c)
			}
		})
	}
}

func TestNotifierDropsWhenFull(t *testing.T) {
	release := make(chan struct{})
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		<-release // the sender is stuck on its first POST
	}))
	defer srv.Close()
	c := &counts{}
	n, err := New(Options{URL: srv.URL, QueueSize: 1, Observer: c})
	if err != nil {
		t.Fatal(err)
	}
	const total = 50
	for i := range total { // each target is quiet, so each alert is due at once
		n.Notify(Event{Provider: fmt.Sprintf("p%d", i), Source: SourceProbe})
	}
	close(release)
	closeNow(t, n)
	// While the sender was stuck, at most four got by: one being sent, one
	// in each queue and one between them.
	if d := c.dropped.Load(); d < total-4 {
		t.Errorf("dropped %d of %d with a queue of one", d, total)
	}
	if sum := c.sent.Load() + c.failed.Load() + c.dropped.Load(); sum != total {
		t.Errorf("%v: %d accounted for, want %d", c, sum, total)
	}
	if got := posts.Load(); got != c.sent.Load() {
		t.Errorf("%d posts, %d counted sent", got, c.sent.Load())
	}
}

func TestNotifierClose(t *testing.T) {
	t.Run("flushes what the debounce holds", func(t *testing.T) {
		h := newHook(t)
		n, err := New(Options{URL: h.srv.URL, Debounce: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		n.Notify(openaiOut)
		n.Notify(openaiBack)
		closeNow(t, n)
		if got := h.received(); len(got) != 2 || !got[1].payload.Up {
			t.Errorf("posts %+v, want down, then the held up", got)
		}
		closeNow(t, n) // idempotent
	})
	t.Run("gives up at its deadline", func(t *testing.T) {
		stuck := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-stuck:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(stuck)
		c := &counts{}
		n, err := New(Options{URL: srv.URL, Debounce: time.Hour, Timeout: time.Hour, Observer: c})
		if err != nil {
			t.Fatal(err)
		}
		n.Notify(openaiOut)
		n.Notify(openaiBack)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err = n.Close(ctx)
		if err == nil || !strings.Contains(err.Error(), "2 alerts not delivered") {
			t.Errorf("close: %v, want two alerts not delivered", err)
		}
		if c.failed.Load() != 2 {
			t.Errorf("counts: %v", c)
		}
		n.Notify(openaiOut) // after Close: logged, not queued
		if c.dropped.Load() != 1 {
			t.Errorf("counts after close: %v", c)
		}
	})
}

func TestNotifierLogs(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	n, err := New(Options{Log: zap.New(core)}) // no webhook: log lines only
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(openaiOut)
	n.Notify(openaiBack)
	n.Notify(azureOut)
	closeNow(t, n)
	want := []struct {
		level  zapcore.Level
		msg    string
		fields map[string]any
	}{
		{zapcore.ErrorLevel, "alert: provider is down", map[string]any{"provider": "openai", "source": "breaker",
			"breaker": "open", "cause": "5 consecutive failures", "at": at0}},
		{zapcore.WarnLevel, "alert: provider is back", map[string]any{"provider": "openai", "source": "breaker",
			"breaker": "closed", "at": at0.Add(time.Minute)}},
		{zapcore.ErrorLevel, "alert: provider is down", map[string]any{"provider": "azure", "source": "probe",
			"cause": "status 503", "at": at0}},
	}
	got := logs.All()
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Level != w.level || g.Message != w.msg || fmt.Sprint(g.ContextMap()) != fmt.Sprint(w.fields) {
			t.Errorf("line %d: %s %q %v\nwant    %s %q %v", i, g.Level, g.Message, g.ContextMap(), w.level, w.msg, w.fields)
		}
	}
}

func TestNotifierNeverLogsHeaderValuesOrTheURL(t *testing.T) {
	const token, path = "Bearer tok-3f9a1c", "/hooks/T0001/secret-path"
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + refused.Addr().String() + path
	_ = refused.Close()
	failing := newHook(t, 500)
	for _, url := range []string{failing.srv.URL + path, deadURL} {
		base, _, _ := strings.Cut(url, path)
		t.Run(base, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			n, err := New(Options{URL: url, Headers: map[string]string{"Authorization": token},
				Attempts: 2, Backoff: time.Millisecond, Log: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			n.Notify(openaiOut)
			closeNow(t, n)
			var failed bool
			for _, e := range logs.All() {
				line := e.Message + " " + fmt.Sprint(e.ContextMap())
				failed = failed || e.Message == "alert webhook: delivery failed"
				if strings.Contains(line, "tok-3f9a1c") || strings.Contains(line, "secret-path") {
					t.Errorf("a log line holds the header or the URL: %s", line)
				}
			}
			if !failed {
				t.Errorf("no delivery failure logged: %+v", logs.All())
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"log only", Options{}, ""},
		{"https", Options{URL: "https://alerts.wedsync.internal/veil"}, ""},
		{"not http", Options{URL: "ftp://alerts.wedsync.internal/veil"}, "want http(s)://host/"},
		{"no host", Options{URL: "http:///veil"}, "want http(s)://host/"},
		{"bad header value", Options{URL: "https://a.example/x", Headers: map[string]string{"Authorization": "tok\nen-77"}},
			`header "Authorization": invalid name or value`},
		{"bad header name", Options{URL: "https://a.example/x", Headers: map[string]string{"Bad Name": "v"}},
			`header "Bad Name": invalid name or value`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.o)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New: %v, want %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), "en-77"):
				t.Errorf("the error repeats the header value: %v", err)
			}
			if n != nil {
				closeNow(t, n)
			}
		})
	}
}
