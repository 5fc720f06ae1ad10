package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wedsync/veil/internal/redisconn"
	"github.com/wedsync/veil/keys"
)

// Defaults of RedisOptions.
const (
	DefaultRedisPrefix  = "veil:"
	DefaultRedisTimeout = 500 * time.Millisecond
)

// RedisOptions configures a Redis store. Exactly one of Addr, Addrs and
// SentinelMaster names the servers.
type RedisOptions struct {
	// Addr is a single server's host:port.
	Addr string
	// Addrs are some nodes (host:port) of a Redis Cluster.
	Addrs []string
	// SentinelMaster is the name under which the sentinels at
	// SentinelAddrs (host:port) monitor the primary; the store follows
	// their failovers. SentinelPassword is the sentinels' own password, if
	// they have one.
	SentinelMaster   string
	SentinelAddrs    []string
	SentinelPassword keys.Secret
	// Password is the servers' password (AUTH); optional.
	Password keys.Secret
	// DB is the database number; a Cluster has only database 0.
	DB int
	// Prefix starts every key; DefaultRedisPrefix when empty. Stores with
	// different prefixes share nothing.
	Prefix string
	// Timeout bounds dialing, each write and each read, and the wait for a
	// pooled connection. DefaultRedisTimeout when zero.
	Timeout time.Duration
	// PoolSize is the most connections kept open; go-redis's default (10
	// per GOMAXPROCS) when zero.
	PoolSize int
}

