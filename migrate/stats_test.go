package migrate

import (
	"encoding/json"
	"testing"
	"time"
)

// TestHistogramBuckets: every bucket holds its own range, and a bucket's
// value is within 1/16 of any latency in it.
func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for ms := int64(0); ms < 1<<22; ms++ {
		b := bucketOf(time.Duration(ms) * time.Millisecond)
		if b != prev && b != prev+1 {
			t.Fatalf("%dms in bucket %d after bucket %d: buckets skip", ms, b, prev)
		}
		prev = b
		v := bucketValue(b)
		if ms < linearBuckets && v != float64(ms) {
			t.Fatalf("%dms reads as %vms", ms, v)
		}
		if ms >= linearBuckets && (v-float64(ms) > float64(ms)/16 || float64(ms)-v > float64(ms)/16) {
			t.Fatalf("%dms reads as %vms, more than 1/16 off", ms, v)
		}
	}
	if prev != numBuckets-1 {
		t.Errorf("the last bucket is %d, want %d", prev, numBuckets-1)
	}
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0},
		{999 * time.Microsecond, 0},
		{5 * time.Millisecond, 5},
		{3 * time.Hour, numBuckets - 1},
	} {
		if got := bucketOf(tc.d); got != tc.want {
			t.Errorf("bucketOf(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	for _, ms := range []int{100, 200, 400, 432, 800} {
		if v := bucketValue(bucketOf(time.Duration(ms) * time.Millisecond)); v != float64(ms) {
			t.Errorf("%dms reads as %vms", ms, v)
		}
	}
}

// TestFailed: which statuses count against the error-rate gate.
func TestFailed(t *testing.T) {
	for status, want := range map[int]bool{
		0: true, 200: false, 204: false, 400: false, 401: true, 403: true, 404: false,
		408: true, 413: false, 422: false, 429: true, 500: true, 502: true, 503: true, 529: true,
	} {
		if got := Failed(status); got != want {
			t.Errorf("Failed(%d) = %v, want %v", status, got, want)
		}
	}
}

// TestQuantile on a small histogram.
func TestQuantile(t *testing.T) {
	var p pathCounters
	for i := range 10 {
		p.record(200, time.Duration(i+1)*time.Millisecond, 0)
	}
	c := p.snapshot()
	for q, want := range map[float64]float64{0.1: 1, 0.5: 5, 0.95: 10, 1: 10} {
		if got := c.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if got := (PathCounts{}).Quantile(0.95); got != 0 {
		t.Errorf("empty Quantile = %v", got)
	}
}

// TestStatsDocRoundTrip: a snapshot keeps only the buckets in use, and
// seeding from it and adding give the same counts.
func TestStatsDocRoundTrip(t *testing.T) {
	s := newLiveStats("mig-1", 2)
	s.stages[0][1].record(503, 7*time.Millisecond, 0.25)
	s.stages[1][0].record(200, time.Second, 0.5)
	doc := s.snapshot("pod-a", t0)
	if n := len(doc.Stages[0].Target.Latency); n != 8 {
		t.Errorf("latency buckets kept: %d, want 8", n)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var back statsDoc
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	again := newLiveStats("mig-1", 2)
	again.seed(back)
	if again.total() != 2 || again.stages[0][1].errors.Load() != 1 || again.stages[1][0].costMicros.Load() != 500_000 {
		t.Errorf("seeded counts: %+v", again.snapshot("pod-a", t0))
	}
	var sum PathCounts
	sum.add(doc.Stages[0].Target)
	sum.add(doc.Stages[1].Source)
	if sum.Requests != 2 || sum.Errors != 1 || sum.CostMicros != 750_000 || sum.Quantile(1) != bucketValue(bucketOf(time.Second)) {
		t.Errorf("sum %+v", sum)
	}
}
