package compare

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/veil/billing"
)

// Report is the outcome of a comparison: each side's figures over the
// recorded pairs, their answers' similarity, what they cost and who pays,
// the same per workflow, a projection of the cost a year forward and a
// recommendation with its reasons and the sample it rests on. It is the
// document of GET /admin/comparisons/{id}; docs/operations.md describes
// its fields for the console.
type Report struct {
	Comparison Comparison `json:"comparison"`
	// Primary is the supplier's current system, Shadow the other.
	Primary Side `json:"primary"`
	Shadow  Side `json:"shadow"`
	// Similarity compares the pairs where both sides answered.
	Similarity SimilarityStats `json:"similarity"`
	// Cost compares what the pairs cost on each system and who pays.
	Cost Cost `json:"cost"`
	// Sample is the number of pairs the recommendation rests on.
	Sample Sample `json:"sample"`
	// Workflows are the same figures per workflow, most pairs first and
	// OtherWorkflow last.
	Workflows []WorkflowReport `json:"workflows"`
	// Projection projects the supplier's cost a year forward on each
	// system; nil when veil has no usage store to read the history from.
	Projection *Projection `json:"projection,omitempty"`
	// Recommendation is Migrate, Stay or CollectMore, and Reasons say
	// why, as sentences; Notes are what else the planner should know
	// (who pays after the move, workflows to watch).
	Recommendation string   `json:"recommendation"`
	Reasons        []string `json:"reasons"`
	Notes          []string `json:"notes,omitempty"`
}

// Side are one system's figures in a Report. Percentiles are
// nearest-rank over the answers that did not fail (over a uniform sample
// of MaxSamples pairs per replica, MaxWorkflowSamples per workflow, when
// there were more).
type Side struct {
	// System is platform, client or hybrid, and PaidBy who pays for its
	// calls in production: platform (WedSync) or client (the supplier).
	System billing.Mode  `json:"system"`
	PaidBy billing.Payer `json:"paid_by"`
	// Requests is the number of recorded requests, Errors those that
	// failed and ErrorRate their share.
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// LatencyP50 and LatencyP95 are the latency to the complete answer
	// (in nanoseconds in JSON); TTFTP50 the time to the first token of
	// streamed answers, zero without any.
	LatencyP50 time.Duration `json:"latency_p50_ns"`
	LatencyP95 time.Duration `json:"latency_p95_ns"`
	TTFTP50    time.Duration `json:"ttft_p50_ns,omitempty"`
	// MeanPromptTokens and MeanCompletionTokens are the tokens per
	// request that did not fail.
	MeanPromptTokens     float64 `json:"mean_prompt_tokens"`
	MeanCompletionTokens float64 `json:"mean_completion_tokens"`
	// CostMicros is the total cost in millionths of a US dollar and
	// CostPer1KMicros the cost per 1,000 requests; CostUSD and CostPer1K
	// are the same in dollars.
	CostMicros      int64   `json:"cost_micros"`
	CostPer1KMicros int64   `json:"cost_per_1k_micros"`
	CostUSD         float64 `json:"cost_usd"`
	CostPer1K       float64 `json:"cost_per_1k_usd"`
	// LatencyHistogram counts the answers that did not fail by latency,
	// in the fixed buckets of LatencyBucketsMS.
	LatencyHistogram []LatencyBucket `json:"latency_histogram"`
}

// LatencyBucket is one bucket of a latency histogram: the answers with a
// latency from FromMS (included) to ToMS (excluded) milliseconds; the
// last bucket has no ToMS (zero, left out of JSON).
type LatencyBucket struct {
	FromMS int64 `json:"from_ms"`
	ToMS   int64 `json:"to_ms,omitempty"`
	Count  int64 `json:"count"`
}

// SimilarityStats is the similarity of the pairs of answers where both
// sides answered, as their scores measured it.
type SimilarityStats struct {
	// Pairs is the number of pairs compared.
	Pairs int64 `json:"pairs"`
	// Method names the similarity method (Lexical, or what the scores
	// said; several joined by "+"); empty without pairs.
	Method string `json:"method"`
	// Mean is their mean similarity and P10 the worst decile's bound (the
	// nearest-rank 10th percentile).
	Mean float64 `json:"mean"`
	P10  float64 `json:"p10"`
	// Similar is the share of pairs at or above their method's threshold
	// for the workflow; Threshold is that threshold (the highest, when
	// the pairs' scores gave several).
	Similar   float64 `json:"similar"`
	Threshold float64 `json:"threshold"`
	// Histogram counts the pairs by similarity in SimilarityBins bins.
	Histogram []SimilarityBin `json:"histogram"`
}

