package fakeopenai

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestRecording(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		wantCount int
		wantBody  bool
	}{
		{name: "default", wantCount: 1, wantBody: true},
		{name: "discard bodies", opts: Options{DiscardBodies: true}, wantCount: 1},
		{name: "no record", opts: Options{NoRecord: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.opts)
			s.SetKeys(testKey) // only the first Authorization header is valid
			req, err := http.NewRequestWithContext(testContext(t), http.MethodPost, s.URL()+"/chat/completions?trace=1&a=b", strings.NewReader(chatBody))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Add("Authorization", "Bearer "+testKey)
			req.Header.Add("Authorization", "Bearer sk-second")
			req.Header.Add("X-Custom", "one")
			req.Header.Add("X-Custom", "two")
			req.Header.Set("Content-Type", "application/json")
			resp, err := httpClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d; the first Authorization header must be used", resp.StatusCode)
			}

			if st := s.Stats(); st.Requests != 1 {
				t.Errorf("stats.Requests = %d, want 1", st.Requests)
			}
			recs := s.Requests()
			if len(recs) != tt.wantCount {
				t.Fatalf("recorded %d requests, want %d", len(recs), tt.wantCount)
			}
			if tt.wantCount == 0 {
				return
			}
			r := recs[0]
			if r.Method != http.MethodPost || r.Path != "/v1/chat/completions" || r.Query != "trace=1&a=b" || r.At.IsZero() {
				t.Errorf("recorded %s %s ? %s at %v", r.Method, r.Path, r.Query, r.At)
			}
			if got := r.Header.Values("Authorization"); len(got) != 2 || got[0] != "Bearer "+testKey || got[1] != "Bearer sk-second" {
				t.Errorf("Authorization = %q", got)
			}
			if got := r.Header.Values("X-Custom"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
				t.Errorf("X-Custom = %q", got)
			}
			if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Host") == "" {
				t.Errorf("headers = %v", r.Header)
			}
			if tt.wantBody != (string(r.Body) == chatBody) {
				t.Errorf("body = %q, want recorded: %v", r.Body, tt.wantBody)
			}

			recs[0].Header.Set("X-Custom", "changed")
			if s.Requests()[0].Header.Get("X-Custom") != "one" {
				t.Error("Requests does not return a copy")
			}
			s.Reset()
			if n := len(s.Requests()); n != 0 {
				t.Errorf("%d requests after Reset", n)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	s := startServer(t, Options{})
	lax := startServer(t, Options{AllowUnknownModels: true})
	hc := httpClient(t)

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(chatBody))
	_ = zw.Close()

	tests := []struct {
		name       string
		srv        *Server
		method     string
		path       string
		body       string
		header     []string
		wantStatus int
		wantCode   string
		wantParam  string
	}{
		{name: "invalid json", path: "/v1/chat/completions", body: `{"model":`, wantStatus: 400, wantCode: "<null>"},
		{name: "not an object", path: "/v1/chat/completions", body: `[1]`, wantStatus: 400, wantCode: "<null>"},
		{name: "missing model", path: "/v1/chat/completions", body: `{"messages":[{"role":"user","content":"hi"}]}`, wantStatus: 400, wantCode: "<null>"},
		{name: "missing messages", path: "/v1/chat/completions", body: `{"model":"gpt-4o"}`, wantStatus: 400,
			wantCode: "missing_required_parameter", wantParam: "messages"},
		{name: "empty messages", path: "/v1/chat/completions", body: `{"model":"gpt-4o","messages":[]}`, wantStatus: 400,
			wantCode: "empty_array", wantParam: "messages"},
		{name: "messages not an array", path: "/v1/chat/completions", body: `{"model":"gpt-4o","messages":"hi"}`, wantStatus: 400,
			wantCode: "invalid_type", wantParam: "messages"},
		{name: "n below 1", path: "/v1/chat/completions", body: `{"model":"gpt-4o","n":0,"messages":[{"role":"user","content":"hi"}]}`,
			wantStatus: 400, wantCode: "integer_below_min_value", wantParam: "n"},
		{name: "stream_options without stream", path: "/v1/chat/completions",
			body:       `{"model":"gpt-4o","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`,
			wantStatus: 400, wantCode: "<null>", wantParam: "stream_options"},
		{name: "unknown model", path: "/v1/chat/completions", body: `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`,
			wantStatus: 404, wantCode: "model_not_found"},
		{name: "unknown model allowed", srv: lax, path: "/v1/chat/completions",
			body: `{"model":"my-finetune","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`, wantStatus: 200},
		{name: "gzip body", path: "/v1/chat/completions", body: gz.String(), header: []string{"Content-Encoding", "gzip"}, wantStatus: 200},
		{name: "missing key", path: "/v1/chat/completions", body: chatBody, header: []string{"Authorization", ""}, wantStatus: 401, wantCode: "<null>"},
		{name: "basic auth", path: "/v1/chat/completions", body: chatBody, header: []string{"Authorization", "Basic Zm9vOmJhcg=="},
			wantStatus: 401, wantCode: "<null>"},
		{name: "outside v1", method: http.MethodGet, path: "/v2/models", wantStatus: 404, wantCode: "<null>"},
		{name: "v1 prefix only", method: http.MethodGet, path: "/v1models", wantStatus: 404, wantCode: "<null>"},
		{name: "embeddings without input", path: "/v1/embeddings", body: `{"model":"text-embedding-3-small"}`, wantStatus: 400,
			wantCode: "missing_required_parameter", wantParam: "input"},
		{name: "embeddings bad format", path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":"a","encoding_format":"hex"}`,
			wantStatus: 400, wantCode: "invalid_value", wantParam: "encoding_format"},
		{name: "ada with dimensions", path: "/v1/embeddings", body: `{"model":"text-embedding-ada-002","input":"a","dimensions":8}`,
			wantStatus: 400, wantCode: "<null>", wantParam: "dimensions"},
		{name: "embedding tokens", path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":[[1,2,3],[4]]}`, wantStatus: 200},
		{name: "completion prompts", path: "/v1/completions", body: `{"model":"gpt-3.5-turbo-instruct","prompt":["a","b"],"n":2}`, wantStatus: 200},
		{name: "responses max_output_tokens", path: "/v1/responses", body: `{"model":"gpt-4o","input":"hi","max_output_tokens":5}`,
			wantStatus: 400, wantCode: "integer_below_min_value", wantParam: "max_output_tokens"},
		{name: "responses input items", path: "/v1/responses",
			body: `{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}]}`, wantStatus: 200},
		{name: "transcription without file", path: "/v1/audio/transcriptions", body: "--x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--x--\r\n",
			header: []string{"Content-Type", "multipart/form-data; boundary=x"}, wantStatus: 400, wantCode: "missing_required_parameter", wantParam: "file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv
			if srv == nil {
				srv = s
			}
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			resp, body := do(t, hc, method, "http://"+srv.Addr()+tt.path, tt.body, tt.header...)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == 200 {
				if !json.Valid(body) {
					t.Errorf("invalid JSON: %s", body)
				}
				return
			}
			e := decodeEnvelope(t, body)
			if code(e) != tt.wantCode {
				t.Errorf("code = %s, want %s (%s)", code(e), tt.wantCode, body)
			}
			if tt.wantParam != "" && (e.Error.Param == nil || *e.Error.Param != tt.wantParam) {
				t.Errorf("param = %v, want %s (%s)", e.Error.Param, tt.wantParam, body)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	s := startServer(t, Options{})
	hc := httpClient(t)
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantType   string
	}{
		{name: "chat", method: http.MethodPost, path: "/v1/chat/completions", body: chatBody, wantStatus: 200, wantType: "application/json"},
		{name: "stream", method: http.MethodPost, path: "/v1/chat/completions", body: streamBody, wantStatus: 200, wantType: sseContentType},
		{name: "models", method: http.MethodGet, path: "/v1/models", wantStatus: 200, wantType: "application/json"},
		{name: "error", method: http.MethodPost, path: "/v1/chat/completions", body: "{", wantStatus: 400, wantType: "application/json"},
		{name: "not found", method: http.MethodGet, path: "/nope", wantStatus: 404, wantType: "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := do(t, hc, tt.method, "http://"+s.Addr()+tt.path, tt.body)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if !strings.HasPrefix(resp.Header.Get("X-Request-Id"), "req_") || len(resp.Header.Get("X-Request-Id")) != 36 {
				t.Errorf("x-request-id = %q", resp.Header.Get("X-Request-Id"))
			}
			for _, h := range []string{"Openai-Processing-Ms", "Openai-Version", "X-Ratelimit-Limit-Requests",
				"X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests", "X-Ratelimit-Limit-Tokens",
				"X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("missing %s", h)
				}
			}
		})
	}
}

