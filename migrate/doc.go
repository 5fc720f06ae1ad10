// Package migrate moves one supplier between the platform system
// (WedSync's keys) and the client system (the supplier's own key), or
// back, without downtime and with a way back.
//
// A Manager plans a migration (a live probe of the target key that spends
// no tokens, a cost estimate from the supplier's usage aggregates and the
// price table, ramp stages and health gates), starts it, and drives it
// through its stages: the share of the supplier's traffic on the target
// grows stage by stage (10%, 50%, 100% by default) once each stage has
// dwelt long enough and its gates pass on enough requests. A failing gate
// sends all traffic back to the source at once, by itself, with an audit
// line and an alert; Rollback does the same on request, also after
// completion. Validate compares the two paths from what Observe recorded.
// Switch records a completed migration at once, for a supplier whose
// platform quota ran out (scenario 1); Exhausted does so in the background
// when the proxy reports it. A planned or ramping migration owns its
// supplier: a switch that arrives meanwhile never completes or advances it,
// but is deferred on it (DeferredSwitch) and applies when it ends with the
// supplier elsewhere. Package compare, apart from migrations,
// shadows a sample of a supplier's requests on the other system and
// reports how the two compare.
//
// # State
//
// Migrations are JSON documents in the store (bucket "migrations", keyed by
// ID), written with CompareAndSwap so that two replicas never overwrite
// each other's change. A supplier's claim (bucket "migration-suppliers",
// keyed by supplier) names its latest migration; it is what keeps a
// supplier to one active migration and what decides its route. Each
// replica's request counts for a migration are a document of their own
// (bucket "migration-stats", key "<id>/<holder>"), so the driver sums all
// replicas and the counts survive a restart.
//
// # Hot path
//
// Decide (or Route) and Observe are called for every request. Both read
// an immutable table behind an atomic pointer, rebuilt on every change,
// and neither locks nor allocates. Decision.Apply turns a decision into
// the key sources and provider of a policy request, for the proxy and for
// the admin explanation alike. A plan's estimate maps each model to the
// target as the policy would serve it (Served) and projects the cost a
// year forward with package forecast. Observe adds to atomic counters and a fixed
// latency histogram; Step writes them to the store.
//
// # Driving
//
// Run calls Step every Interval. Every replica refreshes its view of the
// migrations from the store and writes its counts; only the replica holding
// the lease "migrate" evaluates gates and moves migrations between stages.
//
// See docs/adr/0011-migrations.md and docs/adr/0026-migrations-told-truly.md
// for the reasoning.
package migrate