// SimilarityBin is one bin of the similarity histogram: the pairs with a
// similarity from From (included) to To (excluded; the last bin includes
// 1).
type SimilarityBin struct {
	From  float64 `json:"from"`
	To    float64 `json:"to"`
	Count int64   `json:"count"`
}

// Sample is the number of pairs figures rest on.
type Sample struct {
	// Recorded is the number of pairs of answers recorded, Compared those
	// where both sides answered, and Needed the least number of each
	// that a recommendation is made on (MinPairs).
	Recorded int64 `json:"pairs_recorded"`
	Compared int64 `json:"pairs_compared"`
	Needed   int64 `json:"pairs_needed"`
}

// Cost is what the recorded pairs cost on each system, now (the primary's
// answers, on the supplier's current system) and after a migration (the
// shadow answers, on the other), in total, per 1,000 requests and per
// payer. Amounts are in millionths of a US dollar.
type Cost struct {
	// Requests is the number of pairs the costs cover.
	Requests int64 `json:"requests"`
	// NowMicros and AfterMicros are their total cost on each system.
	NowMicros   int64 `json:"now_micros"`
	AfterMicros int64 `json:"after_micros"`
	// NowPer1KMicros and AfterPer1KMicros are per 1,000 requests.
	NowPer1KMicros   int64 `json:"now_per_1k_micros"`
	AfterPer1KMicros int64 `json:"after_per_1k_micros"`
	// Ratio is the cost per request after over now; zero without a cost
	// now. SamePrice says it is within SamePriceMargin of 1: the move
	// changes who pays, not what is paid.
	Ratio     float64 `json:"ratio"`
	SamePrice bool    `json:"same_price"`
	// ByPayer splits both between WedSync (platform) and the supplier
	// (client): a system's calls are paid by its payer.
	ByPayer []PayerCost `json:"by_payer"`
	// TrialBilledTo is who was billed for the comparison's own shadow
	// calls (their cost is AfterMicros).
	TrialBilledTo billing.Payer `json:"trial_billed_to"`
}

// PayerCost is what one payer pays for the recorded pairs now and would
// after a migration, in millionths of a US dollar.
type PayerCost struct {
	Payer            billing.Payer `json:"payer"`
	NowMicros        int64         `json:"now_micros"`
	AfterMicros      int64         `json:"after_micros"`
	NowPer1KMicros   int64         `json:"now_per_1k_micros"`
	AfterPer1KMicros int64         `json:"after_per_1k_micros"`
}

// WorkflowReport is a Report's figures for one workflow's pairs, with its
// own recommendation.
type WorkflowReport struct {
	// Workflow is the workflow's name: OtherWorkflow for the rest, and
	// NoWorkflow for requests that named none.
	Workflow string `json:"workflow"`
	// Share is the workflow's share of the recorded pairs.
	Share      float64         `json:"share"`
	Sample     Sample          `json:"sample"`
	Primary    Side            `json:"primary"`
	Shadow     Side            `json:"shadow"`
	Similarity SimilarityStats `json:"similarity"`
	// Cost per 1,000 requests on each system and their ratio.
	CostNowPer1KMicros   int64   `json:"cost_now_per_1k_micros"`
	CostAfterPer1KMicros int64   `json:"cost_after_per_1k_micros"`
	CostRatio            float64 `json:"cost_ratio"`
	// Recommendation and Reasons are the workflow's own.
	Recommendation string   `json:"recommendation"`
	Reasons        []string `json:"reasons"`
}

