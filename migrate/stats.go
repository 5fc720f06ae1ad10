package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/store"
)

// Latency histogram: whole milliseconds, one bucket per millisecond below
// 16 ms, then eight buckets per power of two up to 2^22 ms (70 minutes);
// longer latencies count in the last bucket. A quantile is the middle of
// its bucket, within 1/16 of the true value.
const (
	linearBuckets = 16
	subBuckets    = 8
	maxPow        = 21 // the last power of two with buckets of its own: [2^21, 2^22)
	numBuckets    = linearBuckets + (maxPow-3)*subBuckets
)

// bucketOf returns the histogram bucket of a latency.
func bucketOf(latency time.Duration) int {
	if latency <= 0 {
		return 0
	}
	ms := uint64(latency / time.Millisecond)
	if ms < linearBuckets {
		return int(ms)
	}
	k := bits.Len64(ms) - 1 // 2^k <= ms < 2^(k+1), k >= 4
	if k > maxPow {
		return numBuckets - 1
	}
	sub := int(ms>>(k-3)) & (subBuckets - 1)
	return linearBuckets + (k-4)*subBuckets + sub
}

// bucketValue returns the latency, in milliseconds, a bucket stands for:
// its value below 16 ms, the middle of its range above.
func bucketValue(b int) float64 {
	if b < linearBuckets {
		return float64(b)
	}
	k := 4 + (b-linearBuckets)/subBuckets
	sub := (b - linearBuckets) % subBuckets
	width := float64(uint64(1) << (k - 3))
	lo := float64(uint64(1)<<k) + float64(sub)*width
	return lo + width/2
}

// Failed reports whether a request's outcome counts against the error-rate
// gate: no response (status 0), a server error (5xx), a refused key (401,
// 403), a timeout (408) or a rate limit (429). Other client errors are the
// caller's, not the path's.
func Failed(status int) bool {
	switch {
	case status <= 0, status >= 500:
		return true
	case status == 401, status == 403, status == 408, status == 429:
		return true
	}
	return false
}

// pathCounters are the live, lock-free counts of one path within one
// stage.
type pathCounters struct {
	requests   atomic.Int64
	errors     atomic.Int64
	costMicros atomic.Int64
	hist       [numBuckets]atomic.Int64
}

// record adds one request.
func (p *pathCounters) record(status int, latency time.Duration, costUSD float64) {
	p.requests.Add(1)
	if Failed(status) {
		p.errors.Add(1)
	}
	if costUSD > 0 && !math.IsInf(costUSD, 0) {
		p.costMicros.Add(int64(math.Round(costUSD * 1e6)))
	}
	p.hist[bucketOf(latency)].Add(1)
}

// snapshot copies the counters.
func (p *pathCounters) snapshot() PathCounts {
	c := PathCounts{Requests: p.requests.Load(), Errors: p.errors.Load(), CostMicros: p.costMicros.Load()}
	last := -1
	var h [numBuckets]int64
	for i := range p.hist {
		if h[i] = p.hist[i].Load(); h[i] != 0 {
			last = i
		}
	}
	if last >= 0 {
		c.Latency = append([]int64(nil), h[:last+1]...)
	}
	return c
}

// seed adds stored counts, when a replica resumes its own document.
func (p *pathCounters) seed(c PathCounts) {
	p.requests.Add(c.Requests)
	p.errors.Add(c.Errors)
	p.costMicros.Add(c.CostMicros)
	for i, n := range c.Latency {
		if i < numBuckets {
			p.hist[i].Add(n)
		}
	}
}

// liveStats are this replica's counts for one ramping migration, by stage
// and path (0 source, 1 target).
type liveStats struct {
	id     string
	stages [][2]pathCounters
	// cur is the stage this replica sees the migration at: Observe counts
	// there.
	cur atomic.Int32
	// flushed is the request total last written; retired marks stats of
	// a migration that stopped ramping, dropped once written. Both are
	// guarded by Manager.mu.
	flushed int64
	retired bool
}

func newLiveStats(id string, stages int) *liveStats {
	return &liveStats{id: id, stages: make([][2]pathCounters, stages)}
}

// total returns the requests counted over every stage and path.
func (s *liveStats) total() int64 {
	var n int64
	for i := range s.stages {
		n += s.stages[i][0].requests.Load() + s.stages[i][1].requests.Load()
	}
	return n
}

// snapshot returns the document of these stats.
func (s *liveStats) snapshot(holder string, now time.Time) statsDoc {
	d := statsDoc{Migration: s.id, Holder: holder, UpdatedAt: now, Stages: make([]StageCounts, len(s.stages))}
	for i := range s.stages {
		d.Stages[i] = StageCounts{Source: s.stages[i][0].snapshot(), Target: s.stages[i][1].snapshot()}
	}
	return d
}

// seed adds a stored document's counts.
func (s *liveStats) seed(d statsDoc) {
	for i, st := range d.Stages {
		if i < len(s.stages) {
			s.stages[i][0].seed(st.Source)
			s.stages[i][1].seed(st.Target)
		}
	}
}

// PathCounts are the counts of one path: requests, failed ones, cost and
// a latency histogram.
type PathCounts struct {
	Requests   int64 `json:"requests"`
	Errors     int64 `json:"errors"`
	CostMicros int64 `json:"cost_micros"`
	// Latency counts requests by histogram bucket (milliseconds, see
	// Quantile); trailing empty buckets are left out.
	Latency []int64 `json:"latency_hist,omitempty"`
}

