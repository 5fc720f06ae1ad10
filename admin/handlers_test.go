package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/cache"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/store"
)

// errorCode is the code of an admin error document, or "".
func errorCode(doc any) string {
	m, ok := doc.(map[string]any)
	if !ok {
		return ""
	}
	e, _ := m["error"].(map[string]string)
	return e["code"]
}

type fakeUsage struct {
	rows []store.Usage
	err  error
	got  store.UsageQuery
}

func (f *fakeUsage) QueryUsage(_ context.Context, q store.UsageQuery) ([]store.Usage, error) {
	f.got = q
	return f.rows, f.err
}

func TestQueryUsage(t *testing.T) {
	day1 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 1)
	rows := []store.Usage{
		{Day: day1, Supplier: "bella", Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform", Requests: 2, PromptTokens: 10, CostMicros: 1500},
		{Day: day2, Supplier: "bella", Provider: "openai", Model: "gpt-4o", KeySource: "platform", Requests: 1, PromptTokens: 5, CostMicros: 500},
		{Day: day2, Supplier: "rosa", Provider: "openai", Model: "gpt-4o", KeySource: "client", Requests: 4, CompletionTokens: 7},
	}
	tests := []struct {
		name       string
		query      string
		err        error
		wantStatus int
		wantCode   string
		wantRows   int
		wantFrom   string
	}{
		{name: "group by supplier", query: "from=2026-06-01&to=2026-06-30&group_by=supplier", wantStatus: http.StatusOK, wantRows: 2, wantFrom: "2026-06-01"},
		{name: "default groups", query: "from=2026-06-01", wantStatus: http.StatusOK, wantRows: 3, wantFrom: "2026-06-01"},
		{name: "by day", query: "from=2026-06-01&group_by=day", wantStatus: http.StatusOK, wantRows: 2, wantFrom: "2026-06-01"},
		{name: "bad from", query: "from=June", wantStatus: http.StatusBadRequest, wantCode: "bad_from"},
		{name: "bad to", query: "to=30/06/2026", wantStatus: http.StatusBadRequest, wantCode: "bad_to"},
		{name: "bad group", query: "group_by=supplier,colour", wantStatus: http.StatusBadRequest, wantCode: "bad_group_by"},
		{name: "store down", query: "", err: errors.New("connection refused"), wantStatus: http.StatusBadGateway, wantCode: "store_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeUsage{rows: rows, err: tt.err}
			q, _ := url.ParseQuery(tt.query)
			status, doc := admin.QueryUsage(f)(context.Background(), admin.Call{Query: q})
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %+v", status, tt.wantStatus, doc)
			}
			if tt.wantCode != "" {
				if got := errorCode(doc); got != tt.wantCode {
					t.Errorf("error code %q, want %q", got, tt.wantCode)
				}
				return
			}
			rep := doc.(admin.UsageReport)
			if len(rep.Rows) != tt.wantRows || rep.From != tt.wantFrom {
				t.Errorf("report %+v, want %d rows from %s", rep, tt.wantRows, tt.wantFrom)
			}
			if rep.Total.Requests != 7 || rep.Total.PromptTokens != 15 || rep.Total.CompletionTokens != 7 || rep.Total.CostUSD != 0.002 {
				t.Errorf("total %+v", rep.Total)
			}
			if f.got.From.Format(time.DateOnly) != tt.wantFrom {
				t.Errorf("store asked from %v", f.got.From)
			}
		})
	}
}

