package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/compare"

	"go.uber.org/zap"
)

// CompareStart is the body of POST /admin/comparisons.
type CompareStart struct {
	Supplier string        `json:"supplier"`
	Other    billing.Mode  `json:"other"`
	Provider string        `json:"provider"`
	Requests int           `json:"requests"`
	Window   string        `json:"window"`
	Sample   float64       `json:"sample"`
	Billed   billing.Payer `json:"billed"`
	// MaxP95Ratio is how many times the primary's p95 latency the other
	// system's may be before the advice is to stay; zero: 1.5.
	MaxP95Ratio float64 `json:"max_p95_ratio"`
}

// ComparisonStarter starts a shadow comparison; *compare.Comparisons is
// one.
type ComparisonStarter interface {
	Start(ctx context.Context, r compare.Request) (*compare.Comparison, error)
}

// ComparisonLister lists comparisons; *compare.Comparisons is one.
type ComparisonLister interface {
	List(ctx context.Context) ([]*compare.Comparison, error)
}

// ComparisonReporter reports a comparison's outcome; *compare.Comparisons
// is one.
type ComparisonReporter interface {
	Report(ctx context.Context, id string) (compare.Report, error)
}

// ComparisonStopper stops a comparison; *compare.Comparisons is one.
type ComparisonStopper interface {
	Stop(ctx context.Context, id string) (*compare.Comparison, error)
}

// SystemLocator says which system a supplier pays with now:
// billing.ModePlatform or billing.ModeClient.
type SystemLocator interface {
	CurrentSystem(supplier string) billing.Mode
}

// StartComparison answers POST /admin/comparisons; a comparison without
// another system names the one the supplier is not on. Each start is an
// audit line.
func StartComparison(s ComparisonStarter, cur SystemLocator, audit *zap.Logger) HandlerFunc {
	if audit == nil {
		audit = zap.NewNop()
	}
	return func(ctx context.Context, c Call) (int, any) {
		var body CompareStart
		if err := json.Unmarshal(c.Body, &body); err != nil {
			return fail(http.StatusBadRequest, "invalid_json", "the body must be a JSON object: "+err.Error())
		}
		req := compare.Request{Supplier: body.Supplier, Other: body.Other, Provider: body.Provider, Requests: body.Requests,
			Sample: body.Sample, Billed: body.Billed, MaxP95Ratio: body.MaxP95Ratio}
		if body.Window != "" {
			d, err := time.ParseDuration(body.Window)
			if err != nil {
				return fail(http.StatusBadRequest, "invalid_window", "window must be a duration such as 30m: "+err.Error())
			}
			req.Window = d
		}
		if req.Other == "" && req.Supplier != "" {
			req.Other = billing.ModeClient
			if cur.CurrentSystem(req.Supplier) == billing.ModeClient {
				req.Other = billing.ModePlatform
			}
		}
		cmp, err := s.Start(ctx, req)
		if err != nil {
			return compareError(err)
		}
		audit.Info("comparison started", append(c.Operator.Fields(), zap.String("id", cmp.ID), zap.String("supplier", cmp.Supplier),
			zap.String("other", string(cmp.Other)))...)
		return http.StatusCreated, cmp
	}
}

// ListComparisons answers GET /admin/comparisons.
func ListComparisons(l ComparisonLister) HandlerFunc {
	return func(ctx context.Context, _ Call) (int, any) {
		list, err := l.List(ctx)
		return respond(list, err, http.StatusOK, compareError)
	}
}

// CompareReportDoc is a comparison's report with its text, the document
// of GET /admin/comparisons/{id}: both sides, the similarity, the cost by
// who pays, each workflow's figures and advice, the projection and the
// recommendation with its sample (docs/operations.md lists the fields).
type CompareReportDoc struct {
	compare.Report
	Text string `json:"text"`
}

// ReportComparison answers GET /admin/comparisons/{id}.
func ReportComparison(r ComparisonReporter) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		rep, err := r.Report(ctx, c.Param)
		if err != nil {
			return compareError(err)
		}
		return http.StatusOK, CompareReportDoc{Report: rep, Text: rep.Text()}
	}
}

// StopComparison answers POST /admin/comparisons/{id}/stop. Each stop is
// an audit line.
func StopComparison(s ComparisonStopper, audit *zap.Logger) HandlerFunc {
	if audit == nil {
		audit = zap.NewNop()
	}
	return func(ctx context.Context, c Call) (int, any) {
		cmp, err := s.Stop(ctx, c.Param)
		if err != nil {
			return compareError(err)
		}
		audit.Info("comparison stopped", append(c.Operator.Fields(), zap.String("id", cmp.ID), zap.String("supplier", cmp.Supplier))...)
		return http.StatusOK, cmp
	}
}

// compareError maps a comparison error to its status.
func compareError(err error) (int, any) {
	switch {
	case errors.Is(err, compare.ErrNotFound):
		return fail(http.StatusNotFound, "comparison_not_found", err.Error())
	case errors.Is(err, compare.ErrInvalid):
		return fail(http.StatusBadRequest, "invalid_comparison", err.Error())
	case errors.Is(err, compare.ErrRunning), errors.Is(err, compare.ErrConflict):
		return fail(http.StatusConflict, "comparison_running", err.Error())
	}
	return fail(http.StatusServiceUnavailable, "store_unavailable", err.Error())
}
