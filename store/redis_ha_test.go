package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/store"
	"github.com/wedsync/veil/store/storetest"
)

// TestRedisCluster runs the contract and the cluster's own checks on one
// Redis Cluster of three masters; the last subtest kills a master.
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	raw := c.Client(t)
	t.Run("contract", func(t *testing.T) {
		storetest.Run(t, openRedisWith(store.RedisOptions{Addrs: c.Addrs}))
	})
	t.Run("keys of one group share a slot", func(t *testing.T) {
		testClusterSlots(t, c, raw)
	})
	t.Run("many subjects", func(t *testing.T) {
		testClusterManySubjects(t, c, raw)
	})
	t.Run("master down", func(t *testing.T) {
		testClusterMasterDown(t, c, raw)
	})
}

// clusterKeys returns every key under prefix on every master.
func clusterKeys(t *testing.T, raw *redis.ClusterClient, prefix string) []string {
	t.Helper()
	var mu sync.Mutex
	var keys []string
	err := raw.ForEachMaster(t.Context(), func(ctx context.Context, m *redis.Client) error {
		found, err := m.Keys(ctx, prefix+"*").Result()
		mu.Lock()
		keys = append(keys, found...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// keySlots returns the slot of each key, as the cluster computes it.
func keySlots(t *testing.T, raw *redis.ClusterClient, keys []string) map[string]int64 {
	t.Helper()
	slots := make(map[string]int64, len(keys))
	for _, k := range keys {
		slot, err := raw.ClusterKeySlot(t.Context(), k).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %s: %v", k, err)
		}
		slots[k] = slot
	}
	return slots
}

func testClusterSlots(t *testing.T, c *redistest.Cluster, raw *redis.ClusterClient) {
	ctx := t.Context()
	s := newRedis(t, store.RedisOptions{Addrs: c.Addrs, Prefix: "slots:"})
	limits := []store.Limit{
		{Name: "rpm", Window: time.Minute, Max: 100, Amount: 1},
		{Name: "tpm", Window: time.Minute, Max: 100_000, Amount: 700},
		{Name: "month_cost_micros", Window: store.WindowMonth, Max: 1_000_000, Amount: 2500},
	}
	for _, tc := range []struct{ name, subject string }{
		{"plain subject", "supplier:bella"},
		{"braces in the subject", "}supplier{:{x}"},
		{"escape lookalike", "supplier:%7D"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, d, err := s.Reserve(ctx, tc.subject, limits, t0)
			if err != nil || d != nil {
				t.Fatalf("Reserve = %+v, %v", d, err)
			}
			if err := s.Settle(ctx, r, map[string]int64{"rpm": 1, "tpm": 650, "month_cost_micros": 3000}); err != nil {
				t.Fatalf("Settle: %v", err)
			}
			if _, ok, err := s.AcquireSlot(ctx, tc.subject, 2, time.Minute, t0); err != nil || !ok {
				t.Fatalf("AcquireSlot = %v, %v", ok, err)
			}
			if _, err := s.Put(ctx, tc.subject, "doc", []byte("{}")); err != nil {
				t.Fatalf("Put: %v", err)
			}
		})
	}
	// Every subject's counters and slots, and every bucket's documents and
	// sequence: one slot per subject or bucket.
	keys := clusterKeys(t, raw, "slots:")
	slots := keySlots(t, raw, keys)
	groups := map[string]map[int64]bool{}
	for k, slot := range slots {
		open, end := strings.Index(k, "{"), strings.Index(k, "}")
		if open < 0 || end < open {
			t.Errorf("key %s has no hash tag", k)
			continue
		}
		g := k[open : end+1]
		if groups[g] == nil {
			groups[g] = map[int64]bool{}
		}
		groups[g][slot] = true
	}
	if len(groups) != 3 {
		t.Errorf("hash tags %v, want one per subject", groups)
	}
	for g, s := range groups {
		if len(s) != 1 {
			t.Errorf("keys tagged %s are in %d slots", g, len(s))
		}
	}
	if len(keys) != 3*(3+1+2) {
		t.Errorf("%d keys, want 3 counters (a settled reservation leaves no key), a slot set, a bucket and its sequence per subject: %v",
			len(keys), keys)
	}
}

func testClusterManySubjects(t *testing.T, c *redistest.Cluster, raw *redis.ClusterClient) {
	ctx := t.Context()
	s := newRedis(t, store.RedisOptions{Addrs: c.Addrs, Prefix: "many:"})
	limits := []store.Limit{
		{Name: "rpm", Window: time.Minute, Max: 10, Amount: 1},
		{Name: "tpm", Window: time.Minute, Max: 10_000, Amount: 500},
	}
	const subjects = 120
	for i := range subjects {
		subject := fmt.Sprintf("supplier:%03d", i)
		r, d, err := s.Reserve(ctx, subject, limits, t0)
		if err != nil || d != nil {
			t.Fatalf("Reserve %s = %+v, %v", subject, d, err)
		}
		if err := s.Settle(ctx, r, map[string]int64{"rpm": 1, "tpm": 420}); err != nil {
			t.Fatalf("Settle %s: %v", subject, err)
		}
		used, err := s.Used(ctx, subject, limits, t0)
		if err != nil || used[0] != 1 || used[1] != 420 {
			t.Fatalf("Used %s = %v, %v", subject, used, err)
		}
		if err := s.AddUsage(ctx, subject+".0", store.Usage{Day: t0, Supplier: subject, Provider: "openai", Model: "gpt-4o",
			KeySource: "platform", Requests: 1, PromptTokens: 420}); err != nil {
			t.Fatalf("AddUsage %s: %v", subject, err)
		}
	}
	rows, err := s.QueryUsage(ctx, store.UsageQuery{From: t0.AddDate(0, 0, -1), To: t0})
	if err != nil || len(rows) != subjects {
		t.Fatalf("QueryUsage over every supplier = %d rows, %v; want %d", len(rows), err, subjects)
	}
	// The subjects spread over the masters rather than all on one.
	nodes := map[string]bool{}
	for _, k := range clusterKeys(t, raw, "many:q:") {
		nodes[masterOf(t, c, raw, k)] = true
	}
	if len(nodes) != len(c.Addrs) {
		t.Errorf("counters on %d masters, want all %d", len(nodes), len(c.Addrs))
	}
}

// masterOf returns the address of the master serving key.
func masterOf(t *testing.T, c *redistest.Cluster, raw *redis.ClusterClient, key string) string {
	t.Helper()
	slot, err := raw.ClusterKeySlot(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	shards, err := raw.ClusterShards(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if r.Start <= slot && slot <= r.End {
				for _, n := range sh.Nodes {
					if n.Role == "master" {
						return net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
					}
				}
			}
		}
	}
	t.Fatalf("no master serves slot %d of %s (cluster %v)", slot, key, c.Addrs)
	return ""
}

func testClusterMasterDown(t *testing.T, c *redistest.Cluster, raw *redis.ClusterClient) {
	s := newRedis(t, store.RedisOptions{Addrs: c.Addrs, Prefix: "down:"})
	limits := []store.Limit{{Name: "rpm", Window: time.Minute, Max: 10, Amount: 1}}
	subject := "supplier:bella"
	if _, _, err := s.Reserve(t.Context(), subject, limits, t0); err != nil {
		t.Fatalf("Reserve while up: %v", err)
	}
	keys := clusterKeys(t, raw, "down:q:")
	if len(keys) != 1 {
		t.Fatalf("keys %v, want one counter", keys)
	}
	addr := masterOf(t, c, raw, keys[0])
	for i, a := range c.Addrs {
		if a == addr {
			c.Nodes[i].Kill()
		}
	}
	// A master without a replica: its slots cannot be served.
	_, _, err := s.Reserve(t.Context(), subject, limits, t0)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Reserve with the master of the subject's slot down = %v, want ErrUnavailable", err)
	}
}

// TestRedisSentinel runs the contract on a Sentinel group, then kills its
// primary under load.
func TestRedisSentinel(t *testing.T) {
	g := redistest.StartSentinel(t)
	o := store.RedisOptions{SentinelMaster: g.Master, SentinelAddrs: g.Addrs}
	t.Run("contract", func(t *testing.T) {
		storetest.Run(t, openRedisWith(o))
	})
	t.Run("failover under load", func(t *testing.T) {
		testSentinelFailover(t, g, o)
	})
}

// failoverWorker reserves and settles quota for one subject in a loop and
// checks every answer.
type failoverWorker struct {
	s       *store.Redis
	subject string
	// ok counts the successful reservations, afterFailover those after
	// the sentinels promoted the replica, and failed the calls that failed.
	ok, afterFailover, failed atomic.Int64
}

// failoverLimit is never reached: the test counts, it does not deny.
var failoverLimit = []store.Limit{{Name: "month", Window: store.WindowMonth, Max: 1 << 40, Amount: 1}}

// run reserves 1 and settles 2 (adding 1 more) until stop is closed. A
// reservation's Used may be below what was counted (writes the old primary
// acknowledged but never replicated are lost) but never above: the counter
// before, plus 1 for the reservation, 1 per settle since, and 1 per failed
// call since (a call that failed may still have run, once). More would
// mean a call ran twice. Every failure must be ErrUnavailable.
func (w *failoverWorker) run(t *testing.T, stop <-chan struct{}, failedOver *atomic.Bool) {
	var bound int64 // the most the counter can hold before the next reservation
	for {
		select {
		case <-stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, d, err := w.s.Reserve(ctx, w.subject, failoverLimit, t0)
		cancel()
		if !w.check(t, "reserve", err) {
			bound++
			time.Sleep(5 * time.Millisecond) // no hot loop against a dead server
			continue
		}
		if d != nil {
			t.Errorf("%s: denied: %+v", w.subject, d)
			return
		}
		if used := r.Items[0].Used; used < 1 || used > bound+1 {
			t.Errorf("%s: Used %d after a reservation, want 1..%d: a call counted twice", w.subject, used, bound+1)
			return
		}
		bound = r.Items[0].Used
		w.ok.Add(1)
		if failedOver.Load() {
			w.afterFailover.Add(1)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		err = w.s.Settle(ctx, r, map[string]int64{"month": 2})
		cancel()
		w.check(t, "settle", err)
		bound++
	}
}

// check reports whether a call succeeded; a failure must be
// ErrUnavailable, and is counted.
func (w *failoverWorker) check(t *testing.T, op string, err error) bool {
	if err == nil {
		return true
	}
	w.failed.Add(1)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("%s: %s failed with %v, want ErrUnavailable", w.subject, op, err)
	}
	return false
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testSentinelFailover(t *testing.T, g *redistest.SentinelGroup, o store.RedisOptions) {
	o.Prefix = "failover:"
	s := newRedis(t, o)
	workers := make([]*failoverWorker, 4)
	stop := make(chan struct{})
	var failedOver atomic.Bool
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = &failoverWorker{s: s, subject: fmt.Sprintf("supplier:%d", i)}
		wg.Go(func() { workers[i].run(t, stop, &failedOver) })
	}
	stopOnce := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopOnce()

	waitFor(t, "reservations before the failover", func() bool {
		for _, w := range workers {
			if w.ok.Load() < 20 {
				return false
			}
		}
		return true
	})
	old := g.KillPrimary(t)
	now := g.WaitFailover(t, old)
	failedOver.Store(true)
	t.Logf("primary %s killed, %s promoted", old, now)
	// The same store, not restarted, serves again.
	waitFor(t, "reservations after the failover", func() bool {
		for _, w := range workers {
			if w.afterFailover.Load() < 20 {
				return false
			}
		}
		return true
	})
	stopOnce()
	for _, w := range workers {
		t.Logf("%s: %d reservations, %d after the failover, %d failed calls", w.subject, w.ok.Load(), w.afterFailover.Load(), w.failed.Load())
	}
}