// Report returns the figures and the recommendation of a comparison so
// far, with what this replica recorded and has not flushed yet, and the
// projection from the supplier's usage history when Options.Usage is
// set (a history that cannot be read leaves a projection that says so).
func (c *Comparisons) Report(ctx context.Context, id string) (Report, error) {
	d, err := c.load(ctx, id)
	if err != nil {
		return Report{}, err
	}
	now := c.now()
	_, stats := c.merged(d)
	r := Report{Comparison: *c.view(d, now)}
	r.Primary, r.Shadow, r.Similarity = cmpFigures(d, &stats)
	r.Sample = Sample{Recorded: stats.Pairs, Compared: stats.Compared, Needed: MinPairs}
	r.Cost = cmpCost(d, &stats)
	names := make([]string, 0, len(stats.Workflows))
	for name := range stats.Workflows {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		if oa, ob := a == OtherWorkflow, b == OtherWorkflow; oa != ob {
			if oa {
				return 1
			}
			return -1
		}
		if n := cmpInt(stats.Workflows[b].Pairs, stats.Workflows[a].Pairs); n != 0 {
			return n
		}
		return strings.Compare(a, b)
	})
	r.Workflows = make([]WorkflowReport, 0, len(names))
	for _, name := range names {
		w := stats.Workflows[name]
		wr := WorkflowReport{Workflow: name, Sample: Sample{Recorded: w.Pairs, Compared: w.Compared, Needed: MinPairs}}
		if stats.Pairs > 0 {
			wr.Share = float64(w.Pairs) / float64(stats.Pairs)
		}
		wr.Primary, wr.Shadow, wr.Similarity = cmpFigures(d, w)
		wc := cmpCost(d, w)
		wr.CostNowPer1KMicros, wr.CostAfterPer1KMicros, wr.CostRatio = wc.NowPer1KMicros, wc.AfterPer1KMicros, wc.Ratio
		wr.Recommendation, wr.Reasons = cmpRecommendWorkflow(&wr, d.Request.latencyFactor())
		r.Workflows = append(r.Workflows, wr)
	}
	r.Projection = c.project(ctx, d, &r, now)
	r.Recommendation, r.Reasons, r.Notes = cmpRecommend(&r)
	return r, nil
}

// cmpFigures returns both sides' figures and the similarity of s.
func cmpFigures(d *cmpDoc, s *cmpStats) (primary, shadow Side, sim SimilarityStats) {
	var pl, pt, sl, st []int64
	var simf []float64
	for _, sm := range s.Samples {
		if !sm.PE {
			pl = append(pl, sm.PL)
			if sm.PT > 0 {
				pt = append(pt, sm.PT)
			}
		}
		if !sm.SE {
			sl = append(sl, sm.SL)
			if sm.ST > 0 {
				st = append(st, sm.ST)
			}
		}
		if sm.Both {
			simf = append(simf, sm.Sim)
		}
	}
	primary = cmpSideReport(d.Primary, &s.Primary, pl, pt)
	shadow = cmpSideReport(d.Request.Other, &s.Shadow, sl, st)
	sim = SimilarityStats{Pairs: s.Compared, Threshold: s.Threshold, Method: strings.Join(s.Methods, "+")}
	if sim.Threshold == 0 {
		sim.Threshold = SimilarThreshold // documents written before scores named one
	}
	bins := s.SimBins
	if s.Compared > 0 {
		sim.Mean = s.SimSum / float64(s.Compared)
		sim.Similar = float64(s.Similar) / float64(s.Compared)
		slices.Sort(simf)
		sim.P10 = cmpRank(simf, 0.10)
		if sim.Method == "" {
			sim.Method = Lexical
		}
		if len(bins) == 0 { // written before the bins were kept: from the samples
			bins = make([]int64, SimilarityBins)
			for _, v := range simf {
				bins[simBin(v)]++
			}
		}
	}
	sim.Histogram = make([]SimilarityBin, SimilarityBins)
	for i := range sim.Histogram {
		b := SimilarityBin{From: float64(i) / SimilarityBins, To: float64(i+1) / SimilarityBins}
		if i < len(bins) {
			b.Count = bins[i]
		}
		sim.Histogram[i] = b
	}
	return primary, shadow, sim
}