// TestQueryUsageBilledAndWorkflow: usage groups by who pays and by
// workflow, and by default keeps who pays apart from whose key it was.
func TestQueryUsageBilledAndWorkflow(t *testing.T) {
	day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	u := func(keySource, billed, workflow string, requests, micros int64) store.Usage {
		return store.Usage{Day: day, Supplier: "bella", Provider: "openai", Model: "gpt-4o-mini", KeySource: keySource,
			Billed: billed, Workflow: workflow, Requests: requests, CostMicros: micros}
	}
	f := &fakeUsage{rows: []store.Usage{
		u("client", "client", "photography", 2, 200),
		u("client", "platform", "photography", 40, 4000), // shadow calls WedSync pays for
		u("client", "client", "venue", 1, 100),
		u("platform", "none", "venue", 5, 0), // cache hits
		u("platform", "platform", "", 3, 300),
	}}
	report := func(query string) admin.UsageReport {
		t.Helper()
		q, _ := url.ParseQuery(query)
		status, doc := admin.QueryUsage(f)(context.Background(), admin.Call{Query: q})
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %+v", query, status, doc)
		}
		return doc.(admin.UsageReport)
	}
	type row struct {
		keySource, billed, workflow string
		requests, micros            int64
	}
	rows := func(rep admin.UsageReport) []row {
		var out []row
		for _, r := range rep.Rows {
			out = append(out, row{r.KeySource, r.Billed, r.Workflow, r.Requests, r.CostMicros})
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []row
	}{
		{"from=2026-06-01&group_by=billed,workflow", []row{
			{"", "client", "photography", 2, 200}, {"", "platform", "photography", 40, 4000}, {"", "client", "venue", 1, 100},
			{"", "none", "venue", 5, 0}, {"", "platform", "", 3, 300}}},
		{"from=2026-06-01&group_by=billed", []row{{"", "client", "", 3, 300}, {"", "platform", "", 43, 4300}, {"", "none", "", 5, 0}}},
		{"from=2026-06-01&group_by=workflow", []row{{"", "", "photography", 42, 4200}, {"", "", "venue", 6, 100}, {"", "", "", 3, 300}}},
		{"from=2026-06-01&group_by=key_source", []row{{"client", "", "", 43, 4300}, {"platform", "", "", 8, 300}}},
		{"from=2026-06-01", []row{{"client", "client", "", 3, 300}, {"client", "platform", "", 40, 4000},
			{"platform", "none", "", 5, 0}, {"platform", "platform", "", 3, 300}}},
	} {
		rep := report(tc.query)
		if got := rows(rep); !slices.Equal(got, tc.want) {
			t.Errorf("%s: rows %+v, want %+v", tc.query, got, tc.want)
		}
		if rep.Total.Requests != 51 || rep.Total.CostMicros != 4600 {
			t.Errorf("%s: total %+v", tc.query, rep.Total)
		}
	}
	if g := report("from=2026-06-01").GroupBy; !slices.Equal(g, []string{"supplier", "provider", "model", "key_source", "billed"}) {
		t.Errorf("default group_by %v", g)
	}
}

type fakePurger struct {
	purged []string
	all    int
}

func (f *fakePurger) Purge(s string)     { f.purged = append(f.purged, s) }
func (f *fakePurger) PurgeAll()          { f.all++ }
func (f *fakePurger) Stats() cache.Stats { return cache.Stats{} }

func TestPurgeCache(t *testing.T) {
	tests := []struct {
		name       string
		off        bool
		query      string
		body       string
		wantStatus int
		wantCode   string
		wantPurged string
	}{
		{name: "everything", wantStatus: http.StatusOK, wantPurged: "all"},
		{name: "a supplier in the query", query: "supplier=bella", wantStatus: http.StatusOK, wantPurged: "bella"},
		{name: "a supplier in the body", body: `{"supplier":"rosa"}`, wantStatus: http.StatusOK, wantPurged: "rosa"},
		{name: "a body that is not JSON", body: `rosa`, wantStatus: http.StatusBadRequest, wantCode: "invalid_json"},
		{name: "the cache off", off: true, wantStatus: http.StatusNotFound, wantCode: "cache_disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakePurger{}
			var p admin.CachePurger = f
			if tt.off {
				p = nil
			}
			q, _ := url.ParseQuery(tt.query)
			status, doc := admin.PurgeCache(p, nil)(context.Background(), admin.Call{Query: q, Body: []byte(tt.body)})
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %+v", status, tt.wantStatus, doc)
			}
			if tt.wantCode != "" {
				if got := errorCode(doc); got != tt.wantCode {
					t.Errorf("error code %q, want %q", got, tt.wantCode)
				}
				return
			}
			if got := doc.(admin.CachePurge).Purged; got != tt.wantPurged {
				t.Errorf("purged %q, want %q", got, tt.wantPurged)
			}
			if tt.wantPurged == "all" && (f.all != 1 || len(f.purged) != 0) ||
				tt.wantPurged != "all" && (f.all != 0 || len(f.purged) != 1 || f.purged[0] != tt.wantPurged) {
				t.Errorf("purger saw all=%d suppliers=%v", f.all, f.purged)
			}
		})
	}
}

