//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/bench/load"
	"github.com/wedsync/veil/config"
)

func TestSummarize(t *testing.T) {
	r := &Run{
		Rate: 100,
		Records: []Record{
			{Latency: 2 * time.Millisecond, Outcome: OK, Status: 200},
			{Latency: 4 * time.Millisecond, Outcome: OK, Status: 200},
			{Latency: 3 * time.Millisecond, Outcome: BadStatus, Status: 429},
			{Latency: 9 * time.Millisecond, Outcome: Timeout},
			{Latency: time.Millisecond, Outcome: Transport},
			{},
		},
	}
	s := summarize(r)
	if s.Requests != 5 || s.OK != 2 || s.BadStatus != 1 || s.Timeout != 1 || s.Transport != 1 || s.Unsent != 1 || s.Failures() != 3 {
		t.Errorf("counts %+v", s)
	}
	if s.StatusCodes[429] != 1 {
		t.Errorf("status codes %v", s.StatusCodes)
	}
	// Sends at 0, 10, ..., 40ms: 4 intervals of 10ms is 100/s.
	if s.SentRate < 99.999 || s.SentRate > 100.001 {
		t.Errorf("sent rate %v, want 100", s.SentRate)
	}
	// The last completion is 40ms + 1ms; 2 OK over 41ms.
	if want := 2 / 0.041; s.OKRate < want-0.001 || s.OKRate > want+0.001 {
		t.Errorf("ok rate %v, want %v", s.OKRate, want)
	}
	if s.Latency.P50 != 3*time.Millisecond || s.Latency.Max != 9*time.Millisecond {
		t.Errorf("latency %+v", s.Latency)
	}
}

func TestRequestBody(t *testing.T) {
	for _, stream := range []bool{false, true} {
		b := requestBody(stream)
		var v struct {
			Model    string            `json:"model"`
			Messages []json.RawMessage `json:"messages"`
			Stream   bool              `json:"stream"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("stream=%v: %v", stream, err)
		}
		if v.Stream != stream || v.Model == "" || len(v.Messages) != 2 {
			t.Errorf("stream=%v: decoded %+v", stream, v)
		}
		if len(b) < 250 || len(b) > 350 {
			t.Errorf("stream=%v: %d bytes, want about 300", stream, len(b))
		}
	}
}

// TestVeilConfigValid checks the generated configs, the defaults and the
// overload run's, against veil's own parser and validator.
func TestVeilConfigValid(t *testing.T) {
	cases := []struct {
		name                  string
		o                     stackOptions
		maxInFlight, maxConns int
	}{
		{"defaults", stackOptions{LogLevel: "info"}, 0, config.DefaultMaxConns},
		{"overload", stackOptions{LogLevel: "warn", Limits: "max_in_flight: 300\n", Provider: "max_conns: 400\nconn_wait: 1s\n"}, 300, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			yaml := veilConfig("127.0.0.1:18080", "127.0.0.1:19090", "127.0.0.1:18081", tc.o)
			c, err := config.ParseWithEnv([]byte(yaml), "bench.yaml", nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, yaml)
			}
			if c.Listen.Proxy != "127.0.0.1:18080" || c.Listen.Admin != "127.0.0.1:19090" || len(c.Providers) != 1 || len(c.Callers) != 1 {
				t.Errorf("parsed %+v", c)
			}
			if c.Limits.MaxInFlight != tc.maxInFlight || c.Providers[0].MaxConns != tc.maxConns {
				t.Errorf("max_in_flight %d, max_conns %d; want %d, %d\n%s", c.Limits.MaxInFlight, c.Providers[0].MaxConns,
					tc.maxInFlight, tc.maxConns, yaml)
			}
		})
	}
}

func TestReportJSON(t *testing.T) {
	s, err := parseFlags([]string{"-rates", "1000,2000", "-duration", "1s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &report{Settings: s, Phases: []phase{
		{Via: viaDirect, Summary: Summary{TargetRate: 1000, Requests: 10, OK: 10, Latency: load.Percentiles{P50: time.Millisecond}}},
		{Via: viaVeil, Summary: Summary{TargetRate: 1000, Requests: 10, OK: 10, Latency: load.Percentiles{P50: 3 * time.Millisecond}},
			Veil: load.Usage{CPU: time.Millisecond, PeakRSS: 1 << 20}},
	}}
	r.addedLatency()
	if len(r.Added) != 1 || r.Added[0].P50 != 2*time.Millisecond {
		t.Fatalf("added %+v", r.Added)
	}
	var sb strings.Builder
	r.print(&sb)
	for _, want := range []string{"direct", "100.0µs", "1.0 MiB", "2.000ms"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, sb.String())
		}
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got jsonReport
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Phases) != 2 || got.Phases[1].VeilCPUPerReq != 100 || got.Added[0].P50 != 2000 || len(got.Settings.Rates) != 2 {
		t.Errorf("JSON %s", b)
	}
}
