package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// cachedChat is a deterministic chat request: temperature 0, one choice.
const cachedChat = `{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"Write a two-line blurb for a barn venue."}]}`

// cacheCall is one request's answer as the cache tests look at it.
type cacheCall struct {
	status int
	cache  string
	body   string
	id     string
}

func (h *harness) cached(t *testing.T, body string, hdr map[string]string) cacheCall {
	t.Helper()
	resp := h.do("POST", "/v1/chat/completions", body, hdr)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return cacheCall{status: resp.StatusCode, cache: resp.Header.Get("X-Veil-Cache"), body: string(b),
		id: resp.Header.Get("X-Request-ID")}
}

// upstreamCalls counts the requests the fake received on path.
func (h *harness) upstreamCalls(path string) int {
	n := 0
	for _, r := range h.up.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// TestCacheTenantIsolation: two suppliers sending the same prompt each get
// their own upstream call; a repeat is answered from the cache with the
// same answer, without a call, and its usage record says hit, costs
// nothing and reports the tokens saved.
func TestCacheTenantIsolation(t *testing.T) {
	recs := &tap{}
	h := start(t, setup{tap: recs.add, extra: `
prices:
  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.60}
`})
	bella := h.cached(t, cachedChat, nil)
	rose := h.cached(t, cachedChat, map[string]string{"X-Supplier-ID": "rose-venue"})
	if bella.cache != "MISS" || rose.cache != "MISS" || h.upstreamCalls("/v1/chat/completions") != 2 {
		t.Fatalf("first calls: %s %s, %d upstream calls", bella.cache, rose.cache, h.upstreamCalls("/v1/chat/completions"))
	}
	again := h.cached(t, cachedChat, nil)
	if again.status != 200 || again.cache != "HIT" || again.body != bella.body {
		t.Errorf("repeat: status %d cache %s, same body %v", again.status, again.cache, again.body == bella.body)
	}
	if n := h.upstreamCalls("/v1/chat/completions"); n != 2 {
		t.Errorf("a hit called the provider: %d calls", n)
	}
	hit := recs.one(t, again.id)
	miss := recs.one(t, bella.id)
	if hit.Cache != "hit" || hit.CostUSD == nil || *hit.CostUSD != 0 || hit.Billed != "none" || hit.TotalTokens != 0 ||
		hit.SavedTokens != miss.TotalTokens || hit.SavedTokens == 0 || hit.Provider != "openai" || hit.Model != miss.Model {
		t.Errorf("hit record %+v (miss total %d)", hit, miss.TotalTokens)
	}
	if miss.Cache != "miss" || miss.CostUSD == nil || *miss.CostUSD <= 0 {
		t.Errorf("miss record: cache %q cost %v", miss.Cache, miss.CostUSD)
	}
	if _, body := h.admin("/metrics", ""); !strings.Contains(body, "veil_cache_hits_total 1") {
		t.Error("metrics do not count the hit")
	}
}

// TestCacheKeys: a change of any generation parameter misses; fields that
// do not change the answer (user, key order, whitespace, number spelling)
// hit; a request that is not deterministic is not cached at all.
func TestCacheKeys(t *testing.T) {
	h := start(t, setup{})
	if c := h.cached(t, cachedChat, nil); c.cache != "MISS" {
		t.Fatalf("first call %s", c.cache)
	}
	tests := []struct {
		name, body, want string
	}{
		{"same request reordered, spaced and spelled differently", `{ "messages":[{"content":"Write a two-line blurb for a barn venue.","role":"user"}],
			"temperature": 0.0e0, "model":"gpt-4o-mini", "user":"coordinator-7"}`, "HIT"},
		{"another message", strings.Replace(cachedChat, "barn", "beach", 1), "MISS"},
		{"max_tokens", strings.Replace(cachedChat, `"temperature":0`, `"temperature":0,"max_tokens":40`, 1), "MISS"},
		{"a seed", strings.Replace(cachedChat, `"temperature":0`, `"temperature":0,"seed":7`, 1), "MISS"},
		{"top_p", strings.Replace(cachedChat, `"temperature":0`, `"temperature":0,"top_p":0.5`, 1), "MISS"},
		{"not deterministic", strings.Replace(cachedChat, `"temperature":0`, `"temperature":0.7`, 1), "BYPASS"},
		{"two choices", strings.Replace(cachedChat, `"temperature":0`, `"temperature":0,"n":2`, 1), "BYPASS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if c := h.cached(t, tc.body, nil); c.status != 200 || c.cache != tc.want {
				t.Errorf("status %d cache %s, want %s", c.status, c.cache, tc.want)
			}
		})
	}
}