// Redis is the Store shared by many replicas, kept in Redis: one server, a
// primary found through Sentinel, or a Redis Cluster. Create it with
// NewRedis. Its methods are safe for concurrent use.
//
// Keys, after the prefix; the braces are Redis Cluster hash tags, so that
// the keys each script touches (the counters of one subject, a bucket's
// documents and sequence) hash to one slot. The part in braces is escaped
// (hashTag): '%', '{' and '}' become %25, %7B and %7D.
//
//	q:{<subject>}:<limit>:<window start, unix seconds>  quota counter (string), expires CounterGrace after its window
//	slot:{<subject>}                                    slots (sorted set of IDs scored by expiry, unix ms)
//	lease:{<name>}                                      lease (hash: holder, expires in unix ms)
//	kv:{<bucket>}                                       documents (hash: key -> "<version>:<value>")
//	kvseq:{<bucket>}                                    last version given in the bucket (string)
//	usage:{<supplier>}:<YYYY-MM-DD>                     aggregates (hash: "<provider>|<model>|<key source>|<billed>|<workflow>|<count>" -> int)
//	usage-suppliers:<YYYY-MM-DD>                        suppliers with aggregates that day (set)
//	usage-applied:{<supplier>}:<id>                     a delta applied to the supplier's aggregates (string), expires AppliedTTL after it is set
//	usage-mark:{<supplier>}:<YYYY-MM-DD>:<source>       highest record number of a source applied per aggregate (hash: "<provider>|<model>|<key source>|<billed>|<workflow>|" -> int), expires UsageMarkTTL after it last moved or after its day, the later
//	headroom                                            providers' shared rate-limit headroom (hash: provider -> "<at>|<cooldown>|<counts>", see headroomKey)
//
// Earlier versions used the same keys without braces (q:<subject>:...,
// kv:<bucket>, usage:<day>:<supplier>). Counters, slots and leases of that
// layout are left to expire: after an upgrade quotas count afresh, within
// the current windows. Documents are moved to the new layout the first time
// a store touches their bucket (upgradeDocs); usage aggregates of the old
// layout are not read. Aggregate fields of four parts,
// "<provider>|<model>|<key source>|<count>", were written before billed and
// workflow were kept: they are read with LegacyBilled and no workflow, and
// summed with the new fields of the same aggregate. The workflow is
// escaped (escapeWorkflow: '%', '|' and NUL become %25, %7C and %00), so a
// field always splits into its parts at '|'.
type Redis struct {
	client redis.UniversalClient
	prefix string
	ids    *idGen
	closed atomic.Bool
	// cluster is set on a Redis Cluster, where documents of the untagged
	// layout cannot exist (scripts spanning slots never worked there).
	cluster bool
	// upgraded holds the buckets whose documents of the untagged layout
	// this store has moved, or found none of.
	upgraded sync.Map
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store kept in Redis. It connects lazily: an
// unreachable server shows up as ErrUnavailable from the methods (and
// Ping), not here. It fails only on invalid options.
//
// The client never retries by itself: Reserve, Settle and Refund are not
// idempotent, so a retried call that had reached the server would count
// twice (AddUsage is, per delta id, but its caller chooses when to
// retry); and a refused connection fails at once rather
// than after go-redis's default 5 dials 100ms apart, so that a quota check
// fails fast when Redis is down.
func NewRedis(o RedisOptions) (*Redis, error) {
	conn := o.conn()
	if err := conn.Check(); err != nil {
		return nil, fmt.Errorf("%w: redis: %w", ErrInvalid, err)
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, fmt.Errorf("%w: redis: prefix %q: '{' and '}' would change the keys' hash tags", ErrInvalid, o.Prefix)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultRedisPrefix
	}
	if conn.Timeout == 0 {
		conn.Timeout = DefaultRedisTimeout
	}
	client := redisconn.NewClient(conn)
	return &Redis{client: client, prefix: o.Prefix, ids: newIDGen(), cluster: conn.Kind() == redisconn.KindCluster}, nil
}

// conn returns the connection options of o.
func (o RedisOptions) conn() redisconn.Options {
	return redisconn.Options{
		Addr:     o.Addr,
		Addrs:    o.Addrs,
		Sentinel: redisconn.Sentinel{Master: o.SentinelMaster, Addrs: o.SentinelAddrs, Password: o.SentinelPassword},
		Password: o.Password,
		DB:       o.DB,
		Timeout:  o.Timeout,
		PoolSize: o.PoolSize,
	}
}

// Servers describes the servers of o for logs and checks, without
// passwords: "host:port", "cluster host:port,..." or "sentinel master
// <name> via host:port,...".
func (o RedisOptions) Servers() string {
	return o.conn().String()
}

// redisErr wraps an error of the Redis client for op: ErrClosed once
// closed, the context's error when the caller's context is done,
// ErrUnavailable for network errors, timeouts and a server that cannot
// serve (loading, read-only replica, out of memory...), the error itself
// otherwise.
func (s *Redis) redisErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() || errors.Is(err, redis.ErrClosed) {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return fmt.Errorf("store: redis %s: %w", op, ctx.Err())
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !unavailableReply(rerr.Error()) {
		return fmt.Errorf("store: redis %s: %w", op, err)
	}
	return fmt.Errorf("%w: redis %s: %w", ErrUnavailable, op, err)
}

// unavailableReply reports whether an error reply means that the server
// cannot serve now rather than that the command was wrong.
func unavailableReply(msg string) bool {
	for _, p := range [...]string{"LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "OOM", "MISCONF"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// key returns the prefix followed by parts.
func (s *Redis) key(parts ...string) string {
	n := len(s.prefix)
	for _, p := range parts {
		n += len(p)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(s.prefix)
	for _, p := range parts {
		b.WriteString(p)
	}
	return b.String()
}

// tagged returns the key "<prefix><kind>:{<group>}<rest>": the braces are
// a Redis Cluster hash tag, so that every key of one group (a subject, a
// bucket, a supplier) hashes to one slot, as the scripts that touch
// several of them need. The group is escaped by hashTag.
func (s *Redis) tagged(kind, group string, rest ...string) string {
	parts := make([]string, 0, 4+len(rest))
	parts = append(parts, kind, ":{", hashTag(group), "}")
	return s.key(append(parts, rest...)...)
}

// hashTag escapes a group for a hash tag: '%', '{' and '}' become %25,
// %7B and %7D. Redis hashes what lies between the first '{' and the next
// '}', so a '}' in a subject would end the tag early (an empty tag hashes
// the whole key, spreading one subject's keys over several slots); and the
// escape is one to one, so different groups keep different keys.
func hashTag(group string) string {
	if !strings.ContainsAny(group, "%{}") {
		return group
	}
	var b strings.Builder
	b.Grow(len(group) + 8)
	for i := 0; i < len(group); i++ {
		switch c := group[i]; c {
		case '%':
			b.WriteString("%25")
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// counterKey returns the key of the counter of a window.
func (s *Redis) counterKey(subject, name string, start time.Time) string {
	var buf [20]byte
	return s.tagged("q", subject, ":", name, ":", string(strconv.AppendInt(buf[:0], start.Unix(), 10)))
}

// reservationKey returns the key that holds reservation r until it is
// settled, in its subject's slot.
func (s *Redis) reservationKey(r Reservation) string { return s.tagged("res", r.Subject, ":", r.ID) }

// slotKey returns the key of a subject's slots.
func (s *Redis) slotKey(subject string) string { return s.tagged("slot", subject) }

// leaseKey returns the key of a lease.
func (s *Redis) leaseKey(name string) string { return s.tagged("lease", name) }

// docKeys returns the keys of a bucket: its documents and its sequence,
// in one slot.
func (s *Redis) docKeys(bucket string) []string {
	return []string{s.tagged("kv", bucket), s.tagged("kvseq", bucket)}
}

// usageKey returns the key of a supplier's aggregates of a day.
func (s *Redis) usageKey(supplier, day string) string { return s.tagged("usage", supplier, ":", day) }

// usageSuppliersKey returns the key of the set of a day's suppliers.
func (s *Redis) usageSuppliersKey(day string) string { return s.key("usage-suppliers:", day) }

// reserveScript checks then adds every amount, and keeps the
// reservation's ID. KEYS: one counter per limit, then the reservation's
// key. ARGV: max, amount and counter ttl (ms) per limit, then the
// reservation key's ttl (ms). It returns {0, index of the first limit
// without room (1-based), its usage} or {1, usage of each counter after
// adding}. Amounts go to INCRBY as the strings they came as: Lua would
// print large numbers as floats.
var reserveScript = redis.NewScript(`
local n = #KEYS - 1
for i = 1, n do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + tonumber(ARGV[3*i-1]) > tonumber(ARGV[3*i-2]) then
    return {0, i, used}
  end
end
local out = {1}
for i = 1, n do
  out[i+1] = redis.call('INCRBY', KEYS[i], ARGV[3*i-1])
  redis.call('PEXPIRE', KEYS[i], ARGV[3*i])
end
redis.call('SET', KEYS[#KEYS], '1', 'PX', ARGV[#ARGV])
return out
`)

// settleScript adds a delta to each counter that still exists, never
// taking one below zero, once per reservation. KEYS: counters, then the
// reservation's key. ARGV: deltas, then "1" to settle only a reservation
// the store holds (taking it), "0" to settle regardless. It returns 1 when
// the reservation was not there (never made, or settled already).
var settleScript = redis.NewScript(`
if ARGV[#ARGV] == '1' and redis.call('DEL', KEYS[#KEYS]) == 0 then
  return 1
end
for i = 1, #KEYS - 1 do
  if ARGV[i] ~= '0' and redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[i]) < 0 then
      redis.call('SET', KEYS[i], '0', 'KEEPTTL')
    end
  end
end
return 0
`)

// Reserve implements Quotas with one script run.
func (s *Redis) Reserve(ctx context.Context, subject string, limits []Limit, now time.Time) (Reservation, *Denial, error) {
	return s.ReserveAs(ctx, s.ids.next(), subject, limits, now)
}

// ReserveAs implements Quotas with one script run.
func (s *Redis) ReserveAs(ctx context.Context, id, subject string, limits []Limit, now time.Time) (Reservation, *Denial, error) {
	if err := checkSubject(subject); err != nil {
		return Reservation{}, nil, err
	}
	if err := checkLimits(limits, true); err != nil {
		return Reservation{}, nil, err
	}
	if err := checkID(id); err != nil {
		return Reservation{}, nil, err
	}
	r := Reservation{Subject: subject, ID: id}
	n := 0
	for _, l := range limits {
		if l.Max > 0 {
			n++
		}
	}
	if n == 0 {
		return r, nil, nil
	}
	r.Items = make([]Reserved, 0, n)
	keys := make([]string, 0, n)
	args := make([]any, 0, 3*n)
	checked := make([]*Limit, 0, n)
	for i := range limits {
		l := &limits[i]
		if l.Max <= 0 {
			continue
		}
		start, end := window(l.Window, now)
		r.Items = append(r.Items, Reserved{Name: l.Name, Start: start, End: end, Amount: l.Amount})
		keys = append(keys, s.counterKey(subject, l.Name, start))
		args = append(args, l.Max, l.Amount, (end.Sub(now) + CounterGrace).Milliseconds())
		checked = append(checked, l)
	}
	keys = append(keys, s.reservationKey(r))
	args = append(args, ReservationTTL.Milliseconds())
	res, err := reserveScript.Run(ctx, s.client, keys, args...).Int64Slice()
	if err != nil {
		return Reservation{}, nil, s.redisErr(ctx, "reserve", err)
	}
	switch {
	case len(res) == 3 && res[0] == 0 && res[1] >= 1 && int(res[1]) <= n:
		l, it := checked[res[1]-1], r.Items[res[1]-1]
		return Reservation{}, &Denial{
			Limit: l.Name, Max: l.Max, Used: res[2], Amount: l.Amount, RetryAfter: it.End.Sub(now),
		}, nil
	case len(res) == n+1 && res[0] == 1:
		for i := range r.Items {
			r.Items[i].Used = res[i+1]
		}
		return r, nil, nil
	}
	return Reservation{}, nil, fmt.Errorf("store: redis reserve: unexpected reply %v", res)
}

// Settle implements Quotas with one script run.
func (s *Redis) Settle(ctx context.Context, r Reservation, actual map[string]int64) error {
	return s.settle(ctx, "settle", r, actual, false)
}

// Refund implements Quotas with one script run.
func (s *Redis) Refund(ctx context.Context, r Reservation) error {
	return s.settle(ctx, "refund", r, nil, true)
}

// settle runs settleScript for the non-zero deltas of r.
func (s *Redis) settle(ctx context.Context, op string, r Reservation, actual map[string]int64, refund bool) error {
	if err := checkReservation(r, actual); err != nil {
		return err
	}
	deltas := settleDeltas(r, actual, refund)
	var (
		keys []string
		args []any
	)
	for i, it := range r.Items {
		if deltas[i] != 0 {
			keys = append(keys, s.counterKey(r.Subject, it.Name, it.Start))
			args = append(args, deltas[i])
		}
	}
	if len(keys) == 0 && r.ID == "" {
		return nil
	}
	keys = append(keys, s.reservationKey(r))
	held := "0"
	if r.ID != "" {
		held = "1"
	}
	args = append(args, held)
	return s.redisErr(ctx, op, settleScript.Run(ctx, s.client, keys, args...).Err())
}

// Used implements Quotas with one MGET.
func (s *Redis) Used(ctx context.Context, subject string, limits []Limit, now time.Time) ([]int64, error) {
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	if err := checkLimits(limits, false); err != nil {
		return nil, err
	}
	used := make([]int64, len(limits))
	if len(limits) == 0 {
		return used, nil
	}
	keys := make([]string, len(limits))
	for i, l := range limits {
		start, _ := window(l.Window, now)
		keys[i] = s.counterKey(subject, l.Name, start)
	}
	vals, err := s.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, s.redisErr(ctx, "used", err)
	}
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // nil: no counter yet
		}
		if used[i], err = strconv.ParseInt(str, 10, 64); err != nil {
			return nil, fmt.Errorf("store: redis used: counter %s: %w", keys[i], err)
		}
	}
	return used, nil
}

// acquireSlotScript drops expired slots, then adds one if there is room.
// KEYS[1]: the sorted set. ARGV: now (ms), expiry (ms), max, ID, key ttl
// (ms). The key lives as long as its latest slot.
var acquireSlotScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
`)

// renewSlotScript extends a slot that has not expired. KEYS[1]: the sorted
// set. ARGV: now (ms), expiry (ms), ID, key ttl (ms).
var renewSlotScript = redis.NewScript(`
local exp = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not exp or tonumber(exp) <= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
`)

// AcquireSlot implements Slots with one script run.
func (s *Redis) AcquireSlot(ctx context.Context, subject string, maxSlots int64, ttl time.Duration, now time.Time) (Slot, bool, error) {
	if slot, done, err := answerSlot(subject, maxSlots, ttl); done {
		return slot, err == nil, err
	}
	slot := Slot{Subject: subject, ID: s.ids.next()}
	ms := now.UnixMilli()
	ok, err := acquireSlotScript.Run(ctx, s.client, []string{s.slotKey(subject)},
		ms, ms+ttl.Milliseconds(), maxSlots, slot.ID, keyTTL(ttl)).Bool()
	if err != nil {
		return Slot{}, false, s.redisErr(ctx, "acquire slot", err)
	}
	if !ok {
		return Slot{}, false, nil
	}
	return slot, true, nil
}

// keyTTL returns the Redis expiry (ms) of a key holding something that
// expires after ttl: a second more, so that the key never expires before
// the expiry recorded in it.
func keyTTL(ttl time.Duration) int64 {
	return (ttl + time.Second).Milliseconds()
}

// RenewSlot implements Slots with one script run.
func (s *Redis) RenewSlot(ctx context.Context, slot Slot, ttl time.Duration, now time.Time) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	if slot.ID == "" {
		return true, nil
	}
	ms := now.UnixMilli()
	ok, err := renewSlotScript.Run(ctx, s.client, []string{s.slotKey(slot.Subject)},
		ms, ms+ttl.Milliseconds(), slot.ID, keyTTL(ttl)).Bool()
	if err != nil {
		return false, s.redisErr(ctx, "renew slot", err)
	}
	return ok, nil
}

// ReleaseSlot implements Slots with one ZREM.
func (s *Redis) ReleaseSlot(ctx context.Context, slot Slot) error {
	if slot.ID == "" {
		return nil
	}
	return s.redisErr(ctx, "release slot", s.client.ZRem(ctx, s.slotKey(slot.Subject), slot.ID).Err())
}

// acquireLeaseScript takes or renews a lease whose holder is the caller,
// nobody or a holder whose lease expired. KEYS[1]: the lease. ARGV:
// holder, now (ms), expiry (ms), key ttl (ms).
var acquireLeaseScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'holder', 'expires')
if cur[1] and cur[1] ~= ARGV[1] and tonumber(cur[2]) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'expires', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

// releaseLeaseScript deletes a lease held by the caller. KEYS[1]: the
// lease. ARGV[1]: holder.
var releaseLeaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// AcquireLease implements Leases with one script run. Expiry is checked
// against now, the caller's clock, like everything else; Redis's own
// expiry (a second after) only removes the key.
func (s *Redis) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	if err := checkLease(name, holder); err != nil {
		return false, err
	}
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	ms := now.UnixMilli()
	ok, err := acquireLeaseScript.Run(ctx, s.client, []string{s.leaseKey(name)},
		holder, ms, ms+ttl.Milliseconds(), keyTTL(ttl)).Bool()
	if err != nil {
		return false, s.redisErr(ctx, "acquire lease", err)
	}
	return ok, nil
}

// ReleaseLease implements Leases with one script run.
func (s *Redis) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := checkLease(name, holder); err != nil {
		return err
	}
	err := releaseLeaseScript.Run(ctx, s.client, []string{s.leaseKey(name)}, holder).Err()
	return s.redisErr(ctx, "release lease", err)
}

// putScript writes a document with the next version of its bucket.
// KEYS: the bucket's hash and sequence. ARGV: key, value.
var putScript = redis.NewScript(`
local v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:', v) .. ARGV[2])
return v
`)

// casScript writes a document if its version is ARGV[2] (0: missing).
// KEYS: the bucket's hash and sequence. ARGV: key, old version, value.
// It returns {1, new version} or {0, current version}.
var casScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local ver = 0
if cur then
  ver = tonumber(string.match(cur, '^(%d+):'))
end
if ver ~= tonumber(ARGV[2]) then
  return {0, ver}
end
local v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:', v) .. ARGV[3])
return {1, v}
`)

// upgradeDocsScript moves a bucket from the untagged layout
// (kv:<bucket>, kvseq:<bucket>) to the tagged one. KEYS: the old hash and
// sequence, the new hash and sequence. Documents already in the new hash
// win over old ones of the same key; the new sequence becomes at least the
// old one, so versions are still never reused. It returns 1 if it moved
// documents.
var upgradeDocsScript = redis.NewScript(`
local moved = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('RENAME', KEYS[1], KEYS[3])
  else
    local old = redis.call('HGETALL', KEYS[1])
    for i = 1, #old, 2 do
      redis.call('HSETNX', KEYS[3], old[i], old[i+1])
    end
    redis.call('DEL', KEYS[1])
  end
  moved = 1
end
local seq = redis.call('GET', KEYS[2])
if seq then
  if tonumber(seq) > tonumber(redis.call('GET', KEYS[4]) or '0') then
    redis.call('SET', KEYS[4], seq)
  end
  redis.call('DEL', KEYS[2])
end
return moved
`)

// upgradeDocs moves the documents of a bucket kept in the untagged layout
// of earlier versions, the first time this store touches the bucket, so
// that supplier overrides and migration state survive the upgrade. It
// does nothing on a Cluster, which the untagged layout never ran on.
func (s *Redis) upgradeDocs(ctx context.Context, bucket string) error {
	if s.cluster {
		return nil
	}
	if _, done := s.upgraded.Load(bucket); done {
		return nil
	}
	keys := append([]string{s.key("kv:", bucket), s.key("kvseq:", bucket)}, s.docKeys(bucket)...)
	if err := upgradeDocsScript.Run(ctx, s.client, keys).Err(); err != nil {
		return s.redisErr(ctx, "upgrade documents", err)
	}
	s.upgraded.Store(bucket, struct{}{})
	return nil
}

// decodeRedisDoc splits a stored "<version>:<value>".
func decodeRedisDoc(stored string) ([]byte, int64, error) {
	ver, value, ok := strings.Cut(stored, ":")
	if !ok {
		return nil, 0, errors.New("no version")
	}
	v, err := strconv.ParseInt(ver, 10, 64)
	if err != nil {
		return nil, 0, err
	}
	return []byte(value), v, nil
}

// Get implements Documents with one HGET.
func (s *Redis) Get(ctx context.Context, bucket, key string) ([]byte, int64, error) {
	if err := checkDoc(bucket, key); err != nil {
		return nil, 0, err
	}
	if err := s.upgradeDocs(ctx, bucket); err != nil {
		return nil, 0, err
	}
	stored, err := s.client.HGet(ctx, s.docKeys(bucket)[0], key).Result()
	if errors.Is(err, redis.Nil) {
		return nil, 0, notFound(bucket, key)
	}
	if err != nil {
		return nil, 0, s.redisErr(ctx, "get", err)
	}
	value, version, err := decodeRedisDoc(stored)
	if err != nil {
		return nil, 0, fmt.Errorf("store: redis get %q in bucket %q: malformed document: %w", key, bucket, err)
	}
	return value, version, nil
}

// Put implements Documents with one script run.
func (s *Redis) Put(ctx context.Context, bucket, key string, value []byte) (int64, error) {
	if err := checkDoc(bucket, key); err != nil {
		return 0, err
	}
	if err := s.upgradeDocs(ctx, bucket); err != nil {
		return 0, err
	}
	v, err := putScript.Run(ctx, s.client, s.docKeys(bucket), key, value).Int64()
	if err != nil {
		return 0, s.redisErr(ctx, "put", err)
	}
	return v, nil
}

// CompareAndSwap implements Documents with one script run.
func (s *Redis) CompareAndSwap(ctx context.Context, bucket, key string, oldVersion int64, value []byte) (int64, bool, error) {
	if err := checkDoc(bucket, key); err != nil {
		return 0, false, err
	}
	if oldVersion < 0 {
		return 0, false, fmt.Errorf("%w: negative version %d", ErrInvalid, oldVersion)
	}
	if err := s.upgradeDocs(ctx, bucket); err != nil {
		return 0, false, err
	}
	res, err := casScript.Run(ctx, s.client, s.docKeys(bucket),
		key, oldVersion, value).Int64Slice()
	if err != nil {
		return 0, false, s.redisErr(ctx, "compare and swap", err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("store: redis compare and swap: unexpected reply %v", res)
	}
	return res[1], res[0] == 1, nil
}

// Delete implements Documents with one HDEL. The bucket's sequence stays,
// so versions are not reused.
func (s *Redis) Delete(ctx context.Context, bucket, key string) error {
	if err := checkDoc(bucket, key); err != nil {
		return err
	}
	if err := s.upgradeDocs(ctx, bucket); err != nil {
		return err
	}
	return s.redisErr(ctx, "delete", s.client.HDel(ctx, s.docKeys(bucket)[0], key).Err())
}

// List implements Documents with one HGETALL.
func (s *Redis) List(ctx context.Context, bucket string) ([]Doc, error) {
	if err := checkBucket(bucket); err != nil {
		return nil, err
	}
	if err := s.upgradeDocs(ctx, bucket); err != nil {
		return nil, err
	}
	all, err := s.client.HGetAll(ctx, s.docKeys(bucket)[0]).Result()
	if err != nil {
		return nil, s.redisErr(ctx, "list", err)
	}
	if len(all) == 0 {
		return nil, nil
	}
	docs := make([]Doc, 0, len(all))
	for k, stored := range all {
		value, version, err := decodeRedisDoc(stored)
		if err != nil {
			return nil, fmt.Errorf("store: redis list bucket %q: malformed document %q: %w", bucket, k, err)
		}
		docs = append(docs, Doc{Key: k, Value: value, Version: version})
	}
	slices.SortFunc(docs, func(a, b Doc) int { return strings.Compare(a.Key, b.Key) })
	return docs, nil
}

// usageCounts names the counts of an aggregate in its hash fields, in the
// order of addUsageScript's ARGV.
var usageCounts = [...]string{"requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_micros"}

// usageAppliedKey returns the key marking a supplier's delta id applied.
// It has the hash tag of the supplier's aggregates, so that one script
// touches both on a Cluster.
func (s *Redis) usageAppliedKey(supplier, id string) string {
	return s.tagged("usage-applied", supplier, ":", id)
}

// addUsageScript adds the non-zero counts of an aggregate unless its delta
// was applied already. KEYS[1]: the supplier+day hash; KEYS[2]: the
// delta's marker. ARGV: "<provider>|<model>|<key source>|<billed>|<workflow>|"
// (usageFieldPrefix), the counts in
// the order of usageCounts, then the marker's ttl in seconds. It returns 1
// when it added, 0 when the marker was there. The script runs whole or not
// at all, and is replicated as its effects, so a replica promoted by a
// failover has the marker if and only if it has the counts.
var addUsageScript = redis.NewScript(`
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[7]) then
  return 0
end
local names = {'requests', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'cost_micros'}
for i = 1, 5 do
  if ARGV[i+1] ~= '0' then
    redis.call('HINCRBY', KEYS[1], ARGV[1] .. names[i], ARGV[i+1])
  end
end
return 1
`)

// usageMarkKey returns the key of the marks of a source on a supplier's
// aggregates of a day. It has the hash tag of the supplier's aggregates.
func (s *Redis) usageMarkKey(supplier, day, source string) string {
	return s.tagged("usage-mark", supplier, ":", day, ":", source)
}

// addUsageSeqScript is addUsageScript under a mark. KEYS[3]: the hash of
// the source's marks on the supplier's aggregates of the day. ARGV, after
// addUsageScript's: the delta's first and last record numbers, and the
// marks' ttl in seconds. It returns the mark it found; it adds the counts
// (unless the delta's marker is there) and moves the mark to the last
// number only when the mark is below the first.
var addUsageSeqScript = redis.NewScript(`
local w = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if w >= tonumber(ARGV[8]) then
  return w
end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[7]) then
  local names = {'requests', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'cost_micros'}
  for i = 1, 5 do
    if ARGV[i+1] ~= '0' then
      redis.call('HINCRBY', KEYS[1], ARGV[1] .. names[i], ARGV[i+1])
    end
  end
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[9])
redis.call('EXPIRE', KEYS[3], ARGV[10])
return w
`)

// AddUsage implements Aggregates with an SADD that indexes the supplier
// under its day, then one script run that checks and sets the delta's
// marker and adds the counts. SADD is idempotent and comes first, so a
// failure between them leaves at worst a supplier indexed with nothing
// counted, never counts that a query over all suppliers misses. On one
// server (or behind Sentinel) both go in one pipeline, run in order in
// one round trip; on a Cluster the index lies in another slot, maybe on
// another node, so it is a command of its own. Aggregates never expire:
// Redis's persistence (RDB or AOF) is what makes them durable; markers
// expire AppliedTTL after they were set.
func (s *Redis) AddUsage(ctx context.Context, id string, d Usage) error {
	if err := checkUsageID(id); err != nil {
		return err
	}
	if err := checkUsage(d); err != nil {
		return err
	}
	if d.isZero() {
		return nil
	}
	day := utcDay(d.Day).Format(dayLayout)
	keys := []string{s.usageKey(d.Supplier, day), s.usageAppliedKey(d.Supplier, id)}
	args := []any{usageFieldPrefix(d),
		d.Requests, d.PromptTokens, d.CompletionTokens, d.CachedTokens, d.CostMicros,
		int64(AppliedTTL / time.Second)}
	_, err := s.runUsage(ctx, addUsageScript, day, d.Supplier, keys, args)
	return err
}

// AddUsageSeq implements Aggregates as AddUsage does, with a script that
// also reads and moves the mark, kept in a hash with the hash tag of the
// supplier's aggregates: one script on one slot. The mark's hash expires
// UsageMarkTTL after its last move, or after its day ended if that is
// later.
func (s *Redis) AddUsageSeq(ctx context.Context, id string, d Usage, seq UsageSeq) (uint64, error) {
	if zero, err := checkAddUsageSeq(id, d, seq); zero || err != nil {
		return 0, err
	}
	day := utcDay(d.Day).Format(dayLayout)
	keys := []string{s.usageKey(d.Supplier, day), s.usageAppliedKey(d.Supplier, id),
		s.usageMarkKey(d.Supplier, day, seq.Source)}
	now := time.Now()
	ttl := markExpiry(d.Day, now).Sub(now)
	args := []any{usageFieldPrefix(d),
		d.Requests, d.PromptTokens, d.CompletionTokens, d.CachedTokens, d.CostMicros,
		int64(AppliedTTL / time.Second), seq.First, seq.Last, int64(ttl / time.Second)}
	w, err := s.runUsage(ctx, addUsageSeqScript, day, d.Supplier, keys, args)
	if err != nil {
		return 0, err
	}
	if w < 0 {
		return 0, fmt.Errorf("store: redis add usage: negative mark %d", w)
	}
	return uint64(w), nil
}

// runUsage indexes supplier under day with an SADD, then runs script, a
// usage script, and returns its integer reply. SADD is idempotent and
// comes first, so a failure between them leaves at worst a supplier
// indexed with nothing counted. On one server (or behind Sentinel) both
// go in one pipeline, run in order in one round trip; on a Cluster the
// index lies in another slot, maybe on another node, so it is a command
// of its own.
func (s *Redis) runUsage(ctx context.Context, script *redis.Script, day, supplier string, keys []string, args []any) (int64, error) {
	if s.cluster {
		if err := s.client.SAdd(ctx, s.usageSuppliersKey(day), supplier).Err(); err != nil {
			return 0, s.redisErr(ctx, "add usage", err)
		}
	} else {
		var res *redis.Cmd
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.SAdd(ctx, s.usageSuppliersKey(day), supplier)
			res = script.EvalSha(ctx, p, keys, args...)
			return nil
		})
		if err == nil {
			n, err := res.Int64()
			return n, s.redisErr(ctx, "add usage", err)
		}
		if !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return 0, s.redisErr(ctx, "add usage", err)
		}
		// The server does not have the script (yet): SADD did its part.
	}
	n, err := script.Run(ctx, s.client, keys, args...).Int64()
	return n, s.redisErr(ctx, "add usage", err)
}

// QueryUsage implements Aggregates in two pipelined round trips: the
// suppliers of each day (unless q names one), then their aggregates. Every
// command reads one key, so on a Cluster the pipeline is split by node.
func (s *Redis) QueryUsage(ctx context.Context, q UsageQuery) ([]Usage, error) {
	from, to, err := checkQuery(q)
	if err != nil {
		return nil, err
	}
	type daySupplier struct {
		day      time.Time
		supplier string
	}
	var pairs []daySupplier
	if q.Supplier != "" {
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			pairs = append(pairs, daySupplier{d, q.Supplier})
		}
	} else {
		var days []time.Time
		var cmds []*redis.StringSliceCmd
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
				days = append(days, d)
				cmds = append(cmds, p.SMembers(ctx, s.usageSuppliersKey(d.Format(dayLayout))))
			}
			return nil
		})
		if err != nil {
			return nil, s.redisErr(ctx, "query usage", err)
		}
		for i, c := range cmds {
			suppliers := c.Val()
			slices.Sort(suppliers)
			for _, sup := range suppliers {
				pairs = append(pairs, daySupplier{days[i], sup})
			}
		}
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(pairs))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ds := range pairs {
			cmds[i] = p.HGetAll(ctx, s.usageKey(ds.supplier, ds.day.Format(dayLayout)))
		}
		return nil
	})
	if err != nil {
		return nil, s.redisErr(ctx, "query usage", err)
	}
	var rows []Usage
	for i, c := range cmds {
		byKey := make(map[[5]string]*Usage)
		for field, val := range c.Val() {
			k, count, err := parseUsageField(field)
			if err != nil {
				return nil, err
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("store: redis query usage: field %q: %w", field, err)
			}
			u := byKey[k]
			if u == nil {
				u = &Usage{Day: pairs[i].day, Supplier: pairs[i].supplier, Provider: k[0], Model: k[1], KeySource: k[2],
					Billed: k[3], Workflow: k[4]}
				byKey[k] = u
			}
			// Added, not set: a field of the earlier layout and one of
			// the current may count the same aggregate.
			switch count {
			case usageCounts[0]:
				u.Requests += n
			case usageCounts[1]:
				u.PromptTokens += n
			case usageCounts[2]:
				u.CompletionTokens += n
			case usageCounts[3]:
				u.CachedTokens += n
			case usageCounts[4]:
				u.CostMicros += n
			}
		}
		for _, u := range byKey {
			rows = append(rows, *u)
		}
	}
	slices.SortFunc(rows, usageCompare)
	return rows, nil
}

