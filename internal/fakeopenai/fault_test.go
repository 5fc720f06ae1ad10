package fakeopenai

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
	goopenai "github.com/sashabaranov/go-openai"
)

const (
	chatBody   = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}`
	streamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}`
)

// envelope is the OpenAI error envelope.
type envelope struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// decodeEnvelope parses an error body.
func decodeEnvelope(t testing.TB, body []byte) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" {
		t.Fatalf("body %s is not an error envelope: %v", body, err)
	}
	return e
}

func code(e envelope) string {
	if e.Error.Code == nil {
		return "<null>"
	}
	return *e.Error.Code
}

func TestStatusFaults(t *testing.T) {
	tests := []struct {
		name       string
		script     []Fault
		path       string
		wantStatus []int // statuses of consecutive calls to path
		wantType   string
		wantCode   string
	}{
		{name: "zero value is one 500", script: []Fault{{}}, path: "/v1/chat/completions",
			wantStatus: []int{500, 200}, wantType: "server_error", wantCode: "<null>"},
		{name: "times", script: []Fault{Status(503, 2)}, path: "/v1/chat/completions",
			wantStatus: []int{503, 503, 200}, wantType: "server_error", wantCode: "<null>"},
		{name: "other path untouched", script: []Fault{Status(502, 1).OnPath("/v1/embeddings")}, path: "/v1/chat/completions",
			wantStatus: []int{200, 200}},
		{name: "prefix path", script: []Fault{Status(400, 1).OnPath("/v1/chat/*")}, path: "/v1/chat/completions",
			wantStatus: []int{400, 200}, wantType: "invalid_request_error", wantCode: "<null>"},
		{name: "in order", script: []Fault{Status(500, 1), Status(502, 1)}, path: "/v1/chat/completions",
			wantStatus: []int{500, 502, 200}, wantType: "server_error", wantCode: "<null>"},
		{name: "forever", script: []Fault{Status(504, 1).Repeat(-1)}, path: "/v1/chat/completions",
			wantStatus: []int{504, 504, 504, 504}, wantType: "server_error", wantCode: "<null>"},
		{name: "rate limit", script: []Fault{RateLimit(1500 * time.Millisecond)}, path: "/v1/chat/completions",
			wantStatus: []int{429, 200}, wantType: "requests", wantCode: "rate_limit_exceeded"},
		{name: "stream faults skip plain calls", script: []Fault{Cut(0), ErrorEvent(0), StallStream(0, 0)}, path: "/v1/chat/completions",
			wantStatus: []int{200, 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{})
			hc := httpClient(t)
			s.Script(tt.script...)
			for i, want := range tt.wantStatus {
				resp, body := do(t, hc, http.MethodPost, "http://"+s.Addr()+tt.path, chatBody)
				if resp.StatusCode != want {
					t.Fatalf("call %d: status %d, want %d (%s)", i, resp.StatusCode, want, body)
				}
				if want == 200 {
					continue
				}
				e := decodeEnvelope(t, body)
				if e.Error.Type != tt.wantType || code(e) != tt.wantCode {
					t.Errorf("call %d: envelope %s, want type %q code %q", i, body, tt.wantType, tt.wantCode)
				}
				if want == 429 {
					if got := resp.Header.Get("Retry-After"); got != "2" {
						t.Errorf("Retry-After = %q, want 2", got)
					}
					if got := resp.Header.Get("Retry-After-Ms"); got != "1500" {
						t.Errorf("retry-after-ms = %q, want 1500", got)
					}
					if got := resp.Header.Get("X-Ratelimit-Remaining-Requests"); got != "0" {
						t.Errorf("x-ratelimit-remaining-requests = %q, want 0", got)
					}
				}
			}
		})
	}
}

