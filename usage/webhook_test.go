package usage

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// hookServer is a webhook endpoint recording the request IDs it accepted.
// status decides each answer from the request's number (from 1); 0 or nil
// means 200. Only a 2xx answer records the batch.
type hookServer struct {
	*httptest.Server
	t *testing.T

	n        notifier
	status   func(n int) int
	requests int
	refused  int
	got      map[string]int
	order    []string
	header   http.Header
}

func newHookServer(t *testing.T, status func(n int) int) *hookServer {
	h := &hookServer{t: t, status: status, got: make(map[string]int)}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) setStatus(f func(n int) int) { h.n.locked(func() { h.status = f }) }

func (h *hookServer) serve(w http.ResponseWriter, r *http.Request) {
	var code int
	h.n.locked(func() {
		h.requests++
		h.header = r.Header.Clone()
		if h.status != nil {
			code = h.status(h.requests)
		}
		if code == 0 {
			code = http.StatusOK
		}
		if code >= 300 {
			h.refused++
		}
	})
	if code >= 300 {
		http.Error(w, "refused", code)
		return
	}
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Content-Type") != "application/x-ndjson" {
		h.t.Errorf("request headers %v, want gzip NDJSON", r.Header)
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		h.t.Errorf("body is not gzip: %v", err)
		http.Error(w, "bad gzip", http.StatusBadRequest)
		return
	}
	var batch []string
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			h.t.Errorf("line %q: %v", sc.Text(), err)
			continue
		}
		batch = append(batch, rec.RequestID)
	}
	if err := sc.Err(); err != nil {
		h.t.Errorf("reading body: %v", err)
	}
	h.n.locked(func() {
		for _, id := range batch {
			h.got[id]++
		}
		h.order = append(h.order, batch...)
	})
	w.WriteHeader(code)
}

// received returns every accepted ID, with repeats.
func (h *hookServer) received() []string {
	var out []string
	h.n.read(func() { out = slices.Clone(h.order) })
	return out
}

func (h *hookServer) waitFor(t *testing.T, n int) {
	t.Helper()
	h.n.waitUntil(t, fmt.Sprintf("%d distinct records at the webhook", n), func() bool { return len(h.got) >= n })
}

func down(int) int { return http.StatusServiceUnavailable }

