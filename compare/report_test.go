package compare

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// wfPair returns one pair of a workflow: both answered with the same text
// in lat and lat+1 ms, at costNow and costAfter micro-dollars; edit
// changes it.
func wfPair(workflow string, i int, costNow, costAfter int64, edit func(p *Pair)) Pair {
	text := fmt.Sprintf("Week %d: confirm the florist and the seating plan", i)
	p := Pair{Workflow: workflow,
		Primary: billing.Outcome{Status: 200, Latency: time.Duration(100+i%50) * time.Millisecond, PromptTokens: 300,
			CompletionTokens: 120, CostMicros: costNow, CostUSD: float64(costNow) / 1e6, Text: text},
		Shadow: billing.Outcome{Status: 200, Latency: time.Duration(101+i%50) * time.Millisecond, PromptTokens: 300,
			CompletionTokens: 120, CostMicros: costAfter, CostUSD: float64(costAfter) / 1e6, Text: text}}
	if edit != nil {
		edit(&p)
	}
	return p
}

// recordN records n pairs of a workflow.
func recordN(c *Comparisons, id, workflow string, n int, costNow, costAfter int64, edit func(i int, p *Pair)) {
	for i := range n {
		c.Record(id, wfPair(workflow, i, costNow, costAfter, func(p *Pair) {
			if edit != nil {
				edit(i, p)
			}
		}))
	}
}

// workflowOf returns the named workflow of a report.
func workflowOf(t *testing.T, r Report, name string) WorkflowReport {
	t.Helper()
	for _, w := range r.Workflows {
		if w.Workflow == name {
			return w
		}
	}
	t.Fatalf("no workflow %q in %d workflows", name, len(r.Workflows))
	return WorkflowReport{}
}

// TestWorkflowsMergedAcrossReplicas: two replicas record pairs of the same
// and of different workflows; a third reports their sums per workflow.
func TestWorkflowsMergedAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	clock := newCmpClock()
	st := newCmpStore(t)
	a, b := newCmp(st, clock, "a"), newCmp(st, clock, "b")
	cmp := mustStart(t, a, Request{Supplier: "everafter", Other: "client", Window: time.Hour, Sample: 1})
	mustSync(t, b)
	recordN(a, cmp.ID, "timeline", 20, 100, 100, nil)
	recordN(b, cmp.ID, "timeline", 25, 100, 100, func(i int, p *Pair) {
		if i < 10 { // similar in part: 5 / sqrt(11 * 4), below the threshold
			p.Shadow.Text = fmt.Sprintf("Week %d: confirm the", i)
		}
	})
	recordN(a, cmp.ID, "guests", 10, 40, 40, nil)
	recordN(b, cmp.ID, "", 3, 40, 40, nil)
	mustSync(t, a, b)
	r, err := newCmp(st, clock, "c").Report(ctx, cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sample != (Sample{Recorded: 58, Compared: 58, Needed: MinPairs}) || len(r.Workflows) != 3 {
		t.Fatalf("sample %+v, %d workflows", r.Sample, len(r.Workflows))
	}
	if names := []string{r.Workflows[0].Workflow, r.Workflows[1].Workflow, r.Workflows[2].Workflow}; strings.Join(names, ",") !=
		"timeline,guests,"+NoWorkflow {
		t.Errorf("workflows %v, want most pairs first", names)
	}
	tl := workflowOf(t, r, "timeline")
	if tl.Sample.Recorded != 45 || tl.Primary.Requests != 45 || tl.Shadow.Requests != 45 || tl.Primary.CostMicros != 4500 {
		t.Errorf("timeline: %+v", tl)
	}
	if tl.Similarity.Pairs != 45 || tl.Similarity.Similar != 35.0/45 || tl.Similarity.Method != Lexical || tl.Similarity.Mean < 0.9 {
		t.Errorf("timeline similarity %+v", tl.Similarity)
	}
	if got := tl.Similarity.Histogram[7].Count + tl.Similarity.Histogram[9].Count; got != 45 || tl.Similarity.Histogram[7].Count != 10 {
		t.Errorf("timeline similarity histogram %+v", tl.Similarity.Histogram)
	}
	var inBuckets int64
	for _, bk := range tl.Shadow.LatencyHistogram {
		inBuckets += bk.Count
	}
	if inBuckets != 45 || tl.Shadow.LatencyHistogram[2].Count != 45 { // 101 to 150 ms
		t.Errorf("timeline shadow latency histogram %+v", tl.Shadow.LatencyHistogram)
	}
	if tl.Recommendation != Stay || !strings.Contains(strings.Join(tl.Reasons, " "), "Only 77.8% of the answers are similar (lexical, at least 0.80), fewer than 80.0%.") {
		t.Errorf("timeline: %s %q", tl.Recommendation, tl.Reasons)
	}
	if g := workflowOf(t, r, "guests"); g.Sample.Recorded != 10 || g.Recommendation != CollectMore || g.Share != 10.0/58 {
		t.Errorf("guests: %+v", g)
	}
	// The overall figures are the workflows' sums.
	if r.Primary.Requests != 58 || r.Primary.CostMicros != 4500+400+120 || r.Cost.NowMicros != 5020 {
		t.Errorf("overall primary %+v, cost %+v", r.Primary, r.Cost)
	}
}