// TestCacheNeverStoresErrors: a provider error is passed through and the
// next identical request asks the provider again.
func TestCacheNeverStoresErrors(t *testing.T) {
	h := start(t, setup{limits: "  max_retries: 1\n"})
	for _, f := range []fakeopenai.Fault{
		{Kind: fakeopenai.KindStatus, Status: 400, Code: "context_length_exceeded"},
		fakeopenai.Status(500, 2),
	} {
		before := h.upstreamCalls("/v1/chat/completions")
		h.up.Script(f)
		if c := h.cached(t, cachedChat, nil); c.status == 200 {
			t.Fatalf("fault %v: status 200", f.Kind)
		}
		if c := h.cached(t, cachedChat, nil); c.status != 200 || c.cache != "MISS" {
			t.Errorf("after a %d: status %d cache %s", f.Status, c.status, c.cache)
		}
		if n := h.upstreamCalls("/v1/chat/completions") - before; n < 2 {
			t.Errorf("after a %d: %d upstream calls", f.Status, n)
		}
		h.purge(t, "")
	}
	// A stream cut by the provider is not stored either.
	h.up.Script(fakeopenai.Cut(2))
	seed := 7
	req := openai.ChatCompletionRequest{Model: "gpt-4o-mini", Stream: true, Seed: &seed,
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "A menu for forty guests."}}}
	if _, err := readStream(t, h.client(), req); err == nil {
		t.Fatal("a cut stream ended cleanly")
	}
	before := h.upstreamCalls("/v1/chat/completions")
	collectStream(t, h.client(), req)
	if n := h.upstreamCalls("/v1/chat/completions") - before; n != 1 {
		t.Errorf("after a cut stream the repeat made %d upstream calls, want 1", n)
	}
}

// purge calls POST /admin/cache/purge, for one supplier or all.
func (h *harness) purge(t *testing.T, supplier string) {
	t.Helper()
	path := "/admin/cache/purge"
	if supplier != "" {
		path += "?supplier=" + supplier
	}
	if code, body := h.adminDo("POST", path, ""); code != 200 {
		t.Fatalf("purge: %d %s", code, body)
	}
}