// cmpSideReport returns a side's figures from its totals and latency
// samples.
func cmpSideReport(system billing.Mode, s *cmpSide, lat, ttft []int64) Side {
	out := Side{System: system, PaidBy: system.Payer(), Requests: s.Requests, Errors: s.Errors, CostMicros: s.CostMicros}
	if s.Requests > 0 {
		out.ErrorRate = float64(s.Errors) / float64(s.Requests)
		out.CostPer1KMicros = cmpPer1K(s.CostMicros, s.Requests)
		out.CostPer1K = float64(s.CostMicros) * 1000 / float64(s.Requests) / 1e6
	}
	if ok := s.Requests - s.Errors; ok > 0 {
		out.MeanPromptTokens = float64(s.PromptTokens) / float64(ok)
		out.MeanCompletionTokens = float64(s.CompletionTokens) / float64(ok)
	}
	out.CostUSD = float64(s.CostMicros) / 1e6
	counts := s.Latency
	if len(counts) == 0 && len(lat) > 0 { // written before the buckets were kept: from the samples
		counts = make([]int64, len(LatencyBucketsMS)+1)
		for _, l := range lat {
			counts[latencyBucket(l)]++
		}
	}
	out.LatencyHistogram = make([]LatencyBucket, len(LatencyBucketsMS)+1)
	var from int64
	for i := range out.LatencyHistogram {
		b := LatencyBucket{FromMS: from}
		if i < len(LatencyBucketsMS) {
			b.ToMS, from = LatencyBucketsMS[i], LatencyBucketsMS[i]
		}
		if i < len(counts) {
			b.Count = counts[i]
		}
		out.LatencyHistogram[i] = b
	}
	slices.Sort(lat)
	slices.Sort(ttft)
	out.LatencyP50 = time.Duration(cmpRank(lat, 0.50))
	out.LatencyP95 = time.Duration(cmpRank(lat, 0.95))
	out.TTFTP50 = time.Duration(cmpRank(ttft, 0.50))
	return out
}

// cmpPer1K returns micros per 1,000 of n, rounded; zero for no n.
func cmpPer1K(micros, n int64) int64 {
	if n <= 0 {
		return 0
	}
	return int64(math.Round(float64(micros) * 1000 / float64(n)))
}

// cmpCost returns what the pairs of s cost on each system and who pays.
func cmpCost(d *cmpDoc, s *cmpStats) Cost {
	c := Cost{Requests: s.Pairs, NowMicros: s.Primary.CostMicros, AfterMicros: s.Shadow.CostMicros,
		TrialBilledTo: d.Request.Billed}
	c.NowPer1KMicros, c.AfterPer1KMicros = cmpPer1K(c.NowMicros, s.Primary.Requests), cmpPer1K(c.AfterMicros, s.Shadow.Requests)
	if c.NowMicros > 0 && s.Primary.Requests > 0 && s.Shadow.Requests > 0 {
		c.Ratio = (float64(c.AfterMicros) / float64(s.Shadow.Requests)) / (float64(c.NowMicros) / float64(s.Primary.Requests))
		c.SamePrice = math.Abs(c.Ratio-1) <= SamePriceMargin
	}
	now, after := d.Primary.Payer(), d.Request.Other.Payer()
	for _, payer := range []billing.Payer{billing.PaidByPlatform, billing.PaidByClient} {
		pc := PayerCost{Payer: payer}
		if payer == now {
			pc.NowMicros, pc.NowPer1KMicros = c.NowMicros, c.NowPer1KMicros
		}
		if payer == after {
			pc.AfterMicros, pc.AfterPer1KMicros = c.AfterMicros, c.AfterPer1KMicros
		}
		c.ByPayer = append(c.ByPayer, pc)
	}
	return c
}

