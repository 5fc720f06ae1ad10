// Package redisconn builds the go-redis clients of veil's Redis store and
// Redis usage sink the same way: one server, a Redis Cluster or a primary
// found through Sentinel, every wait bounded by one timeout, the caller's
// context deadlines honoured, and no retries by the client itself.
package redisconn

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wedsync/veil/keys"
)

// Options describe the servers and the bounds of a client. Exactly one of
// Addr, Addrs and Sentinel names the servers.
type Options struct {
	// Addr is a single server's host:port.
	Addr string
	// Addrs are some nodes (host:port) of a Redis Cluster; the client
	// learns the others from them.
	Addrs []string
	// Sentinel finds the primary of a replicated group through Redis
	// Sentinel.
	Sentinel Sentinel
	// Password is the servers' password (AUTH); optional.
	Password keys.Secret
	// DB is the database number; a Cluster has only database 0.
	DB int
	// Timeout bounds dialing, each write and each read, and the wait for a
	// pooled connection; it must not be negative.
	Timeout time.Duration
	// PoolSize is the most connections kept open (per node of a Cluster);
	// go-redis's default when zero.
	PoolSize int
}

// Sentinel names a primary monitored by Redis Sentinel.
type Sentinel struct {
	// Master is the name the sentinels monitor the primary under.
	Master string
	// Addrs are the sentinels' host:port.
	Addrs []string
	// Password is the sentinels' own password (their requirepass), which
	// may differ from the servers'; optional.
	Password keys.Secret
}

// set reports whether any field of s is set.
func (s Sentinel) set() bool {
	return s.Master != "" || len(s.Addrs) > 0 || !s.Password.IsZero()
}

// Kinds of deployment, as Kind returns them.
const (
	KindServer   = "server"
	KindCluster  = "cluster"
	KindSentinel = "sentinel"
)

// Kind returns KindServer, KindCluster or KindSentinel: which of Addr,
// Addrs and Sentinel o uses. It is meaningful once Check has accepted o.
func (o Options) Kind() string {
	switch {
	case len(o.Addrs) > 0:
		return KindCluster
	case o.Sentinel.set():
		return KindSentinel
	}
	return KindServer
}

// String describes the servers for logs and checks, without the
// passwords: "127.0.0.1:6379", "cluster a:1,b:2" or "sentinel master mymaster
// via a:1,b:2".
func (o Options) String() string {
	switch o.Kind() {
	case KindCluster:
		return "cluster " + strings.Join(o.Addrs, ",")
	case KindSentinel:
		return "sentinel master " + o.Sentinel.Master + " via " + strings.Join(o.Sentinel.Addrs, ",")
	}
	return o.Addr
}

// Check reports the first invalid option: no servers or more than one way
// of naming them, an address that is not host:port, a sentinel group
// without its master name or its sentinels, a database other than 0 on a
// Cluster, or a negative database, timeout or pool size. Its errors do not
// say which component failed; the caller prefixes them.
func (o Options) Check() error {
	if err := o.checkServers(); err != nil {
		return err
	}
	if o.DB < 0 {
		return fmt.Errorf("negative database %d", o.DB)
	}
	if o.DB != 0 && o.Kind() == KindCluster {
		return fmt.Errorf("database %d: a cluster has only database 0", o.DB)
	}
	if o.Timeout < 0 {
		return fmt.Errorf("negative timeout %v", o.Timeout)
	}
	if o.PoolSize < 0 {
		return fmt.Errorf("negative pool size %d", o.PoolSize)
	}
	return nil
}

// checkServers checks that exactly one of Addr, Addrs and Sentinel is set,
// and set right.
func (o Options) checkServers() error {
	n := 0
	for _, set := range []bool{o.Addr != "", len(o.Addrs) > 0, o.Sentinel.set()} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return errors.New("no address: set an address, cluster addresses or a sentinel master")
	case n > 1:
		return errors.New("an address, cluster addresses and a sentinel master are exclusive: set one")
	case o.Addr != "":
		return checkAddr(o.Addr)
	case len(o.Addrs) > 0:
		return checkAddrs("cluster address", o.Addrs)
	}
	if o.Sentinel.Master == "" {
		return errors.New("sentinel: no master name")
	}
	if len(o.Sentinel.Addrs) == 0 {
		return errors.New("sentinel: no sentinel addresses")
	}
	return checkAddrs("sentinel address", o.Sentinel.Addrs)
}

// checkAddrs checks every address of a list.
func checkAddrs(what string, addrs []string) error {
	for i, a := range addrs {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("%s %d: %w", what, i+1, err)
		}
	}
	return nil
}

// checkAddr checks that addr is host:port with both parts present.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "" || port == "" {
		return fmt.Errorf("address %q: want host:port", addr)
	}
	return nil
}

// NewClient returns a client for o, which Check has accepted: a
// *redis.Client for one server, a *redis.ClusterClient for a Cluster, a
// failover *redis.Client for Sentinel. It connects lazily.
//
// The client never retries a command that may have reached a server:
// veil's writes (quota counters, XADD) are not idempotent, so a retried
// command that had run would count twice; the callers retry what is safe
// to. It dials once per attempt rather than go-redis's default five dials
// 100ms apart, so that a call fails fast when Redis is down.
//
// A Cluster client follows MOVED and ASK redirects (up to go-redis's
// default 3): such a reply means the node did not run the command, because
// the slot lives elsewhere, so sending it to the right node runs it once.
// The same go-redis loop also resends a command after a lost connection or
// a timeout, which is not safe; a hook on every node makes those errors
// final (see ambiguousFinal). A Sentinel client always talks to the
// primary, never to a replica.
func NewClient(o Options) redis.UniversalClient {
	switch o.Kind() {
	case KindCluster:
		c := redis.NewClusterClient(clusterOptions(o))
		c.OnNewNode(func(node *redis.Client) { node.AddHook(ambiguousFinal{}) })
		return c
	case KindSentinel:
		return redis.NewFailoverClient(failoverOptions(o))
	}
	return redis.NewClient(serverOptions(o))
}

// universal holds the bounds every kind of client shares: one timeout for
// dialing, each read and write and the wait for a pooled connection, the
// caller's context deadlines, no retries, one dial per attempt. Replicas
// are never read from.
func universal(o Options) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Password:              o.Password.Reveal(),
		DB:                    o.DB,
		DialTimeout:           o.Timeout,
		ReadTimeout:           o.Timeout,
		WriteTimeout:          o.Timeout,
		PoolTimeout:           o.Timeout,
		PoolSize:              o.PoolSize,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
	}
}

// serverOptions returns the options of a client of one server.
func serverOptions(o Options) *redis.Options {
	u := universal(o)
	u.Addrs = []string{o.Addr}
	return u.Simple()
}

// clusterOptions returns the options of a Cluster client: commands go to
// the masters only, and MOVED and ASK redirects are followed
// (MaxRedirects left at go-redis's default).
func clusterOptions(o Options) *redis.ClusterOptions {
	u := universal(o)
	u.Addrs = o.Addrs
	return u.Cluster()
}

// failoverOptions returns the options of a Sentinel client, which asks the
// sentinels for the primary and follows their failovers.
func failoverOptions(o Options) *redis.FailoverOptions {
	u := universal(o)
	u.Addrs, u.MasterName, u.SentinelPassword = o.Sentinel.Addrs, o.Sentinel.Master, o.Sentinel.Password.Reveal()
	return u.Failover()
}
