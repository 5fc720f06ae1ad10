package admin_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/store"
)

// routeYAML has OpenAI, listing gpt-4o first, and Anthropic, which serves
// gpt-4o by its own name.
const routeYAML = `listen:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
providers:
  - {name: openai, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: env://PLATFORM_KEY, models: [gpt-4o, gpt-4o-mini]}
  - name: anthropic
    type: anthropic
    base_url: "http://127.0.0.1:1/v1"
    api_key: env://PLATFORM_KEY
    model_map: {gpt-4o: claude-sonnet-4}
callers:
  - {name: app, token: env://CALLER_TOKEN, suppliers: ["*"]}
tiers:
  - {name: starter, requests_per_minute: 3, on_exhausted: switch_to_client}
suppliers:
  default_tier: starter
  entries:
    - id: bella-photography
      mode: platform
      keys: {openai: env://BELLA_KEY, anthropic: env://BELLA_KEY}
    - id: rose-venue
      mode: platform
      keys: {openai: env://BELLA_KEY}
usage:
  sinks: []
`

var routeEnv = map[string]string{"PLATFORM_KEY": "sk-platform-test", "CALLER_TOKEN": "veil-caller-test", "BELLA_KEY": "sk-bella-test"}

// routeRig is a runtime built from routeYAML, with overrides, and a
// migration manager on an embedded store whose probes pass.
type routeRig struct {
	rt  *atomicRuntime
	m   *migrate.Manager
	st  store.Store
	cfg *config.Config
}

// atomicRuntime is the runtime in force, replaced by tests.
type atomicRuntime struct{ r *generation.Runtime }

func (a *atomicRuntime) Load() *generation.Runtime { return a.r }

func newRouteRig(t *testing.T) *routeRig {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := routeEnv[k]; return v, ok }
	cfg, err := config.ParseWithEnv([]byte(routeYAML), "veil.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rr := &routeRig{rt: &atomicRuntime{}, st: st, cfg: cfg}
	rr.build(t, nil)
	m, err := migrate.New(migrate.Options{Store: st, Holder: "pod-a",
		Probe: func(context.Context, string, migrate.Target) migrate.ProbeResult {
			return migrate.ProbeResult{OK: true, Status: http.StatusOK}
		},
		Current: func(string) migrate.Target { return migrate.Target{Mode: billing.ModePlatform, Provider: "openai"} }})
	if err != nil {
		t.Fatal(err)
	}
	rr.m = m
	return rr
}

// build installs the runtime of routeYAML with overrides ov.
func (rr *routeRig) build(t *testing.T, ov map[string]generation.Override) {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := routeEnv[k]; return v, ok }
	rt, err := generation.Build(rr.cfg, ov, generation.Deps{Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}, Store: rr.st})
	if err != nil {
		t.Fatal(err)
	}
	rr.rt.r = rt
}

// explain calls GET /admin/explain with query.
func (rr *routeRig) explain(t *testing.T, query string) admin.Explanation {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	status, doc := admin.Explain(rr.rt, nil, rr.m)(t.Context(), admin.Call{Query: q})
	if status != http.StatusOK {
		t.Fatalf("explain %s: %d %+v", query, status, doc)
	}
	return doc.(admin.Explanation)
}

// supplier calls GET /admin/suppliers/{id}.
func (rr *routeRig) supplier(t *testing.T, id string) admin.SupplierSettings {
	t.Helper()
	status, doc := admin.GetSupplier(rr.rt, rr.m)(t.Context(), admin.Call{Param: id})
	if status != http.StatusOK {
		t.Fatalf("supplier %s: %d %+v", id, status, doc)
	}
	return doc.(admin.SupplierSettings)
}

// attempts shows a plan as provider:model:key source:reason, ...
func attempts(as []admin.AttemptPlan) string {
	var b []string
	for _, a := range as {
		b = append(b, a.Provider+":"+a.Model+":"+string(a.KeySource)+":"+a.Reason)
	}
	return strings.Join(b, ",")
}

