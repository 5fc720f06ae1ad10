package e2e

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/redistest"
)

// TestTierRejects: a supplier over its tier's requests per minute gets 429
// with Retry-After and X-RateLimit-* headers, and nothing goes upstream.
func TestTierRejects(t *testing.T) {
	h := start(t, setup{extra: `tiers:
  - name: starter
    requests_per_minute: 3
    tokens_per_minute: 100000
suppliers:
  default_tier: starter
`})
	for i := range 3 {
		resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	before := len(h.up.Requests())
	resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", resp.StatusCode)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if resp.Header.Get("X-RateLimit-Limit-Requests") != "3" || resp.Header.Get("X-RateLimit-Remaining-Requests") != "0" {
		t.Errorf("rate limit headers %v", resp.Header)
	}
	if e := readEnvelope(t, resp); *e.Error.Code != "quota_exceeded" {
		t.Errorf("code %q", *e.Error.Code)
	}
	if len(h.up.Requests()) != before {
		t.Error("a refused request reached the upstream")
	}
	// Another supplier has its own quota.
	if _, err := h.clientFor("rose-venue").CreateChatCompletion(ctxT(t), weddingChat); err != nil {
		t.Errorf("another supplier was refused: %v", err)
	}
	// The SDK sees a 429 API error.
	_, err := h.client().CreateChatCompletion(ctxT(t), weddingChat)
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 429 {
		t.Errorf("want a 429 API error, got %v", err)
	}
}

// TestTierSwitchesToClient: a tier with on_exhausted: switch_to_client
// serves a supplier past its platform quota on its own key, without an
// error; the record says why.
func TestTierSwitchesToClient(t *testing.T) {
	bellaKey := secret("sk-bella-own-")
	tp := &tap{}
	h := start(t, setup{
		fake: fakeopenai.Options{Keys: []string{bellaKey}},
		env:  map[string]string{"BELLA_KEY": bellaKey},
		tap:  tp.add,
		extra: `tiers:
  - name: peak
    requests_per_minute: 2
    on_exhausted: switch_to_client
suppliers:
  entries:
    - id: bella-photography
      mode: platform
      tier: peak
      keys:
        openai: env://BELLA_KEY
`})
	c := h.client()
	for i := range 4 {
		resp, err := c.CreateChatCompletion(ctxT(t), weddingChat)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := "platform"
		if i >= 2 {
			want = "client"
		}
		if got := resp.Header().Get("X-Veil-Key-Source"); got != want {
			t.Errorf("request %d served on %s, want %s", i, got, want)
		}
		r := tp.one(t, resp.Header().Get("X-Request-Id"))
		// The call that met the limit is switched on its own; the tier's
		// switch then moves the supplier to its own key for good (a
		// migration), which serves the calls after it.
		if i == 2 && (r.Reason != "quota_exhausted:rpm" || r.Billed != "client") {
			t.Errorf("record %d: reason %q billed %q", i, r.Reason, r.Billed)
		}
		if i == 3 && (r.Billed != "client" || (r.Reason != "quota_exhausted:rpm" && r.MigrationID == "")) {
			t.Errorf("record %d: reason %q billed %q migration %q", i, r.Reason, r.Billed, r.MigrationID)
		}
	}
	if h.lastAuth() != "Bearer "+bellaKey {
		t.Error("the switched call did not use bella's key")
	}
}

// TestTierConcurrent: the concurrent limit counts requests in flight.
func TestTierConcurrent(t *testing.T) {
	h := start(t, setup{
		fake: fakeopenai.Options{},
		extra: `tiers:
  - name: small
    concurrent: 1
suppliers:
  default_tier: small
`})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStallStream, After: 1, Stall: 3 * time.Second})
	_, r := h.openStream(t)
	if _, err := nextData(t, r); err != nil {
		t.Fatal(err)
	}
	resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a second concurrent request got %d, want 429", resp.StatusCode)
	}
}

// TestTierTokensAcrossReplicas: four veils sharing one Redis, hammered at
// once, never let a supplier's tokens per minute overshoot by more than one
// request's tokens.
func TestTierTokensAcrossReplicas(t *testing.T) {
	rs := redistest.Start(t)
	const tpm = 3000
	extra := `tiers:
  - name: shared
    tokens_per_minute: ` + strconv.Itoa(tpm) + `
    default_max_tokens: 50
suppliers:
  default_tier: shared
store:
  type: redis
  addr: ` + rs.Addr + `
`
	var replicas []*harness
	tp := &tap{}
	for range 4 {
		replicas = append(replicas, start(t, setup{extra: extra, tap: tp.add}))
	}
	var wg sync.WaitGroup
	for _, h := range replicas {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := h.client()
				for range 30 {
					_, _ = c.CreateChatCompletion(ctxT(t), weddingChat) // 429 once the minute's tokens are gone
				}
			}()
		}
	}
	wg.Wait()
	// Group the granted calls' real tokens by the minute they were admitted
	// in (the record's end minus its latency).
	perMinute := map[int64]int64{}
	var granted, biggest int64
	for _, r := range tp.all() {
		if r.Status != 200 {
			continue
		}
		granted++
		started := r.TS.Add(-time.Duration(r.LatencyMS * float64(time.Millisecond)))
		perMinute[started.Unix()/60] += r.TotalTokens
		biggest = max(biggest, r.TotalTokens)
	}
	if granted == 0 {
		t.Fatal("nothing was granted")
	}
	// Reservations are estimates (body/4 + default_max_tokens); settlement
	// replaces them with real tokens, so a minute may pass the limit by at
	// most about one request.
	for minute, used := range perMinute {
		t.Logf("minute %d: %d tokens in granted calls (limit %d, largest call %d)", minute, used, tpm, biggest)
		if used > tpm+biggest {
			t.Errorf("minute %d: %d tokens, an overshoot of more than one request (%d)", minute, used, biggest)
		}
	}
}

