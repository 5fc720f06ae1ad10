package store_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/store"
)

// rawRedis returns a plain client of the test server, for looking at what
// the store wrote.
func rawRedis(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestNewRedisInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    store.RedisOptions
	}{
		{"no address", store.RedisOptions{}},
		{"no port", store.RedisOptions{Addr: "localhost"}},
		{"negative database", store.RedisOptions{Addr: "localhost:6379", DB: -1}},
		{"negative timeout", store.RedisOptions{Addr: "localhost:6379", Timeout: -time.Second}},
		{"negative pool size", store.RedisOptions{Addr: "localhost:6379", PoolSize: -1}},
		{"addr and cluster", store.RedisOptions{Addr: "localhost:6379", Addrs: []string{"localhost:7000"}}},
		{"sentinel without master", store.RedisOptions{SentinelAddrs: []string{"localhost:26379"}}},
		{"cluster database", store.RedisOptions{Addrs: []string{"localhost:7000"}, DB: 1}},
		{"prefix with a hash tag", store.RedisOptions{Addr: "localhost:6379", Prefix: "{veil}:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := store.NewRedis(tc.o); !errors.Is(err, store.ErrInvalid) {
				if err == nil {
					_ = r.Close()
				}
				t.Fatalf("NewRedis(%+v) error = %v, want ErrInvalid", tc.o, err)
			}
		})
	}
}

func TestRedisUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "down:"})
	ctx := t.Context()
	limits := []store.Limit{{Name: "rpm", Window: time.Minute, Max: 10, Amount: 1}}
	r, d, err := s.Reserve(ctx, "supplier:a", limits, t0)
	if err != nil || d != nil {
		t.Fatalf("Reserve while up = %+v, %v", d, err)
	}
	srv.Stop()

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"ping", func() error { return s.Ping(ctx) }},
		{"reserve", func() error { _, _, err := s.Reserve(ctx, "supplier:a", limits, t0); return err }},
		{"settle", func() error { return s.Settle(ctx, r, map[string]int64{"rpm": 2}) }},
		{"refund", func() error { return s.Refund(ctx, r) }},
		{"used", func() error { _, err := s.Used(ctx, "supplier:a", limits, t0); return err }},
		{"acquire slot", func() error { _, _, err := s.AcquireSlot(ctx, "supplier:a", 2, time.Minute, t0); return err }},
		{"release slot", func() error { return s.ReleaseSlot(ctx, store.Slot{Subject: "supplier:a", ID: "x"}) }},
		{"get", func() error { _, _, err := s.Get(ctx, "overrides", "a"); return err }},
		{"put", func() error { _, err := s.Put(ctx, "overrides", "a", []byte("x")); return err }},
		{"compare and swap", func() error { _, _, err := s.CompareAndSwap(ctx, "overrides", "a", 0, nil); return err }},
		{"list", func() error { _, err := s.List(ctx, "overrides"); return err }},
		{"acquire lease", func() error { _, err := s.AcquireLease(ctx, "m", "pod-a", time.Minute, t0); return err }},
		{"add usage", func() error { return s.AddUsage(ctx, "b.0", store.Usage{Day: t0, Supplier: "a", Requests: 1}) }},
		{"query usage", func() error { _, err := s.QueryUsage(ctx, store.UsageQuery{From: t0, To: t0}); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("error = %v, want ErrUnavailable", err)
			}
			if errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrInvalid) {
				t.Fatalf("error = %v: unavailable and closed or invalid", err)
			}
		})
	}
}

func TestRedisCanceledContext(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, store.RedisOptions{Addr: srv.Addr})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := s.Reserve(ctx, "supplier:a", []store.Limit{{Name: "rpm", Window: time.Minute, Max: 1, Amount: 1}}, t0)
	if !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Reserve with a canceled context: %v, want context.Canceled and not ErrUnavailable", err)
	}
}

