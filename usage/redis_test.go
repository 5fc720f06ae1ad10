package usage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/usage"
)

// redisAdmin returns a client of the test server for checking what the
// sink wrote, closed at the end of the test.
func redisAdmin(t *testing.T, addr string, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// redisCtx returns a context bounding one check against the test server.
func redisCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newRedisSink returns a sink for o, closed at the end of the test.
func newRedisSink(t *testing.T, o usage.RedisOptions) usage.Sink {
	t.Helper()
	s, err := usage.NewRedisSink(o)
	if err != nil {
		t.Fatalf("NewRedisSink: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// redisRecord returns a realistic record for request id.
func redisRecord(id string, ts time.Time) *usage.Record {
	cost := 0.000123
	return &usage.Record{
		TS:               ts,
		RequestID:        id,
		Supplier:         "bella-flowers",
		Caller:           "planner-app",
		Workflow:         "bouquet-ideas",
		Endpoint:         "/v1/chat/completions",
		RequestedModel:   "gpt-4o-mini",
		Model:            "gpt-4o-mini-2024-07-18",
		Provider:         "openai",
		KeySource:        "client",
		Billed:           billing.PaidByClient,
		Stream:           true,
		Status:           200,
		PromptTokens:     42,
		CompletionTokens: 17,
		TotalTokens:      59,
		CostUSD:          &cost,
		LatencyMS:        812.5,
		TTFTMS:           120.25,
		Cache:            usage.CacheMiss,
		Attempts: []usage.Attempt{
			{Provider: "openai", KeySource: "client", Status: 429, Error: "rate_limited", LatencyMS: 30},
			{Provider: "openai", KeySource: "client", Status: 200, LatencyMS: 780},
		},
		Failover: true,
	}
}

func TestRedisSinkWrite(t *testing.T) {
	srv := redistest.Start(t)
	const stream = "test:usage"
	sink := newRedisSink(t, usage.RedisOptions{Addr: srv.Addr, Stream: stream})
	if got := sink.Name(); got != "redis" {
		t.Errorf("Name() = %q, want redis", got)
	}

	// A non-UTC time: ts is written in UTC, the JSON keeps the record's.
	ts := time.Date(2026, 6, 20, 15, 4, 5, 123456789, time.FixedZone("BST", 3600))
	priceless := redisRecord("req-2", ts.Add(time.Millisecond))
	priceless.CostUSD = nil
	priceless.Supplier = "barn-venue"
	batch := []*usage.Record{redisRecord("req-1", ts), nil, priceless, redisRecord("req-3", ts.Add(time.Second))}
	if err := sink.Write(batch); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := sink.Write(nil); err != nil {
		t.Fatalf("Write(nil): %v", err)
	}

	admin := redisAdmin(t, srv.Addr, 0)
	msgs, err := admin.XRange(redisCtx(t), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE: %v", err)
	}
	want := []*usage.Record{batch[0], batch[2], batch[3]}
	if len(msgs) != len(want) {
		t.Fatalf("stream has %d entries, want %d: %v", len(msgs), len(want), msgs)
	}
	for i, m := range msgs {
		r := want[i]
		if len(m.Values) != 4 {
			t.Errorf("entry %d has fields %v, want request_id, supplier, ts and record", i, m.Values)
		}
		wantTS := r.TS.UTC().Format(time.RFC3339Nano)
		for field, v := range map[string]string{"request_id": r.RequestID, "supplier": r.Supplier, "ts": wantTS} {
			if got := m.Values[field]; got != v {
				t.Errorf("entry %d: %s = %v, want %q", i, field, got, v)
			}
		}
		doc, ok := m.Values["record"].(string)
		if !ok {
			t.Fatalf("entry %d: record = %#v, want a string", i, m.Values["record"])
		}
		wantDoc, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if doc != string(wantDoc) {
			t.Errorf("entry %d: record =\n%s\nwant\n%s", i, doc, wantDoc)
		}
		var back usage.Record
		if err := json.Unmarshal([]byte(doc), &back); err != nil {
			t.Fatalf("entry %d: record is not JSON: %v", i, err)
		}
		if back.RequestID != r.RequestID || !back.TS.Equal(r.TS) || len(back.Attempts) != 2 ||
			(back.CostUSD == nil) != (r.CostUSD == nil) {
			t.Errorf("entry %d: record decodes to %+v, want %+v", i, back, *r)
		}
	}
	if !strings.Contains(msgs[1].Values["record"].(string), `"cost_usd":null`) {
		t.Errorf("a record without a price should have cost_usd null: %s", msgs[1].Values["record"])
	}
}

func TestRedisSinkMaxLen(t *testing.T) {
	srv := redistest.Start(t)
	const stream = "test:bounded"
	sink := newRedisSink(t, usage.RedisOptions{Addr: srv.Addr, Stream: stream, MaxLen: 100})

	const total, batchSize = 5000, 250
	ts := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	for i := 0; i < total; i += batchSize {
		batch := make([]*usage.Record, batchSize)
		for j := range batch {
			batch[j] = redisRecord(fmt.Sprintf("req-%d", i+j), ts.Add(time.Duration(i+j)*time.Millisecond))
		}
		if err := sink.Write(batch); err != nil {
			t.Fatalf("Write of records %d..: %v", i, err)
		}
	}

	admin := redisAdmin(t, srv.Addr, 0)
	ctx := redisCtx(t)
	n, err := admin.XLen(ctx, stream).Result()
	if err != nil {
		t.Fatalf("XLEN: %v", err)
	}
	// Approximate trimming keeps at least MaxLen entries and removes whole
	// macro nodes (100 entries each by default), so the length stays near
	// MaxLen, far below what was written.
	if n < 100 || n >= 1000 {
		t.Fatalf("stream length %d after %d records with MaxLen 100, want in [100, 1000)", n, total)
	}
	last, err := admin.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil || len(last) != 1 {
		t.Fatalf("XREVRANGE: %v %v", last, err)
	}
	if got, want := last[0].Values["request_id"], fmt.Sprintf("req-%d", total-1); got != want {
		t.Errorf("newest entry is %v, want %s", got, want)
	}
}

func TestRedisSinkDefaultsAndDB(t *testing.T) {
	srv := redistest.Start(t)
	sink := newRedisSink(t, usage.RedisOptions{Addr: srv.Addr, DB: 3})
	if err := sink.Write([]*usage.Record{redisRecord("req-db", time.Now())}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	ctx := redisCtx(t)
	if n, err := redisAdmin(t, srv.Addr, 3).XLen(ctx, usage.DefaultRedisStream).Result(); err != nil || n != 1 {
		t.Errorf("XLEN %s in DB 3 = %d, %v; want 1", usage.DefaultRedisStream, n, err)
	}
	if n, err := redisAdmin(t, srv.Addr, 0).Exists(ctx, usage.DefaultRedisStream).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS %s in DB 0 = %d, %v; want 0", usage.DefaultRedisStream, n, err)
	}
}

func TestRedisSinkPassword(t *testing.T) {
	srv := redistest.Start(t)
	const password = "sk-wedding-cake-7"
	admin := redisAdmin(t, srv.Addr, 0)
	if err := admin.ConfigSet(redisCtx(t), "requirepass", password).Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}

	wrong := newRedisSink(t, usage.RedisOptions{Addr: srv.Addr, Password: keys.NewSecret("sk-wrong-password")})
	err := wrong.Write([]*usage.Record{redisRecord("req-wrong", time.Now())})
	if err == nil {
		t.Fatal("Write with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), "sk-wrong-password") {
		t.Errorf("the error reveals the password: %v", err)
	}

	right := newRedisSink(t, usage.RedisOptions{Addr: srv.Addr, Password: keys.NewSecret(password), Stream: "test:auth"})
	if err := right.Write([]*usage.Record{redisRecord("req-right", time.Now())}); err != nil {
		t.Fatalf("Write with the password: %v", err)
	}
	authed := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: password})
	defer authed.Close()
	if n, err := authed.XLen(redisCtx(t), "test:auth").Result(); err != nil || n != 1 {
		t.Errorf("XLEN test:auth = %d, %v; want 1", n, err)
	}
}

func TestRedisSinkServerDown(t *testing.T) {
	srv := redistest.Start(t)
	sink := newRedisSink(t, usage.RedisOptions{Addr: srv.Addr, Timeout: 500 * time.Millisecond})
	batch := []*usage.Record{redisRecord("req-up", time.Now())}
	if err := sink.Write(batch); err != nil {
		t.Fatalf("Write: %v", err)
	}
	srv.Stop()
	err := sink.Write(batch)
	if err == nil {
		t.Fatal("Write with the server stopped succeeded")
	}
	if !strings.Contains(err.Error(), "usage: redis sink") {
		t.Errorf("error %q does not say which sink failed", err)
	}
}

func TestRedisSinkClose(t *testing.T) {
	srv := redistest.Start(t)
	sink, err := usage.NewRedisSink(usage.RedisOptions{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Write([]*usage.Record{redisRecord("req-1", time.Now())}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sink.Write([]*usage.Record{redisRecord("req-2", time.Now())}); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestNewRedisSinkInvalid(t *testing.T) {
	for name, o := range map[string]usage.RedisOptions{
		"no address":       {},
		"no port":          {Addr: "localhost"},
		"negative DB":      {Addr: "127.0.0.1:6379", DB: -1},
		"negative MaxLen":  {Addr: "127.0.0.1:6379", MaxLen: -5},
		"negative Timeout": {Addr: "127.0.0.1:6379", Timeout: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := usage.NewRedisSink(o); err == nil {
				_ = s.Close()
				t.Fatalf("NewRedisSink(%+v) succeeded", o)
			}
		})
	}
}

// The stream is one key, so on a Redis Cluster it lives on the master of
// its slot and a batch is one pipeline to it.
func TestRedisSinkCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	s := newRedisSink(t, usage.RedisOptions{Addrs: c.Addrs, Stream: "veil:usage"})
	ts := time.Date(2026, 6, 13, 14, 30, 0, 0, time.UTC)
	if err := s.Write([]*usage.Record{redisRecord("req-1", ts), redisRecord("req-2", ts)}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n, err := c.Client(t).XLen(redisCtx(t), "veil:usage").Result(); err != nil || n != 2 {
		t.Errorf("XLEN = %d, %v; want 2", n, err)
	}
}