// TestWorkflowsBounded: a replica keeps MaxWorkflows workflows and counts
// the rest as other; across replicas that saw different ones, the report
// keeps the MaxWorkflows with the most pairs and folds the others into
// other, losing no pair.
func TestWorkflowsBounded(t *testing.T) {
	ctx := context.Background()
	clock := newCmpClock()
	st := newCmpStore(t)
	a, b := newCmp(st, clock, "a"), newCmp(st, clock, "b")
	cmp := mustStart(t, a, Request{Supplier: "everafter", Other: "client", Window: time.Hour})
	mustSync(t, b)
	for i := range 25 { // w00 to w24 on a: w20 and later are other
		recordN(a, cmp.ID, fmt.Sprintf("w%02d", i), 2, 10, 10, nil)
	}
	for i := 10; i < 30; i++ { // w10 to w29 on b, more pairs for the later ones
		recordN(b, cmp.ID, fmt.Sprintf("w%02d", i), 1+i/20*5, 10, 10, nil)
	}
	recordN(b, cmp.ID, strings.Repeat("x", maxWorkflowName+1), 1, 10, 10, nil)
	a.mu.Lock()
	own := a.entries[cmp.ID].stats
	a.mu.Unlock()
	if own.namedWorkflows() != MaxWorkflows || own.Workflows[OtherWorkflow] == nil || own.Workflows[OtherWorkflow].Pairs != 10 {
		t.Errorf("replica a keeps %d workflows, other %+v", own.namedWorkflows(), own.Workflows[OtherWorkflow])
	}
	mustSync(t, a, b)
	r, err := newCmp(st, clock, "c").Report(ctx, cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Workflows) != MaxWorkflows+1 {
		t.Fatalf("%d workflows in the report, want %d and other", len(r.Workflows), MaxWorkflows)
	}
	var sum int64
	for _, w := range r.Workflows {
		sum += w.Sample.Recorded
	}
	if sum != r.Sample.Recorded || sum != 50+10*1+10*6+1 {
		t.Errorf("the workflows add up to %d pairs, the report has %d", sum, r.Sample.Recorded)
	}
	if w := r.Workflows[0]; w.Workflow != "w20" || w.Sample.Recorded != 6 {
		t.Errorf("first workflow %s with %d pairs, want w20 with 6", w.Workflow, w.Sample.Recorded)
	}
}

