package proxy

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/policy"
)

// Migrations splits a supplier's traffic between the system it pays with
// now (platform keys or its own) and the one it moves to; see
// migrate.Manager.
type Migrations interface {
	// Decide says which system serves this request of a supplier with a
	// migration under way, and which migration decides; ok is false for a
	// supplier without one. user is the request's "user" field, so that a
	// conversation stays on one side. The decision's Apply sets the
	// request's key sources, as GET /admin/explain does with the same
	// decision.
	Decide(supplier, user []byte, spread uint64) (d migrate.Decision, ok bool)
	// Exhausted is told, without waiting, that a supplier's platform quota
	// ran out on provider and its request was served on its own key: the
	// supplier is moved to its own key for good (a migration with reason
	// quota_exhausted) until someone rolls it back.
	Exhausted(supplier, provider string)
	// Observe records a request's outcome on one side of a migration, for
	// its gates and its validation.
	Observe(id string, toTarget bool, status int, latency time.Duration, costUSD float64)
}

// migration is what an exchange knows of its supplier's migration.
type migration struct {
	id       string
	toTarget bool
}

// route asks the supplier's migration, if any, which system serves this
// request, and sets the key sources (and the target's provider) the plan
// must use on req; without a migration req keeps the supplier's mode's.
func (s *Server) route(x *exchange, req *policy.Request) {
	if s.migrations == nil {
		return
	}
	d, ok := s.migrations.Decide(x.supplier, x.fields.User, x.spread)
	if !ok {
		return
	}
	d.Apply(req)
	x.migration = migration{id: d.ID, toTarget: d.ToTarget}
	if d.ToTarget {
		x.reason = "migration"
	}
}

// observeMigration feeds a finished request to its migration's gates. A
// request sent to the target and answered by the fallback counts as the
// target's failure, with the status the target gave (503 when it was not
// tried, its key being held out), though the client got its answer.
func (s *Server) observeMigration(x *exchange, elapsed time.Duration, costUSD float64) {
	m := x.migration
	if m.id == "" || x.served == nil {
		return
	}
	status := x.status
	if m.toTarget && x.served.Source != x.plan[0].Source {
		status = fasthttp.StatusServiceUnavailable
		if x.attemptCount > 0 && x.attemptLog[0].KeySource == x.plan[0].Source && x.attemptLog[0].Status >= 400 {
			status = x.attemptLog[0].Status
		}
	}
	s.migrations.Observe(m.id, m.toTarget, status, elapsed, costUSD)
}
