package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/usage"
)

// postWorkflow sends body to veil's chat endpoint as supplier, in a
// workflow unless it is empty, and returns the answer's status and veil's
// request id.
func postWorkflow(t *testing.T, h *harness, supplier, workflow, body string) (status int, id string) {
	t.Helper()
	resp, _ := post(t, h, supplier, body, "X-Workflow", workflow)
	return resp.StatusCode, resp.Header.Get("X-Request-Id")
}

// usageReport polls GET /admin/usage?query, whose aggregates are written
// in the background, until done holds of it.
func (h *harness) usageReport(t *testing.T, query string, done func(admin.UsageReport) bool) admin.UsageReport {
	t.Helper()
	var rep admin.UsageReport
	waitFor(t, func() bool {
		code, body := h.adminDo(http.MethodGet, "/admin/usage?"+query, "")
		if code != http.StatusOK {
			t.Fatalf("GET /admin/usage?%s: status %d: %s", query, code, body)
		}
		rep = admin.UsageReport{}
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("GET /admin/usage?%s: %v: %s", query, err, body)
		}
		return done(rep)
	})
	return rep
}

// TestUsageByBilledAndWorkflow: calls in two workflows, and none, served
// and refused by veil, show in /admin/usage?group_by=billed,workflow with
// the sums of their records: who pays and the workflow, each apart.
func TestUsageByBilledAndWorkflow(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{tap: tp.add, extra: usagePrices + `tiers:
  - name: tiny
    requests_per_minute: 1
suppliers:
  entries:
    - id: tiny-florist
      mode: platform
      tier: tiny
`})
	calls := []struct {
		supplier, workflow string
		status             int
	}{
		{testSupplier, "photography", 200}, {testSupplier, "photography", 200}, {testSupplier, "photography", 200},
		{testSupplier, "venue", 200}, {testSupplier, "venue", 200}, {testSupplier, "", 200},
		{"tiny-florist", "venue", 200}, {"tiny-florist", "venue", 429}, // over its quota: veil's refusal
	}
	for i, c := range calls {
		if status, _ := postWorkflow(t, h, c.supplier, c.workflow, chatBody); status != c.status {
			t.Fatalf("call %d (%s, %q): status %d, want %d", i, c.supplier, c.workflow, status, c.status)
		}
	}
	records := tp.wait(t, len(calls))

	type group struct{ billed, workflow string }
	want := map[group]admin.UsageRow{}
	for _, r := range records {
		g := group{string(r.Billed), r.Workflow}
		w := want[g]
		w.Billed, w.Workflow = g.billed, g.workflow
		w.Requests++
		w.PromptTokens += r.PromptTokens
		w.CompletionTokens += r.CompletionTokens
		w.CachedTokens += r.CachedTokens
		if r.CostMicros != nil {
			w.CostMicros += *r.CostMicros
		}
		want[g] = w
	}
	for g, n := range map[group]int64{
		{"platform", "photography"}: 3, {"platform", "venue"}: 3, {"platform", ""}: 1, {"none", "venue"}: 1,
	} {
		if want[g].Requests != n {
			t.Errorf("records billed %q in workflow %q: %d, want %d", g.billed, g.workflow, want[g].Requests, n)
		}
	}
	rep := h.usageReport(t, "group_by=billed,workflow", func(rep admin.UsageReport) bool {
		return rep.Total.Requests >= int64(len(calls))
	})
	if strings.Join(rep.GroupBy, ",") != "billed,workflow" || rep.Total.Requests != int64(len(calls)) {
		t.Errorf("report by %v with %d requests, want billed,workflow and %d", rep.GroupBy, rep.Total.Requests, len(calls))
	}
	got := map[group]admin.UsageRow{}
	for _, r := range rep.Rows {
		r.CostUSD = 0
		got[group{r.Billed, r.Workflow}] = r
	}
	if len(got) != len(want) {
		t.Errorf("%d rows, want %d: %+v", len(got), len(want), rep.Rows)
	}
	for g, w := range want {
		if got[g] != w {
			t.Errorf("billed %q, workflow %q: aggregate %+v, records sum to %+v", g.billed, g.workflow, got[g], w)
		}
	}
	if got[group{"platform", "photography"}].CostMicros <= 0 {
		t.Error("the photography calls cost nothing")
	}
	if r := got[group{string(billing.PaidByNone), "venue"}]; r.CostMicros != 0 || r.PromptTokens != 0 {
		t.Errorf("the refusal costs %+v", r)
	}
}

// TestShadowWithoutKeyBillsNobody: a comparison's shadow call that never
// reached a provider (the supplier has no key of its own to try) is
// recorded billed to nobody.
func TestShadowWithoutKeyBillsNobody(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{tap: tp.add, extra: usagePrices + `suppliers:
  entries:
    - id: rose-venue
      mode: platform
`})
	h.adminJSON(t, "POST", "/admin/comparisons", `{"supplier":"rose-venue","other":"client","requests":2,"sample":1}`, 201, nil)
	var shadow *usage.Record
	for i := 0; shadow == nil && i < 200; i++ {
		if status, _ := postWorkflow(t, h, "rose-venue", "", chatBody); status != http.StatusOK {
			t.Fatalf("request %d: status %d", i, status)
		}
		time.Sleep(20 * time.Millisecond)
		for _, r := range tp.all() {
			if r.Shadow {
				shadow = r
			}
		}
	}
	if shadow == nil {
		t.Fatal("no shadow record")
	}
	if shadow.Billed != billing.PaidByNone || shadow.Error == "" || shadow.TotalTokens != 0 {
		t.Errorf("shadow record: billed %q, error %q, %d tokens; want billed none for a call no provider got",
			shadow.Billed, shadow.Error, shadow.TotalTokens)
	}
}
