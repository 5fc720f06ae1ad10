package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/wedsync/veil/billing"

	"github.com/wedsync/veil/migrate"
)

// PlanBody is the body of POST /admin/migrations.
type PlanBody struct {
	Supplier string `json:"supplier"`
	To       struct {
		Mode     billing.Mode `json:"mode"`
		Provider string       `json:"provider"`
		KeyRef   string       `json:"key_ref"`
	} `json:"to"`
	Stages []struct {
		Share float64 `json:"share"`
		Dwell string  `json:"dwell"`
	} `json:"stages"`
	Gates  migrate.Gates `json:"gates"`
	Days   int           `json:"days"`
	Reason string        `json:"reason"`
}

// MigrationPlanner plans a migration; *migrate.Manager is one.
type MigrationPlanner interface {
	Plan(ctx context.Context, req migrate.PlanRequest) (*migrate.Migration, error)
}

// MigrationReader reads migrations; *migrate.Manager is one.
type MigrationReader interface {
	List(ctx context.Context) ([]*migrate.Migration, error)
	Get(ctx context.Context, id string) (*migrate.Migration, error)
}

// MigrationStarter starts a planned migration; *migrate.Manager is one.
type MigrationStarter interface {
	Start(ctx context.Context, id string) (*migrate.Migration, error)
}

// MigrationRollbacker rolls a migration back; *migrate.Manager is one.
type MigrationRollbacker interface {
	Rollback(ctx context.Context, id, reason string) (*migrate.Migration, error)
}

// MigrationValidator checks a migration's target live; *migrate.Manager
// is one.
type MigrationValidator interface {
	Validate(ctx context.Context, id string) (migrate.Validation, error)
}

// TargetLocator says where a supplier's calls go now: the system it pays
// with (billing.ModePlatform or billing.ModeClient) and the provider its
// calls go to first.
type TargetLocator interface {
	CurrentTarget(supplier string) migrate.Target
}

// PlanMigration answers POST /admin/migrations. A target without a mode
// is the supplier's other system; one without a provider is the provider
// its calls go to now.
func PlanMigration(p MigrationPlanner, cur TargetLocator) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		var b PlanBody
		if err := json.Unmarshal(c.Body, &b); err != nil {
			return fail(http.StatusBadRequest, "invalid_json", "the body must be a JSON object: "+err.Error())
		}
		req := migrate.PlanRequest{Supplier: b.Supplier, To: migrate.Target{Mode: b.To.Mode, Provider: b.To.Provider, KeyRef: b.To.KeyRef},
			Gates: b.Gates, Days: b.Days, Reason: b.Reason}
		if req.Supplier != "" && (req.To.Mode == "" || req.To.Provider == "") {
			now := cur.CurrentTarget(req.Supplier)
			if req.To.Mode == "" {
				req.To.Mode = billing.ModeClient
				if now.Mode == billing.ModeClient {
					req.To.Mode = billing.ModePlatform
				}
			}
			if req.To.Provider == "" {
				req.To.Provider = now.Provider // the same provider, the other key
			}
		}
		for _, st := range b.Stages {
			d, err := time.ParseDuration(st.Dwell)
			if err != nil && st.Dwell != "" {
				return fail(http.StatusBadRequest, "invalid_dwell", "dwell must be a duration such as 10m: "+err.Error())
			}
			req.Stages = append(req.Stages, migrate.Stage{Share: st.Share, Dwell: d})
		}
		m, err := p.Plan(ctx, req)
		return respond(m, err, http.StatusCreated, migrationError)
	}
}

// ListMigrations answers GET /admin/migrations.
func ListMigrations(r MigrationReader) HandlerFunc {
	return func(ctx context.Context, _ Call) (int, any) {
		l, err := r.List(ctx)
		return respond(l, err, http.StatusOK, migrationError)
	}
}

// GetMigration answers GET /admin/migrations/{id}.
func GetMigration(r MigrationReader) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		m, err := r.Get(ctx, c.Param)
		return respond(m, err, http.StatusOK, migrationError)
	}
}

// StartMigration answers POST /admin/migrations/{id}/start.
func StartMigration(s MigrationStarter) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		m, err := s.Start(ctx, c.Param)
		return respond(m, err, http.StatusOK, migrationError)
	}
}

// RollbackMigration answers POST /admin/migrations/{id}/rollback, with an
// optional {"reason": ...} body; the default reason names the operator.
func RollbackMigration(r MigrationRollbacker) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		var b struct {
			Reason string `json:"reason"`
		}
		if len(c.Body) > 0 {
			if err := json.Unmarshal(c.Body, &b); err != nil {
				return fail(http.StatusBadRequest, "invalid_json", "the body must be a JSON object: "+err.Error())
			}
		}
		if b.Reason == "" {
			b.Reason = "rolled back through the admin API"
			if c.Operator.Name != "" {
				b.Reason += " by " + c.Operator.Name
			}
		}
		m, err := r.Rollback(ctx, c.Param, b.Reason)
		return respond(m, err, http.StatusOK, migrationError)
	}
}

// ValidateMigration answers GET /admin/migrations/{id}/validate.
func ValidateMigration(v MigrationValidator) HandlerFunc {
	return func(ctx context.Context, c Call) (int, any) {
		res, err := v.Validate(ctx, c.Param)
		return respond(res, err, http.StatusOK, migrationError)
	}
}

// migrationError maps a migration error to its status.
func migrationError(err error) (int, any) {
	switch {
	case errors.Is(err, migrate.ErrNotFound):
		return fail(http.StatusNotFound, "migration_not_found", err.Error())
	case errors.Is(err, migrate.ErrInvalid), errors.Is(err, migrate.ErrProbeFailed):
		return fail(http.StatusBadRequest, "invalid_migration", err.Error())
	case errors.Is(err, migrate.ErrActive), errors.Is(err, migrate.ErrState), errors.Is(err, migrate.ErrConflict),
		errors.Is(err, migrate.ErrNoChange), errors.Is(err, migrate.ErrStale):
		return fail(http.StatusConflict, "migration_conflict", err.Error())
	}
	return fail(http.StatusServiceUnavailable, "store_unavailable", err.Error())
}
