package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wedsync/veil/internal/proctest"
)

// clusterTimeout bounds the wait for a new cluster to agree on its slots;
// three local nodes take well under a second.
const clusterTimeout = 30 * time.Second

// Cluster is a Redis Cluster of three masters without replicas, run for
// one test.
type Cluster struct {
	// Addrs are the masters' host:port, in the order of their slots.
	Addrs []string
	// Nodes are the masters; Nodes[i] listens on Addrs[i].
	Nodes []*Server
}

// clusterSlots are the slot ranges of the three masters, as redis-cli
// --cluster create would split them.
var clusterSlots = [3][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}

// StartCluster starts three cluster-enabled redis-servers, gives each a
// third of the 16384 slots, introduces them to one another and waits until
// every node reports cluster_state:ok. Each node has its own cluster bus
// port and stops when the test ends. A node's failure makes its slots
// unavailable, as it would in production without replicas; the node
// timeout is short (1s), so that the others notice within a few seconds.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{}
	var busPorts []int
	for range clusterSlots {
		var bus int
		srv := start(t, "redis-server (cluster)", func(_ int, dir string) ([]string, error) {
			var err error
			bus, err = proctest.FreePort()
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", dir + "/nodes.conf",
				"--cluster-node-timeout", "1000",
				"--cluster-port", strconv.Itoa(bus),
			}, err
		})
		c.Nodes = append(c.Nodes, srv)
		c.Addrs = append(c.Addrs, srv.Addr)
		busPorts = append(busPorts, bus)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := c.form(ctx, busPorts); err != nil {
		t.Fatalf("redistest: forming the cluster: %v", err)
	}
	return c
}

// form assigns the slots, makes the nodes meet and waits until all agree.
func (c *Cluster) form(ctx context.Context, busPorts []int) error {
	for i, addr := range c.Addrs {
		err := withClient(addr, func(rc *redis.Client) error {
			return rc.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", clusterSlots[i][0], clusterSlots[i][1]).Err()
		})
		if err != nil {
			return fmt.Errorf("node %s: CLUSTER ADDSLOTSRANGE: %w", addr, err)
		}
	}
	err := withClient(c.Addrs[0], func(rc *redis.Client) error {
		for i, addr := range c.Addrs[1:] {
			host, port, _ := net.SplitHostPort(addr)
			if err := rc.Do(ctx, "CLUSTER", "MEET", host, port, busPorts[i+1]).Err(); err != nil {
				return fmt.Errorf("CLUSTER MEET %s: %w", addr, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, addr := range c.Addrs {
		if err := waitClusterOK(ctx, addr, len(c.Addrs)); err != nil {
			return err
		}
	}
	return nil
}

// waitClusterOK polls CLUSTER INFO on addr until the node knows n nodes
// and reports cluster_state:ok.
func waitClusterOK(ctx context.Context, addr string, n int) error {
	return withClient(addr, func(rc *redis.Client) error {
		want := "cluster_known_nodes:" + strconv.Itoa(n)
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, want) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("node %s: cluster not ok: %w\n%s", addr, ctx.Err(), info)
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// withClient runs fn with a plain client of addr, closed afterwards.
func withClient(addr string, fn func(*redis.Client) error) error {
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rc.Close()
	return fn(rc)
}

// Client returns a cluster client of c with go-redis's defaults, closed
// when the test ends, for looking at what the code under test wrote.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}
