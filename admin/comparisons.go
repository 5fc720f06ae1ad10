package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/policy"
)

// CompareStart is the body of POST /admin/comparisons.
type CompareStart struct {
	Supplier string  `json:"supplier"`
	Other    string  `json:"other"`
	Provider string  `json:"provider"`
	Requests int     `json:"requests"`
	Window   string  `json:"window"`
	Sample   float64 `json:"sample"`
	Billed   string  `json:"billed"`
}

// ComparisonStarter starts a shadow comparison; *migrate.Comparisons is
// one.
type ComparisonStarter interface {
	Start(ctx context.Context, r migrate.CompareRequest) (*migrate.Comparison, error)
}

// ComparisonLister lists comparisons; *migrate.Comparisons is one.
type ComparisonLister interface {
	List(ctx context.Context) ([]*migrate.Comparison, error)
}

// ComparisonReporter reports a comparison's outcome; *migrate.Comparisons
// is one.
type ComparisonReporter interface {
	Report(ctx context.Context, id string) (migrate.CompareReport, error)
}

// ComparisonStopper stops a comparison; *migrate.Comparisons is one.
type ComparisonStopper interface {
	Stop(ctx context.Context, id string) (*migrate.Comparison, error)
}

// SystemLocator says which system a supplier pays with now:
// policy.SourcePlatform or policy.SourceClient.
type SystemLocator interface {
	CurrentSystem(supplier string) string
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
		req := migrate.CompareRequest{Supplier: body.Supplier, Other: body.Other, Provider: body.Provider, Requests: body.Requests,
			Sample: body.Sample, Billed: body.Billed}
		if body.Window != "" {
			d, err := time.ParseDuration(body.Window)
			if err != nil {
				return fail(http.StatusBadRequest, "invalid_window", "window must be a duration such as 30m: "+err.Error())
			}
			req.Window = d
		}
		if req.Other == "" && req.Supplier != "" {
			req.Other = policy.SourceClient
			if cur.CurrentSystem(req.Supplier) == policy.SourceClient {
				req.Other = policy.SourcePlatform
			}
		}
		cmp, err := s.Start(ctx, req)
		if err != nil {
			return compareError(err)
		}
		audit.Info("comparison started", zap.String("id", cmp.ID), zap.String("supplier", cmp.Supplier),
			zap.String("other", cmp.Other))
		return http.StatusCreated, cmp
	}
}

// ListComparisons answers GET /admin/comparisons.
func ListComparisons(l ComparisonLister) HandlerFunc {
	return func(ctx context.Context, _ Call) (int, any) {
		list, err := l.List(ctx)
		if err != nil {
			return compareError(err)
		}
		return http.StatusOK, list
	}
}

// CompareReportDoc is a comparison's report with its table, the document
// of GET /admin/comparisons/{id}.
type CompareReportDoc struct {
	migrate.CompareReport
	Text string `json:"text"`
}

// ReportComparison answers GET /admin/comparisons/{id}.
func ReportComparison(r ComparisonReporter) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		rep, err := r.Report(ctx, c.Param)
		if err != nil {
			return compareError(err)
		}
		return http.StatusOK, CompareReportDoc{CompareReport: rep, Text: rep.Text()}
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
		audit.Info("comparison stopped", zap.String("id", cmp.ID), zap.String("supplier", cmp.Supplier))
		return http.StatusOK, cmp
	}
}

// compareError maps a comparison error to its status.
func compareError(err error) (int, any) {
	switch {
	case errors.Is(err, migrate.ErrCompareNotFound):
		return fail(http.StatusNotFound, "comparison_not_found", err.Error())
	case errors.Is(err, migrate.ErrCompareInvalid):
		return fail(http.StatusBadRequest, "invalid_comparison", err.Error())
	case errors.Is(err, migrate.ErrCompareRunning), errors.Is(err, migrate.ErrCompareConflict):
		return fail(http.StatusConflict, "comparison_running", err.Error())
	}
	return fail(http.StatusServiceUnavailable, "store_unavailable", err.Error())
}