// TestOldDocumentReadable: a comparison stored before workflows, scores,
// histograms and micro-dollars reads as before, its cost converted.
func TestOldDocumentReadable(t *testing.T) {
	ctx := context.Background()
	clock := newCmpClock()
	st := newCmpStore(t)
	doc := `{"id":"cmp_legacy000001","request":{"supplier":"bella","other":"client","window":3600000000000,"sample":1,` +
		`"billed":"platform"},"primary":"platform","started":"2026-06-13T09:00:00Z","status":"done","reason":"window",` +
		`"replicas":{"old":{"shadowed":2,"seen":"2026-06-13T09:30:00Z","pairs":2,` +
		`"primary":{"requests":2,"errors":0,"prompt_tokens":10,"completion_tokens":20,"cost_nanos":3000400},` +
		`"shadow":{"requests":2,"errors":0,"prompt_tokens":10,"completion_tokens":20,"cost_nanos":2999600},` +
		`"compared":2,"sim_sum":1.5,"similar":1,"samples":[{"pl":120000000,"sl":130000000,"sim":1,"both":true},` +
		`{"pl":80000000,"sl":90000000,"sim":0.5,"both":true}]}}}`
	if _, err := st.Put(ctx, Bucket, "cmp_legacy000001", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	r, err := newCmp(st, clock, "a").Report(ctx, "cmp_legacy000001")
	if err != nil {
		t.Fatal(err)
	}
	if r.Primary.CostMicros != 3000 || r.Shadow.CostMicros != 3000 || r.Comparison.Recorded != 2 || r.Comparison.Shadowed != 2 {
		t.Errorf("legacy figures: primary %+v shadow %+v comparison %+v", r.Primary, r.Shadow, r.Comparison)
	}
	if r.Similarity.Method != Lexical || r.Similarity.Threshold != SimilarThreshold || r.Similarity.Mean != 0.75 ||
		r.Similarity.Histogram[5].Count != 1 || r.Similarity.Histogram[9].Count != 1 {
		t.Errorf("legacy similarity %+v", r.Similarity)
	}
	if h := r.Primary.LatencyHistogram; h[1].Count != 1 || h[2].Count != 1 {
		t.Errorf("legacy latency histogram %+v", h)
	}
	if len(r.Workflows) != 0 || r.Recommendation != CollectMore {
		t.Errorf("legacy: %d workflows, %s", len(r.Workflows), r.Recommendation)
	}
}

// TestPayerSplit: each side says who pays, and the cost is split between
// WedSync and the supplier now and after a move, both ways; on the same
// price only who pays changes.
func TestPayerSplit(t *testing.T) {
	for _, tc := range []struct {
		name                string
		current, other      billing.Mode
		billed              billing.Payer
		costNow, costAfter  int64
		wantNow, wantAfter  billing.Payer
		samePrice           bool
		wantNote, wantTrial string
	}{
		{"platform to client, same price", billing.ModePlatform, billing.ModeClient, "", 29, 29, billing.PaidByPlatform,
			billing.PaidByClient, true, "After a move everafter pays for these calls instead of WedSync: $0.0290 per 1,000 requests instead of $0.0290.",
			"billed to WedSync"},
		{"client to platform, dearer", billing.ModeClient, billing.ModePlatform, billing.PaidByClient, 20, 30, billing.PaidByClient,
			billing.PaidByPlatform, false, "After a move WedSync pays for these calls instead of everafter: $0.0300 per 1,000 requests instead of $0.0200.",
			"billed to everafter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newCmpClock()
			c := New(Options{Store: newCmpStore(t), Now: clock.Now, Holder: "a",
				Current: func(string) billing.Mode { return tc.current }})
			cmp := mustStart(t, c, Request{Supplier: "everafter", Other: tc.other, Window: time.Hour, Billed: tc.billed})
			recordN(c, cmp.ID, "timeline", 1000, tc.costNow, tc.costAfter, nil)
			r, err := c.Report(context.Background(), cmp.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.Primary.PaidBy != tc.wantNow || r.Shadow.PaidBy != tc.wantAfter {
				t.Errorf("paid by %s now and %s after", r.Primary.PaidBy, r.Shadow.PaidBy)
			}
			now, after := 1000*tc.costNow, 1000*tc.costAfter
			co := r.Cost
			if co.Requests != 1000 || co.NowMicros != now || co.AfterMicros != after || co.NowPer1KMicros != now ||
				co.AfterPer1KMicros != after || co.SamePrice != tc.samePrice {
				t.Errorf("cost %+v", co)
			}
			for _, pc := range co.ByPayer {
				var wantNow, wantAfter int64
				if pc.Payer == tc.wantNow {
					wantNow = now
				}
				if pc.Payer == tc.wantAfter {
					wantAfter = after
				}
				if pc.NowMicros != wantNow || pc.AfterMicros != wantAfter || pc.NowPer1KMicros != wantNow || pc.AfterPer1KMicros != wantAfter {
					t.Errorf("%s pays %+v, want %d now and %d after", pc.Payer, pc, wantNow, wantAfter)
				}
			}
			if len(co.ByPayer) != 2 {
				t.Errorf("%d payers", len(co.ByPayer))
			}
			notes := strings.Join(r.Notes, "\n")
			if !strings.Contains(notes, tc.wantNote) || !strings.Contains(notes, tc.wantTrial) {
				t.Errorf("notes %q lack %q and %q", r.Notes, tc.wantNote, tc.wantTrial)
			}
			if tc.samePrice && !strings.Contains(strings.Join(r.Reasons, " "), "the move changes who pays, not what is paid") {
				t.Errorf("reasons %q do not say only who pays changes", r.Reasons)
			}
			if !tc.samePrice && r.Recommendation != Stay {
				t.Errorf("50%% dearer: %s", r.Recommendation)
			}
		})
	}
}

// TestRecommendationByWorkflow: each workflow gets its own advice, and the
// overall advice respects them.
func TestRecommendationByWorkflow(t *testing.T) {
	different := func(every int) func(i int, p *Pair) {
		return func(i int, p *Pair) {
			if i%every == 0 {
				p.Shadow.Text = "Sorry, I cannot help with that."
			}
		}
	}
	type wf struct {
		name string
		n    int
		edit func(i int, p *Pair)
		want string
	}
	for _, tc := range []struct {
		name      string
		workflows []wf
		want      string
		reason    string // a reason contains it
		note      string // a note contains it
	}{
		{"both good: migrate", []wf{{"timeline", 40, nil, Migrate}, {"guests", 40, nil, Migrate}}, Migrate,
			"costs the same per request", ""},
		{"timeline's answers degrade: stay, though the whole looks good", []wf{
			{"timeline", 40, different(3), Stay}, {"guests", 200, nil, Migrate}}, Stay,
			"Workflow timeline: The answers' mean similarity (lexical) is 0.65, below 0.80.", ""},
		{"timeline fails more: stay", []wf{
			{"timeline", 40, func(i int, p *Pair) {
				if i%10 == 0 {
					p.Shadow = billing.Outcome{Status: 503, Err: "upstream_unavailable"}
				}
			}, Stay}, {"guests", 160, nil, Migrate}}, Stay, "Workflow timeline: client failed 10.0% of requests", ""},
		{"timeline slower: stay", []wf{
			{"timeline", 40, func(i int, p *Pair) { p.Shadow.Latency = 3 * p.Primary.Latency }, Stay},
			{"guests", 400, nil, Migrate}}, Stay, "Workflow timeline: client's p95 latency", ""},
		{"too few timeline pairs: collect more data", []wf{{"timeline", 20, nil, CollectMore}, {"guests", 100, nil, Migrate}},
			CollectMore, "Workflow timeline has 20 pairs (16.7% of those recorded)", ""},
		{"a minor workflow with too few pairs: migrate, noted", []wf{
			{"timeline", 100, nil, Migrate}, {"guests", 100, nil, Migrate}, {"vendors", 5, nil, CollectMore}}, Migrate,
			"costs the same", "Workflow vendors has 5 pairs (2.4% of those recorded)"},
		{"too few pairs overall: collect more data", []wf{{"timeline", 15, nil, CollectMore}, {"guests", 10, nil, CollectMore}},
			CollectMore, "Only 25 pairs of answers were recorded", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newCmpClock()
			c := newCmp(newCmpStore(t), clock, "a")
			cmp := mustStart(t, c, Request{Supplier: "everafter", Other: "client", Window: time.Hour})
			for _, w := range tc.workflows {
				recordN(c, cmp.ID, w.name, w.n, 30, 30, w.edit)
			}
			r, err := c.Report(context.Background(), cmp.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.Recommendation != tc.want {
				t.Errorf("recommendation %q, want %q; reasons %q", r.Recommendation, tc.want, r.Reasons)
			}
			if !strings.Contains(strings.Join(r.Reasons, "\n"), tc.reason) {
				t.Errorf("no reason with %q in %q", tc.reason, r.Reasons)
			}
			if !strings.Contains(strings.Join(r.Notes, "\n"), tc.note) {
				t.Errorf("no note with %q in %q", tc.note, r.Notes)
			}
			for _, w := range tc.workflows {
				got := workflowOf(t, r, w.name)
				if got.Recommendation != w.want || len(got.Reasons) == 0 {
					t.Errorf("workflow %s: %q, want %q; reasons %q", w.name, got.Recommendation, w.want, got.Reasons)
				}
				if got.Sample.Recorded != int64(w.n) || got.Sample.Needed != MinPairs {
					t.Errorf("workflow %s sample %+v, want %d pairs", w.name, got.Sample, w.n)
				}
			}
			if !strings.Contains(r.Text(), "Recommendation: "+tc.want+"\nSample: ") {
				t.Errorf("text without the recommendation and its sample:\n%s", r.Text())
			}
		})
	}
}

// TestScoreThresholdPerWorkflow: a workflow's pairs are judged at the
// threshold their scores gave, and the method is named.
func TestScoreThresholdPerWorkflow(t *testing.T) {
	clock := newCmpClock()
	c := newCmp(newCmpStore(t), clock, "a")
	cmp := mustStart(t, c, Request{Supplier: "everafter", Other: "client", Window: time.Hour})
	recordN(c, cmp.ID, "timeline", 50, 30, 30, func(i int, p *Pair) {
		p.Score = Score{Value: 0.85, Method: "embedding", Threshold: 0.9} // similar lexically, not by this method
	})
	recordN(c, cmp.ID, "guests", 50, 30, 30, func(i int, p *Pair) {
		p.Score = Score{Value: 0.85, Method: "embedding", Threshold: 0.8}
	})
	r, err := c.Report(context.Background(), cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	tl, g := workflowOf(t, r, "timeline"), workflowOf(t, r, "guests")
	if tl.Similarity.Method != "embedding" || tl.Similarity.Threshold != 0.9 || tl.Similarity.Similar != 0 || tl.Recommendation != Stay {
		t.Errorf("timeline: %+v, %s %q", tl.Similarity, tl.Recommendation, tl.Reasons)
	}
	if g.Similarity.Threshold != 0.8 || g.Similarity.Similar != 1 || g.Recommendation != Migrate {
		t.Errorf("guests: %+v, %s %q", g.Similarity, g.Recommendation, g.Reasons)
	}
	if r.Recommendation != Stay || r.Similarity.Method != "embedding" || r.Similarity.Histogram[8].Count != 100 {
		t.Errorf("overall: %s, %+v", r.Recommendation, r.Similarity)
	}
}

// seedUsage adds a day's usage of a supplier's workflow to st.
func seedUsage(t *testing.T, st store.Aggregates, day time.Time, workflow, keySource, billed string, requests, micros int64) {
	t.Helper()
	id := fmt.Sprintf("seed-%s-%s-%s-%s", day.Format(time.DateOnly), workflow, keySource, billed)
	if err := st.AddUsage(context.Background(), id, store.Usage{Day: day, Supplier: "everafter", Provider: "openai",
		Model: "gpt-4o-mini", KeySource: keySource, Billed: billed, Workflow: workflow, Requests: requests, CostMicros: micros}); err != nil {
		t.Fatal(err)
	}
}

// seedPlannerHistory gives everafter a usage history from January 1 to
// June 12, 2026 on the platform's keys: timeline at 1,000 micro-dollars
// (10 requests) an off-peak day and 3,000 (30) a peak day, guests at 500
// (5) every day; and shadow calls on its own key, which a projection
// leaves out.
func seedPlannerHistory(t *testing.T, st store.Aggregates) {
	t.Helper()
	for d := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); d.Before(time.Date(2026, 6, 13, 0, 0, 0, 0, time.UTC)); d = d.AddDate(0, 0, 1) {
		n, cost := int64(10), int64(1000)
		if d.Month() >= time.March {
			n, cost = 30, 3000
		}
		seedUsage(t, st, d, "timeline", "platform", "platform", n, cost)
		seedUsage(t, st, d, "guests", "platform", "platform", 5, 500)
		seedUsage(t, st, d, "timeline", "client", "platform", 1, 99_999)
	}
}

// TestProjection: a year projected from a fixed usage history, with the
// season measured from it, each workflow scaled by its own cost ratio when
// it has enough pairs and by the whole comparison's otherwise, split by
// who pays.
func TestProjection(t *testing.T) {
	clock := newCmpClock() // 2026-06-13
	st := newCmpStore(t)
	seedPlannerHistory(t, st)
	c := New(Options{Store: st, Now: clock.Now, Holder: "a", Usage: st,
		Current: func(string) billing.Mode { return billing.ModePlatform }})
	cmp := mustStart(t, c, Request{Supplier: "everafter", Other: "client", Window: time.Hour})
	recordN(c, cmp.ID, "timeline", 40, 100, 50, nil) // half the cost: its own ratio
	recordN(c, cmp.ID, "guests", 10, 100, 100, nil)  // too few pairs: the overall ratio
	r, err := c.Report(context.Background(), cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Projection
	if p == nil {
		t.Fatal("no projection")
	}
	// The overall ratio: 5,000 micro-dollars now, 3,000 after.
	const overall = 0.6
	if p.HistoryFrom != "2026-01-01" || p.HistoryTo != "2026-06-12" || p.HistoryDays != 163 || !p.PeakFactorMeasured ||
		math.Abs(p.PeakFactor-3500.0/1500) > 1e-9 || p.Season != DefaultSeason {
		t.Errorf("history %s to %s, %d days, peak factor %v measured %v, season %q", p.HistoryFrom, p.HistoryTo, p.HistoryDays,
			p.PeakFactor, p.PeakFactorMeasured, p.Season)
	}
	if len(p.Months) != 12 || p.Months[0].Month != "2026-07" || p.Months[11].Month != "2027-06" {
		t.Fatalf("months %+v", p.Months)
	}
	for _, tc := range []struct {
		month              string
		peakDays           int
		requests, timeline int64
		guests             int64
	}{
		{"2026-07", 31, 31 * 35, 31 * 3000, 31 * 500},
		{"2026-12", 0, 31 * 15, 31 * 1000, 31 * 500},
		{"2027-02", 0, 28 * 15, 28 * 1000, 28 * 500},
		{"2027-03", 31, 31 * 35, 31 * 3000, 31 * 500},
	} {
		var m ProjectedMonth
		for _, pm := range p.Months {
			if pm.Month == tc.month {
				m = pm
			}
		}
		now := tc.timeline + tc.guests
		after := tc.timeline/2 + int64(float64(tc.guests)*overall)
		want := ProjectedMonth{Month: tc.month, PeakDays: tc.peakDays, Requests: tc.requests, NowMicros: now, AfterMicros: after,
			NowPlatformMicros: now, AfterClientMicros: after}
		if m != want {
			t.Errorf("month %s\n got %+v\nwant %+v", tc.month, m, want)
		}
	}
	var sumNow, sumAfter int64
	for _, m := range p.Months {
		sumNow, sumAfter = sumNow+m.NowMicros, sumAfter+m.AfterMicros
	}
	if p.Total.NowMicros != sumNow || p.Total.AfterMicros != sumAfter || p.Total.NowPlatformMicros != sumNow ||
		p.Total.AfterClientMicros != sumAfter || p.Total.NowClientMicros != 0 || p.Total.AfterPlatformMicros != 0 {
		t.Errorf("total %+v, months add up to %d now and %d after", p.Total, sumNow, sumAfter)
	}
	if len(p.Workflows) != 2 || p.Workflows[0].Workflow != "timeline" || p.Workflows[0].RatioFrom != "workflow" ||
		p.Workflows[0].Ratio != 0.5 || p.Workflows[1].RatioFrom != "overall" || p.Workflows[1].Ratio != overall {
		t.Errorf("workflows %+v", p.Workflows)
	}
	for _, want := range []string{"Projected from 163 days of everafter's usage on platform keys (2026-01-01 to 2026-06-12)",
		"peak season " + DefaultSeason, "timeline x0.500 from its 40 pairs", "guests x0.600 from all 50 pairs"} {
		if !strings.Contains(p.Basis, want) {
			t.Errorf("basis %q lacks %q", p.Basis, want)
		}
	}
	if notes := strings.Join(r.Notes, " "); !strings.Contains(notes, "Over the next 12 months the projection puts it at") {
		t.Errorf("notes %q", r.Notes)
	}
}

// TestProjectionSeason: a season from the config replaces March to
// October, and an empty history projects nothing and says so.
func TestProjectionSeason(t *testing.T) {
	clock := newCmpClock()
	st := newCmpStore(t)
	summer := func(d time.Time) bool { return d.Month() >= time.June && d.Month() <= time.August }
	c := New(Options{Store: st, Now: clock.Now, Holder: "a", Usage: st,
		Season: func() (string, func(time.Time) bool) { return `"peak" (06-01 to 08-31, from the config)`, summer }})
	cmp := mustStart(t, c, Request{Supplier: "everafter", Other: "client", Window: time.Hour})
	r, err := c.Report(context.Background(), cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Projection
	if p.Season != `"peak" (06-01 to 08-31, from the config)` || p.HistoryDays != 0 || p.Total.NowMicros != 0 ||
		!strings.Contains(p.Basis, "no usage on platform keys") {
		t.Errorf("projection %+v", p)
	}
	if p.Months[0].PeakDays != 31 || p.Months[2].PeakDays != 0 || p.Months[11].PeakDays != 30 { // July, September, June
		t.Errorf("peak days %+v", p.Months)
	}
	seedPlannerHistory(t, st)
	r, _ = c.Report(context.Background(), cmp.ID)
	if p := r.Projection; p.HistoryDays != 163 || !strings.Contains(p.Basis, "peak season \"peak\" (06-01 to 08-31") {
		t.Errorf("projection with history: %+v", p)
	}
	// Without a usage source there is no projection.
	if r, _ := newCmp(st, clock, "b").Report(context.Background(), cmp.ID); r.Projection != nil {
		t.Errorf("projection without a usage source: %+v", r.Projection)
	}
}

// TestReportJSON: the report's JSON names the fields the console reads.
func TestReportJSON(t *testing.T) {
	clock := newCmpClock()
	st := newCmpStore(t)
	c := New(Options{Store: st, Now: clock.Now, Holder: "a", Usage: st})
	cmp := mustStart(t, c, Request{Supplier: "everafter", Other: "client", Window: time.Hour})
	recordN(c, cmp.ID, "timeline", 3, 30, 30, nil)
	r, err := c.Report(context.Background(), cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"workflows":[{"workflow":"timeline"`, `"paid_by":"platform"`, `"paid_by":"client"`,
		`"latency_histogram":[{"from_ms":0,"to_ms":50,"count":0},`, `{"from_ms":60000,"count":0}]`,
		`"histogram":[{"from":0,"to":0.1,"count":0},`, `{"from":0.9,"to":1,"count":3}]`, `"method":"lexical"`,
		`"by_payer":[{"payer":"platform","now_micros":90,"after_micros":0,`, `"projection":{"basis":`, `"months":[{"month":"2026-07"`,
		`"sample":{"pairs_recorded":3,"pairs_compared":3,"pairs_needed":30}`, `"now_per_1k_micros":30000`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
}

// TestReportTextGolden: the text of a report with two workflows, the
// payer split and a projection. Run with -update to rewrite it.
func TestReportTextGolden(t *testing.T) {
	clock := newCmpClock()
	st := newCmpStore(t)
	seedPlannerHistory(t, st)
	c := New(Options{Store: st, Now: clock.Now, Holder: "a", Usage: st,
		Current: func(string) billing.Mode { return billing.ModePlatform }})
	cmp := mustStart(t, c, Request{Supplier: "everafter", Other: "client", Window: time.Hour, Sample: 1})
	for i := range 87 {
		if !shadowCall(c, "everafter", uint64(i)) {
			t.Fatalf("request %d not shadowed", i)
		}
	}
	recordN(c, cmp.ID, "timeline", 40, 60, 60, func(i int, p *Pair) {
		if i%4 == 0 {
			p.Shadow.Text = "The timeline: ceremony at noon, photos at one."
		}
	})
	recordN(c, cmp.ID, "guests", 45, 20, 20, nil)
	recordN(c, cmp.ID, "", 2, 20, 20, nil)
	clock.Advance(30 * time.Minute)
	if _, err := c.Stop(context.Background(), cmp.ID); err != nil {
		t.Fatal(err)
	}
	r, err := c.Report(context.Background(), cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(r.Text(), cmp.ID, "cmp_golden")
	path := filepath.Join("testdata", "report.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("text differs from %s (run with -update to rewrite it):\n%s", path, got)
	}
}

// TestFiguresWrittenAgainAfterAnOldWrite: a replica of an earlier version
// rewrites the document without the fields it does not know (workflows,
// micro-dollars); the replica that recorded them writes them again at its
// next pass.
func TestFiguresWrittenAgainAfterAnOldWrite(t *testing.T) {
	ctx := context.Background()
	clock := newCmpClock()
	st := newCmpStore(t)
	a := newCmp(st, clock, "a")
	cmp := mustStart(t, a, Request{Supplier: "everafter", Other: "client", Window: time.Hour})
	recordN(a, cmp.ID, "timeline", 5, 30, 30, nil)
	mustSync(t, a)
	value, version, err := st.Get(ctx, Bucket, cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(value, &doc); err != nil {
		t.Fatal(err)
	}
	part := doc["replicas"].(map[string]any)["a"].(map[string]any)
	delete(part, "workflows")
	for _, side := range []string{"primary", "shadow"} {
		delete(part[side].(map[string]any), "cost_micros")
	}
	old, _ := json.Marshal(doc)
	if _, ok, err := st.CompareAndSwap(ctx, Bucket, cmp.ID, version, old); err != nil || !ok {
		t.Fatalf("the old replica's write: %v %v", ok, err)
	}
	mustSync(t, a)
	r, err := newCmp(st, clock, "b").Report(ctx, cmp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Workflows) != 1 || r.Primary.CostMicros != 150 {
		t.Errorf("after the next pass: %d workflows, cost %d", len(r.Workflows), r.Primary.CostMicros)
	}
}

// TestLatencyFactorPerComparison: a comparison may allow more than
// LatencyFactor; the default refuses a shadow twice as slow, 3 accepts it.
func TestLatencyFactorPerComparison(t *testing.T) {
	p := Side{System: "platform", LatencyP95: 100 * time.Millisecond}
	s := Side{System: "client", LatencyP95: 200 * time.Millisecond}
	for _, tc := range []struct {
		req  Request
		stay bool
	}{{Request{}, true}, {Request{MaxP95Ratio: 3}, false}} {
		stay, _ := cmpJudge(p, s, SimilarityStats{}, tc.req.latencyFactor())
		if (len(stay) > 0) != tc.stay {
			t.Errorf("max p95 ratio %v: stay reasons %q, want stay %v", tc.req.MaxP95Ratio, stay, tc.stay)
		}
	}
	bad := Request{Supplier: "a", Other: "client", Window: time.Hour, MaxP95Ratio: -1}
	if err := bad.normalize(); err == nil {
		t.Error("a negative max p95 ratio was accepted")
	}
}
