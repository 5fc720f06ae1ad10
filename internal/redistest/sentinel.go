package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel settings: a primary is down after 500ms without an answer, and
// a failover gives up after 2s, so that a failover takes a second or two.
const (
	// SentinelMaster is the name the sentinels monitor the primary under.
	SentinelMaster  = "veiltest"
	sentinelCount   = 3
	sentinelQuorum  = 2
	downAfterMillis = 500
	failoverMillis  = 2000
	// sentinelTimeout bounds waits on the group: the sentinels find one
	// another through hello messages sent every 2s.
	sentinelTimeout = 30 * time.Second
)

// SentinelGroup is a primary, one replica of it and three sentinels
// monitoring it under SentinelMaster (quorum two), run for one test.
type SentinelGroup struct {
	// Master is the name the sentinels monitor the primary under.
	Master string
	// Addrs are the sentinels' host:port.
	Addrs []string

	mu      sync.Mutex
	servers map[string]*Server // primary and replica, by address
}

// StartSentinel starts a primary, a replica of it and three sentinels, and
// waits until the replica is in sync and every sentinel knows the replica
// and the other sentinels, so that KillPrimary leads to a failover. All
// stop when the test ends.
func StartSentinel(t testing.TB) *SentinelGroup {
	t.Helper()
	primary := Start(t)
	replica := start(t, "redis-server (replica)", func(int, string) ([]string, error) {
		host, port, _ := net.SplitHostPort(primary.Addr)
		return []string{"--replicaof", host, port}, nil
	})
	g := &SentinelGroup{Master: SentinelMaster, servers: map[string]*Server{primary.Addr: primary, replica.Addr: replica}}
	ctx, cancel := context.WithTimeout(context.Background(), sentinelTimeout)
	defer cancel()
	if err := waitReplicaSynced(ctx, replica.Addr); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	for range sentinelCount {
		s := start(t, "redis-sentinel", func(port int, dir string) ([]string, error) {
			conf := filepath.Join(dir, "sentinel.conf")
			return []string{conf, "--sentinel"}, writeSentinelConf(conf, primary.Addr)
		})
		g.Addrs = append(g.Addrs, s.Addr)
	}
	for _, addr := range g.Addrs {
		if err := waitSentinelReady(ctx, addr); err != nil {
			t.Fatalf("redistest: %v", err)
		}
	}
	return g
}

// writeSentinelConf writes a sentinel's configuration, which it rewrites
// as it learns the group.
func writeSentinelConf(path, primary string) error {
	host, port, _ := net.SplitHostPort(primary)
	conf := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s %[4]d\n"+
		"sentinel down-after-milliseconds %[1]s %[5]d\n"+
		"sentinel failover-timeout %[1]s %[6]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		SentinelMaster, host, port, sentinelQuorum, downAfterMillis, failoverMillis)
	return os.WriteFile(path, []byte(conf), 0o600)
}

// waitReplicaSynced polls INFO replication on addr until its link to the
// primary is up.
func waitReplicaSynced(ctx context.Context, addr string) error {
	return withClient(addr, func(rc *redis.Client) error {
		return poll(ctx, "replica "+addr+" in sync", func() (bool, string) {
			info, err := rc.Info(ctx, "replication").Result()
			return err == nil && strings.Contains(info, "master_link_status:up"), info
		})
	})
}

// waitSentinelReady polls SENTINEL MASTER on the sentinel at addr until it
// knows the replica and the other sentinels.
func waitSentinelReady(ctx context.Context, addr string) error {
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer sc.Close()
	return poll(ctx, "sentinel "+addr+" ready", func() (bool, string) {
		m, err := sc.Master(ctx, SentinelMaster).Result()
		if err != nil {
			return false, err.Error()
		}
		return m["num-slaves"] == "1" && m["num-other-sentinels"] == strconv.Itoa(sentinelCount-1), fmt.Sprint(m)
	})
}

// poll calls check every 50ms until it reports true, failing with what
// it last saw when ctx ends.
func poll(ctx context.Context, what string, check func() (bool, string)) error {
	for {
		ok, seen := check()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w; last seen:\n%s", what, ctx.Err(), seen)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PrimaryAddr returns the primary's address as the first sentinel that
// answers knows it.
func (g *SentinelGroup) PrimaryAddr(ctx context.Context) (string, error) {
	var last error
	for _, addr := range g.Addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
		hp, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel knows the primary: %w", last)
}

// KillPrimary kills the current primary at once (SIGKILL), as a crash
// would, and returns its address. The sentinels then promote the replica.
func (g *SentinelGroup) KillPrimary(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sentinelTimeout)
	defer cancel()
	addr, err := g.PrimaryAddr(ctx)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	g.mu.Lock()
	srv := g.servers[addr]
	g.mu.Unlock()
	if srv == nil {
		t.Fatalf("redistest: the sentinels name %s, not a server of the group", addr)
	}
	srv.Kill()
	return addr
}

// WaitFailover waits until the sentinels name a primary other than old and
// that primary accepts writes.
func (g *SentinelGroup) WaitFailover(t testing.TB, old string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sentinelTimeout)
	defer cancel()
	var now string
	err := poll(ctx, "failover away from "+old, func() (bool, string) {
		addr, err := g.PrimaryAddr(ctx)
		if err != nil || addr == old {
			return false, fmt.Sprint(addr, err)
		}
		now = addr
		err = withClient(addr, func(rc *redis.Client) error { return rc.Set(ctx, "redistest:probe", 1, 0).Err() })
		return err == nil, fmt.Sprint(addr, err)
	})
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return now
}
