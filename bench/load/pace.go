//go:build linux

package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Pace sends the slot numbers 0..n-1 on slots, slot i at start+i*interval
// (in nanoseconds), and closes slots. It waits with the nanosleep system
// call rather than a Go timer: timers wake up to a millisecond late when
// the process is otherwise idle (the netpoller waits in whole
// milliseconds), which at these rates would be most of the measured
// latency; nanosleep is typically within 100µs. Cancelling ctx stops it
// early.
func Pace(ctx context.Context, start time.Time, interval float64, n int64, slots chan<- int64) {
	defer close(slots)
	done := ctx.Done()
	for i := range n {
		sched := start.Add(time.Duration(float64(i) * interval))
		for {
			wait := time.Until(sched)
			if wait <= 0 {
				break
			}
			if ctx.Err() != nil {
				return
			}
			nanosleep(min(wait, 10*time.Millisecond))
		}
		select {
		case slots <- i:
		case <-done:
			return
		}
	}
}

// nanosleep blocks the calling thread for d, resuming after signals.
func nanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		// On EINTR, ts holds the time left.
		if err := syscall.Nanosleep(&ts, &ts); !errors.Is(err, syscall.EINTR) {
			return
		}
	}
}

// IsTimeout reports whether a client error means that no complete
// response came in time (rather than a refused or broken connection).
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) ||
		errors.Is(err, fasthttp.ErrDialTimeout) ||
		errors.Is(err, fasthttp.ErrNoFreeConns) || // waited MaxConnWaitTimeout
		errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}

// CheckLoopback returns an error unless addr is host:port with a loopback
// IP literal as host: the load tools must never load a remote system, and
// a name such as localhost could resolve elsewhere.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("target address %q: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("target address %q has no port", addr)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target address %q is not a loopback address", addr)
	}
	return nil
}

// Percentiles are exact latency quantiles (nearest rank) of a sample.
type Percentiles struct {
	P50, P90, P99, P999, Max time.Duration
}

// Percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted,
// the smallest value v such that at least q of the sample is <= v. It
// returns 0 for an empty sample.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q*float64(len(sorted)) - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// ComputePercentiles sorts d in place and returns its quantiles.
func ComputePercentiles(d []time.Duration) Percentiles {
	slices.Sort(d)
	return Percentiles{
		P50:  Percentile(d, 0.50),
		P90:  Percentile(d, 0.90),
		P99:  Percentile(d, 0.99),
		P999: Percentile(d, 0.999),
		Max:  Percentile(d, 1),
	}
}
