package console

import (
	"html/template"
	"strconv"
	"time"

	"github.com/wedsync/veil/compare"
)

// ComparisonView is what the comparison page shows of a report. It is
// filled from a compare.Report by NewComparisonView alone, so that the
// page does not follow the report's fields one by one.
type ComparisonView struct {
	Comparison compare.Comparison
	// Sides are the primary side, then the shadow side.
	Sides          []SideView
	Similarity     compare.SimilarityStats
	Recommendation string
	Reasons        []string
	// Notes are what else the planner should know; Sample the pairs the
	// advice rests on.
	Notes  []string
	Sample compare.Sample
	// Text is the report as Report.Text writes it.
	Text string

	// LatencyHist has one histogram of answers by latency per side, in
	// the order of Sides; LatencyNote says how they were made.
	LatencyHist [][]Bucket
	LatencyNote string
	// SimilarityHist counts the pairs of answers by similarity.
	SimilarityHist []Bucket
	SimilarityNote string
	// Projection is the cost by month ahead, on each side; empty with
	// ProjectionNote saying why.
	Projection      []MonthCost
	ProjectionNote  string
	ProjectionBasis string
	// Workflows are the figures per workflow; empty with WorkflowsNote
	// saying why.
	Workflows     []WorkflowRow
	WorkflowsNote string
	// CostByPayer is what each payer spent during the comparison.
	CostByPayer []PayerCost
}

// SideView is one side of a comparison: its role (primary or shadow) and
// its figures.
type SideView struct {
	Role string
	compare.Side
}

// MonthCost is one month of a cost projection, in dollars on each side
// and by who pays after a move.
type MonthCost struct {
	// Month is "2026-07"; PeakDays its days in the wedding season.
	Month    string
	PeakDays int
	Primary  float64
	Shadow   float64
	// AfterPlatform and AfterClient split Shadow between WedSync and the
	// supplier.
	AfterPlatform float64
	AfterClient   float64
}

// WorkflowRow is one workflow's figures in a comparison, with its own
// advice.
type WorkflowRow struct {
	Workflow       string
	Pairs          int64
	Share          float64
	PrimaryP95     time.Duration
	ShadowP95      time.Duration
	Similarity     float64
	Method         string
	Similar        float64
	Threshold      float64
	PrimaryPer1K   float64
	ShadowPer1K    float64
	Recommendation string
	Reasons        []string
}

// PayerCost is what one payer (platform or client) pays for the
// comparison's pairs now and would after a move.
type PayerCost struct {
	Payer    string
	NowUSD   float64
	AfterUSD float64
}

// NewComparisonView fills the comparison page's view from a report: the
// latency and similarity histograms the report counted, its cost by who
// pays, its projection by month and its figures per workflow.
func NewComparisonView(r compare.Report) ComparisonView {
	v := ComparisonView{
		Comparison:     r.Comparison,
		Sides:          []SideView{{Role: "primary", Side: r.Primary}, {Role: "shadow", Side: r.Shadow}},
		Similarity:     r.Similarity,
		Recommendation: r.Recommendation,
		Reasons:        r.Reasons,
		Notes:          r.Notes,
		Sample:         r.Sample,
		Text:           r.Text(),
		LatencyNote:    "Answers that did not fail, by their latency to the complete answer.",
		SimilarityNote: "Pairs where both systems answered, by similarity (method: " + methodOrNone(r.Similarity.Method) + ").",
		ProjectionNote: "No projection: veil has no usage history for this supplier to project from.",
		WorkflowsNote:  "No pairs recorded yet.",
	}
	for _, s := range v.Sides {
		v.LatencyHist = append(v.LatencyHist, latencyHist(s.LatencyHistogram))
	}
	for _, b := range r.Similarity.Histogram {
		v.SimilarityHist = append(v.SimilarityHist, Bucket{Label: trimZeros(strconv.FormatFloat(b.From, 'f', 1, 64)) + "–" +
			trimZeros(strconv.FormatFloat(b.To, 'f', 1, 64)), Value: float64(b.Count)})
	}
	for _, pc := range r.Cost.ByPayer {
		v.CostByPayer = append(v.CostByPayer, PayerCost{Payer: string(pc.Payer), NowUSD: usd(pc.NowMicros), AfterUSD: usd(pc.AfterMicros)})
	}
	if p := r.Projection; p != nil {
		v.ProjectionBasis = p.Basis
		for _, m := range p.Months {
			v.Projection = append(v.Projection, MonthCost{Month: m.Month, PeakDays: m.PeakDays, Primary: usd(m.NowMicros),
				Shadow: usd(m.AfterMicros), AfterPlatform: usd(m.AfterPlatformMicros), AfterClient: usd(m.AfterClientMicros)})
		}
		if len(v.Projection) == 0 {
			v.ProjectionNote = "No projection: " + p.Basis
		}
	}
	for _, w := range r.Workflows {
		v.Workflows = append(v.Workflows, WorkflowRow{Workflow: w.Workflow, Pairs: w.Sample.Recorded, Share: w.Share,
			PrimaryP95: w.Primary.LatencyP95, ShadowP95: w.Shadow.LatencyP95, Similarity: w.Similarity.Mean,
			Method: w.Similarity.Method, Similar: w.Similarity.Similar, Threshold: w.Similarity.Threshold,
			PrimaryPer1K: usd(w.CostNowPer1KMicros), ShadowPer1K: usd(w.CostAfterPer1KMicros),
			Recommendation: w.Recommendation, Reasons: w.Reasons})
	}
	return v
}