func TestSetKeys(t *testing.T) {
	s := startServer(t, Options{Keys: []string{"sk-old-000000000"}})
	hc := httpClient(t)
	status := func(key string) int {
		resp, _ := do(t, hc, http.MethodGet, s.URL()+"/models", "", "Authorization", "Bearer "+key)
		return resp.StatusCode
	}
	steps := []struct {
		name string
		keys []string // nil: keep
		key  string
		want int
	}{
		{name: "old key", key: "sk-old-000000000", want: 200},
		{name: "new key before rotation", key: "sk-new-111111111", want: 401},
		{name: "new key after rotation", keys: []string{"sk-new-111111111"}, key: "sk-new-111111111", want: 200},
		{name: "old key after rotation", key: "sk-old-000000000", want: 401},
		{name: "any key", keys: []string{}, key: "sk-whatever", want: 200},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.keys != nil {
				s.SetKeys(st.keys...)
			}
			if got := status(st.key); got != st.want {
				t.Errorf("status %d, want %d", got, st.want)
			}
		})
	}
}

func TestEcho(t *testing.T) {
	s := startServer(t, Options{})
	hc := httpClient(t)

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("purpose", "fine-tune")
	fw, _ := mw.CreateFormFile("file", "guests.jsonl")
	_, _ = fw.Write([]byte(`{"name":"Ana"}` + "\n"))
	_ = mw.Close()

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		ctype  string
		check  func(t *testing.T, r echoReply)
	}{
		{name: "get with query", method: http.MethodGet, path: "/v1/files?purpose=batch&limit=2", check: func(t *testing.T, r echoReply) {
			if r.Method != "GET" || r.Path != "/v1/files" || r.Query != "purpose=batch&limit=2" || r.BodyLength != 0 {
				t.Errorf("echo = %+v", r)
			}
		}},
		{name: "wrong method on a known path", method: http.MethodGet, path: "/v1/chat/completions", check: func(t *testing.T, r echoReply) {
			if r.Method != "GET" || r.Path != "/v1/chat/completions" {
				t.Errorf("echo = %+v", r)
			}
		}},
		{name: "multipart", method: http.MethodPost, path: "/v1/files", body: form.String(), ctype: mw.FormDataContentType(),
			check: func(t *testing.T, r echoReply) {
				if r.BodyLength != form.Len() || r.Form["purpose"][0] != "fine-tune" || len(r.Files) != 1 ||
					r.Files[0].Filename != "guests.jsonl" || r.Files[0].Size != 15 {
					t.Errorf("echo = %+v", r)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := []string{}
			if tt.ctype != "" {
				hdr = append(hdr, "Content-Type", tt.ctype)
			}
			resp, body := do(t, hc, tt.method, "http://"+s.Addr()+tt.path, tt.body, hdr...)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var r echoReply
			if err := json.Unmarshal(body, &r); err != nil || r.Object != "echo" {
				t.Fatalf("echo body %s: %v", body, err)
			}
			tt.check(t, r)
		})
	}
}

