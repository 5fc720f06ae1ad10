package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/wedsync/veil/compare"
)

// TestCompareReportCommand: `veil compare report` prints a running
// comparison's report from a running veil, as text and as JSON, and
// --help describes it.
func TestCompareReportCommand(t *testing.T) {
	v := startMigrateVeil(t)
	cfg := v.config
	out := mustRun(t, "migrate", "compare", "--config", cfg, "--supplier", "rose-venue", "--requests", "0", "--sample", "1",
		"--window", "2h")
	id := regexp.MustCompile(`cmp_[a-z0-9]+`).FindString(out)
	if id == "" {
		t.Fatalf("no comparison ID:\n%s", out)
	}
	for range 3 {
		if resp := v.post(t, "rose-venue", "gpt-4o-mini"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	var rep compare.Report
	for i := 0; ; i++ { // the shadow calls run after the answers, in the background
		out = mustRun(t, "compare", "report", "--config", cfg, "--output", "json", id)
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("--output json: %v\n%s", err, out)
		}
		if rep.Comparison.Recorded == 3 {
			break
		}
		if i == 500 {
			t.Fatalf("the report never had the 3 pairs: %+v", rep.Comparison)
		}
		sleepBriefly()
	}
	if rep.Comparison.ID != id || rep.Comparison.Shadowed != 3 || rep.Sample.Recorded != 3 || rep.Recommendation != compare.CollectMore {
		t.Errorf("report: %+v, sample %+v, %s", rep.Comparison, rep.Sample, rep.Recommendation)
	}
	if len(rep.Workflows) != 1 || rep.Workflows[0].Workflow != compare.NoWorkflow || rep.Workflows[0].Sample.Recorded != 3 {
		t.Errorf("workflows %+v", rep.Workflows)
	}
	if rep.Primary.PaidBy != "platform" || rep.Shadow.PaidBy != "client" || len(rep.Cost.ByPayer) != 2 || rep.Cost.NowMicros <= 0 {
		t.Errorf("payers %s/%s, cost %+v", rep.Primary.PaidBy, rep.Shadow.PaidBy, rep.Cost)
	}
	if p := rep.Projection; p == nil || len(p.Months) != 12 || p.Basis == "" {
		t.Errorf("projection %+v", p)
	}
	wantAll(t, "json", out, `"latency_histogram": [`, `"histogram": [`, `"text": "Comparison `+id)

	out = mustRun(t, "compare", "report", id, "--config", cfg)
	wantAll(t, "text", out, "Comparison "+id+" for rose-venue: platform (primary) against client (shadow), running",
		"paid by", "Cost, who pays", "paid by WedSync", "By workflow", compare.NoWorkflow+" ", "Projection, next 12 months",
		"Recommendation: "+compare.CollectMore, "Sample: 3 pairs recorded, 3 compared")

	out = mustRun(t, "compare", "report", "--help")
	wantAll(t, "help", out, "Usage: veil compare report", "--output", "12-month projection")
	out = mustRun(t, "compare", "--help")
	wantAll(t, "help", out, "report", "who pays", "calibrate")
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"compare"}, 2, "needs a command: report, calibrate"},
		{[]string{"compare", "tally"}, 2, `has no command "tally"`},
		{[]string{"compare", "report", "--config", cfg}, 2, "one comparison ID"},
		{[]string{"compare", "report", id}, 2, "needs --config"},
		{[]string{"compare", "report", "--config", cfg, "--output", "yaml", id}, 2, "text or json"},
		{[]string{"compare", "report", "--config", cfg, "cmp_nosuchthing"}, 1, "comparison not found"},
	} {
		code, _, errOut := runCmd(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("veil %s: exit %d, %q; want %d and %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.err)
		}
	}
}