func TestResetFault(t *testing.T) {
	s := startServer(t, Options{})
	s.Script(ConnReset())

	_, err := goOpenAI(t, s, testKey).CreateChatCompletion(testContext(t), chatRequest("hi"))
	if err == nil {
		t.Fatal("reset call succeeded")
	}
	var apiErr *goopenai.APIError
	if errors.As(err, &apiErr) {
		t.Fatalf("reset produced an HTTP answer: %v", err)
	}
	if st := s.Stats(); st.Faults != 1 {
		t.Errorf("stats = %+v, want 1 fault", st)
	}
	if _, err := goOpenAI(t, s, testKey).CreateChatCompletion(testContext(t), chatRequest("hi")); err != nil {
		t.Errorf("call after the reset: %v", err)
	}
}

func TestStallFault(t *testing.T) {
	t.Run("finite", func(t *testing.T) {
		s := startServer(t, Options{})
		s.Script(Stall(10 * time.Millisecond))
		if _, err := goOpenAI(t, s, testKey).CreateChatCompletion(testContext(t), chatRequest("hi")); err != nil {
			t.Errorf("stalled call: %v", err)
		}
	})
	t.Run("released by close", func(t *testing.T) {
		s := startServer(t, Options{})
		s.Script(Stall(0))
		c := goOpenAI(t, s, testKey)
		errc := make(chan error, 1)
		go func() {
			_, err := c.CreateChatCompletion(testContext(t), chatRequest("hi"))
			errc <- err
		}()
		if err := s.WaitRequests(testContext(t), 1); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.InFlight != 1 {
			t.Errorf("in flight = %d, want 1", st.InFlight)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		select {
		case err := <-errc:
			if err == nil {
				t.Error("stalled call succeeded after close")
			}
		case <-time.After(safety):
			t.Fatal("stalled call not released by Close")
		}
	})
}

// TestStallAbandonedByTheClient: like a provider, the fake gives a call
// up when its client hangs up while it waits before the headers, and
// counts it.
func TestStallAbandonedByTheClient(t *testing.T) {
	for _, tt := range []struct {
		name  string
		opts  Options
		fault []Fault
	}{
		{"stall until close", Options{}, []Fault{Stall(0)}},
		{"long stall", Options{}, []Fault{Stall(time.Hour)}},
		{"latency", Options{Latency: time.Hour}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.opts)
			s.Script(tt.fault...)
			conn, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
			_, err = fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
				"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", testKey, len(body), body)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.WaitRequests(testContext(t), 1); err != nil {
				t.Fatal(err)
			}
			_ = conn.Close()
			for end := time.Now().Add(safety); s.Stats().Abandoned != 1; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatal("the call was never given up")
				}
			}
			for end := time.Now().Add(safety); s.Stats().InFlight != 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatal("the abandoned call stays in flight")
				}
			}
		})
	}
}

// rawStream sends a streaming request over a raw connection and returns a
// reader positioned at the start of the body.
func rawStream(t testing.TB, s *Server, path, body string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	req := "POST " + path + " HTTP/1.1\r\nHost: " + s.Addr() + "\r\nAuthorization: Bearer " + testKey +
		"\r\nContent-Type: application/json\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response head: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != sseContentType {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return conn, bufio.NewReader(resp.Body)
}

// readEvents reads n data: events from r.
func readEvents(t testing.TB, r *bufio.Reader, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read event %d: %v", len(out), err)
		}
		if d, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestStallStreamFault(t *testing.T) {
	t.Run("finite", func(t *testing.T) {
		s := startServer(t, Options{})
		s.Script(StallStream(1, 5*time.Millisecond))
		_, body := do(t, httpClient(t), http.MethodPost, s.URL()+"/chat/completions", streamBody)
		if ev := sseData(body); ev[len(ev)-1] != "[DONE]" {
			t.Errorf("stalled stream did not finish: %v", ev)
		}
	})
	t.Run("released by close", func(t *testing.T) {
		s := startServer(t, Options{})
		s.Script(StallStream(2, 0))
		_, r := rawStream(t, s, "/v1/chat/completions", streamBody)
		readEvents(t, r, 3) // role chunk and two content chunks
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		rest, _ := io.ReadAll(r)
		if strings.Contains(string(rest), "[DONE]") {
			t.Errorf("stream stalled until close still sent [DONE]: %s", rest)
		}
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("close: %v", err)
			}
		case <-time.After(safety):
			t.Fatal("close blocked by a stalled stream")
		}
	})
}

