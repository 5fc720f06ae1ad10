package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// headroomKey is the hash of every provider's shared headroom: one field
// per provider and account ("<provider>|<account>", or "<provider>" for the
// provider's own entry, the only one before accounts were told apart),
// whose value is "<at>|<cooldown until>|<limit requests>|
// <remaining requests>|<limit tokens>|<remaining tokens>|<reset requests>|
// <reset tokens>", times in unix milliseconds (0: none), counts -1 when the
// provider did not say.
func (s *Redis) headroomKey() string { return s.key("headroom") }

// publishHeadroomScript merges a batch into the headroom hash, one field
// per provider and account: the counts of the later observation and the later
// cooldown win; then it drops the fields past HeadroomTTL and renews the
// key's expiry. KEYS[1]: the hash. ARGV[1]: the oldest time kept (ms),
// ARGV[2]: the key's ttl (ms), then per entry its field, observation
// time (ms), cooldown (ms) and counts ("<limit requests>|...|<reset
// tokens>"). Times are compared as numbers and stored as the strings they
// came as: Lua would print large numbers as floats.
var publishHeadroomScript = redis.NewScript(`
for i = 3, #ARGV, 4 do
  local at, cool, counts = ARGV[i+1], ARGV[i+2], ARGV[i+3]
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur then
    local cat, ccool, ccounts = string.match(cur, '^([^|]*)|([^|]*)|(.*)$')
    if cat and tonumber(cat) and tonumber(cat) >= tonumber(at) then
      at, counts = cat, ccounts
    end
    if ccool and tonumber(ccool) and tonumber(ccool) > tonumber(cool) then
      cool = ccool
    end
  end
  redis.call('HSET', KEYS[1], ARGV[i], at .. '|' .. cool .. '|' .. counts)
end
local oldest = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local at, cool = string.match(all[i+1], '^([^|]*)|([^|]*)|')
  if not at or math.max(tonumber(at) or 0, tonumber(cool) or 0) < oldest then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
`)

// PublishHeadroom implements Headrooms with one script run.
func (s *Redis) PublishHeadroom(ctx context.Context, hs []Headroom, now time.Time) error {
	if err := checkHeadroom(hs); err != nil {
		return err
	}
	if len(hs) == 0 {
		return nil
	}
	args := make([]any, 0, 2+4*len(hs))
	args = append(args, strconv.FormatInt(now.Add(-HeadroomTTL).UnixMilli(), 10), keyTTL(HeadroomTTL))
	for _, h := range hs {
		counts := strings.Join([]string{
			strconv.FormatInt(h.LimitRequests, 10), strconv.FormatInt(h.RemainingRequests, 10),
			strconv.FormatInt(h.LimitTokens, 10), strconv.FormatInt(h.RemainingTokens, 10),
			strconv.FormatInt(unixMilli(h.ResetRequests), 10), strconv.FormatInt(unixMilli(h.ResetTokens), 10),
		}, "|")
		args = append(args, h.field(), strconv.FormatInt(unixMilli(h.At), 10),
			strconv.FormatInt(unixMilli(h.CooldownUntil), 10), counts)
	}
	err := publishHeadroomScript.Run(ctx, s.client, []string{s.headroomKey()}, args...).Err()
	return s.redisErr(ctx, "publish headroom", err)
}

// Headroom implements Headrooms with one HGETALL.
func (s *Redis) Headroom(ctx context.Context, now time.Time) ([]Headroom, error) {
	all, err := s.client.HGetAll(ctx, s.headroomKey()).Result()
	if err != nil {
		return nil, s.redisErr(ctx, "headroom", err)
	}
	out := make([]Headroom, 0, len(all))
	for f, stored := range all {
		h, err := decodeHeadroom(f, stored)
		if err != nil {
			return nil, fmt.Errorf("store: redis headroom of %q: %w", f, err)
		}
		if !h.stale(now) {
			out = append(out, h)
		}
	}
	return sortHeadroom(out), nil
}

// decodeHeadroom reads a field of the headroom hash.
func decodeHeadroom(field, stored string) (Headroom, error) {
	provider, account := splitField(field)
	parts := strings.Split(stored, "|")
	if len(parts) != 8 {
		return Headroom{}, fmt.Errorf("malformed value %q", stored)
	}
	var n [8]int64
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return Headroom{}, fmt.Errorf("malformed value %q: %w", stored, err)
		}
		n[i] = v
	}
	return Headroom{Provider: provider, Account: account, At: fromUnixMilli(n[0]), CooldownUntil: fromUnixMilli(n[1]),
		LimitRequests: n[2], RemainingRequests: n[3], LimitTokens: n[4], RemainingTokens: n[5],
		ResetRequests: fromUnixMilli(n[6]), ResetTokens: fromUnixMilli(n[7])}, nil
}

// unixMilli is t in unix milliseconds; 0 for the zero time.
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromUnixMilli is the time of unix milliseconds ms in UTC; the zero time
// for 0.
func fromUnixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