type fakeKeys struct {
	held []keys.Status
	err  error
	asks []string
}

func (f *fakeKeys) Snapshot() []keys.Status { return f.held }
func (f *fakeKeys) Refresh(_ context.Context, s string) error {
	f.asks = append(f.asks, s)
	return f.err
}

func TestRefreshKeys(t *testing.T) {
	held := []keys.Status{{Supplier: "bella", Provider: "openai"}, {Supplier: "rosa", Provider: "openai"}}
	tests := []struct {
		name       string
		none       bool
		err        error
		wantStatus int
		wantKeys   int
	}{
		{name: "refreshed", wantStatus: http.StatusOK, wantKeys: 1},
		{name: "the source fails", err: errors.New("vault sealed"), wantStatus: http.StatusBadGateway, wantKeys: 1},
		{name: "no supplier keys", none: true, wantStatus: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeKeys{held: held, err: tt.err}
			var r admin.KeyRefresher = f
			if tt.none {
				r = nil
			}
			status, doc := admin.RefreshKeys(r)(context.Background(), admin.Call{Param: "bella"})
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %+v", status, tt.wantStatus, doc)
			}
			if tt.none {
				if errorCode(doc) != "no_supplier_keys" {
					t.Errorf("answer %+v", doc)
				}
				return
			}
			out := doc.(map[string]any)
			if got := out["keys"].([]keys.Status); len(got) != tt.wantKeys || got[0].Supplier != "bella" {
				t.Errorf("keys %+v", got)
			}
			if _, failed := out["error"]; failed != (tt.err != nil) {
				t.Errorf("error shown %v, want %v", failed, tt.err != nil)
			}
			if len(f.asks) != 1 || f.asks[0] != "bella" {
				t.Errorf("refreshed %v", f.asks)
			}
		})
	}
}

type fakePlanner struct {
	got migrate.PlanRequest
	err error
}

func (f *fakePlanner) Plan(_ context.Context, req migrate.PlanRequest) (*migrate.Migration, error) {
	f.got = req
	if f.err != nil {
		return nil, f.err
	}
	return &migrate.Migration{}, nil
}

type fixedTarget migrate.Target

func (f fixedTarget) CurrentTarget(string) migrate.Target { return migrate.Target(f) }

func TestPlanMigration(t *testing.T) {
	tests := []struct {
		name       string
		current    migrate.Target
		body       string
		err        error
		wantStatus int
		wantCode   string
		wantTo     migrate.Target
	}{
		{name: "from platform to the supplier's own key", current: migrate.Target{Mode: "platform", Provider: "openai"},
			body: `{"supplier":"bella","stages":[{"share":0.1,"dwell":"10m"}]}`, wantStatus: http.StatusCreated,
			wantTo: migrate.Target{Mode: billing.ModeClient, Provider: "openai"}},
		{name: "from the supplier's own key to platform", current: migrate.Target{Mode: "client", Provider: "anthropic"},
			body: `{"supplier":"bella"}`, wantStatus: http.StatusCreated,
			wantTo: migrate.Target{Mode: billing.ModePlatform, Provider: "anthropic"}},
		{name: "a target given in full", current: migrate.Target{Mode: "client", Provider: "anthropic"},
			body: `{"supplier":"bella","to":{"mode":"client","provider":"openai"}}`, wantStatus: http.StatusCreated,
			wantTo: migrate.Target{Mode: billing.ModeClient, Provider: "openai"}},
		{name: "not JSON", body: `{`, wantStatus: http.StatusBadRequest, wantCode: "invalid_json"},
		{name: "a bad dwell", body: `{"supplier":"bella","stages":[{"share":0.1,"dwell":"ten"}]}`,
			wantStatus: http.StatusBadRequest, wantCode: "invalid_dwell"},
		{name: "refused", body: `{"supplier":"bella"}`, err: fmt.Errorf("plan: %w", migrate.ErrActive),
			wantStatus: http.StatusConflict, wantCode: "migration_conflict"},
		{name: "invalid", body: `{"supplier":"bella"}`, err: migrate.ErrInvalid,
			wantStatus: http.StatusBadRequest, wantCode: "invalid_migration"},
		{name: "store down", body: `{"supplier":"bella"}`, err: errors.New("timeout"),
			wantStatus: http.StatusServiceUnavailable, wantCode: "store_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakePlanner{err: tt.err}
			status, doc := admin.PlanMigration(f, fixedTarget(tt.current))(context.Background(), admin.Call{Body: []byte(tt.body)})
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %+v", status, tt.wantStatus, doc)
			}
			if tt.wantCode != "" {
				if got := errorCode(doc); got != tt.wantCode {
					t.Errorf("error code %q, want %q", got, tt.wantCode)
				}
				return
			}
			if f.got.To != tt.wantTo {
				t.Errorf("planned to %+v, want %+v", f.got.To, tt.wantTo)
			}
		})
	}
}