// TestCacheStreamAndPlain: a streamed answer serves a plain request with
// the assembled JSON and a streamed one with its own events; a plain
// answer serves a streamed request as a stream. Clients read the same
// text either way.
func TestCacheStreamAndPlain(t *testing.T) {
	h := start(t, setup{})
	c := h.client()
	// go-openai leaves a zero temperature out of the body; a seed makes
	// the request deterministic.
	seed := 42
	stream := openai.ChatCompletionRequest{Model: "gpt-4o-mini", Stream: true, Seed: &seed,
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "Suggest a first-dance song."}}}
	first := collectStream(t, c, stream)
	again := collectStream(t, c, stream)
	plainReq := stream
	plainReq.Stream = false
	plain, err := c.CreateChatCompletion(ctxT(t), plainReq)
	if err != nil {
		t.Fatal(err)
	}
	if n := h.upstreamCalls("/v1/chat/completions"); n != 1 {
		t.Fatalf("%d upstream calls, want 1", n)
	}
	if again.content().text != first.text || again.chunks != first.chunks || plain.Choices[0].Message.Content != first.text {
		t.Errorf("stream %q (%d chunks), replay %q (%d chunks), plain %q", first.text, first.chunks, again.text, again.chunks,
			plain.Choices[0].Message.Content)
	}
	if plain.Usage.TotalTokens == 0 || plain.Choices[0].FinishReason != openai.FinishReasonStop {
		t.Errorf("assembled answer: usage %+v finish %q", plain.Usage, plain.Choices[0].FinishReason)
	}
	withUsage := stream
	withUsage.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	if u := collectStream(t, c, withUsage); u.usage == nil || u.usage.TotalTokens != plain.Usage.TotalTokens || u.text != first.text {
		t.Errorf("replay with usage: %+v", u)
	}

	// The other way round: a plain answer first, then a stream.
	plainReq.Messages = []openai.ChatCompletionMessage{{Role: "user", Content: "Suggest a last-dance song."}}
	p, err := c.CreateChatCompletion(ctxT(t), plainReq)
	if err != nil {
		t.Fatal(err)
	}
	stream.Messages = plainReq.Messages
	s := collectStream(t, c, stream)
	if s.text != p.Choices[0].Message.Content || s.finish != openai.FinishReasonStop || s.chunks < 3 {
		t.Errorf("stream from a plain answer: %q (%d chunks, finish %q), want %q", s.text, s.chunks, s.finish, p.Choices[0].Message.Content)
	}
	if n := h.upstreamCalls("/v1/chat/completions"); n != 2 {
		t.Errorf("%d upstream calls, want 2", n)
	}
}