// cmpRank returns the nearest-rank p-quantile of sorted values: the
// smallest value with at least p of the values at or below it; zero for
// none.
func cmpRank[T int64 | float64](sorted []T, p float64) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// cmpJudge returns the reasons to stay, and those that speak for the
// other system, of one set of figures: errors, latency and the answers'
// similarity. Cost is judged on the whole comparison only (cmpRecommend).
func cmpJudge(p, s Side, sim SimilarityStats, latencyFactor float64) (stay, good []string) {
	pn, sn := p.System, s.System
	if s.ErrorRate > p.ErrorRate+ErrorMargin {
		stay = append(stay, fmt.Sprintf("%s failed %s of requests against %s on %s, more than %s points above.",
			sn, cmpPct(s.ErrorRate), cmpPct(p.ErrorRate), pn, cmpNum(ErrorMargin*100)))
	} else {
		good = append(good, fmt.Sprintf("%s failed %s of requests against %s on %s, within %s points.",
			sn, cmpPct(s.ErrorRate), cmpPct(p.ErrorRate), pn, cmpNum(ErrorMargin*100)))
	}
	if p.LatencyP95 > 0 && s.LatencyP95 > 0 {
		ratio := float64(s.LatencyP95) / float64(p.LatencyP95)
		if ratio > latencyFactor {
			stay = append(stay, fmt.Sprintf("%s's p95 latency is %s, %.2f times %s's %s, more than %s times.",
				sn, cmpDur(s.LatencyP95), ratio, pn, cmpDur(p.LatencyP95), cmpNum(latencyFactor)))
		} else {
			good = append(good, fmt.Sprintf("%s's p95 latency is %s against %s's %s, within %s times.",
				sn, cmpDur(s.LatencyP95), pn, cmpDur(p.LatencyP95), cmpNum(latencyFactor)))
		}
	}
	if sim.Pairs >= MinPairs {
		floor := max(sim.Threshold, 0)
		switch {
		case sim.Mean < floor:
			stay = append(stay, fmt.Sprintf("The answers' mean similarity (%s) is %s, below %.2f.", sim.Method,
				cmpBelow(sim.Mean, floor), floor))
		case sim.Similar < MinSimilarShare:
			stay = append(stay, fmt.Sprintf("Only %s of the answers are similar (%s, at least %.2f), fewer than %s.",
				cmpPct(sim.Similar), sim.Method, sim.Threshold, cmpPct(MinSimilarShare)))
		default:
			good = append(good, fmt.Sprintf("The answers' mean similarity (%s) is %.2f, at least %.2f, and %s of them are "+
				"similar, at least %s.", sim.Method, sim.Mean, floor, cmpPct(sim.Similar), cmpPct(MinSimilarShare)))
		}
	}
	return stay, good
}

// cmpRecommendWorkflow decides one workflow's recommendation and gives
// its reasons.
func cmpRecommendWorkflow(w *WorkflowReport, factor float64) (string, []string) {
	if w.Sample.Recorded < MinPairs {
		return CollectMore, []string{fmt.Sprintf("Only %d pairs of answers were recorded for %s; at least %d are needed to judge it.",
			w.Sample.Recorded, w.Workflow, MinPairs)}
	}
	stay, good := cmpJudge(w.Primary, w.Shadow, w.Similarity, factor)
	if len(stay) > 0 {
		return Stay, stay
	}
	if w.Similarity.Pairs < MinPairs {
		return CollectMore, []string{fmt.Sprintf("Only %d pairs of %s had two answers to compare; at least %d are needed.",
			w.Similarity.Pairs, w.Workflow, MinPairs)}
	}
	return Migrate, good
}

// cmpRecommend decides a report's recommendation from its overall
// figures and its workflows', and gives its reasons and notes. A workflow
// that should stay keeps the whole supplier where it is; one with too few
// pairs holds the recommendation back unless it is a minor part of the
// traffic (under MinorShare of the pairs), which is then noted.
func cmpRecommend(r *Report) (string, []string, []string) {
	notes := cmpPayerNotes(r)
	if r.Sample.Recorded < MinPairs {
		reasons := []string{fmt.Sprintf("Only %d pairs of answers were recorded; at least %d are needed.",
			r.Sample.Recorded, MinPairs)}
		if r.Comparison.Status == Running {
			reasons = append(reasons, "The comparison is still running.")
		}
		return CollectMore, reasons, notes
	}
	stay, good := cmpJudge(r.Primary, r.Shadow, r.Similarity, r.Comparison.latencyFactor())
	p, s := r.Primary, r.Shadow
	pn, sn := p.System, s.System
	switch {
	case s.CostPer1K > p.CostPer1K*(1+CostMargin):
		more := "more"
		if p.CostPer1K > 0 {
			more = fmt.Sprintf("%s more", cmpPct(s.CostPer1K/p.CostPer1K-1))
		}
		stay = append(stay, fmt.Sprintf("%s costs %s per 1,000 requests against %s on %s, %s, beyond the %s margin.",
			sn, cmpUSD(s.CostPer1K), cmpUSD(p.CostPer1K), pn, more, cmpPct(CostMargin)))
	case r.Cost.SamePrice:
		good = append(good, fmt.Sprintf("%s costs the same per request as %s (%s per 1,000 requests): the move changes who pays, "+
			"not what is paid.", sn, pn, cmpUSD(s.CostPer1K)))
	case s.CostPer1K < p.CostPer1K:
		good = append(good, fmt.Sprintf("%s costs %s per 1,000 requests against %s on %s, %s less.",
			sn, cmpUSD(s.CostPer1K), cmpUSD(p.CostPer1K), pn, cmpPct(1-s.CostPer1K/p.CostPer1K)))
	default:
		good = append(good, fmt.Sprintf("%s costs %s per 1,000 requests against %s on %s, within the %s margin.",
			sn, cmpUSD(s.CostPer1K), cmpUSD(p.CostPer1K), pn, cmpPct(CostMargin)))
	}
	var thin []string
	for _, w := range r.Workflows {
		if len(r.Workflows) == 1 {
			break // the overall figures are the workflow's
		}
		switch w.Recommendation {
		case Stay:
			for _, reason := range w.Reasons {
				stay = append(stay, "Workflow "+w.Workflow+": "+reason)
			}
		case CollectMore:
			msg := fmt.Sprintf("Workflow %s has %d pairs (%s of those recorded) and %d compared; at least %d of each are "+
				"needed to judge it.", w.Workflow, w.Sample.Recorded, cmpPct(w.Share), w.Similarity.Pairs, MinPairs)
			if w.Share >= MinorShare {
				thin = append(thin, msg)
			} else {
				notes = append(notes, msg+fmt.Sprintf(" It is under %s of the traffic compared, so the others decide; "+
					"watch it after a move.", cmpPct(MinorShare)))
			}
		}
	}
	if len(stay) > 0 {
		return Stay, stay, notes
	}
	if len(thin) > 0 {
		return CollectMore, thin, notes
	}
	if r.Similarity.Pairs < MinPairs {
		return CollectMore, []string{fmt.Sprintf("Only %d pairs had two answers to compare; at least %d are needed.",
			r.Similarity.Pairs, MinPairs)}, notes
	}
	return Migrate, good, notes
}