// spillFiles lists the spill directory's files, closed or not.
func spillFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func testWebhook(t *testing.T, o WebhookOptions, tune webhookTuning) *webhookSink {
	t.Helper()
	if o.SpillDir == "" {
		o.SpillDir = filepath.Join(t.TempDir(), "spill")
	}
	if o.ResendInterval == 0 {
		o.ResendInterval = 5 * time.Millisecond
	}
	s, err := newWebhookSink(o, tune)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewWebhookSinkValidates(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		o    WebhookOptions
	}{
		{"no url", WebhookOptions{SpillDir: dir}},
		{"not http", WebhookOptions{URL: "ftp://example.com/x", SpillDir: dir}},
		{"no host", WebhookOptions{URL: "https:///x", SpillDir: dir}},
		{"unparsable", WebhookOptions{URL: "http://exa mple.com/%zz?token=s3cret", SpillDir: dir}},
		{"no spill dir", WebhookOptions{URL: "https://example.com/x"}},
		{"header with newline", WebhookOptions{URL: "https://example.com/x", SpillDir: dir,
			Headers: map[string]string{"Authorization": "Bearer s3cret\r\nX: y"}}},
		{"header without name", WebhookOptions{URL: "https://example.com/x", SpillDir: dir,
			Headers: map[string]string{"": "s3cret"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewWebhookSink(tt.o)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}

	t.Run("one sink per dir", func(t *testing.T) {
		o := WebhookOptions{URL: "https://example.com/x", SpillDir: dir}
		a, err := NewWebhookSink(o)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := NewWebhookSink(o); err == nil {
			b.Close()
			t.Error("a second sink shares the spill dir")
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := NewWebhookSink(o) // released by Close
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
	})
}

func TestWebhookWriteClassifiesAnswers(t *testing.T) {
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
		{502, true, false},
		{503, true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			srv := newHookServer(t, func(int) int { return tt.code })
			s := testWebhook(t, WebhookOptions{
				URL:     srv.URL + "/usage",
				Headers: map[string]string{"Authorization": "Bearer token-1", "X-Source": "veil"},
			}, defaultWebhookTuning)
			defer s.Close()
			rs := recs(3)
			err := s.Write(rs)
			if (err != nil) != tt.wantErr || errors.Is(err, ErrPermanent) != tt.permanent {
				t.Fatalf("Write = %v; want error %v, permanent %v", err, tt.wantErr, tt.permanent)
			}
			var se *StatusError
			if tt.wantErr && (!errors.As(err, &se) || se.StatusCode != tt.code) {
				t.Errorf("Write = %v, want a StatusError %d", err, tt.code)
			}
			srv.n.read(func() {
				if got := srv.header.Get("Authorization"); got != "Bearer token-1" {
					t.Errorf("Authorization %q", got)
				}
				if got := srv.header.Get("X-Source"); got != "veil" {
					t.Errorf("X-Source %q", got)
				}
			})
			if !tt.wantErr {
				if got := srv.received(); !slices.Equal(got, ids(rs)) {
					t.Errorf("received %v, want %v", got, ids(rs))
				}
			}
		})
	}
}

// A redirect that would turn the POST into a GET is an error, not a
// delivery.
func TestWebhookDoesNotFollowRedirectsToGET(t *testing.T) {
	srv := newHookServer(t, nil)
	redirect := httptest.NewServer(http.RedirectHandler(srv.URL, http.StatusFound))
	defer redirect.Close()
	s := testWebhook(t, WebhookOptions{URL: redirect.URL, Client: redirect.Client()}, defaultWebhookTuning)
	defer s.Close()
	if err := s.Write(recs(1)); !errors.Is(err, ErrPermanent) {
		t.Errorf("Write = %v, want a permanent error", err)
	}
}

func webhookEmitter(t *testing.T, s Sink, obs Observer, log *zap.Logger) *Emitter {
	return NewEmitter(fast(Options{
		BatchSize:     100,
		FlushInterval: 5 * time.Millisecond,
		MaxAttempts:   2,
		Observer:      obs,
		Log:           log,
	}), s)
}

// The endpoint is down while 2,000 records are emitted: they spill. When it
// comes back, the resender delivers each of them exactly once.
func TestWebhookEndpointDownThenUp(t *testing.T) {
	srv := newHookServer(t, down)
	dir := filepath.Join(t.TempDir(), "spill")
	s := testWebhook(t, WebhookOptions{URL: srv.URL, SpillDir: dir, ResendInterval: 10 * time.Millisecond},
		webhookTuning{rollRecords: 300, rollBytes: 1 << 20, resendRecords: 128, resendBytes: 1 << 20})
	obs := newCountObserver()
	e := webhookEmitter(t, s, obs, nil)
	rs := recs(2000)
	for _, r := range rs {
		e.Emit(r)
	}
	obs.n.waitUntil(t, "2,000 spilled records", func() bool { return obs.counts["webhook/spilled"] == len(rs) })
	if n := len(srv.received()); n != 0 {
		t.Fatalf("%d records accepted while down", n)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("spill dir mode %v, want 0700", st.Mode().Perm())
	}

	srv.setStatus(nil)
	srv.waitFor(t, len(rs))
	closeEmitter(t, e)
	checkOnce(t, srv.received(), rs)
	if got := obs.get("webhook/dropped"); got != 0 {
		t.Errorf("dropped %d", got)
	}
	if files := spillFiles(t, dir); len(files) != 0 {
		t.Errorf("spill dir still holds %v", files)
	}
}

// An endpoint failing every third POST still gets every record once.
func TestWebhookFlakyEndpoint(t *testing.T) {
	srv := newHookServer(t, func(n int) int {
		if n%3 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s := testWebhook(t, WebhookOptions{URL: srv.URL}, webhookTuning{
		rollRecords: 50, rollBytes: 1 << 20, resendRecords: 20, resendBytes: 1 << 20,
	})
	obs := newCountObserver()
	e := NewEmitter(fast(Options{BatchSize: 25, FlushInterval: 5 * time.Millisecond, MaxAttempts: 1, Observer: obs}), s)
	rs := recs(1000)
	for _, r := range rs {
		e.Emit(r)
	}
	srv.waitFor(t, len(rs))
	closeEmitter(t, e)
	checkOnce(t, srv.received(), rs)
	srv.n.read(func() {
		if srv.refused == 0 {
			t.Error("the endpoint never failed: the test proves nothing")
		}
	})
	if obs.get("webhook/spilled") == 0 {
		t.Error("nothing spilled: the resender was not exercised")
	}
}

// Spill files left by a previous run, whether closed by Close or cut by a
// crash, are re-sent by the next sink on the same directory.
func TestWebhookResendsPreviousRunSpill(t *testing.T) {
	t.Run("closed by the previous sink", func(t *testing.T) {
		srv := newHookServer(t, down)
		dir := filepath.Join(t.TempDir(), "spill")
		old := testWebhook(t, WebhookOptions{URL: srv.URL, SpillDir: dir, ResendInterval: time.Hour}, defaultWebhookTuning)
		rs := recs(300)
		for _, r := range rs {
			old.Overflow(r)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		files := spillFiles(t, dir)
		if len(files) != 1 || !strings.HasSuffix(files[0], spillExt) {
			t.Fatalf("spill dir after Close = %v, want one closed file", files)
		}
		st, err := os.Stat(filepath.Join(dir, files[0]))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("spill file mode %v, want 0600", st.Mode().Perm())
		}

		srv.setStatus(nil)
		s := testWebhook(t, WebhookOptions{URL: srv.URL, SpillDir: dir}, defaultWebhookTuning)
		srv.waitFor(t, len(rs))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		checkOnce(t, srv.received(), rs)
		if files := spillFiles(t, dir); len(files) != 0 {
			t.Errorf("spill dir still holds %v", files)
		}
	})

	t.Run("cut by a crash", func(t *testing.T) {
		srv := newHookServer(t, nil)
		dir := filepath.Join(t.TempDir(), "spill")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		rs := recs(3)
		var b strings.Builder
		for _, r := range rs {
			line, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(line)
			b.WriteByte('\n')
		}
		b.WriteString(`{"request_id":"req-cut`)
		name := filepath.Join(dir, "spill-00000000000000000001-000001.ndjson.part")
		if err := os.WriteFile(name, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		// A progress file whose spill file is gone is stray.
		if err := os.WriteFile(filepath.Join(dir, "spill-00000000000000000000-000001.ndjson.offset"), []byte("10"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := testWebhook(t, WebhookOptions{URL: srv.URL, SpillDir: dir}, defaultWebhookTuning)
		srv.waitFor(t, len(rs))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		checkOnce(t, srv.received(), rs)
		if files := spillFiles(t, dir); len(files) != 0 {
			t.Errorf("spill dir still holds %v", files)
		}
	})
}

// A spill file re-sent in part is resumed after the last 2xx, across a
// restart: the batches already accepted are never sent again.
func TestWebhookResumesPartlyResentFile(t *testing.T) {
	srv := newHookServer(t, func(n int) int {
		if n == 1 {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	dir := filepath.Join(t.TempDir(), "spill")
	tune := webhookTuning{rollRecords: 250, rollBytes: 1 << 20, resendRecords: 100, resendBytes: 1 << 20}
	// A long interval keeps the resender off until every record is spilled.
	old := testWebhook(t, WebhookOptions{URL: srv.URL, SpillDir: dir, ResendInterval: time.Hour}, tune)
	rs := recs(250)
	for _, r := range rs {
		old.Overflow(r)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	first := testWebhook(t, WebhookOptions{URL: srv.URL, SpillDir: dir}, tune)
	srv.n.waitUntil(t, "a refused POST after an accepted one", func() bool { return srv.refused > 0 })
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if got := srv.received(); !slices.Equal(got, ids(rs[:100])) {
		t.Fatalf("accepted before the restart: %d records, want the first 100", len(got))
	}

	srv.setStatus(nil)
	second := testWebhook(t, WebhookOptions{URL: srv.URL, SpillDir: dir}, tune)
	srv.waitFor(t, len(rs))
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, srv.received(), rs)
	if files := spillFiles(t, dir); len(files) != 0 {
		t.Errorf("spill dir still holds %v", files)
	}
}

// Neither the URL's query nor header values reach the log, whatever fails.
func TestWebhookNeverLogsSecrets(t *testing.T) {
	const secret = "s3cret-value"
	srv := newHookServer(t, func(int) int { return http.StatusUnauthorized })
	var buf syncBuffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), &buf, zapcore.DebugLevel))

	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connection refused

	for _, u := range []string{srv.URL, deadURL} {
		s := testWebhook(t, WebhookOptions{
			URL:     u + "/hook?token=" + secret,
			Headers: map[string]string{"Authorization": "Bearer " + secret},
			Log:     log,
		}, defaultWebhookTuning)
		obs := newCountObserver()
		e := webhookEmitter(t, s, obs, log)
		rs := recs(10)
		for _, r := range rs {
			e.Emit(r)
		}
		obs.n.waitUntil(t, "spilled records", func() bool { return obs.counts["webhook/spilled"] == len(rs) })
		// Let the resender fail too.
		srv.n.waitUntil(t, "a refused re-send", func() bool { return srv.refused > 1 || u == deadURL })
		closeEmitter(t, e)
	}
	out := buf.String()
	if !strings.Contains(out, "usage sink write failed") {
		t.Fatalf("nothing logged; the test proves nothing:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("a secret reached the log:\n%s", out)
	}
}

func TestWebhookOverflowAfterCloseIsKept(t *testing.T) {
	srv := newHookServer(t, nil)
	dir := filepath.Join(t.TempDir(), "spill")
	s := testWebhook(t, WebhookOptions{URL: srv.URL, SpillDir: dir, ResendInterval: time.Hour}, defaultWebhookTuning)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Overflow(rec(1))
	files := spillFiles(t, dir)
	if len(files) != 1 || !strings.HasSuffix(files[0], spillExt) {
		t.Fatalf("spill dir = %v, want one closed file", files)
	}
	// The next sink delivers it.
	next := testWebhook(t, WebhookOptions{URL: srv.URL, SpillDir: dir}, defaultWebhookTuning)
	srv.waitFor(t, 1)
	if err := next.Close(); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, srv.received(), recs(2)[1:])
}
