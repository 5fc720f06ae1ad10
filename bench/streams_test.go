//go:build linux

package main

import (
	"strings"
	"testing"
	"time"
)

func TestSummarizeStreams(t *testing.T) {
	s := summarizeStreams([]streamResult{
		{Status: 200, Done: true, Took: 30 * time.Second},
		{Status: 200, Done: true, Took: 31 * time.Second},
		{Status: 200, Err: "unexpected EOF"},
		{Status: 502, Err: "upstream_unavailable"},
		{Status: 503, Err: "overloaded"},
		{Err: "dial tcp: connection refused"},
	})
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"streams", s.Streams, 6},
		{"completed", s.Completed, 2},
		{"cut", s.Cut, 1},
		{"502", s.Bad502, 1},
		{"other status", s.OtherStatus, 1},
		{"failed", s.Failed, 1},
		{"status 503", s.StatusCodes[503], 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
			}
		})
	}
	if s.Took.P50 != 30*time.Second || s.Took.Max != 31*time.Second {
		t.Errorf("took %+v", s.Took)
	}
	if s.Errors["status 502"] != "upstream_unavailable" || s.Errors["transport"] == "" || s.Errors["cut"] == "" {
		t.Errorf("error examples %v", s.Errors)
	}
}

func TestTailWriter(t *testing.T) {
	var w tailWriter
	for range 100 {
		_, _ = w.Write([]byte("data: {\"choices\":[]}\n\n"))
	}
	_, _ = w.Write([]byte("data: [DONE]\n\n"))
	if len(w.b) != tailSize || !strings.HasSuffix(string(w.b), "data: [DONE]\n\n") {
		t.Errorf("tail %d bytes: %q", len(w.b), w.b)
	}
}