// add adds o's counts.
func (c *PathCounts) add(o PathCounts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	c.CostMicros += o.CostMicros
	if len(o.Latency) > len(c.Latency) {
		c.Latency = append(c.Latency, make([]int64, len(o.Latency)-len(c.Latency))...)
	}
	for i, n := range o.Latency {
		c.Latency[i] += n
	}
}

// ErrorRate returns the share of failed requests, 0 without requests.
func (c PathCounts) ErrorRate() float64 {
	if c.Requests == 0 {
		return 0
	}
	return float64(c.Errors) / float64(c.Requests)
}

// Quantile returns the q-quantile (0 < q <= 1) of the latencies in
// milliseconds, as the value of the bucket holding it: exact below 16 ms,
// within 1/16 above. It returns 0 without latencies.
func (c PathCounts) Quantile(q float64) float64 {
	var n int64
	for _, v := range c.Latency {
		n += v
	}
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen int64
	for b, v := range c.Latency {
		if seen += v; seen >= rank {
			return bucketValue(b)
		}
	}
	return bucketValue(len(c.Latency) - 1)
}

// StageCounts are the counts of both paths within one stage.
type StageCounts struct {
	Source PathCounts `json:"source"`
	Target PathCounts `json:"target"`
}

// statsDoc is one replica's counts for one migration, the document at
// bucketStats, key "<id>/<holder>".
type statsDoc struct {
	Migration string        `json:"migration"`
	Holder    string        `json:"holder"`
	UpdatedAt time.Time     `json:"updated_at"`
	Stages    []StageCounts `json:"stages"`
}

// statsKey is the document key of a replica's counts for a migration.
func statsKey(id, holder string) string { return id + "/" + holder }

// Observe records one request's outcome for migration id on the path that
// served it: the target when toTarget, else the source. The status is the
// HTTP status the client got (0 when none; see Failed), costUSD what the
// call cost. It counts in the stage this replica sees the migration at,
// and does nothing for a migration that is not ramping. It takes no lock
// and does not allocate; Step writes the counts to the store.
func (m *Manager) Observe(id string, toTarget bool, status int, latency time.Duration, costUSD float64) {
	t := m.table.Load()
	if t == nil {
		return
	}
	s := t.live[id]
	if s == nil {
		return
	}
	path := 0
	if toTarget {
		path = 1
	}
	s.stages[s.cur.Load()][path].record(status, latency, costUSD)
}

// loadOwnStats reads this replica's stored counts for a migration, so that
// they continue after a restart; a missing document is no counts.
func (m *Manager) loadOwnStats(ctx context.Context, id string) (statsDoc, error) {
	data, _, err := m.st.Get(ctx, bucketStats, statsKey(id, m.o.Holder))
	if errors.Is(err, store.ErrNotFound) {
		return statsDoc{}, nil
	}
	if err != nil {
		return statsDoc{}, fmt.Errorf("migrate: reading the counts of %s: %w", id, err)
	}
	var d statsDoc
	if err := json.Unmarshal(data, &d); err != nil {
		// A damaged document is started afresh rather than blocking the
		// migration.
		m.o.Log.Warn("migrate: ignoring unreadable counts", zap.String("migration", id), zap.Error(err))
		return statsDoc{}, nil
	}
	return d, nil
}

// flush writes this replica's counts of every migration that counted
// something since the last write, and drops the stats of migrations that
// stopped ramping once they are written.
func (m *Manager) flush(ctx context.Context, now time.Time) error {
	type pending struct {
		s     *liveStats
		doc   statsDoc
		total int64
	}
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	var todo []pending
	m.mu.Lock()
	for _, s := range m.live {
		if total := s.total(); total != s.flushed {
			todo = append(todo, pending{s: s, doc: s.snapshot(m.o.Holder, now), total: total})
		} else if s.retired {
			delete(m.live, s.id)
		}
	}
	m.mu.Unlock()
	var errs []error
	for _, p := range todo {
		data, err := json.Marshal(p.doc)
		if err == nil {
			_, err = m.st.Put(ctx, bucketStats, statsKey(p.s.id, m.o.Holder), data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("migrate: writing the counts of %s: %w", p.s.id, err))
			continue
		}
		m.mu.Lock()
		p.s.flushed = p.total
		m.mu.Unlock()
	}
	return errors.Join(errs...)
}

// sumStats adds up every replica's stored counts, by migration and stage.
func (m *Manager) sumStats(ctx context.Context, only string) (map[string][]StageCounts, error) {
	docs, err := m.st.List(ctx, bucketStats)
	if err != nil {
		return nil, fmt.Errorf("migrate: listing counts: %w", err)
	}
	sums := make(map[string][]StageCounts)
	for _, doc := range docs {
		if only != "" && !strings.HasPrefix(doc.Key, only+"/") {
			continue
		}
		var d statsDoc
		if err := json.Unmarshal(doc.Value, &d); err != nil || d.Migration == "" {
			m.o.Log.Warn("migrate: ignoring unreadable counts", zap.String("key", doc.Key), zap.Error(err))
			continue
		}
		sum := sums[d.Migration]
		for len(sum) < len(d.Stages) {
			sum = append(sum, StageCounts{})
		}
		for i, st := range d.Stages {
			sum[i].Source.add(st.Source)
			sum[i].Target.add(st.Target)
		}
		sums[d.Migration] = sum
	}
	return sums, nil
}