func TestStreamShapes(t *testing.T) {
	s := startServer(t, Options{ChunkDelay: time.Microsecond, TTFT: time.Microsecond, Latency: time.Microsecond})
	hc := httpClient(t)
	tests := []struct {
		name      string
		path      string
		body      string
		wantUsage bool
		object    string
	}{
		{name: "chat usage", path: "/v1/chat/completions", body: `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"n":2,"messages":[{"role":"user","content":"x"}]}`,
			wantUsage: true, object: "chat.completion.chunk"},
		{name: "chat", path: "/v1/chat/completions", body: streamBody, object: "chat.completion.chunk"},
		{name: "completion usage", path: "/v1/completions", body: `{"model":"gpt-3.5-turbo-instruct","stream":true,"stream_options":{"include_usage":true},"prompt":"x"}`,
			wantUsage: true, object: "text_completion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, body := do(t, hc, http.MethodPost, "http://"+s.Addr()+tt.path, tt.body)
			events := sseData(body)
			if len(events) < 3 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("events = %v", events)
			}
			for i, ev := range events[:len(events)-1] {
				var m map[string]json.RawMessage
				if err := json.Unmarshal([]byte(ev), &m); err != nil {
					t.Fatalf("event %d %q: %v", i, ev, err)
				}
				if string(m["object"]) != `"`+tt.object+`"` {
					t.Errorf("event %d object = %s", i, m["object"])
				}
				usage, has := m["usage"]
				last := i == len(events)-2
				switch {
				case !tt.wantUsage && has:
					t.Errorf("event %d has usage without include_usage: %s", i, ev)
				case tt.wantUsage && !has:
					t.Errorf("event %d lacks usage: %s", i, ev)
				case tt.wantUsage && last && (string(usage) == "null" || string(m["choices"]) != "[]"):
					t.Errorf("usage chunk = %s", ev)
				case tt.wantUsage && !last && string(usage) != "null":
					t.Errorf("event %d usage = %s, want null", i, usage)
				}
			}
		})
	}
}

