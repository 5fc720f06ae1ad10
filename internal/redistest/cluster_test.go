package redistest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/redistest"
)

func TestStartCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	if len(c.Addrs) != 3 || len(c.Nodes) != 3 {
		t.Fatalf("cluster of %d addresses, %d nodes; want 3 masters", len(c.Addrs), len(c.Nodes))
	}
	for _, addr := range c.Addrs {
		info := strings.Join(doLines(t, addr, "CLUSTER INFO", 2), " ")
		if !strings.Contains(info, "cluster_state:ok") {
			t.Errorf("CLUSTER INFO on %s = %q, want cluster_state:ok", addr, info)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := c.Client(t)
	// Keys in every third of the slots: each master serves its own.
	for _, key := range []string{"venue", "florist", "caterer", "band", "cake", "dress"} {
		if err := rc.Set(ctx, key, "booked", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
	}
	if n, err := rc.DBSize(ctx).Result(); err != nil || n != 6 {
		t.Errorf("DBSIZE over the masters = %d, %v; want 6", n, err)
	}
}

func TestStartSentinel(t *testing.T) {
	g := redistest.StartSentinel(t)
	if g.Master != redistest.SentinelMaster || len(g.Addrs) != 3 {
		t.Fatalf("group %q with %d sentinels", g.Master, len(g.Addrs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	primary, err := g.PrimaryAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := do(t, primary, "SET wedding:date june"); got != "+OK" {
		t.Fatalf("SET on the primary = %q", got)
	}
	old := g.KillPrimary(t)
	if old != primary {
		t.Errorf("KillPrimary killed %s, want the primary %s", old, primary)
	}
	now := g.WaitFailover(t, old)
	if now == old {
		t.Fatalf("primary still %s after the failover", now)
	}
	if got := do(t, now, "GET wedding:date"); got != "$4" {
		t.Errorf("GET on the promoted replica = %q, want the value replicated before the failover", got)
	}
}
