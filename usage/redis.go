package usage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wedsync/veil/internal/redisconn"
	"github.com/wedsync/veil/keys"
)

// Defaults of RedisOptions.
const (
	DefaultRedisStream  = "veil:usage"
	DefaultRedisMaxLen  = 1_000_000
	DefaultRedisTimeout = 2 * time.Second
)

// RedisOptions configures the Redis Stream sink. Exactly one of Addr,
// Addrs and SentinelMaster names the servers.
type RedisOptions struct {
	// Addr is a single server's host:port.
	Addr string
	// Addrs are some nodes (host:port) of a Redis Cluster; the stream is
	// one key, so it lives on the master of its slot.
	Addrs []string
	// SentinelMaster is the name under which the sentinels at
	// SentinelAddrs (host:port) monitor the primary; the sink follows
	// their failovers. SentinelPassword is the sentinels' own password, if
	// they have one.
	SentinelMaster   string
	SentinelAddrs    []string
	SentinelPassword keys.Secret
	// Password is the servers' password (AUTH); optional.
	Password keys.Secret
	// DB is the database number; a Cluster has only database 0.
	DB int
	// Stream is the stream's key; DefaultRedisStream when empty.
	Stream string
	// MaxLen bounds the stream with approximate trimming
	// (XADD ... MAXLEN ~ MaxLen): Redis keeps at least MaxLen entries and
	// drops older ones in whole macro nodes, so the stream may briefly hold
	// somewhat more. DefaultRedisMaxLen when zero.
	MaxLen int64
	// Timeout bounds each call to Redis: one Write, with its connection
	// set-up. DefaultRedisTimeout when zero.
	Timeout time.Duration
}

// redisSink appends records to a Redis stream.
type redisSink struct {
	client  redis.UniversalClient
	stream  string
	maxLen  int64
	timeout time.Duration
}

// NewRedisSink returns a sink that appends each record to a Redis stream
// with XADD, trimming the stream to about o.MaxLen entries. Each entry has
// the fields request_id, supplier, ts (the record's time in UTC,
// RFC 3339 with nanoseconds) and record (the record as JSON).
//
// It connects lazily: an unreachable server or a wrong password shows up
// as an error from Write, which the emitter retries, not here. It fails
// only on invalid options.
func NewRedisSink(o RedisOptions) (Sink, error) {
	conn := redisconn.Options{
		Addr:     o.Addr,
		Addrs:    o.Addrs,
		Sentinel: redisconn.Sentinel{Master: o.SentinelMaster, Addrs: o.SentinelAddrs, Password: o.SentinelPassword},
		Password: o.Password,
		DB:       o.DB,
		Timeout:  o.Timeout,
	}
	if err := conn.Check(); err != nil {
		return nil, fmt.Errorf("usage: redis sink: %w", err)
	}
	if o.MaxLen < 0 {
		return nil, fmt.Errorf("usage: redis sink: negative max length %d", o.MaxLen)
	}
	if o.Stream == "" {
		o.Stream = DefaultRedisStream
	}
	if o.MaxLen == 0 {
		o.MaxLen = DefaultRedisMaxLen
	}
	if conn.Timeout == 0 {
		conn.Timeout = DefaultRedisTimeout
	}
	// XADD is not idempotent: the client does not retry; the emitter
	// retries failed batches instead.
	return &redisSink{client: redisconn.NewClient(conn), stream: o.Stream, maxLen: o.MaxLen, timeout: conn.Timeout}, nil
}

// Name implements Sink.
func (s *redisSink) Name() string { return "redis" }

// Write implements Sink: it sends one XADD per record in a single pipeline
// and returns the first error, if any. Records before a failed one may
// have been added; a retry adds them again.
func (s *redisSink) Write(batch []*Record) error {
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	pipe := s.client.Pipeline()
	n := 0
	for _, r := range batch {
		if r == nil {
			continue
		}
		doc, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("usage: redis sink: encoding record %s: %w", r.RequestID, err)
		}
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: s.stream,
			MaxLen: s.maxLen,
			Approx: true,
			Values: []any{
				"request_id", r.RequestID,
				"supplier", r.Supplier,
				"ts", r.TS.UTC().Format(time.RFC3339Nano),
				"record", doc,
			},
		})
		n++
	}
	if n == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("usage: redis sink: XADD %d records to %s: %w", n, s.stream, err)
	}
	return nil
}

// Close implements Sink: Write sends synchronously, so there is nothing to
// flush; it closes the client's connections.
func (s *redisSink) Close() error {
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("usage: redis sink: close: %w", err)
	}
	return nil
}
