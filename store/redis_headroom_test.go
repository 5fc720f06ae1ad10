package store_test

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/store"
)

// TestRedisHeadroomOneWrite: a batch of several providers is one script
// run on one hash, which expires by itself when nobody publishes any more.
func TestRedisHeadroomOneWrite(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "hr:"})
	raw := rawRedis(t, srv.Addr)
	ctx := t.Context()
	batch := []store.Headroom{
		{Provider: "openai", At: t0, LimitRequests: 100, RemainingRequests: 7, LimitTokens: -1, RemainingTokens: -1,
			ResetRequests: t0.Add(6 * time.Second)},
		{Provider: "azure", CooldownUntil: t0.Add(20 * time.Second), LimitRequests: -1, RemainingRequests: -1,
			LimitTokens: -1, RemainingTokens: -1},
	}
	if err := s.PublishHeadroom(ctx, batch, t0); err != nil { // loads the script
		t.Fatal(err)
	}
	if err := raw.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.PublishHeadroom(ctx, batch, t0); err != nil {
		t.Fatal(err)
	}
	stats, err := raw.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	// Commands the script runs count too; the client's own are EVALSHA
	// (or EVAL).
	calls := 0
	for _, m := range regexp.MustCompile(`cmdstat_(evalsha|eval):calls=(\d+)`).FindAllStringSubmatch(stats, -1) {
		n, _ := strconv.Atoi(m[2])
		calls += n
	}
	if calls != 1 {
		t.Errorf("publishing a batch of two providers made %d script runs, want one:\n%s", calls, stats)
	}
	v, err := raw.HGet(ctx, "hr:headroom", "openai").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.FormatInt(t0.UnixMilli(), 10) + "|0|100|7|-1|-1|" + strconv.FormatInt(t0.Add(6*time.Second).UnixMilli(), 10) + "|0"
	if v != want {
		t.Errorf("stored %q, want %q", v, want)
	}
	ttl, err := raw.PTTL(ctx, "hr:headroom").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > store.HeadroomTTL+time.Second {
		t.Errorf("the hash expires in %v, want within %v", ttl, store.HeadroomTTL+time.Second)
	}
	if err := raw.HSet(ctx, "hr:headroom", "vllm", "not a headroom").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Headroom(ctx, t0); err == nil {
		t.Error("a malformed entry was read without an error")
	}
}

// TestRedisHeadroomAccountFields: an account's entry is the field
// "<provider>|<account>" next to the provider's own, and a field an older
// version wrote (the provider's name alone) reads as the provider's own
// entry, merged as before.
func TestRedisHeadroomAccountFields(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, store.RedisOptions{Addr: srv.Addr, Prefix: "hr:"})
	raw := rawRedis(t, srv.Addr)
	ctx := t.Context()
	ms := func(tm time.Time) string { return strconv.FormatInt(tm.UnixMilli(), 10) }
	// As an older version stores a report and a cooldown.
	legacy := ms(t0) + "|" + ms(t0.Add(9*time.Second)) + "|100|40|-1|-1|" + ms(t0.Add(time.Minute)) + "|0"
	if err := raw.HSet(ctx, "hr:headroom", "openai", legacy).Err(); err != nil {
		t.Fatal(err)
	}
	acct := store.Headroom{Provider: "openai", Account: "0123456789abcdef", At: t0.Add(time.Second), LimitRequests: 500,
		RemainingRequests: 450, LimitTokens: -1, RemainingTokens: -1, ResetRequests: t0.Add(time.Minute)}
	if err := s.PublishHeadroom(ctx, []store.Headroom{acct}, t0); err != nil {
		t.Fatal(err)
	}
	v, err := raw.HGet(ctx, "hr:headroom", "openai|0123456789abcdef").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := ms(acct.At) + "|0|500|450|-1|-1|" + ms(acct.ResetRequests) + "|0"; v != want {
		t.Errorf("the account's field holds %q, want %q", v, want)
	}
	if v, _ := raw.HGet(ctx, "hr:headroom", "openai").Result(); v != legacy {
		t.Errorf("the provider's own field became %q, want %q kept", v, legacy)
	}
	hs, err := s.Headroom(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].Account != "" || hs[0].RemainingRequests != 40 || !hs[0].CooldownUntil.Equal(t0.Add(9*time.Second)) ||
		hs[1].Account != acct.Account || hs[1].RemainingRequests != 450 {
		t.Errorf("view %+v", hs)
	}
}
