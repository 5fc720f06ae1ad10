//go:build linux

package main

import (
	"testing"
	"time"
)

func TestSummarizeShed(t *testing.T) {
	ms := time.Millisecond
	recs := []Record{
		{Outcome: OK, Status: 200, Latency: 2 * ms},
		{Outcome: OK, Status: 200, Latency: 4 * ms},
		{Outcome: BadStatus, Status: 503, Latency: 30 * ms, Lag: 28 * ms}, // 2ms in veil
		{Outcome: BadStatus, Status: 429, Latency: 50 * ms, Lag: 10 * ms}, // 40ms in veil
		{Outcome: BadStatus, Status: 502, Latency: ms},
		{Outcome: BadStatus, Status: 500, Latency: ms},
		{Outcome: Transport},
		{Outcome: Timeout},
		{Outcome: Unsent},
	}
	s := summarizeShed(recs)
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"requests", s.Requests, 8},
		{"admitted", s.Admitted, 2},
		{"shed", s.Shed, 2},
		{"502", s.Bad502, 1},
		{"other status", s.OtherStatus, 1},
		{"transport", s.Transport, 1},
		{"timeout", s.Timeout, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
			}
		})
	}
	if s.ShedService.P50 != 2*ms || s.ShedService.Max != 40*ms || s.ShedLatency.Max != 50*ms {
		t.Errorf("shed service %+v, latency %+v", s.ShedService, s.ShedLatency)
	}
	if s.AdmittedLatency.P50 != 2*ms || s.AdmittedLatency.Max != 4*ms {
		t.Errorf("admitted latency %+v", s.AdmittedLatency)
	}
	if s.ShedWithin10ms != 0.5 {
		t.Errorf("shed within 10ms = %v, want 0.5", s.ShedWithin10ms)
	}
	if z := summarizeShed(nil); z.Requests != 0 || z.ShedWithin10ms != 0 {
		t.Errorf("empty run: %+v", z)
	}
}
