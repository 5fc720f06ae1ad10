package config

import (
	"fmt"
	"net"
	"strings"
)

// RedisSentinel finds a Redis primary through Redis Sentinel, which
// promotes a replica when the primary fails; veil follows.
type RedisSentinel struct {
	// Master is the name the sentinels monitor the primary under
	// (sentinel monitor <master> ...).
	Master string `yaml:"master"`
	// Addrs are the sentinels' host:port; give all of them, so that veil
	// can ask another when one is down.
	Addrs []string `yaml:"addrs"`
	// Password references the sentinels' own password (their
	// requirepass), if any; the primary's is the password beside it.
	Password SecretRef `yaml:"password"`
}

// isSet reports whether any field of s is set.
func (s RedisSentinel) isSet() bool {
	return s.Master != "" || len(s.Addrs) > 0 || !s.Password.IsZero()
}

// redisServers is where a Redis client connects: exactly one of a single
// server, a Cluster's nodes or a Sentinel group.
type redisServers struct {
	addr     string
	addrs    []string
	sentinel RedisSentinel
	db       int
}

// redisServers checks where a Redis client connects, under path (store or
// usage.sinks[i]): exactly one of addr, addrs and sentinel, every address
// host:port, database 0 on a Cluster.
func (v *validator) redisServers(path string, r redisServers) {
	var set []string
	if r.addr != "" {
		set = append(set, "addr")
	}
	if len(r.addrs) > 0 {
		set = append(set, "addrs")
	}
	if r.sentinel.isSet() {
		set = append(set, "sentinel")
	}
	switch len(set) {
	case 0:
		v.fail(path+".addr", "is required for redis (host:port of one server); "+
			"or set addrs (Redis Cluster nodes) or sentinel (master and addrs)")
		return
	case 1:
	default:
		v.fail(path, "addr, addrs and sentinel are exclusive: set one, got %s", strings.Join(set, " and "))
		return
	}
	switch set[0] {
	case "addr":
		v.redisAddr(path+".addr", r.addr)
	case "addrs":
		v.redisAddrs(path+".addrs", r.addrs)
		if r.db != 0 {
			v.fail(path+".db", "must be 0 with addrs: a Redis Cluster has only database 0, got %d", r.db)
		}
	case "sentinel":
		s := r.sentinel
		if s.Master == "" {
			v.fail(path+".sentinel.master", "is required: the name the sentinels monitor the primary under")
		}
		if len(s.Addrs) == 0 {
			v.fail(path+".sentinel.addrs", "is required: the sentinels' host:port")
		}
		v.redisAddrs(path+".sentinel.addrs", s.Addrs)
		v.optionalRef(path+".sentinel.password", s.Password)
	}
}

// redisAddrs checks every address of a list.
func (v *validator) redisAddrs(path string, addrs []string) {
	for i, a := range addrs {
		v.redisAddr(fmt.Sprintf("%s[%d]", path, i), a)
	}
}

// redisAddr checks a Redis address: host:port, both present.
func (v *validator) redisAddr(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		v.fail(path, "must be host:port, got %q", addr)
	}
}
