//go:build linux

package main

import (
	"time"

	"github.com/wedsync/veil/bench/load"
)

// Summary condenses a Run.
type Summary struct {
	TargetRate float64
	// Requests counts sent requests (every outcome but Unsent).
	Requests int
	OK       int
	// Hits counts the OK responses that veil's cache answered.
	Hits int
	// BadStatus, Transport and Timeout count the failures by kind.
	BadStatus, Transport, Timeout int
	// Unsent counts requests never sent because the run was cancelled.
	Unsent int
	// StatusCodes counts non-200 status codes.
	StatusCodes map[int]int
	// SentRate is the achieved send rate: requests over the span from the
	// first to the last actual send.
	SentRate float64
	// OKRate is successful responses per second from the first scheduled
	// send to the last completion.
	OKRate float64
	// Latency covers every sent request, failures included (as vegeta
	// does), from its scheduled send time.
	Latency load.Percentiles
	// LagP99 and LagMax describe how late the generator itself sent
	// requests relative to their schedule.
	LagP99, LagMax time.Duration
	// Errors holds one example message per failure kind.
	Errors map[string]string
}

// Failures is the number of sent requests that did not get a 200.
func (s Summary) Failures() int { return s.BadStatus + s.Transport + s.Timeout }

// summarize computes a Summary from a Run.
func summarize(r *Run) Summary {
	s := Summary{TargetRate: r.Rate, Errors: r.Errors}
	lat := make([]time.Duration, 0, len(r.Records))
	lag := make([]time.Duration, 0, len(r.Records))
	var firstSend, lastSend, lastDone time.Duration = -1, -1, -1
	interval := float64(time.Second) / r.Rate
	for i, rec := range r.Records {
		switch rec.Outcome {
		case Unsent:
			s.Unsent++
			continue
		case OK:
			s.OK++
			if rec.Hit {
				s.Hits++
			}
		case BadStatus:
			s.BadStatus++
			if s.StatusCodes == nil {
				s.StatusCodes = map[int]int{}
			}
			s.StatusCodes[int(rec.Status)]++
		case Transport:
			s.Transport++
		case Timeout:
			s.Timeout++
		}
		lat = append(lat, rec.Latency)
		lag = append(lag, rec.Lag)
		sched := time.Duration(float64(i) * interval)
		sent, done := sched+rec.Lag, sched+rec.Latency
		if firstSend < 0 || sent < firstSend {
			firstSend = sent
		}
		lastSend = max(lastSend, sent)
		lastDone = max(lastDone, done)
	}
	s.Requests = len(lat)
	if s.Requests > 1 && lastSend > firstSend {
		s.SentRate = float64(s.Requests-1) / (lastSend - firstSend).Seconds()
	}
	if lastDone > 0 {
		s.OKRate = float64(s.OK) / lastDone.Seconds()
	}
	s.Latency = load.ComputePercentiles(lat)
	lp := load.ComputePercentiles(lag)
	s.LagP99, s.LagMax = lp.P99, lp.Max
	return s
}
