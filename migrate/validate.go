package migrate

import (
	"context"
	"fmt"
)

// Verdicts of a Validation.
const (
	// VerdictPass means both paths have the minimum sample and the target
	// meets the migration's gates.
	VerdictPass = "pass"
	// VerdictFail means the target misses a gate.
	VerdictFail = "fail"
	// VerdictInsufficient means a path lacks the minimum sample.
	VerdictInsufficient = "insufficient_data"
)

// PathReport is what one path served during a migration.
type PathReport struct {
	// System is the path's target: the migration's From or To.
	System   Target `json:"system"`
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	// SuccessRate is the share of requests that did not fail (see
	// Failed); 0 without requests.
	SuccessRate float64 `json:"success_rate"`
	// P50MS and P95MS are latency quantiles in milliseconds, within 1/16.
	P50MS float64 `json:"p50_ms"`
	P95MS float64 `json:"p95_ms"`
	// CostUSD is what the path's requests cost, CostPer1kUSD per thousand
	// requests.
	CostUSD      float64 `json:"cost_usd"`
	CostPer1kUSD float64 `json:"cost_per_1k_usd"`
}

// StageReport is what both paths served within one stage.
type StageReport struct {
	// Stage is the stage's index in the plan, from 0.
	Stage  int        `json:"stage"`
	Share  float64    `json:"share"`
	Source PathReport `json:"source"`
	Target PathReport `json:"target"`
}

// Validation compares the two paths of a migration, from the counts every
// replica wrote.
type Validation struct {
	ID       string `json:"id"`
	Supplier string `json:"supplier"`
	Status   Status `json:"status"`
	Stage    int    `json:"stage"`
	// Source and Target are the totals over every stage.
	Source PathReport `json:"source"`
	Target PathReport `json:"target"`
	// P95Ratio is the target's p95 over the source's (each at least
	// 1ms); 0 when a path has no requests.
	P95Ratio float64 `json:"p95_ratio"`
	// Verdict is VerdictPass, VerdictFail or VerdictInsufficient, by the
	// migration's gates applied to the totals; Reasons say why.
	Verdict string        `json:"verdict"`
	Reasons []string      `json:"reasons"`
	Stages  []StageReport `json:"stages"`
}

// report summarizes one path's counts.
func report(system Target, c PathCounts) PathReport {
	r := PathReport{System: system, Requests: c.Requests, Errors: c.Errors,
		P50MS: c.Quantile(0.50), P95MS: c.Quantile(0.95), CostUSD: float64(c.CostMicros) / 1e6}
	if c.Requests > 0 {
		r.SuccessRate = 1 - c.ErrorRate()
		r.CostPer1kUSD = r.CostUSD / float64(c.Requests) * 1000
	}
	return r
}

// Validate compares the two paths of a migration from the counts every
// replica recorded with Observe (this replica's are written first): per
// path the requests, success rate, p50 and p95 latency and cost per
// thousand requests, in total and per stage, with a verdict by the
// migration's gates.
func (m *Manager) Validate(ctx context.Context, id string) (Validation, error) {
	mg, err := m.load(ctx, id)
	if err != nil {
		return Validation{}, err
	}
	if err := m.flush(ctx, m.o.Now()); err != nil {
		return Validation{}, err
	}
	sums, err := m.sumStats(ctx, id)
	if err != nil {
		return Validation{}, err
	}
	stages := sums[id]
	v := Validation{ID: mg.ID, Supplier: mg.Supplier, Status: mg.Status, Stage: mg.Stage}
	var src, tgt PathCounts
	for i, st := range stages {
		src.add(st.Source)
		tgt.add(st.Target)
		sr := StageReport{Stage: i, Source: report(mg.From, st.Source), Target: report(mg.To, st.Target)}
		if i < len(mg.Stages) {
			sr.Share = mg.Stages[i].Share
		}
		v.Stages = append(v.Stages, sr)
	}
	v.Source, v.Target = report(mg.From, src), report(mg.To, tgt)
	if src.Requests > 0 && tgt.Requests > 0 {
		v.P95Ratio = p95Ratio(v.Target.P95MS, v.Source.P95MS)
	}
	c := checkGates(mg.Gates, tgt, src, false)
	switch {
	case c.failed != "":
		v.Verdict = VerdictFail
		v.Reasons = append(v.Reasons, c.failed)
	case c.passed != "":
		v.Verdict = VerdictPass
		v.Reasons = append(v.Reasons, c.passed)
	default:
		v.Verdict = VerdictInsufficient
		v.Reasons = append(v.Reasons, fmt.Sprintf("need %d requests per path: %s", mg.Gates.MinSample, c.waiting))
	}
	if src.Requests > 0 && tgt.Requests > 0 {
		v.Reasons = append(v.Reasons,
			fmt.Sprintf("success %.1f%% on the target, %.1f%% on the source", v.Target.SuccessRate*100, v.Source.SuccessRate*100),
			fmt.Sprintf("$%.4f per 1k requests on the target, $%.4f on the source", v.Target.CostPer1kUSD, v.Source.CostPer1kUSD))
	}
	return v, nil
}