// usageFieldPrefix returns the part of d's hash fields before the count's
// name: "<provider>|<model>|<key source>|<billed>|<workflow>|".
func usageFieldPrefix(d Usage) string {
	return d.Provider + "|" + d.Model + "|" + d.KeySource + "|" + d.Billed + "|" + escapeWorkflow(d.Workflow) + "|"
}

// parseUsageField splits a hash field of aggregates into its aggregate
// (provider, model, key source, billed, workflow) and its count's name. A
// field of the earlier layout, without billed and workflow, is read with
// LegacyBilled and no workflow.
func parseUsageField(field string) (k [5]string, count string, err error) {
	parts := strings.Split(field, "|")
	switch len(parts) {
	case 4:
		return [5]string{parts[0], parts[1], parts[2], LegacyBilled(parts[2]), ""}, parts[3], nil
	case 6:
		w, err := unescapeWorkflow(parts[4])
		if err != nil {
			return k, "", fmt.Errorf("store: redis query usage: malformed field %q: %w", field, err)
		}
		return [5]string{parts[0], parts[1], parts[2], parts[3], w}, parts[5], nil
	}
	return k, "", fmt.Errorf("store: redis query usage: malformed field %q", field)
}

// Ping implements Store with one PING.
func (s *Redis) Ping(ctx context.Context) error {
	return s.redisErr(ctx, "ping", s.client.Ping(ctx).Err())
}

// Close implements Store: it closes the client's connections.
func (s *Redis) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("store: redis close: %w", err)
	}
	return nil
}