type fakeOverrides struct {
	put, deleted []string
	putErr       error
	applied      int
	applyErr     error
}

func (f *fakeOverrides) PutOverride(_ context.Context, s string, _ generation.Override) error {
	f.put = append(f.put, s)
	return f.putErr
}

func (f *fakeOverrides) DeleteOverride(_ context.Context, s string) error {
	f.deleted = append(f.deleted, s)
	return nil
}

func (f *fakeOverrides) ApplyOverrides(context.Context) error {
	f.applied++
	return f.applyErr
}

type fixedRuntime struct{ rt *generation.Runtime }

func (f fixedRuntime) Load() *generation.Runtime { return f.rt }

func TestPutSupplier(t *testing.T) {
	cfg, err := config.ParseWithEnv([]byte(`providers:
  - {name: openai, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: env://K}
callers:
  - {name: app, token: env://T, suppliers: ["*"]}
tiers:
  - {name: starter, requests_per_minute: 3}
suppliers:
  default_mode: platform
`), "veil.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	built, err := generation.Build(cfg, nil, generation.Deps{Store: st,
		Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: func(string) (string, bool) { return "secret-for-tests", true }}}})
	if err != nil {
		t.Fatal(err)
	}
	rt := fixedRuntime{built}
	tests := []struct {
		name        string
		id          string
		body        string
		putErr      error
		applyErr    error
		wantStatus  int
		wantCode    string
		wantStored  bool
		wantApplied bool
	}{
		{name: "a tier", id: "bella", body: `{"tier":"starter"}`, wantStatus: http.StatusOK, wantStored: true, wantApplied: true},
		{name: "an unknown tier", id: "bella", body: `{"tier":"gold"}`, wantStatus: http.StatusBadRequest, wantCode: "invalid_override"},
		{name: "an unknown field", id: "bella", body: `{"colour":"red"}`, wantStatus: http.StatusBadRequest, wantCode: "invalid_override"},
		{name: "not a supplier ID", id: "Bella Photography!", body: `{}`, wantStatus: http.StatusBadRequest, wantCode: "invalid_supplier_id"},
		{name: "store down", id: "bella", body: `{"tier":"starter"}`, putErr: errors.New("timeout"),
			wantStatus: http.StatusBadGateway, wantCode: "store_unavailable", wantStored: true},
		{name: "not applied", id: "bella", body: `{"tier":"starter"}`, applyErr: errors.New("no such key"),
			wantStatus: http.StatusBadGateway, wantCode: "not_applied", wantStored: true, wantApplied: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeOverrides{putErr: tt.putErr, applyErr: tt.applyErr}
			status, doc := admin.PutSupplier(rt, f, f, nil)(context.Background(), admin.Call{Param: tt.id, Body: []byte(tt.body)})
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %+v", status, tt.wantStatus, doc)
			}
			if got := errorCode(doc); got != tt.wantCode {
				t.Errorf("error code %q, want %q", got, tt.wantCode)
			}
			if (len(f.put) == 1) != tt.wantStored || (f.applied == 1) != tt.wantApplied {
				t.Errorf("stored %v applied %d", f.put, f.applied)
			}
			if tt.wantCode == "" {
				if st := doc.(admin.SupplierSettings); st.ID != tt.id || st.Mode != "platform" {
					t.Errorf("settings %+v", st)
				}
			}
		})
	}
}
