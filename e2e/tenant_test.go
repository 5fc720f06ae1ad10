package e2e

import (
	"strings"
	"sync"
	"testing"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestOneSuppliersKeyFaultStaysWithIt: one supplier's own key fails in each
// way a key fails (server errors, a used-up account, resets) while three
// other suppliers, on their own keys and on platform keys, keep calling. The
// failing supplier is served on platform keys (it may fall back), billed to
// the platform; the others lose no call, none of theirs moves to another key
// or is billed to anyone else, and the provider, which serves every other
// key, is never declared down.
func TestOneSuppliersKeyFaultStaysWithIt(t *testing.T) {
	faults := []struct {
		name  string
		fault fakeopenai.Fault
		cause string
	}{
		{"server errors", fakeopenai.Status(500, 0), "failing"},
		{"used-up account", fakeopenai.Fault{Kind: fakeopenai.KindStatus, Status: 429, Type: "insufficient_quota",
			Code: "insufficient_quota", Message: "You exceeded your current quota, please check your plan and billing details."},
			"out_of_quota"},
		{"connection resets", fakeopenai.ConnReset(), "failing"},
	}
	for _, fc := range faults {
		t.Run(fc.name, func(t *testing.T) {
			badKey, roseKey, lilyKey := secret("sk-bakery-own-"), secret("sk-rose-own-"), secret("sk-lily-own-")
			tp := &tap{}
			h := start(t, setup{
				fake:   fakeopenai.Options{Keys: []string{badKey, roseKey, lilyKey}},
				env:    map[string]string{"BAD_KEY": badKey, "ROSE_KEY": roseKey, "LILY_KEY": lilyKey},
				tap:    tp.add,
				limits: "  breaker_failures: 3\n  breaker_cooldown: 1m\n  max_retries: 1\n",
				extra: `suppliers:
  entries:
    - id: bad-bakery
      mode: client
      allow_platform_fallback: true
      keys:
        openai: env://BAD_KEY
    - id: rose-venue
      mode: hybrid
      keys:
        openai: env://ROSE_KEY
    - id: lily-florist
      mode: client
      keys:
        openai: env://LILY_KEY
    - id: pat-planner
      mode: platform
`})
			h.up.Script(fc.fault.ForKey(badKey).Repeat(-1))
			bystanders := map[string]string{"rose-venue": "client", "lily-florist": "client", "pat-planner": "platform"}
			const calls = 12
			type result struct {
				supplier, source, failover, id string
				err                            error
			}
			results := make(chan result, calls*4)
			var wg sync.WaitGroup
			for _, sup := range []string{"bad-bakery", "rose-venue", "lily-florist", "pat-planner"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := h.clientFor(sup)
					for range calls {
						resp, err := c.CreateChatCompletion(ctxT(t), weddingChat)
						results <- result{supplier: sup, source: resp.Header().Get("X-Veil-Key-Source"),
							failover: resp.Header().Get("X-Veil-Failover"), id: resp.Header().Get("X-Request-Id"), err: err}
					}
				}()
			}
			wg.Wait()
			close(results)
			for r := range results {
				if r.err != nil {
					t.Errorf("%s: a call failed: %v", r.supplier, r.err)
					continue
				}
				rec := tp.one(t, r.id)
				if want, ok := bystanders[r.supplier]; ok {
					if r.source != want || r.failover == "true" || string(rec.Billed) != want {
						t.Errorf("%s: served on %s (failover %q), billed %s; want its own %s key, untouched", r.supplier,
							r.source, r.failover, rec.Billed, want)
					}
					continue
				}
				if r.source != "platform" || rec.Billed != "platform" || rec.Reason != "platform_fallback" {
					t.Errorf("bad-bakery: served on %s, billed %s, reason %q; want the platform fallback", r.source, rec.Billed,
						rec.Reason)
				}
			}
			logs := h.logs.String()
			if strings.Contains(logs, "alert: provider is down") || strings.Contains(logs, `"breaker":"open"`) {
				t.Errorf("one supplier's key took the provider out:\n%s", grepLines(logs, "alert"))
			}
			if alerts := grepLines(logs, "alert: supplier key is out"); strings.Count(alerts, "\n") != 0 ||
				!strings.Contains(alerts, `"supplier":"bad-bakery"`) || !strings.Contains(alerts, fc.cause) {
				t.Errorf("want one supplier key alert for bad-bakery with cause %q:\n%s", fc.cause, grepLines(logs, "alert"))
			}
			// Once the key is held out, the failing supplier's calls go
			// straight to the fallback: the fake saw far fewer calls with
			// its key than the supplier made.
			withBad := 0
			for _, r := range h.up.Requests() {
				if strings.Contains(r.Header.Get("Authorization"), badKey) {
					withBad++
				}
			}
			if withBad >= calls {
				t.Errorf("the failing key was tried %d times for %d calls: it was never held out", withBad, calls)
			}
		})
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