func TestCutFault(t *testing.T) {
	t.Run("raw", func(t *testing.T) {
		s := startServer(t, Options{})
		s.Script(Cut(3))
		_, r := rawStream(t, s, "/v1/chat/completions", streamBody)
		body, err := io.ReadAll(r)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("read error = %v, want unexpected EOF", err)
		}
		events := sseData(body)
		if len(events) != 4 {
			t.Errorf("got %d events before the cut, want role chunk + 3: %v", len(events), events)
		}
		for _, ev := range events {
			if ev == "[DONE]" {
				t.Error("cut stream sent [DONE]")
			}
		}
	})
	t.Run("go-openai", func(t *testing.T) {
		s := startServer(t, Options{})
		s.Script(Cut(2))
		req := chatRequest("hi")
		req.Stream = true
		stream, err := goOpenAI(t, s, testKey).CreateChatCompletionStream(testContext(t), req)
		if err != nil {
			t.Fatalf("create stream: %v", err)
		}
		defer stream.Close()
		chunks := 0
		for {
			_, err = stream.Recv()
			if err != nil {
				break
			}
			chunks++
		}
		if errors.Is(err, io.EOF) || chunks != 3 {
			t.Errorf("after %d chunks: %v; want an abrupt end after 3", chunks, err)
		}
	})
	t.Run("openai-go responses", func(t *testing.T) {
		s := startServer(t, Options{})
		s.Script(Cut(1))
		c := openAIGo(t, s)
		stream := c.Responses.NewStreaming(testContext(t), responses.ResponseNewParams{
			Model: "gpt-4o-mini",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
		})
		defer stream.Close()
		deltas := 0
		for stream.Next() {
			if stream.Current().Type == "response.output_text.delta" {
				deltas++
			}
		}
		if stream.Err() == nil || deltas != 1 {
			t.Errorf("after %d deltas: %v; want an error after 1", deltas, stream.Err())
		}
	})
}

func TestErrorEventFault(t *testing.T) {
	t.Run("go-openai", func(t *testing.T) {
		s := startServer(t, Options{})
		s.Script(ErrorEvent(2))
		req := chatRequest("hi")
		req.Stream = true
		stream, err := goOpenAI(t, s, testKey).CreateChatCompletionStream(testContext(t), req)
		if err != nil {
			t.Fatalf("create stream: %v", err)
		}
		defer stream.Close()
		chunks := 0
		for {
			_, err = stream.Recv()
			if err != nil {
				break
			}
			chunks++
		}
		var apiErr *goopenai.APIError
		if !errors.As(err, &apiErr) || apiErr.Type != "server_error" || chunks != 3 {
			t.Errorf("after %d chunks: %v; want a server_error APIError after 3", chunks, err)
		}
	})
	t.Run("openai-go chat", func(t *testing.T) {
		s := startServer(t, Options{})
		s.Script(Fault{Kind: KindErrorEvent, After: 1, Message: "boom", Code: "boom_code"})
		c := openAIGo(t, s)
		stream := c.Chat.Completions.NewStreaming(testContext(t), chatParams("hi"))
		defer stream.Close()
		for stream.Next() {
		}
		var se *ssestream.StreamError
		if !errors.As(stream.Err(), &se) || !strings.Contains(se.Message, "boom") {
			t.Errorf("stream error = %v, want a StreamError mentioning boom", stream.Err())
		}
	})
	t.Run("raw responses", func(t *testing.T) {
		s := startServer(t, Options{})
		s.Script(ErrorEvent(0))
		_, body := do(t, httpClient(t), http.MethodPost, s.URL()+"/responses", `{"model":"gpt-4o","input":"hi","stream":true}`)
		text := string(body)
		if !strings.Contains(text, "event: error\ndata: {\"type\":\"error\"") || strings.Contains(text, "response.output_text.delta") ||
			strings.Contains(text, "response.completed") {
			t.Errorf("responses stream with error event:\n%s", text)
		}
	})
}
