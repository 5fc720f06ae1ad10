package fakeopenai

import (
	"bytes"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// benchServer serves a fake on an in-memory listener and returns a client
// dialing it.
func benchServer(b *testing.B, opts Options) *fasthttp.HostClient {
	b.Helper()
	s := New(opts)
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("close: %v", err)
		}
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	return &fasthttp.HostClient{
		Addr:     "fakeopenai",
		Dial:     func(string) (net.Conn, error) { return ln.Dial() },
		MaxConns: 1024,
	}
}

func BenchmarkChatCompletion(b *testing.B) {
	benchmarks := []struct {
		name string
		opts Options
		body string
	}{
		{name: "plain", body: chatBody},
		{name: "plain/no-record", opts: Options{NoRecord: true}, body: chatBody},
		{name: "stream", opts: Options{NoRecord: true}, body: streamBody},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			c := benchServer(b, bm.opts)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := fasthttp.AcquireRequest()
				resp := fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					req.Reset()
					req.SetRequestURI("http://fakeopenai/v1/chat/completions")
					req.Header.SetMethod(fasthttp.MethodPost)
					req.Header.Set("Authorization", "Bearer "+testKey)
					req.Header.SetContentType("application/json")
					req.SetBodyString(bm.body)
					if err := c.Do(req, resp); err != nil {
						b.Error(err)
						return
					}
					if resp.StatusCode() != fasthttp.StatusOK || !bytes.Contains(resp.Body(), []byte(`"finish_reason":"stop"`)) {
						b.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
						return
					}
				}
			})
		})
	}
}