func TestHeadersBeforeTTFT(t *testing.T) {
	tests := []struct {
		name string
		path string
		body string
	}{
		{name: "chat", path: "/v1/chat/completions", body: streamBody},
		{name: "responses", path: "/v1/responses", body: `{"model":"gpt-4o","input":"hi","stream":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{TTFT: time.Hour})
			// rawStream returns once the headers arrived, long before TTFT.
			_, r := rawStream(t, s, tt.path, tt.body)
			done := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(r)
				done <- b
			}()
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			select {
			case b := <-done:
				if bytes.Contains(b, []byte("delta")) {
					t.Errorf("content sent before TTFT elapsed: %s", b)
				}
			case <-time.After(safety):
				t.Fatal("stream not released by Close")
			}
		})
	}
}

func TestCancellation(t *testing.T) {
	s := startServer(t, Options{ReplyWords: 100000, ChunkDelay: time.Millisecond})
	conn, r := rawStream(t, s, "/v1/chat/completions", streamBody)
	readEvents(t, r, 2) // role chunk and first content chunk
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Cancelled():
	case <-time.After(safety):
		t.Fatal("the server never noticed that the client went away")
	}
	if st := s.Stats(); st.StreamsCancelled != 1 || st.Streams != 1 {
		t.Errorf("stats = %+v, want 1 stream, 1 cancelled", st)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := startServer(t, Options{ChunkWords: 4})
	hc := httpClient(t)
	const workers, calls = 16, 25
	s.Script(Status(500, 10), ErrorEvent(1).Repeat(5))
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				body := chatBody
				if (w+i)%2 == 0 {
					body = streamBody
				}
				req, err := http.NewRequest(http.MethodPost, s.URL()+"/chat/completions", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Authorization", "Bearer "+testKey)
				resp, err := hc.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					errs <- err
				}
				if resp.StatusCode != 200 && resp.StatusCode != 500 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
				if i%5 == 0 {
					s.Requests()
					s.Stats()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.Stats()
	if st.Requests != workers*calls || len(s.Requests()) != workers*calls || st.InFlight != 0 || st.Faults != 15 {
		t.Errorf("stats = %+v, %d recorded", st, len(s.Requests()))
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	defer verifyNoLeaks(t,
		goleak.IgnoreCurrent(),
		// fasthttp refreshes its Date header from one process-wide goroutine.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))

	s := New(Options{ChunkDelay: time.Hour})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	// An idle keep-alive connection, a stream parked in ChunkDelay, a stall
	// and a cut stream parked before its first content chunk.
	resp, body := do(t, hc, http.MethodGet, s.URL()+"/models", "")
	if resp.StatusCode != 200 {
		t.Fatalf("models: %d %s", resp.StatusCode, body)
	}
	s.Script(Stall(0).OnPath("/v1/embeddings"), StallStream(0, 0).OnPath("/v1/completions"))
	_, r := rawStream(t, s, "/v1/chat/completions", streamBody)
	readEvents(t, r, 2)
	_, r2 := rawStream(t, s, "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true}`)
	_ = r2
	stalled := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/embeddings", strings.NewReader(`{"model":"text-embedding-3-small","input":"x"}`))
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		stalled <- err
	}()
	if err := s.WaitRequests(testContext(t), 4); err != nil {
		t.Fatal(err)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	select {
	case <-stalled: //nolint:errcheck // released either way: an error and an answer both count
	case <-time.After(safety):
		t.Fatal("stalled call not released")
	}
	if err := s.Start("127.0.0.1:0"); !errors.Is(err, ErrClosed) {
		t.Errorf("start after close = %v, want ErrClosed", err)
	}
	if st := s.Stats(); st.InFlight != 0 {
		t.Errorf("in flight after close = %d", st.InFlight)
	}
}

// verifyNoLeaks fails the test if goroutines other than the ignored ones are
// still running once they had ample time to exit (fasthttp's worker-pool
// cleaner notices a stopped server only when it next wakes up).
func verifyNoLeaks(t *testing.T, opts ...goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(safety)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Error(err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNoQuotaKeys: a key whose account is out of quota is answered 429
// insufficient_quota, a wrong key 401 invalid_api_key, each in OpenAI's
// error envelope, and an accepted key is served.
func TestNoQuotaKeys(t *testing.T) {
	s := startServer(t, Options{Keys: []string{"sk-good-000000000"}, NoQuotaKeys: []string{"sk-broke-000000000"}})
	hc := httpClient(t)
	tests := []struct {
		key        string
		wantStatus int
		wantCode   string
	}{
		{"sk-good-000000000", 200, ""},
		{"sk-broke-000000000", 429, "insufficient_quota"},
		{"sk-wrong-000000000", 401, "invalid_api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			resp, body := do(t, hc, http.MethodGet, s.URL()+"/models", "", "Authorization", "Bearer "+tt.key)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode == "" {
				return
			}
			var env struct {
				Error struct{ Code, Type, Message string } `json:"error"`
			}
			if err := json.Unmarshal(body, &env); err != nil || env.Error.Code != tt.wantCode || env.Error.Message == "" {
				t.Errorf("envelope %s (%v), want code %s", body, err, tt.wantCode)
			}
		})
	}
}
