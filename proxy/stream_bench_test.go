package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// streamChunks is the number of content chunks of the null stream: a
// short answer of about 40 tokens, as a venue description starts.
const streamChunks = 40

// nullStream is a streamed chat completion as OpenAI sends one when asked
// for usage: a role chunk, content chunks carrying "usage":null, a
// finish chunk, the usage chunk and [DONE]; each event flushed on its own.
func nullStream() []string {
	events := make([]string, 0, streamChunks+4)
	head := `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp_1",`
	events = append(events, head+`"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}`)
	for i := range streamChunks {
		events = append(events, head+fmt.Sprintf(`"choices":[{"index":0,"delta":{"content":" word%d"},"finish_reason":null}],"usage":null}`, i))
	}
	events = append(events, head+`"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}`,
		head+`"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":40,"total_tokens":70}}`, "[DONE]")
	return events
}

// nullStreamUpstream serves nullStream on a loopback port.
func nullStreamUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	events := nullStream()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			for _, e := range events {
				_, _ = w.WriteString("data: " + e + "\n\n")
				_ = w.Flush()
			}
		})
	}}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// BenchmarkStream measures one streamed chat completion through veil
// served on loopback: the client asks for a stream without usage, veil
// asks the upstream for usage, takes it out again, counts the tokens and
// copies 44 events to the client. The client's own work is included.
func BenchmarkStream(b *testing.B) {
	s, token := benchProxyWith(b, nullStreamUpstream(b), true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: s.Handle}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	c := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 16}
	body := strings.Replace(benchBody, `"temperature":0.7,`, `"temperature":0.7,"stream":true,`, 1)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://" + ln.Addr().String() + "/v1/chat/completions")
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Supplier-ID", "rose-venue")
	req.SetBodyString(body)
	resp.StreamBody = true
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			k, err := resp.BodyStream().Read(buf)
			n += k
			if err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
		_ = resp.CloseBodyStream()
		if resp.StatusCode() != 200 || n == 0 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode(), n)
		}
	}
}
