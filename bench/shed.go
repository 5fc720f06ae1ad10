//go:build linux

package main

import (
	"time"

	"github.com/wedsync/veil/bench/load"
)

// ShedSummary splits an overload run's answers into those veil admitted
// and served, those it shed (503 overloaded, 429 in-flight cap) and those
// that went wrong.
type ShedSummary struct {
	// Requests counts sent requests.
	Requests int
	// Admitted counts 200 answers, Shed 503 and 429 answers, Bad502 502
	// answers (veil must give none), OtherStatus every other status.
	Admitted, Shed, Bad502, OtherStatus int
	// Transport and Timeout count requests without an answer.
	Transport, Timeout int
	// AdmittedLatency and ShedLatency are from each request's scheduled
	// send time, the generator's own delay included (open loop).
	AdmittedLatency, ShedLatency load.Percentiles
	// ShedService is a shed answer's time from the moment the request was
	// actually sent: veil's own time to refuse it.
	ShedService load.Percentiles
	// ShedWithin10ms is the share of shed answers whose service time was
	// at most 10 ms.
	ShedWithin10ms float64
}

// shedGoal is the time within which a shed answer should arrive.
const shedGoal = 10 * time.Millisecond

// summarizeShed computes a ShedSummary from a run's records.
func summarizeShed(recs []Record) ShedSummary {
	var s ShedSummary
	var admitted, shed, service []time.Duration
	within := 0
	for _, r := range recs {
		switch r.Outcome {
		case Unsent:
			continue
		case Transport:
			s.Transport++
		case Timeout:
			s.Timeout++
		case OK:
			admitted = append(admitted, r.Latency)
		case BadStatus:
			switch r.Status {
			case 503, 429:
				shed = append(shed, r.Latency)
				service = append(service, r.Latency-r.Lag)
				if r.Latency-r.Lag <= shedGoal {
					within++
				}
			case 502:
				s.Bad502++
			default:
				s.OtherStatus++
			}
		}
		s.Requests++
	}
	s.Admitted, s.Shed = len(admitted), len(shed)
	s.AdmittedLatency = load.ComputePercentiles(admitted)
	s.ShedLatency = load.ComputePercentiles(shed)
	s.ShedService = load.ComputePercentiles(service)
	if len(shed) > 0 {
		s.ShedWithin10ms = float64(within) / float64(len(shed))
	}
	return s
}
