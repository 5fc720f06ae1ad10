package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/compare"
)

// buildComparisons makes the shadow comparisons of suppliers' two systems,
// kept in the store so that every replica follows them.
func (a *App) buildComparisons() {
	a.compare = compare.New(compare.Options{Store: a.store, Log: a.log, Holder: a.holder,
		Current: a.currentSystem})
}

// currentSystem is the system a supplier pays with now: platform or
// client (a hybrid supplier's own key comes first).
func (a *App) currentSystem(supplier string) billing.Mode {
	a.mu.RLock()
	mode := a.policy.Mode([]byte(supplier))
	a.mu.RUnlock()
	if mode == billing.ModePlatform {
		return billing.ModePlatform
	}
	return billing.ModeClient
}

// CompareStart is the body of POST /admin/comparisons.
type CompareStart struct {
	Supplier string        `json:"supplier"`
	Other    billing.Mode  `json:"other"`
	Provider string        `json:"provider"`
	Requests int           `json:"requests"`
	Window   string        `json:"window"`
	Sample   float64       `json:"sample"`
	Billed   billing.Payer `json:"billed"`
}

func (a *App) adminStartComparison(ctx context.Context, c admin.Call) (int, any) {
	var body CompareStart
	if err := json.Unmarshal(c.Body, &body); err != nil {
		return adminError(http.StatusBadRequest, "invalid_json", "the body must be a JSON object: "+err.Error())
	}
	req := compare.Request{Supplier: body.Supplier, Other: body.Other, Provider: body.Provider, Requests: body.Requests,
		Sample: body.Sample, Billed: body.Billed}
	if body.Window != "" {
		d, err := time.ParseDuration(body.Window)
		if err != nil {
			return adminError(http.StatusBadRequest, "invalid_window", "window must be a duration such as 30m: "+err.Error())
		}
		req.Window = d
	}
	if req.Other == "" && req.Supplier != "" {
		req.Other = billing.ModeClient
		if a.currentSystem(req.Supplier) == billing.ModeClient {
			req.Other = billing.ModePlatform
		}
	}
	cmp, err := a.compare.Start(ctx, req)
	if err != nil {
		return compareError(err)
	}
	a.audit.Info("comparison started", zap.String("id", cmp.ID), zap.String("supplier", cmp.Supplier),
		zap.String("other", string(cmp.Other)))
	return http.StatusCreated, cmp
}

func (a *App) adminListComparisons(ctx context.Context, _ admin.Call) (int, any) {
	l, err := a.compare.List(ctx)
	if err != nil {
		return compareError(err)
	}
	return http.StatusOK, l
}

func (a *App) adminCompareReport(ctx context.Context, c admin.Call) (int, any) {
	r, err := a.compare.Report(ctx, c.Param)
	if err != nil {
		return compareError(err)
	}
	return http.StatusOK, compareReportDoc{Report: r, Text: r.Text()}
}

// compareReportDoc is a comparison's report with its table.
type compareReportDoc struct {
	compare.Report
	Text string `json:"text"`
}

func (a *App) adminStopComparison(ctx context.Context, c admin.Call) (int, any) {
	cmp, err := a.compare.Stop(ctx, c.Param)
	if err != nil {
		return compareError(err)
	}
	a.audit.Info("comparison stopped", zap.String("id", cmp.ID), zap.String("supplier", cmp.Supplier))
	return http.StatusOK, cmp
}

// compareError maps a comparison error to its status.
func compareError(err error) (int, any) {
	switch {
	case errors.Is(err, compare.ErrNotFound):
		return adminError(http.StatusNotFound, "comparison_not_found", err.Error())
	case errors.Is(err, compare.ErrInvalid):
		return adminError(http.StatusBadRequest, "invalid_comparison", err.Error())
	case errors.Is(err, compare.ErrRunning), errors.Is(err, compare.ErrConflict):
		return adminError(http.StatusConflict, "comparison_running", err.Error())
	}
	return adminError(http.StatusServiceUnavailable, "store_unavailable", err.Error())
}

// adminError is an admin endpoint's error document.
func adminError(status int, code, msg string) (int, any) {
	return status, map[string]any{"error": map[string]string{"code": code, "message": msg}}
}
