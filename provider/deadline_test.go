package provider

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
)

// slowServer answers every request on ln after headerDelay with chunked
// headers, then sends one chunk every gap, n chunks in all.
func slowServer(t *testing.T, headerDelay, gap time.Duration, n int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				time.Sleep(headerDelay)
				if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
					return
				}
				for range n {
					time.Sleep(gap)
					if _, err := io.WriteString(c, "7\r\ndata:\n\n\r\n"); err != nil {
						return
					}
				}
				_, _ = io.WriteString(c, "0\r\n\r\n")
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func doStream(t *testing.T, base string, header, whole time.Duration) (*fasthttp.Response, error) {
	t.Helper()
	p, err := New(config.Provider{Name: "p", Type: "openai", BaseURL: base}, []keys.Secret{keys.NewSecret("sk-x")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod("POST")
	if err := p.Prepare(req, &Call{Suffix: []byte("/chat/completions"), Key: p.Platform().Next(time.Now())}); err != nil {
		t.Fatal(err)
	}
	resp := fasthttp.AcquireResponse()
	resp.StreamBody = true
	now := time.Now()
	return resp, p.Do(req, resp, now.Add(header), now.Add(whole))
}

// TestDoHeaderDeadline: the header deadline bounds the wait for headers,
// and a stream that started in time may then run until the call's
// deadline, well past the header deadline.
func TestDoHeaderDeadline(t *testing.T) {
	t.Run("silent upstream", func(t *testing.T) {
		resp, err := doStream(t, slowServer(t, time.Hour, 0, 0), 100*time.Millisecond, time.Minute)
		defer fasthttp.ReleaseResponse(resp)
		if !errors.Is(err, fasthttp.ErrTimeout) {
			t.Fatalf("err %v, want a timeout", err)
		}
	})
	t.Run("stream outlives the header deadline", func(t *testing.T) {
		resp, err := doStream(t, slowServer(t, 0, 100*time.Millisecond, 5), 150*time.Millisecond, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		defer fasthttp.ReleaseResponse(resp)
		body, err := io.ReadAll(resp.BodyStream())
		_ = resp.CloseBodyStream()
		if err != nil || len(body) != 5*7 {
			t.Fatalf("read %d bytes, err %v", len(body), err)
		}
	})
	t.Run("the call deadline still ends a stream", func(t *testing.T) {
		resp, err := doStream(t, slowServer(t, 0, time.Hour, 1), time.Second, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer fasthttp.ReleaseResponse(resp)
		_, err = io.ReadAll(resp.BodyStream())
		_ = resp.CloseBodyStream()
		if err == nil {
			t.Fatal("a stream past the call deadline was read to its end")
		}
	})
}
