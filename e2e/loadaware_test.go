package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/usage"
)

// upstream starts a fake provider of the test's own, beside the one each
// harness starts.
func upstream(t *testing.T, o fakeopenai.Options) *fakeopenai.Server {
	t.Helper()
	s := fakeopenai.New(o)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("fake upstream: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// tightAndRoomy is the provider list of "tight" and "roomy", two fakes of
// the test's own that both list the model the tests ask for, so that
// either can take a call the other cannot; both accept any key.
func tightAndRoomy(tight, roomy *fakeopenai.Server) string {
	return `
  - name: tight
    type: openai
    base_url: ` + tight.URL() + `
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]
  - name: roomy
    type: openai
    base_url: ` + roomy.URL() + `
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]`
}

// peakSpread spreads every supplier evenly over tight and roomy all year
// with load-aware routing on, and shares state through Redis at addr. The
// fakes answer in well under a millisecond, where latency is noise: the
// tests weigh by headroom alone (policy's tests cover latency).
func peakSpread(addr string) string {
	return yearRoundSpread("", "{tight: 1, roomy: 1}") + `store:
  type: redis
  addr: ` + addr + `
  headroom_interval: 100ms
`
}

// yearRoundSpread is a peak season all year that spreads every supplier
// over weights (YAML flow map) with load-aware routing on, weighing by
// headroom alone, plus the load_aware options in more (indented YAML
// lines).
func yearRoundSpread(more, weights string) string {
	return `routing:
  load_aware:
    enabled: true
    latency_weight: 0
` + more + `tiers:
  - name: starter
suppliers:
  default_tier: starter
seasons:
  - name: peak
    from: "01-01"
    to: "12-31"
    spread:
      tiers: [starter]
      weights: ` + weights + `
`
}

// view is what a replica's /admin/status says of a provider.
func (h *harness) view(t *testing.T, provider string) health.Snapshot {
	t.Helper()
	code, body := h.admin("/admin/status", h.adminToken)
	if code != http.StatusOK {
		t.Fatalf("/admin/status: %d %s", code, body)
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Health {
		if s.Target == provider {
			return s
		}
	}
	t.Fatalf("no health of %s in %s", provider, body)
	return health.Snapshot{}
}

// until waits for cond on every replica of hs, failing after a guard
// deadline.
func until(t *testing.T, what string, hs []*harness, cond func(*harness) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second) // failure guard only
	for _, h := range hs {
		for !cond(h) {
			if time.Now().After(deadline) {
				t.Fatalf("a replica never saw %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// chatOnce sends one chat completion through h and fails the test unless
// the client gets 200; it returns who served it and the attempts made.
func chatOnce(t *testing.T, h *harness) (provider, attempts string) {
	t.Helper()
	resp, body := post(t, h, testSupplier, chatBody)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return resp.Header.Get("X-Veil-Provider"), resp.Header.Get("X-Veil-Attempts")
}

// TestLoadAwareShiftsBeforeA429: four replicas share one Redis and spread
// a season's traffic over two providers, one with a small rate limit of
// its own. As its headroom falls, the replicas send it less, then nothing,
// before it ever answers 429; a replica that never called it learns its
// headroom from the store and sends it nothing either.
func TestLoadAwareShiftsBeforeA429(t *testing.T) {
	const budget = 200
	tight := upstream(t, fakeopenai.Options{RequestLimit: budget, LimitWindow: time.Hour})
	roomy := upstream(t, fakeopenai.Options{})
	rs := redistest.Start(t)
	tp := &tap{}
	var replicas []*harness
	for range 4 {
		replicas = append(replicas, start(t, setup{providers: tightAndRoomy(tight, roomy), extra: peakSpread(rs.Addr), tap: tp.add}))
	}

	// Three replicas take the peak until tight is down to its last tenth
	// (the default min_headroom), with calls in flight on each.
	busy := replicas[:3]
	var sent atomic.Int64
	var wg sync.WaitGroup
	for _, h := range busy {
		for range 2 {
			wg.Go(func() {
				for tight.Stats().Requests < budget*9/10+1 && sent.Add(1) <= 3000 {
					chatOnce(t, h)
				}
			})
		}
	}
	wg.Wait()
	peak := tp.all()
	served := tight.Stats().Requests
	t.Logf("%d calls brought tight down to %d requests left of %d", sent.Load(), budget-served, budget)
	if served <= budget*9/10 {
		t.Fatalf("tight served %d calls of %d; the spread never used its headroom", served, sent.Load())
	}

	// Once each has seen the last of it, from its own calls or through the
	// store, every replica that called it sends it nothing. (Answers that
	// arrive together are recorded in any order, so a replica may still
	// hold the second-last; its next call to tight tells it.)
	deadline := time.Now().Add(15 * time.Second) // failure guard only
	for _, h := range busy {
		for v := h.view(t, "tight"); v.Headroom == nil || *v.Headroom >= 0.1; v = h.view(t, "tight") {
			if time.Now().After(deadline) {
				t.Fatal("a busy replica never saw tight's low headroom")
			}
			chatOnce(t, h)
		}
	}
	for i := range 60 {
		if p, _ := chatOnce(t, busy[i%len(busy)]); p != "roomy" {
			t.Errorf("a call went to %s with tight below its minimum headroom", p)
		}
	}
	// The fourth replica never called tight: it learns its headroom from
	// the store, and sends it nothing too.
	idle := replicas[3]
	if n := idle.view(t, "tight").Successes; n != 0 {
		t.Fatalf("the idle replica called tight %d times", n)
	}
	until(t, "tight's low headroom", []*harness{idle}, func(h *harness) bool {
		v := h.view(t, "tight")
		return v.Headroom != nil && *v.Headroom < 0.1
	})
	for range 40 {
		if p, _ := chatOnce(t, idle); p != "roomy" {
			t.Errorf("the idle replica sent a call to %s", p)
		}
	}

	if n := tight.Stats().RateLimited; n != 0 {
		t.Errorf("tight answered 429 %d times", n)
	}
	if left := budget - tight.Stats().Requests; left <= 0 {
		t.Errorf("tight's limit was used up (%d left)", left)
	}
	recs := tp.all()
	for _, r := range recs {
		if r.Status != http.StatusOK || len(r.Attempts) != 1 || r.Failover {
			t.Fatalf("a call took %d attempts (failover %v) and ended %d: %+v", len(r.Attempts), r.Failover, r.Status, r.Attempts)
		}
	}
	// The shift: tight's share of the first and of the last fifth of the
	// peak's calls.
	first, last := share(peak[:len(peak)/5], "tight"), share(peak[len(peak)*4/5:], "tight")
	t.Logf("tight served %.0f%% of the first fifth of the peak's calls, %.0f%% of the last", first*100, last*100)
	if first < 0.3 || last > first/2 {
		t.Errorf("tight's share went from %.2f to %.2f; the traffic did not shift away", first, last)
	}
}

// share is the share of records served by provider.
func share(recs []*usage.Record, provider string) float64 {
	if len(recs) == 0 {
		return 0
	}
	n := 0
	for _, r := range recs {
		if r.Provider == provider {
			n++
		}
	}
	return float64(n) / float64(len(recs))
}

// TestRateLimitCooldownShared: a 429 that one replica sees holds the
// provider out for all four: once the store has carried it, the others
// send it nothing until its Retry-After has passed.
func TestRateLimitCooldownShared(t *testing.T) {
	tight, roomy := upstream(t, fakeopenai.Options{}), upstream(t, fakeopenai.Options{})
	rs := redistest.Start(t)
	tp := &tap{}
	var replicas []*harness
	for range 4 {
		replicas = append(replicas, start(t, setup{providers: tightAndRoomy(tight, roomy), extra: peakSpread(rs.Addr), tap: tp.add}))
	}
	// The next call tight takes is refused for two minutes.
	tight.Script(fakeopenai.RateLimit(2 * time.Minute))
	first := replicas[0]
	var failover bool
	for i := 0; tight.Stats().Requests == 0; i++ {
		if i == 200 {
			t.Fatal("the spread never sent a call to tight")
		}
		resp, body := post(t, first, testSupplier, chatBody)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a 429 reached the client: %d %s", resp.StatusCode, body)
		}
		failover = resp.Header.Get("X-Veil-Failover") == "true"
	}
	if !failover {
		t.Error("the call tight refused was not served by roomy")
	}
	if n := tight.Stats().Faults; n != 1 {
		t.Fatalf("tight answered %d 429s", n)
	}
	others := replicas[1:]
	until(t, "tight's 429", others, func(h *harness) bool { return h.view(t, "tight").RateLimitedUntil != nil })

	before := tight.Stats().Requests
	for i := range 80 {
		if p, attempts := chatOnce(t, replicas[i%len(replicas)]); p != "roomy" || attempts != "1" {
			t.Errorf("call %d: served by %s in %s attempts while tight cools down", i, p, attempts)
		}
	}
	if n := tight.Stats().Requests - before; n != 0 {
		t.Errorf("the replicas sent tight %d calls during its cooldown", n)
	}
	// All of it happened within the cooldown, as every replica still says.
	for i, h := range replicas {
		if v := h.view(t, "tight"); v.RateLimitedUntil == nil {
			t.Errorf("replica %d: the cooldown ended during the test; the check above proves nothing", i)
		}
	}
	// Explain shows the choice, with tight held out.
	code, body := others[0].admin("/admin/explain?supplier="+testSupplier+"&model=gpt-4o-mini", others[0].adminToken)
	var ex admin.Explanation
	if err := json.Unmarshal([]byte(body), &ex); code != http.StatusOK || err != nil {
		t.Fatalf("explain: %d %v %s", code, err, body)
	}
	if !ex.LoadAware || len(ex.Choice) != 2 || !choiceOf(ex, "tight").RateLimited || choiceOf(ex, "tight").Share != 0 ||
		choiceOf(ex, "roomy").Share != 1 || ex.Attempts[len(ex.Attempts)-1].Reason != "rate_limited" {
		t.Errorf("explain: %s", body)
	}
}

// choiceOf is a provider's part of an explanation's choice.
func choiceOf(ex admin.Explanation, provider string) (c struct {
	RateLimited bool
	Share       float64
}) {
	for _, ch := range ex.Choice {
		if ch.Provider == provider {
			c.RateLimited, c.Share = ch.RateLimited, ch.Share
		}
	}
	return c
}

// TestSpreadOnlyWhereTheSupplierHasAKey: a client-mode supplier with its
// own key for one of the season's providers is spread only there: every
// call, the first included, is one attempt without failover, and no
// failover is counted.
func TestSpreadOnlyWhereTheSupplierHasAKey(t *testing.T) {
	bellaKey := secret("sk-bella-")
	h := start(t, setup{
		providers: `
  - name: openai
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY
  - name: backup
    type: openai
    base_url: {root}/v1
    api_key: env://PLATFORM_KEY`,
		env:  map[string]string{"BELLA_KEY": bellaKey},
		fake: fakeopenai.Options{Keys: []string{bellaKey}},
		extra: `tiers:
  - name: starter
suppliers:
  default_tier: starter
  entries:
    - id: bella-photography
      mode: client
      keys:
        openai: env://BELLA_KEY
seasons:
  - name: peak
    from: "01-01"
    to: "12-31"
    spread:
      tiers: [starter]
      weights: {openai: 1, backup: 3}
`})
	for i := range 20 {
		resp, body := post(t, h, testSupplier, chatBody)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, resp.StatusCode, body)
		}
		if a, f, p := resp.Header.Get("X-Veil-Attempts"), resp.Header.Get("X-Veil-Failover"), resp.Header.Get("X-Veil-Provider"); a != "1" || f != "" || p != "openai" {
			t.Fatalf("call %d: served by %s in %s attempts, failover %q; want openai in one", i, p, a, f)
		}
		if got := h.lastUpstream().Header.Get("Authorization"); got != "Bearer "+bellaKey {
			t.Fatalf("call %d was not made with the supplier's own key", i)
		}
	}
	if _, metrics := h.admin("/metrics", h.adminToken); failoversCounted(metrics) {
		t.Errorf("failovers were counted:\n%s", grepLines(metrics, "veil_failovers_total"))
	}
}

// failoversCounted reports whether a metrics page counts any failover.
func failoversCounted(metrics string) bool {
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "veil_failovers_total") && !strings.HasSuffix(l, " 0") {
			return true
		}
	}
	return false
}

// TestStrictRegion: a supplier whose calls must stay in the EU is served
// by the EU deployment, and refused with 503 no_provider_in_region when
// only a US provider could serve; the US provider never hears of it.
func TestStrictRegion(t *testing.T) {
	us, eu := upstream(t, fakeopenai.Options{}), upstream(t, fakeopenai.Options{})
	h := start(t, setup{
		providers: fmt.Sprintf(`
  - name: openai
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY
  - name: openai-eu
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]`, us.URL(), eu.URL()),
		extra: `regions:
  - name: eu
    providers: {openai: openai-eu}
suppliers:
  entries:
    - id: rose-venue
      region: eu
      region_strict: true
    - id: lily-florist
      region: eu
`})
	resp, body := post(t, h, "rose-venue", chatBody)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Veil-Provider") != "openai-eu" {
		t.Fatalf("gpt-4o-mini: %d from %s: %s", resp.StatusCode, resp.Header.Get("X-Veil-Provider"), body)
	}
	resp, body = post(t, h, "rose-venue", `{"model":"gpt-4o","messages":[{"role":"user","content":"Plan a lakeside wedding."}]}`)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"no_provider_in_region"`) ||
		!strings.Contains(body, "region eu") {
		t.Fatalf("gpt-4o, which only the US provider serves: %d %s", resp.StatusCode, body)
	}
	if n := us.Stats().Requests; n != 0 {
		t.Errorf("the US provider got %d of the EU supplier's calls", n)
	}
	// A supplier of the region that is not strict may still leave it.
	if resp, body := post(t, h, "lily-florist", `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}`); resp.StatusCode != http.StatusOK {
		t.Errorf("a supplier without region_strict: %d %s", resp.StatusCode, body)
	}
	code, body := h.admin("/admin/explain?supplier=rose-venue&model=gpt-4o", h.adminToken)
	var ex admin.Explanation
	if err := json.Unmarshal([]byte(body), &ex); code != http.StatusOK || err != nil {
		t.Fatalf("explain: %d %v %s", code, err, body)
	}
	if ex.Region != "eu" || !ex.RegionStrict || ex.ErrorCode != "no_provider_in_region" || len(ex.Attempts) != 0 {
		t.Errorf("explain: %s", body)
	}
}
