package compare

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Text renders the report for a reader: the comparison, a fixed-width
// table of both sides, the answers' similarity, the cost by who pays, a
// table per workflow with each one's advice, the projection by month, and
// the recommendation with the sample it rests on, its reasons and notes.
func (r Report) Text() string {
	var b strings.Builder
	c := r.Comparison
	fmt.Fprintf(&b, "Comparison %s for %s: %s (primary) against %s (shadow), %s",
		c.ID, c.Supplier, c.Primary, c.Other, c.Status)
	if c.Reason != "" && c.Status != Running {
		fmt.Fprintf(&b, " (%s)", c.Reason)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Started %s", c.Started.UTC().Format("2006-01-02 15:04 UTC"))
	if c.Window > 0 {
		fmt.Fprintf(&b, ", window %v", c.Window)
	}
	if c.Requests > 0 {
		fmt.Fprintf(&b, ", %d of %d requests shadowed", c.Shadowed, c.Requests)
	} else {
		fmt.Fprintf(&b, ", %d requests shadowed", c.Shadowed)
	}
	fmt.Fprintf(&b, ", %s of requests sampled, shadow billed to %s", cmpPct(c.Sample), c.Billed)
	if c.Provider != "" {
		fmt.Fprintf(&b, ", shadow provider %s", c.Provider)
	}
	b.WriteString("\n\n")
	r.sidesText(&b)
	b.WriteString("\n")
	if sim := r.Similarity; sim.Pairs > 0 {
		fmt.Fprintf(&b, "Answer similarity over %d pairs (%s): mean %.2f, p10 %.2f, %s at or above %.2f\n",
			sim.Pairs, sim.Method, sim.Mean, sim.P10, cmpPct(sim.Similar), sim.Threshold)
	} else {
		b.WriteString("Answer similarity: no pairs with two answers yet\n")
	}
	b.WriteString("\n")
	r.costText(&b)
	if len(r.Workflows) > 0 {
		b.WriteString("\n")
		r.workflowsText(&b)
	}
	if r.Projection != nil {
		b.WriteString("\n")
		r.projectionText(&b)
	}
	s := r.Sample
	fmt.Fprintf(&b, "\nRecommendation: %s\n", r.Recommendation)
	fmt.Fprintf(&b, "Sample: %d pairs recorded, %d compared (at least %d of each needed, overall and per workflow)",
		s.Recorded, s.Compared, s.Needed)
	if len(r.Workflows) > 1 {
		var parts []string
		for _, w := range r.Workflows {
			parts = append(parts, fmt.Sprintf("%s %d", w.Workflow, w.Sample.Recorded))
		}
		fmt.Fprintf(&b, "; by workflow: %s", strings.Join(parts, ", "))
	}
	b.WriteString("\n")
	for _, reason := range r.Reasons {
		cmpBullet(&b, reason, "  ")
	}
	if len(r.Notes) > 0 {
		b.WriteString("Notes:\n")
		for _, n := range r.Notes {
			cmpBullet(&b, n, "  ")
		}
	}
	return b.String()
}

// sidesText writes the table of both sides.
func (r Report) sidesText(b *strings.Builder) {
	const row = "%-26s %20s %20s\n"
	fmt.Fprintf(b, row, "", r.Primary.System+" (primary)", r.Shadow.System+" (shadow)")
	side := func(name string, f func(Side) string) {
		fmt.Fprintf(b, row, name, f(r.Primary), f(r.Shadow))
	}
	side("paid by", func(s Side) string { return string(s.PaidBy) })
	side("requests", func(s Side) string { return strconv.FormatInt(s.Requests, 10) })
	side("errors", func(s Side) string {
		return fmt.Sprintf("%d (%s)", s.Errors, cmpPct(s.ErrorRate))
	})
	side("latency p50", func(s Side) string { return cmpLat(s.LatencyP50) })
	side("latency p95", func(s Side) string { return cmpLat(s.LatencyP95) })
	if r.Primary.TTFTP50 > 0 || r.Shadow.TTFTP50 > 0 {
		side("time to first token p50", func(s Side) string { return cmpLat(s.TTFTP50) })
	}
	side("mean prompt tokens", func(s Side) string { return strconv.FormatFloat(s.MeanPromptTokens, 'f', 1, 64) })
	side("mean completion tokens", func(s Side) string {
		return strconv.FormatFloat(s.MeanCompletionTokens, 'f', 1, 64)
	})
	side("total cost", func(s Side) string { return cmpUSD(s.CostUSD) })
	side("cost per 1,000 requests", func(s Side) string { return cmpUSD(s.CostPer1K) })
}

// costText writes the cost now and after a move, by who pays.
func (r Report) costText(b *strings.Builder) {
	c := r.Cost
	const row = "%-26s %20s %20s\n"
	fmt.Fprintf(b, row, "Cost, who pays", "now ("+string(r.Primary.System)+")", "after ("+string(r.Shadow.System)+")")
	fmt.Fprintf(b, row, "per 1,000 requests", cmpMicros(c.NowPer1KMicros), cmpMicros(c.AfterPer1KMicros))
	fmt.Fprintf(b, row, fmt.Sprintf("over the %d pairs", c.Requests), cmpMicros(c.NowMicros), cmpMicros(c.AfterMicros))
	for _, pc := range c.ByPayer {
		name := "paid by " + cmpPayerName(pc.Payer, r.Comparison.Supplier)
		if len(name) > 26 {
			name = "paid by " + string(pc.Payer)
		}
		fmt.Fprintf(b, row, name, cmpMicros(pc.NowMicros), cmpMicros(pc.AfterMicros))
	}
	switch {
	case c.SamePrice:
		b.WriteString("The same price on both systems: a move changes who pays, not what is paid.\n")
	case c.Ratio > 0:
		fmt.Fprintf(b, "The other system costs %.3f times as much per request.\n", c.Ratio)
	}
}

// workflowsText writes one row per workflow, then each workflow's
// reasons.
func (r Report) workflowsText(b *strings.Builder) {
	const row = "%-16s %5s %8s %11s %12s %24s %17s  %s\n"
	fmt.Fprintf(b, row, "By workflow", "pairs", "compared", "errors p/s", "p95 p/s", "similar (method)",
		"cost/1k p/s", "advice")
	for _, w := range r.Workflows {
		name := w.Workflow
		if len(name) > 16 {
			name = name[:15] + "~"
		}
		sim := "-"
		if w.Similarity.Pairs > 0 {
			sim = fmt.Sprintf("%s >= %.2f %s", cmpPct(w.Similarity.Similar), w.Similarity.Threshold, w.Similarity.Method)
		}
		fmt.Fprintf(b, row, name, strconv.FormatInt(w.Sample.Recorded, 10), strconv.FormatInt(w.Sample.Compared, 10),
			cmpPct(w.Primary.ErrorRate)+"/"+cmpPct(w.Shadow.ErrorRate),
			cmpLat(w.Primary.LatencyP95)+"/"+cmpLat(w.Shadow.LatencyP95), sim,
			cmpMicros(w.CostNowPer1KMicros)+"/"+cmpMicros(w.CostAfterPer1KMicros), w.Recommendation)
	}
	for _, w := range r.Workflows {
		fmt.Fprintf(b, "  %s: %s\n", w.Workflow, w.Recommendation)
		for _, reason := range w.Reasons {
			cmpBullet(b, reason, "    ")
		}
	}
}

// projectionText writes the projection by month.
func (r Report) projectionText(b *strings.Builder) {
	p := r.Projection
	b.WriteString("Projection, next 12 months\n")
	cmpWrap(b, p.Basis, "  ", textWidth)
	if p.HistoryDays == 0 {
		return
	}
	const row = "%-8s %5s %10s %14s %14s %14s %14s\n"
	fmt.Fprintf(b, row, "", "peak", "", "now", "now", "after", "after")
	fmt.Fprintf(b, row, "month", "days", "requests", "WedSync pays", "supplier pays", "WedSync pays", "supplier pays")
	line := func(m ProjectedMonth) {
		fmt.Fprintf(b, row, m.Month, strconv.Itoa(m.PeakDays), strconv.FormatInt(m.Requests, 10),
			cmpMicros(m.NowPlatformMicros), cmpMicros(m.NowClientMicros), cmpMicros(m.AfterPlatformMicros),
			cmpMicros(m.AfterClientMicros))
	}
	for _, m := range p.Months {
		line(m)
	}
	line(p.Total)
}

// cmpLat formats a latency for a table: a dash for none.
func cmpLat(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return cmpDur(d)
}

// textWidth is the width Text wraps sentences at.
const textWidth = 100

// cmpBullet writes text as a bullet after indent, wrapped at textWidth.
func cmpBullet(b *strings.Builder, text, indent string) {
	var w strings.Builder
	cmpWrap(&w, text, indent+"  ", textWidth)
	s := w.String()
	b.WriteString(indent + "- " + s[len(indent)+2:])
}

// cmpWrap writes text in lines of at most width bytes (a longer word gets
// a line of its own), each after indent.
func cmpWrap(b *strings.Builder, text, indent string, width int) {
	n := 0
	for _, w := range strings.Fields(text) {
		switch {
		case n == 0:
			b.WriteString(indent)
			n = len(indent)
		case n+1+len(w) > width:
			b.WriteString("\n" + indent)
			n = len(indent)
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	if n > 0 {
		b.WriteByte('\n')
	}
}
