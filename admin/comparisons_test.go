package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/store"
)

// TestReportComparison: GET /admin/comparisons/{id} answers the report,
// with its workflows, payer split and projection, and its text; an
// unknown comparison is 404.
func TestReportComparison(t *testing.T) {
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := compare.New(compare.Options{Store: st, Usage: st})
	cmp, err := c.Start(context.Background(), compare.Request{Supplier: "everafter", Other: billing.ModeClient, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, wf := range []string{"timeline", "timeline", "guest-messages"} {
		c.Record(cmp.ID, compare.Pair{Workflow: wf, Primary: billing.Outcome{Status: 200, CostMicros: 30, Text: "yes"},
			Shadow: billing.Outcome{Status: 200, CostMicros: 30, Text: "yes"}})
	}
	h := admin.ReportComparison(c)
	status, doc := h(context.Background(), admin.Call{Param: cmp.ID})
	if status != http.StatusOK {
		t.Fatalf("status %d: %+v", status, doc)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"workflows":[{"workflow":"timeline"`, `"by_payer":[`, `"projection":{`, `"sample":{"pairs_recorded":3`,
		`"text":"Comparison ` + cmp.ID} {
		if !strings.Contains(string(b), want) {
			t.Errorf("document lacks %s:\n%s", want, b)
		}
	}
	if rep := doc.(admin.CompareReportDoc); !strings.Contains(rep.Text, "By workflow") || rep.Text != rep.Report.Text() {
		t.Errorf("text:\n%s", rep.Text)
	}
	if status, doc := h(context.Background(), admin.Call{Param: "cmp_missing"}); status != http.StatusNotFound {
		t.Errorf("unknown comparison: %d %+v", status, doc)
	}
}
