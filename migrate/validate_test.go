package migrate

import (
	"strings"
	"testing"
	"time"
)

// outcome is a batch of identical outcomes for Observe.
type outcome struct {
	n       int
	status  int
	latency time.Duration
	cost    float64
}

// TestValidate checks Validate's figures against Observe calls with known
// latencies, statuses and costs, and its verdict by the gates.
func TestValidate(t *testing.T) {
	// The source: 90 at 100ms and 10 at 400ms, all fine, $0.002 each.
	source := []outcome{{90, 200, 100 * time.Millisecond, 0.002}, {10, 200, 400 * time.Millisecond, 0.002}}
	for _, tc := range []struct {
		name        string
		target      []outcome
		requests    int64
		success     float64
		p50, p95    float64
		per1k       float64
		ratio       float64
		verdict     string
		reasonMatch string
	}{
		{
			name:     "pass",
			target:   []outcome{{92, 200, 200 * time.Millisecond, 0.001}, {6, 200, 432 * time.Millisecond, 0.001}, {1, 503, 0, 0.001}, {1, 0, 0, 0.001}},
			requests: 100, success: 0.98, p50: 200, p95: 432, per1k: 1, ratio: 1.08, verdict: VerdictPass,
			reasonMatch: "target errors 2.0% of 100, p95 432ms 1.08x the source's 400ms",
		},
		{
			name:     "slower",
			target:   []outcome{{94, 200, 200 * time.Millisecond, 0.001}, {6, 200, 800 * time.Millisecond, 0.001}},
			requests: 100, success: 1, p50: 200, p95: 800, per1k: 1, ratio: 2, verdict: VerdictFail,
			reasonMatch: "target p95 800ms is 2.00x the source's 400ms, above the 1.50x gate",
		},
		{
			name:     "failing",
			target:   []outcome{{90, 200, 200 * time.Millisecond, 0.003}, {10, 429, 200 * time.Millisecond, 0}},
			requests: 100, success: 0.90, p50: 200, p95: 200, per1k: 2.7, ratio: 0.5, verdict: VerdictFail,
			reasonMatch: "target error rate 10.0% (10 of 100) above the 5.0% gate",
		},
		{
			name:     "too few",
			target:   []outcome{{10, 200, 5 * time.Millisecond, 0.001}},
			requests: 10, success: 1, p50: 5, p95: 5, per1k: 1, ratio: 1 / 400.0 * 5, verdict: VerdictInsufficient,
			reasonMatch: "need 20 requests per path: 10 of 20 target requests",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
			mg := startMigration(t, r, "capture-moments", nil)
			for _, o := range source {
				for range o.n {
					r.m.Observe(mg.ID, false, o.status, o.latency, o.cost)
				}
			}
			for _, o := range tc.target {
				for range o.n {
					r.m.Observe(mg.ID, true, o.status, o.latency, o.cost)
				}
			}
			v, err := r.m.Validate(t.Context(), mg.ID)
			if err != nil {
				t.Fatal(err)
			}
			src := v.Source
			if src.Requests != 100 || src.Errors != 0 || src.SuccessRate != 1 || src.P50MS != 100 || src.P95MS != 400 ||
				!near(src.CostUSD, 0.2) || !near(src.CostPer1kUSD, 2) || src.System != mg.From {
				t.Errorf("source %+v", src)
			}
			tgt := v.Target
			if tgt.Requests != tc.requests || !near(tgt.SuccessRate, tc.success) || tgt.P50MS != tc.p50 || tgt.P95MS != tc.p95 ||
				!near(tgt.CostPer1kUSD, tc.per1k) || tgt.System != mg.To {
				t.Errorf("target %+v, want %d requests, success %v, p50 %v, p95 %v, $%v per 1k",
					tgt, tc.requests, tc.success, tc.p50, tc.p95, tc.per1k)
			}
			if !near(v.P95Ratio, tc.ratio) {
				t.Errorf("p95 ratio %v, want %v", v.P95Ratio, tc.ratio)
			}
			if v.Verdict != tc.verdict || len(v.Reasons) == 0 || !strings.Contains(v.Reasons[0], tc.reasonMatch) {
				t.Errorf("verdict %s %q, want %s with %q", v.Verdict, v.Reasons, tc.verdict, tc.reasonMatch)
			}
			if len(v.Stages) != 3 || v.Stages[0].Target.Requests != tc.requests || v.Stages[0].Share != 0.1 || v.Stages[1].Source.Requests != 0 {
				t.Errorf("stages %+v", v.Stages)
			}
		})
	}
}

// TestValidateByStage: counts go to the stage the replica sees.
func TestValidateByStage(t *testing.T) {
	r := newRig(t, openStore(t, "embedded"), "pod-a", nil)
	mg := startMigration(t, r, "capture-moments", nil)
	feed(r.m, mg.ID, true, 20, 0, 10*time.Millisecond, 0)
	feed(r.m, mg.ID, false, 30, 0, 10*time.Millisecond, 0)
	r.clock.Advance(DefaultDwell)
	r.step(t)
	feed(r.m, mg.ID, true, 7, 0, 10*time.Millisecond, 0)
	v, err := r.m.Validate(t.Context(), mg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Stage != 1 || v.Stages[0].Target.Requests != 20 || v.Stages[0].Source.Requests != 30 ||
		v.Stages[1].Target.Requests != 7 || v.Target.Requests != 27 || v.Stages[1].Share != 0.5 {
		t.Errorf("validation %+v", v)
	}
}