// complete drives a single-stage migration to completion: enough healthy
// requests on its target, then a step.
func complete(t *testing.T, m *migrate.Manager, id string) {
	t.Helper()
	for range migrate.DefaultMinSample {
		m.Observe(id, true, http.StatusOK, 10*time.Millisecond, 0)
	}
	if err := m.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	if mg, err := m.Get(t.Context(), id); err != nil || mg.Status != migrate.StatusCompleted {
		t.Fatalf("migration %+v, %v; want completed", mg, err)
	}
}

// TestExplainFollowsMigrations: explain and the supplier endpoint show the
// mode requests are really served with, why, and the attempts the proxy
// would make: the config's, then a ramp's split, then a completed
// migration that pins the supplier to its own key on Anthropic, a
// run-time override, and a quota switch.
func TestExplainFollowsMigrations(t *testing.T) {
	rr := newRouteRig(t)
	const bella = "supplier=bella-photography&model=gpt-4o"
	// On bella's own key, Anthropic first for gpt-4o; WedSync's key after,
	// should the target fail.
	const pinned = "anthropic:claude-sonnet-4:client:migration_provider,openai:gpt-4o:client:model_listed," +
		"openai:gpt-4o:platform:migration_fallback,anthropic:claude-sonnet-4:platform:migration_fallback"

	ex := rr.explain(t, bella)
	if ex.Mode != billing.ModePlatform || ex.ModeSource != admin.SourceConfig || ex.ConfiguredMode != billing.ModePlatform ||
		ex.Migration != nil || attempts(ex.Attempts) != "openai:gpt-4o:platform:model_listed,anthropic:claude-sonnet-4:platform:model_listed" {
		t.Errorf("explain by the config: mode %s from %s, attempts %s", ex.Mode, ex.ModeSource, attempts(ex.Attempts))
	}

	// A three-stage ramp at its first stage.
	mg, err := rr.m.Plan(t.Context(), migrate.PlanRequest{Supplier: "bella-photography",
		To: migrate.Target{Mode: billing.ModeClient, Provider: "anthropic"}})
	if err != nil {
		t.Fatal(err)
	}
	if ex := rr.explain(t, bella); ex.ModeSource != admin.SourceConfig {
		t.Errorf("a plan changes the mode source: %s", ex.ModeSource)
	}
	if _, err := rr.m.Start(t.Context(), mg.ID); err != nil {
		t.Fatal(err)
	}
	ex = rr.explain(t, bella)
	if ex.Mode != billing.ModeClient || ex.ModeSource != "migration ("+mg.ID+", stage 1 of 3, 10%)" ||
		ex.Migration == nil || ex.Migration.Path != "target" || ex.Migration.DecidedBy != "share" || ex.Migration.Share != 0.1 ||
		attempts(ex.Attempts) != pinned {
		t.Errorf("explain while ramping: mode %s from %s, route %+v, attempts %s", ex.Mode, ex.ModeSource, ex.Migration, attempts(ex.Attempts))
	}
	if op := ex.OtherPath; op == nil || op.Path != "source" || op.Mode != billing.ModePlatform || op.Share != 0.9 ||
		attempts(op.Attempts) != "openai:gpt-4o:platform:model_listed,anthropic:claude-sonnet-4:platform:model_listed" {
		t.Errorf("other path %+v", op)
	}
	// A user's requests take the side Decide gives them.
	for _, user := range []string{"couple-1", "couple-2", "couple-3", "couple-4"} {
		d, _ := rr.m.Decide([]byte("bella-photography"), []byte(user), 0)
		ex := rr.explain(t, bella+"&user="+user)
		if ex.Migration.DecidedBy != "user" || (ex.Migration.Path == "target") != d.ToTarget || ex.Mode != d.Mode {
			t.Errorf("user %s: %+v, mode %s; Decide says %+v", user, ex.Migration, ex.Mode, d)
		}
	}
	if _, err := rr.m.Rollback(t.Context(), mg.ID, "replan"); err != nil {
		t.Fatal(err)
	}

	// A single-stage migration completed: the supplier is pinned to its own
	// key on Anthropic, though its config still says platform.
	one, err := rr.m.Plan(t.Context(), migrate.PlanRequest{Supplier: "bella-photography",
		To: migrate.Target{Mode: billing.ModeClient, Provider: "anthropic"}, Stages: []migrate.Stage{{Share: 1, Dwell: time.Nanosecond}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rr.m.Start(t.Context(), one.ID); err != nil {
		t.Fatal(err)
	}
	complete(t, rr.m, one.ID)
	ex = rr.explain(t, bella)
	if ex.Mode != billing.ModeClient || ex.ModeSource != "migration ("+one.ID+", completed)" || ex.ConfiguredMode != billing.ModePlatform ||
		ex.OtherPath != nil || ex.Migration.From.Mode != billing.ModeClient ||
		attempts(ex.Attempts) != pinned {
		t.Errorf("explain once pinned: mode %s from %s (configured %s), attempts %s", ex.Mode, ex.ModeSource, ex.ConfiguredMode,
			attempts(ex.Attempts))
	}
	st := rr.supplier(t, "bella-photography")
	if st.Mode != billing.ModeClient || st.ModeSource != ex.ModeSource || st.ConfiguredMode != billing.ModePlatform ||
		st.ConfiguredSource != admin.SourceConfig || st.Migration == nil || st.Migration.ID != one.ID {
		t.Errorf("supplier once pinned %+v", st)
	}

	// A run-time override of another supplier's mode.
	client := billing.ModeClient
	rr.build(t, map[string]generation.Override{"rose-venue": {Mode: &client}})
	if st := rr.supplier(t, "rose-venue"); st.Mode != billing.ModeClient || st.ModeSource != admin.SourceOverride || st.Migration != nil {
		t.Errorf("supplier with an override %+v", st)
	}
	if ex := rr.explain(t, "supplier=rose-venue&model=gpt-4o-mini"); ex.ModeSource != admin.SourceOverride ||
		attempts(ex.Attempts) != "openai:gpt-4o-mini:client:model_listed" {
		t.Errorf("explain with an override: %s, attempts %s", ex.ModeSource, attempts(ex.Attempts))
	}

	// A quota switch of a third supplier.
	sw, err := rr.m.Switch(t.Context(), "tiny-florist", migrate.Target{Mode: billing.ModeClient, Provider: "openai"}, migrate.ReasonQuotaExhausted)
	if err != nil {
		t.Fatal(err)
	}
	if st := rr.supplier(t, "tiny-florist"); st.Mode != billing.ModeClient || st.ModeSource != "quota switch ("+sw.ID+")" ||
		st.ConfiguredMode != billing.ModePlatform {
		t.Errorf("supplier switched out of quota %+v", st)
	}
}

// TestSupplierShowsDeferredSwitch: a quota switch during a planned ramp is
// shown on the supplier, waiting on the migration, which still routes.
func TestSupplierShowsDeferredSwitch(t *testing.T) {
	rr := newRouteRig(t)
	mg, err := rr.m.Plan(t.Context(), migrate.PlanRequest{Supplier: "bella-photography", To: migrate.Target{Mode: billing.ModeClient, Provider: "openai"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rr.m.Start(t.Context(), mg.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rr.m.Switch(t.Context(), "bella-photography", migrate.Target{Mode: billing.ModeClient, Provider: "openai"},
		migrate.ReasonQuotaExhausted); !errors.Is(err, migrate.ErrDeferred) {
		t.Fatalf("Switch during a ramp: %v, want ErrDeferred", err)
	}
	st := rr.supplier(t, "bella-photography")
	if d := st.DeferredSwitch; d == nil || d.Waits != mg.ID || !d.Pending() || d.Reason != migrate.ReasonQuotaExhausted {
		t.Errorf("deferred switch %+v", d)
	}
	if st.ModeSource != "migration ("+mg.ID+", stage 1 of 3, 10%)" {
		t.Errorf("mode source %s", st.ModeSource)
	}
}