// TestCacheEmbeddings: embeddings are always cacheable.
func TestCacheEmbeddings(t *testing.T) {
	h := start(t, setup{})
	req := openai.EmbeddingRequestStrings{Model: openai.SmallEmbedding3, Input: []string{"rustic barn", "beach ceremony"}}
	a, err := h.client().CreateEmbeddings(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.client().CreateEmbeddings(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if h.upstreamCalls("/v1/embeddings") != 1 || len(b.Data) != 2 || b.Data[1].Embedding[0] != a.Data[1].Embedding[0] {
		t.Errorf("%d upstream calls", h.upstreamCalls("/v1/embeddings"))
	}
}

// TestCacheSingleFlight: identical requests that miss at once make one
// upstream call; every caller gets its answer.
func TestCacheSingleFlight(t *testing.T) {
	h := start(t, setup{fake: fakeopenai.Options{Latency: 300 * time.Millisecond}})
	const n = 8
	var wg sync.WaitGroup
	calls := make([]cacheCall, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calls[i] = h.cached(t, cachedChat, nil)
		}()
	}
	wg.Wait()
	outcomes := map[string]int{}
	for _, c := range calls {
		if c.status != 200 || c.body != calls[0].body {
			t.Errorf("status %d, same body %v", c.status, c.body == calls[0].body)
		}
		outcomes[c.cache]++
	}
	if got := h.upstreamCalls("/v1/chat/completions"); got != 1 || outcomes["MISS"] != 1 || outcomes["HIT"] != n-1 {
		t.Errorf("%d upstream calls, outcomes %v", got, outcomes)
	}
}

// TestCacheControl: no-cache skips the lookup and stores the fresh answer;
// no-store keeps the answer out of the cache.
func TestCacheControl(t *testing.T) {
	h := start(t, setup{})
	if c := h.cached(t, cachedChat, map[string]string{"Cache-Control": "no-store"}); c.cache != "MISS" {
		t.Errorf("no-store: %s", c.cache)
	}
	if c := h.cached(t, cachedChat, nil); c.cache != "MISS" {
		t.Errorf("after no-store: %s, want a miss", c.cache)
	}
	if c := h.cached(t, cachedChat, map[string]string{"Cache-Control": "max-age=0, No-Cache"}); c.cache != "BYPASS" {
		t.Errorf("no-cache: %s", c.cache)
	}
	if n := h.upstreamCalls("/v1/chat/completions"); n != 3 {
		t.Errorf("%d upstream calls, want 3", n)
	}
	if c := h.cached(t, cachedChat, nil); c.cache != "HIT" {
		t.Errorf("after no-cache: %s", c.cache)
	}
	// The no-cache every EventSource client sends with a stream is for
	// the proxies on the way, not veil's cache.
	sse := map[string]string{"Cache-Control": "no-cache", "Accept": "text/event-stream"}
	if c := h.cached(t, strings.Replace(cachedChat, `"temperature":0`, `"temperature":0,"stream":true`, 1), sse); c.cache != "HIT" {
		t.Errorf("a stream with the EventSource no-cache: %s", c.cache)
	}
}

// TestCachePurge: purging a supplier drops its answers and no one
// else's; purging all drops everything.
func TestCachePurge(t *testing.T) {
	h := start(t, setup{})
	rose := map[string]string{"X-Supplier-ID": "rose-venue"}
	h.cached(t, cachedChat, nil)
	h.cached(t, cachedChat, rose)
	h.purge(t, testSupplier)
	if c := h.cached(t, cachedChat, nil); c.cache != "MISS" {
		t.Errorf("bella after her purge: %s", c.cache)
	}
	if c := h.cached(t, cachedChat, rose); c.cache != "HIT" {
		t.Errorf("rose after bella's purge: %s", c.cache)
	}
	code, body := h.adminDo("POST", "/admin/cache/purge", "")
	var got struct {
		Purged string `json:"purged"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil || got.Purged != "all" {
		t.Fatalf("purge all: %d %s", code, body)
	}
	if c := h.cached(t, cachedChat, rose); c.cache != "MISS" {
		t.Errorf("rose after purging all: %s", c.cache)
	}
	if code, _ := h.admin("/admin/cache/purge", h.adminToken); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("GET purge: %d", code)
	}
	if code, _ := h.adminDo("POST", "/admin/cache/purge", "{"); code != 400 {
		t.Errorf("a bad body: %d", code)
	}
}

// TestCacheScopes: a route that shares answers serves every supplier one
// answer; a route or a tier that turns the cache off is never cached; with
// the cache off nothing is.
func TestCacheScopes(t *testing.T) {
	h := start(t, setup{extra: `
routes:
  - {workflow: venue, cache: shared}
  - {workflow: planning, cache: "off"}
tiers:
  - {name: free, cache: "off"}
suppliers:
  entries:
    - {id: thrifty-florist, tier: free}
`})
	venue := map[string]string{"X-Workflow": "venue"}
	roseVenue := map[string]string{"X-Workflow": "venue", "X-Supplier-ID": "rose-venue"}
	if a, b := h.cached(t, cachedChat, venue), h.cached(t, cachedChat, roseVenue); a.cache != "MISS" || b.cache != "HIT" {
		t.Errorf("shared route: %s then %s", a.cache, b.cache)
	}
	planning := map[string]string{"X-Workflow": "planning"}
	if a, b := h.cached(t, cachedChat, planning), h.cached(t, cachedChat, planning); a.cache != "BYPASS" || b.cache != "BYPASS" {
		t.Errorf("route off: %s then %s", a.cache, b.cache)
	}
	thrifty := map[string]string{"X-Supplier-ID": "thrifty-florist"}
	if a, b := h.cached(t, cachedChat, thrifty), h.cached(t, cachedChat, thrifty); a.cache != "BYPASS" || b.cache != "BYPASS" {
		t.Errorf("tier off: %s then %s", a.cache, b.cache)
	}

	off := start(t, setup{extra: "cache:\n  enabled: false\n"})
	if a, b := off.cached(t, cachedChat, nil), off.cached(t, cachedChat, nil); a.cache != "BYPASS" || b.cache != "BYPASS" {
		t.Errorf("cache off: %s then %s", a.cache, b.cache)
	}
}