// cmpPayerNotes says who pays after a move, and what the comparison's
// own shadow calls cost.
func cmpPayerNotes(r *Report) []string {
	var notes []string
	c := r.Comparison
	now, after := r.Primary.PaidBy, r.Shadow.PaidBy
	if now != after && r.Cost.Requests > 0 {
		n := fmt.Sprintf("After a move %s pays for these calls instead of %s: %s per 1,000 requests instead of %s.",
			cmpPayerName(after, c.Supplier), cmpPayerName(now, c.Supplier), cmpMicros(r.Cost.AfterPer1KMicros),
			cmpMicros(r.Cost.NowPer1KMicros))
		if p := r.Projection; p != nil && p.HistoryDays > 0 {
			n += fmt.Sprintf(" Over the next 12 months the projection puts it at %s paid by %s, against %s paid by %s now.",
				cmpMicros(p.Total.AfterMicros), cmpPayerName(after, c.Supplier), cmpMicros(p.Total.NowMicros),
				cmpPayerName(now, c.Supplier))
		}
		notes = append(notes, n)
	}
	if r.Shadow.Requests > 0 {
		notes = append(notes, fmt.Sprintf("The comparison's %d shadow calls cost %s, billed to %s.", r.Shadow.Requests,
			cmpMicros(r.Shadow.CostMicros), cmpPayerName(r.Cost.TrialBilledTo, c.Supplier)))
	}
	return notes
}

// cmpPayerName names a payer: WedSync for platform, the supplier for
// client.
func cmpPayerName(p billing.Payer, supplier string) string {
	switch p {
	case billing.PaidByPlatform:
		return "WedSync"
	case billing.PaidByClient:
		return supplier
	}
	return string(p)
}

// cmpBelow formats v, below bound, with two decimals, or three when two
// would round it up to the bound.
func cmpBelow(v, bound float64) string {
	if s := strconv.FormatFloat(v, 'f', 2, 64); s != strconv.FormatFloat(bound, 'f', 2, 64) {
		return s
	}
	return strconv.FormatFloat(math.Floor(v*1000)/1000, 'f', 3, 64)
}

// cmpPct formats a share as a percentage.
func cmpPct(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" }

// cmpNum formats a threshold without needless decimals.
func cmpNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// cmpUSD formats a cost in US dollars.
func cmpUSD(f float64) string { return "$" + strconv.FormatFloat(f, 'f', 4, 64) }

// cmpMicros formats a cost in millionths of a US dollar as dollars.
func cmpMicros(m int64) string { return cmpUSD(float64(m) / 1e6) }

// cmpDur formats a latency in milliseconds, or seconds from 10 s.
func cmpDur(d time.Duration) string {
	if d >= 10*time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64) + "ms"
}