// TestQuotaStoreDown: with Redis gone, fail_open serves without a quota
// check (counted), fail_closed answers 503.
func TestQuotaStoreDown(t *testing.T) {
	for _, mode := range []string{"fail_open", "fail_closed"} {
		t.Run(mode, func(t *testing.T) {
			rs := redistest.Start(t)
			h := start(t, setup{extra: `tiers:
  - name: starter
    requests_per_minute: 100
suppliers:
  default_tier: starter
store:
  type: redis
  addr: ` + rs.Addr + `
  timeout: 200ms
  on_unavailable: ` + mode + `
`})
			if _, err := h.client().CreateChatCompletion(ctxT(t), weddingChat); err != nil {
				t.Fatal(err)
			}
			rs.Stop()
			resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
			_, _ = io.Copy(io.Discard, resp.Body)
			want := 200
			if mode == "fail_closed" {
				want = http.StatusServiceUnavailable
			}
			if resp.StatusCode != want {
				t.Errorf("status %d, want %d", resp.StatusCode, want)
			}
			if _, body := h.admin("/metrics", ""); !strings.Contains(body, "veil_quota_store_unavailable_total 1") {
				t.Error("the unavailable store was not counted")
			}
		})
	}
}

// TestBudgetAcrossReplicasWithFailover: four veils sharing one Redis serve
// one supplier with a tiny monthly budget while the first provider fails
// every call, so that each fails over to a provider three times dearer.
// Reservations are priced at the costliest target, so the budget is
// overrun by at most one call's cost.
func TestBudgetAcrossReplicasWithFailover(t *testing.T) {
	rs := redistest.Start(t)
	const budgetMicros = 2500 // $0.0025
	backupKey := secret("sk-backup-")
	extra := `tiers:
  - name: budget
    monthly_cost_usd: 0.0025
    default_max_tokens: 60
suppliers:
  default_tier: budget
store:
  type: redis
  addr: ` + rs.Addr + `
prices:
  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.60}
  - {provider: backup, model: gpt-4o-mini, input_per_mtok: 0.45, output_per_mtok: 1.80}
`
	providers := `
  - name: openai
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]
  - name: backup
    type: openaicompat
    base_url: {root}/v1
    api_key: env://BACKUP_KEY
    models: [gpt-4o-mini]`
	var replicas []*harness
	tp := &tap{}
	for range 4 {
		h := start(t, setup{extra: extra, providers: providers, tap: tp.add, env: map[string]string{"BACKUP_KEY": backupKey},
			fake: fakeopenai.Options{Keys: []string{backupKey}}})
		h.up.Script(fakeopenai.Status(500, 0).ForKey(h.platformKey).Repeat(-1))
		replicas = append(replicas, h)
	}
	var wg sync.WaitGroup
	for _, h := range replicas {
		for range 10 {
			wg.Go(func() {
				c := h.client()
				for range 10 {
					_, _ = c.CreateChatCompletion(ctxT(t), weddingChat) // 429 once the budget is spent
				}
			})
		}
	}
	wg.Wait()
	var spent, biggest int64
	granted, refused := 0, 0
	for _, r := range tp.all() {
		switch {
		case r.Status == 200:
			granted++
			if r.Provider != "backup" || r.CostMicros == nil {
				t.Fatalf("a granted call was served by %s with cost %v; want the backup, priced", r.Provider, r.CostMicros)
			}
			spent += *r.CostMicros
			biggest = max(biggest, *r.CostMicros)
		case r.Status == 429 && r.Error == "quota_exceeded":
			refused++
		}
	}
	t.Logf("400 calls: %d granted on the dearer provider, %d refused; spent %d µ$ of a %d µ$ budget (largest call %d µ$)",
		granted, refused, spent, budgetMicros, biggest)
	if granted == 0 || refused == 0 {
		t.Fatalf("%d granted, %d refused: the budget was not reached", granted, refused)
	}
	if spent > budgetMicros+biggest {
		t.Errorf("spent %d µ$ of a %d µ$ budget: an overrun of more than one call (%d µ$)", spent, budgetMicros, biggest)
	}
}
