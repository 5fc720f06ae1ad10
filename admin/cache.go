package admin

import (
	"context"
	"encoding/json"
	"net/http"

	"go.uber.org/zap"

	"github.com/wedsync/veil/cache"
)

// CachePurge is the document of POST /admin/cache/purge.
type CachePurge struct {
	// Purged is "all", or the supplier whose answers were dropped.
	Purged string      `json:"purged"`
	Stats  cache.Stats `json:"stats"`
}

// CachePurger drops cached answers; *cache.Answers is one.
type CachePurger interface {
	Purge(supplier string)
	PurgeAll()
	Stats() cache.Stats
}

// PurgeCache answers POST /admin/cache/purge: it drops every cached answer,
// or one supplier's (?supplier=ID or {"supplier":"ID"}); c nil means the
// cache is turned off. Each purge is an audit line.
func PurgeCache(c CachePurger, audit *zap.Logger) HandlerFunc {
	if audit == nil {
		audit = zap.NewNop()
	}
	return func(_ context.Context, call Call) (int, any) {
		if c == nil {
			return fail(http.StatusNotFound, "cache_disabled", "the response cache is turned off in this configuration")
		}
		supplier := call.Query.Get("supplier")
		if supplier == "" && len(call.Body) > 0 {
			var body struct {
				Supplier string `json:"supplier"`
			}
			if err := json.Unmarshal(call.Body, &body); err != nil {
				return fail(http.StatusBadRequest, "invalid_json",
					"the body must be a JSON object such as {\"supplier\":\"bella-photography\"}: "+err.Error())
			}
			supplier = body.Supplier
		}
		purged := "all"
		if supplier != "" {
			c.Purge(supplier)
			purged = supplier
		} else {
			c.PurgeAll()
		}
		audit.Info("cache purged", append(call.Operator.Fields(), zap.String("scope", purged))...)
		return http.StatusOK, CachePurge{Purged: purged, Stats: c.Stats()}
	}
}
