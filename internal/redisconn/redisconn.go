// Package redisconn builds the go-redis clients of veil's Redis store and
// Redis usage sink the same way: every wait bounded by one timeout, the
// caller's context deadlines honoured, and no retries by the client
// itself.
package redisconn

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wedsync/veil/keys"
)

// Options describe the server and the bounds of a client.
type Options struct {
	// Addr is the server's host:port.
	Addr string
	// Password is the server's password (AUTH); optional.
	Password keys.Secret
	// DB is the database number.
	DB int
	// Timeout bounds dialing, each write and each read, and the wait for a
	// pooled connection; it must be positive.
	Timeout time.Duration
	// PoolSize is the most connections kept open; go-redis's default (10
	// per GOMAXPROCS) when zero.
	PoolSize int
}

// Check reports the first invalid option: no address, an address without
// a port, or a negative database, timeout or pool size. Its errors do not
// say which component failed; the caller prefixes them.
func (o Options) Check() error {
	if o.Addr == "" {
		return errors.New("no address")
	}
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return fmt.Errorf("address %q: %w", o.Addr, err)
	}
	if o.DB < 0 {
		return fmt.Errorf("negative database %d", o.DB)
	}
	if o.Timeout < 0 {
		return fmt.Errorf("negative timeout %v", o.Timeout)
	}
	if o.PoolSize < 0 {
		return fmt.Errorf("negative pool size %d", o.PoolSize)
	}
	return nil
}

// NewClient returns a client for o, which Check has accepted. It connects
// lazily. The client never retries a command: veil's writes (quota
// counters, XADD) are not idempotent, so a retried command that had
// reached the server would count twice; the callers retry what is safe to.
// It dials once per attempt rather than go-redis's default five dials
// 100ms apart, so that a call fails fast when Redis is down.
func NewClient(o Options) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  o.Addr,
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
	})
}