func TestRedisKeys(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, store.RedisOptions{Addr: srv.Addr}) // default prefix
	raw := rawRedis(t, srv.Addr)
	ctx := t.Context()

	limits := []store.Limit{
		{Name: "tpm", Window: time.Minute, Max: 1000, Amount: 120},
		{Name: "month_cost_micros", Window: store.WindowMonth, Max: 1_000_000, Amount: 2500},
	}
	if _, d, err := s.Reserve(ctx, "supplier:bella", limits, t0); err != nil || d != nil {
		t.Fatalf("Reserve = %+v, %v", d, err)
	}
	minute := time.Date(2026, 6, 13, 14, 30, 0, 0, time.UTC).Unix()
	month := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Unix()
	for _, tc := range []struct {
		key    string
		value  string
		maxTTL time.Duration
	}{
		{"veil:q:{supplier:bella}:tpm:" + strconv.FormatInt(minute, 10), "120", 40*time.Second + store.CounterGrace},
		{"veil:q:{supplier:bella}:month_cost_micros:" + strconv.FormatInt(month, 10), "2500",
			17*24*time.Hour + 9*time.Hour + 29*time.Minute + 40*time.Second + store.CounterGrace},
	} {
		if v, err := raw.Get(ctx, tc.key).Result(); err != nil || v != tc.value {
			t.Errorf("GET %s = %q, %v; want %q", tc.key, v, err, tc.value)
		}
		if ttl, err := raw.PTTL(ctx, tc.key).Result(); err != nil || ttl <= 0 || ttl > tc.maxTTL {
			t.Errorf("PTTL %s = %v, %v; want in (0, %v]", tc.key, ttl, err, tc.maxTTL)
		}
	}

	slot, ok, err := s.AcquireSlot(ctx, "supplier:bella", 2, time.Minute, t0)
	if err != nil || !ok {
		t.Fatalf("AcquireSlot = %v, %v", ok, err)
	}
	if score, err := raw.ZScore(ctx, "veil:slot:{supplier:bella}", slot.ID).Result(); err != nil || int64(score) != t0.Add(time.Minute).UnixMilli() {
		t.Errorf("slot score = %v, %v; want its expiry %d", score, err, t0.Add(time.Minute).UnixMilli())
	}

	v, err := s.Put(ctx, "overrides", "bella", []byte(`{"tier":"gold"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := raw.HGet(ctx, "veil:kv:{overrides}", "bella").Result(); err != nil || got != strconv.FormatInt(v, 10)+`:{"tier":"gold"}` {
		t.Errorf("HGET veil:kv:{overrides} bella = %q, %v", got, err)
	}

	if err := s.AddUsage(ctx, "b7.3", store.Usage{Day: t0, Supplier: "bella", Provider: "openai", Model: "gpt-4o",
		KeySource: "client", Billed: "platform", Workflow: "venue|50%", Requests: 1, CostMicros: 4500}); err != nil {
		t.Fatal(err)
	}
	if ttl, err := raw.TTL(ctx, "veil:usage-applied:{bella}:b7.3").Result(); err != nil || ttl <= 0 || ttl > store.AppliedTTL {
		t.Errorf("TTL veil:usage-applied:{bella}:b7.3 = %v, %v; want up to %v", ttl, err, store.AppliedTTL)
	}
	fields, err := raw.HGetAll(ctx, "veil:usage:{bella}:2026-06-13").Result()
	if err != nil || len(fields) != 2 || fields["openai|gpt-4o|client|platform|venue%7C50%25|requests"] != "1" ||
		fields["openai|gpt-4o|client|platform|venue%7C50%25|cost_micros"] != "4500" {
		t.Errorf("HGETALL veil:usage:{bella}:2026-06-13 = %v, %v", fields, err)
	}
	if ok, err := raw.SIsMember(ctx, "veil:usage-suppliers:2026-06-13", "bella").Result(); err != nil || !ok {
		t.Errorf("bella not in veil:usage-suppliers:2026-06-13: %v", err)
	}
}

func TestRedisScriptCacheFlushed(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, store.RedisOptions{Addr: srv.Addr})
	raw := rawRedis(t, srv.Addr)
	ctx := t.Context()
	limits := []store.Limit{{Name: "rpm", Window: time.Minute, Max: 10, Amount: 1}}
	for i := range 3 {
		if err := raw.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		r, d, err := s.Reserve(ctx, "supplier:a", limits, t0)
		if err != nil || d != nil || r.Items[0].Used != int64(i+1) {
			t.Fatalf("Reserve after SCRIPT FLUSH = %+v, %+v, %v", r, d, err)
		}
	}
}

func TestRedisPassword(t *testing.T) {
	srv := redistest.Start(t)
	raw := rawRedis(t, srv.Addr)
	if err := raw.ConfigSet(t.Context(), "requirepass", "confetti-cannon").Err(); err != nil {
		t.Fatal(err)
	}
	good := newRedis(t, store.RedisOptions{Addr: srv.Addr, Password: keys.NewSecret("confetti-cannon")})
	if err := good.Ping(t.Context()); err != nil {
		t.Errorf("Ping with the password: %v", err)
	}
	bad := newRedis(t, store.RedisOptions{Addr: srv.Addr, Password: keys.NewSecret("wrong")})
	if err := bad.Ping(t.Context()); err == nil {
		t.Error("Ping with a wrong password succeeded")
	}
}

// Documents written in the untagged layout of earlier versions (kv:<bucket>,
// kvseq:<bucket>) are moved on the first touch of their bucket: they read
// back with their versions, and new versions continue above the old ones.
func TestRedisUpgradesUntaggedDocuments(t *testing.T) {
	srv := redistest.Start(t)
	raw := rawRedis(t, srv.Addr)
	ctx := t.Context()
	for k, v := range map[string]string{"bella": `7:{"tier":"gold"}`, "corin": `9:{"mode":"client"}`} {
		if err := raw.HSet(ctx, "veil:kv:overrides", k, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Set(ctx, "veil:kvseq:overrides", 9, 0).Err(); err != nil {
		t.Fatal(err)
	}

	s := newRedis(t, store.RedisOptions{Addr: srv.Addr})
	docs, err := s.List(ctx, "overrides")
	if err != nil || len(docs) != 2 || docs[0].Key != "bella" || docs[0].Version != 7 || string(docs[1].Value) != `{"mode":"client"}` {
		t.Fatalf("List after upgrade = %+v, %v", docs, err)
	}
	if v, err := s.Put(ctx, "overrides", "dario", []byte("{}")); err != nil || v != 10 {
		t.Errorf("Put after upgrade = %d, %v; want version 10, above the old sequence", v, err)
	}
	if _, ok, err := s.CompareAndSwap(ctx, "overrides", "bella", 7, []byte(`{"tier":"pro"}`)); err != nil || !ok {
		t.Errorf("CompareAndSwap on the old version = %v, %v", ok, err)
	}
	if n, err := raw.Exists(ctx, "veil:kv:overrides", "veil:kvseq:overrides").Result(); err != nil || n != 0 {
		t.Errorf("old keys left: %d, %v", n, err)
	}

	// Another replica, started after the move, finds the documents too.
	other := newRedis(t, store.RedisOptions{Addr: srv.Addr})
	if value, v, err := other.Get(ctx, "overrides", "corin"); err != nil || v != 9 || string(value) != `{"mode":"client"}` {
		t.Errorf("Get from another store = %q, %d, %v", value, v, err)
	}
}

// TestRedisReadsAggregatesWithoutBilled: aggregate fields written before
// billed and workflow were kept ("<provider>|<model>|<key source>|<count>")
// are read with the payer derived from the key source and no workflow,
// and summed with the newer fields of the same aggregate.
func TestRedisReadsAggregatesWithoutBilled(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "legacy:"})
	raw := rawRedis(t, srv.Addr)
	ctx := t.Context()
	day := time.Date(2026, time.June, 13, 0, 0, 0, 0, time.UTC)
	if err := raw.HSet(ctx, "legacy:usage:{bella}:2026-06-13",
		"openai|gpt-4o|platform|requests", "2", "openai|gpt-4o|platform|cost_micros", "14",
		"openai|gpt-4o|client|requests", "3", "openai|gpt-4o|client|prompt_tokens", "30").Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.SAdd(ctx, "legacy:usage-suppliers:2026-06-13", "bella").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUsage(ctx, "new.0", store.Usage{Day: day, Supplier: "bella", Provider: "openai", Model: "gpt-4o",
		KeySource: "platform", Billed: "platform", Requests: 1, PromptTokens: 10, CostMicros: 7}); err != nil {
		t.Fatal(err)
	}
	want := []store.Usage{
		{Day: day, Supplier: "bella", Provider: "openai", Model: "gpt-4o", KeySource: "client", Billed: "client",
			Requests: 3, PromptTokens: 30},
		{Day: day, Supplier: "bella", Provider: "openai", Model: "gpt-4o", KeySource: "platform", Billed: "platform",
			Requests: 3, PromptTokens: 10, CostMicros: 21},
	}
	for _, q := range []store.UsageQuery{{From: day, To: day}, {Supplier: "bella", From: day, To: day}} {
		rows, err := s.QueryUsage(ctx, q)
		if err != nil || !slices.Equal(rows, want) {
			t.Errorf("QueryUsage(%+v) = %+v, %v; want %+v", q, rows, err, want)
		}
	}
}