// usd turns millionths of a dollar into dollars.
func usd(micros int64) float64 { return float64(micros) / 1e6 }

// methodOrNone names a similarity method, or says there is none yet.
func methodOrNone(m string) string {
	if m == "" {
		return "none yet"
	}
	return m
}

// latencyHist turns a report's latency buckets into chart buckets,
// leaving out the empty ones above the last answer.
func latencyHist(h []compare.LatencyBucket) []Bucket {
	last := -1
	for i, b := range h {
		if b.Count > 0 {
			last = i
		}
	}
	out := make([]Bucket, 0, last+1)
	for _, b := range h[:last+1] {
		label := "≥ " + fmtMS(b.FromMS)
		if b.ToMS > 0 {
			label = fmtMS(b.FromMS) + "–" + fmtMS(b.ToMS)
		}
		out = append(out, Bucket{Label: label, Value: float64(b.Count)})
	}
	return out
}

// fmtMS writes a bucket bound: 250 ms, 1.5 s.
func fmtMS(ms int64) string {
	if ms < 1000 {
		return strconv.FormatInt(ms, 10) + " ms"
	}
	return trimZeros(strconv.FormatFloat(float64(ms)/1000, 'f', 1, 64)) + " s"
}

// LatencyCharts draws one latency histogram per side.
func (v ComparisonView) LatencyCharts() []template.HTML {
	var out []template.HTML
	for i, h := range v.LatencyHist {
		if i >= len(v.Sides) {
			break
		}
		s := v.Sides[i]
		out = append(out, Chart{Title: "Latency, " + string(s.System) + " (" + s.Role + ")", XLabel: "latency to the complete answer",
			YLabel: "answers", Integer: true, Width: 460, Height: 240,
			Series: []Series{{Name: string(s.System), Buckets: h}}}.SVG())
	}
	return out
}

// SimilarityChart draws the similarity histogram.
func (v ComparisonView) SimilarityChart() template.HTML {
	return Chart{Title: "Answer similarity", XLabel: "similarity of the two answers", YLabel: "pairs", Integer: true,
		Width: 460, Height: 240, Series: []Series{{Name: "pairs", Buckets: v.SimilarityHist}}}.SVG()
}

// ProjectionChart draws the cost projection by month, or nothing when
// there is none.
func (v ComparisonView) ProjectionChart() template.HTML {
	if len(v.Projection) == 0 {
		return ""
	}
	var primary, shadow Series
	primary.Name = "primary"
	shadow.Name = "shadow"
	if len(v.Sides) == 2 {
		primary.Name = "now (" + string(v.Sides[0].System) + ")"
		shadow.Name = "after (" + string(v.Sides[1].System) + ")"
	}
	for _, m := range v.Projection {
		label := m.Month
		if m.PeakDays > 0 {
			label += " ★"
		}
		primary.Buckets = append(primary.Buckets, Bucket{Label: label, Value: m.Primary})
		shadow.Buckets = append(shadow.Buckets, Bucket{Label: label, Value: m.Shadow})
	}
	return Chart{Title: "Projected cost by month", YLabel: "USD", Format: FormatUSD, Width: 940, Height: 280,
		Series: []Series{primary, shadow}}.SVG()
}

// fmtDuration writes a latency: 820 ms, 1.9 s, or - for none.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return trimZeros(strconv.FormatFloat(d.Seconds(), 'f', 1, 64)) + " s"
	}
	return d.Round(time.Second).String()
}
