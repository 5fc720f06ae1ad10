package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/internal/fakeopenai"
)

// twoOrganisations is a setup whose provider "pool" (serving models, a
// YAML list) holds two platform keys of an organisation of 10 requests an
// hour and one of an organisation of 1,000, at the fake, followed by the
// providers in more (YAML items); it returns the small organisation's two
// keys.
func twoOrganisations(models, more string) (setup, []string) {
	keyA1, keyA2, keyB := secret("sk-org-a-1-"), secret("sk-org-a-2-"), secret("sk-org-b-")
	return setup{
		fake: fakeopenai.Options{Keys: []string{keyA1, keyA2, keyB}, LimitWindow: time.Hour, Accounts: []fakeopenai.Account{
			{Organization: "org-wedsync-small", Keys: []string{keyA1, keyA2}, RequestLimit: 10},
			{Organization: "org-wedsync-large", Keys: []string{keyB}, RequestLimit: 1000},
		}},
		env: map[string]string{"KEY_A1": keyA1, "KEY_A2": keyA2, "KEY_B": keyB},
		providers: `
  - name: pool
    type: openai
    base_url: %s
    api_keys: [env://KEY_A1, env://KEY_A2, env://KEY_B]
    models: ` + models + more,
	}, []string{keyA1, keyA2}
}

// TestPoolHeadroomOverOrganisations: a provider whose pool holds two keys
// of one OpenAI organisation with a small rate limit and a key of another
// with a large one has the headroom of both, each organisation counted
// once, not whichever answered last: load-aware routing keeps sending it
// its share though the small organisation is below min_headroom, and
// veil capacity, /admin/status and the metric say the same. Apps never see
// the organisations.
func TestPoolHeadroomOverOrganisations(t *testing.T) {
	roomy := upstream(t, fakeopenai.Options{})
	su, _ := twoOrganisations("[gpt-4o-mini, gpt-4o]", `
  - name: roomy
    type: openai
    base_url: `+roomy.URL()+`
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]`)
	su.extra = yearRoundSpread("    min_headroom: 0.5\n", "{pool: 1, roomy: 1}")
	h := start(t, su)

	// Nine calls only the pool serves: three rounds of its keys, so the
	// small organisation has 4 of its 10 requests left (40%, below
	// min_headroom) and the large one 997 of 1000.
	for range 9 {
		resp, body := post(t, h, testSupplier, `{"model":"gpt-4o","messages":[{"role":"user","content":"A toast."}]}`)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Veil-Provider") != "pool" {
			t.Fatalf("status %d from %q: %s", resp.StatusCode, resp.Header.Get("X-Veil-Provider"), body)
		}
		if org := resp.Header.Get("Openai-Organization"); org != "" {
			t.Errorf("the app saw organisation %q", org)
		}
	}
	s := h.view(t, "pool")
	if s.Pool == nil || s.Pool.Accounts != 2 || s.Pool.Requests.Limit == nil || *s.Pool.Requests.Limit != 1010 ||
		*s.Pool.Requests.Remaining != 1001 {
		t.Fatalf("pool %+v: want two organisations, 1001 of 1010 requests left", s.Pool)
	}
	if s.Headroom == nil || *s.Headroom < 0.98 {
		t.Errorf("headroom %v, want about 1001/1010", s.Headroom)
	}

	code, body := h.admin("/admin/capacity", h.adminToken)
	var rep admin.CapacityReport
	if err := json.Unmarshal([]byte(body), &rep); code != http.StatusOK || err != nil {
		t.Fatalf("/admin/capacity: %d %v %s", code, err, body)
	}
	for _, p := range rep.Providers {
		if p.Provider == "pool" && (p.Accounts != 2 || *p.Requests.Limit != 1010 || *p.Requests.Remaining != 1001) {
			t.Errorf("capacity of the pool %+v, requests %+v", p, p.Requests)
		}
	}
	if f := rep.Forecast.RequestsPerMinute; f == nil || *f != 1010 { // roomy has not answered yet
		t.Errorf("capacity %v requests per minute, want the 1010 of the pool's two organisations", f)
	}
	_, metrics := h.admin("/metrics", "")
	want := `veil_provider_headroom_ratio{kind="requests",provider="pool"} ` + strconv.FormatFloat(1001.0/1010, 'g', -1, 64)
	if !strings.Contains(metrics, "\n"+want+"\n") {
		t.Errorf("/metrics lacks %q", want)
	}

	// Spread over the pool and roomy, the pool keeps its share: the small
	// organisation is used up on the way (its keys' 429s go to the large
	// one's key), and the pool's headroom stays high.
	served := map[string]int{}
	for range 30 {
		p, _ := chatOnce(t, h)
		served[p]++
	}
	if served["pool"] < 3 || served["roomy"] < 3 {
		t.Errorf("served %v: want both providers used, the pool by its headroom over both organisations", served)
	}
	s = h.view(t, "pool")
	if s.Pool == nil || s.Pool.Accounts != 2 || s.Headroom == nil || *s.Headroom < 0.95 {
		t.Errorf("after the spread: pool %+v, headroom %v", s.Pool, s.Headroom)
	}
}

// TestPoolRestsAnExhaustedOrganisation: a pool of two keys in an
// organisation of 10 requests an hour and one key in an organisation of
// 1,000. The answer that uses up the small organisation's tenth request
// says so (x-ratelimit-remaining-requests: 0), and both its keys rest:
// the following calls go to the large organisation's key at once, none
// is refused with a 429 first, each takes one attempt.
func TestPoolRestsAnExhaustedOrganisation(t *testing.T) {
	su, smallKeys := twoOrganisations("[gpt-4o-mini]", "")
	h := start(t, su)
	for i := range 30 {
		if p, attempts := chatOnce(t, h); p != "pool" || attempts != "1" {
			t.Errorf("call %d: provider %q in %s attempts, want one attempt", i+1, p, attempts)
		}
	}
	small := 0
	for _, r := range h.up.Requests() {
		if a := r.Header.Get("Authorization"); a == "Bearer "+smallKeys[0] || a == "Bearer "+smallKeys[1] {
			small++
		}
	}
	if small != 10 {
		t.Errorf("the small organisation's keys were sent %d calls, want its 10: no call after it was used up", small)
	}
}
