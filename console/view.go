package console

import (
	"html/template"
	"math"
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
	Projection     []MonthCost
	ProjectionNote string
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

// MonthCost is one month of a cost projection, in dollars on each side.
type MonthCost struct {
	// Month is "2026-07".
	Month   string
	Primary float64
	Shadow  float64
}

// WorkflowRow is one workflow's figures in a comparison.
type WorkflowRow struct {
	Workflow       string
	Requests       int64
	PrimaryP95     time.Duration
	ShadowP95      time.Duration
	Similarity     float64
	PrimaryCostUSD float64
	ShadowCostUSD  float64
}

// PayerCost is what one payer (platform or client) spent.
type PayerCost struct {
	Payer   string
	CostUSD float64
}

// NewComparisonView fills the comparison page's view from a report. The
// report carries percentiles, not distributions: each latency histogram
// is drawn from its side's p50 and p95 and the similarity histogram from
// the share of pairs at or above the threshold; there is no projection
// and no per-workflow figures yet.
func NewComparisonView(r compare.Report) ComparisonView {
	v := ComparisonView{
		Comparison:     r.Comparison,
		Sides:          []SideView{{Role: "primary", Side: r.Primary}, {Role: "shadow", Side: r.Shadow}},
		Similarity:     r.Similarity,
		Recommendation: r.Recommendation,
		Reasons:        r.Reasons,
		Text:           r.Text(),
		LatencyNote: "Drawn from each side's percentiles: half of the answers at or under p50, 45% between p50 and p95, " +
			"5% above p95.",
		SimilarityNote: "Pairs below and at or above the similarity threshold.",
		ProjectionNote: "No projection yet: the report does not project costs by month.",
		WorkflowsNote:  "No per-workflow figures yet: the report covers all of the supplier's workflows together.",
	}
	for _, s := range v.Sides {
		v.LatencyHist = append(v.LatencyHist, percentileHist(s.Side))
	}
	if sim := r.Similarity; sim.Pairs > 0 {
		above := int64(math.Round(float64(sim.Pairs) * sim.Similar))
		th := strconv.FormatFloat(sim.Threshold, 'f', 2, 64)
		v.SimilarityHist = []Bucket{{Label: "< " + th, Value: float64(sim.Pairs - above)}, {Label: "≥ " + th, Value: float64(above)}}
	}
	payers := map[string]float64{}
	// The primary side is paid as the supplier's mode says (hybrid: by
	// either, as the key used was); the shadow side by whom it was
	// billed to.
	payers[string(r.Comparison.Primary)] += r.Primary.CostUSD
	shadowPayer := string(r.Comparison.Billed)
	if shadowPayer == "" {
		shadowPayer = "platform"
	}
	payers[shadowPayer] += r.Shadow.CostUSD
	for _, p := range []string{"platform", "client", "hybrid"} {
		if c, ok := payers[p]; ok {
			v.CostByPayer = append(v.CostByPayer, PayerCost{Payer: p, CostUSD: c})
		}
	}
	return v
}

// percentileHist is a side's answers in three buckets, from its p50 and
// p95: half at or under p50, 45% up to p95 and the rest above.
func percentileHist(s compare.Side) []Bucket {
	n := s.Requests - s.Errors
	if n <= 0 || s.LatencyP50 <= 0 {
		return nil
	}
	low := int64(math.Round(float64(n) * 0.5))
	mid := int64(math.Round(float64(n) * 0.45))
	high := max(n-low-mid, 0)
	p50, p95 := fmtDuration(s.LatencyP50), fmtDuration(s.LatencyP95)
	return []Bucket{
		{Label: "≤ " + p50, Value: float64(low)},
		{Label: p50 + "–" + p95, Value: float64(mid)},
		{Label: "> " + p95, Value: float64(high)},
	}
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
		primary.Name = string(v.Sides[0].System) + " (primary)"
		shadow.Name = string(v.Sides[1].System) + " (shadow)"
	}
	for _, m := range v.Projection {
		primary.Buckets = append(primary.Buckets, Bucket{Label: m.Month, Value: m.Primary})
		shadow.Buckets = append(shadow.Buckets, Bucket{Label: m.Month, Value: m.Shadow})
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
