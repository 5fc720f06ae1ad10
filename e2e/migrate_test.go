package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/app"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/logging"
	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/usage"
)

// bellaPlatform puts bella-photography on platform keys, with a key of its
// own that a migration can move it to.
const bellaPlatform = `suppliers:
  entries:
    - id: bella-photography
      mode: platform
      keys:
        openai: env://BELLA_KEY
`

// maxRequests bounds every request loop below: the loops end on a
// condition (a migration's status, a comparison's count), and this bound
// only stops one that would never end.
const maxRequests = 20000

// withBella returns a setup in which the fake also accepts bella's own key,
// and that key.
func withBella(tp *tap, extra string) (setup, string) {
	bellaKey := secret("sk-bella-own-")
	return setup{fake: fakeopenai.Options{Keys: []string{bellaKey}}, env: map[string]string{"BELLA_KEY": bellaKey},
		tap: tp.add, extra: extra}, bellaKey
}

// migView is a migration as the admin API returns it.
type migView struct {
	ID       string `json:"id"`
	Supplier string `json:"supplier"`
	From     struct {
		Mode     string `json:"mode"`
		Provider string `json:"provider"`
	} `json:"from"`
	To struct {
		Mode     string `json:"mode"`
		Provider string `json:"provider"`
	} `json:"to"`
	Stages []struct {
		Share float64 `json:"share"`
	} `json:"stages"`
	Reason       string    `json:"reason"`
	Status       string    `json:"status"`
	Stage        int       `json:"stage"`
	StageStarted time.Time `json:"stage_started"`
	Events       []struct {
		Kind    string `json:"kind"`
		Stage   int    `json:"stage"`
		Message string `json:"message"`
	} `json:"events"`
}

// events counts the migration's events of one kind.
func (m migView) events(kind string) int {
	n := 0
	for _, e := range m.Events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// rampPlan is a plan body moving bella to its own key through stages (a
// JSON list), with a small sample and a latency gate loose enough for a
// fake answering in about a millisecond either way.
func rampPlan(stages string, minSample int) string {
	return `{"supplier":"bella-photography","to":{"mode":"client"},"stages":` + stages +
		`,"gates":{"max_error_rate":0.05,"max_p95_ratio":50,"min_sample":` + itoa(minSample) + `},"reason":"supplier request"}`
}

// adminJSON calls an admin endpoint, checks its status and decodes its
// answer into v.
func (h *harness) adminJSON(t *testing.T, method, path, body string, want int, v any) {
	t.Helper()
	code, got := h.adminDo(method, path, body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, got)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(got), v); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, got)
		}
	}
}

func (h *harness) planMigration(t *testing.T, body string) migView {
	t.Helper()
	var m migView
	h.adminJSON(t, "POST", "/admin/migrations", body, 201, &m)
	return m
}

func (h *harness) startMigration(t *testing.T, id string) migView {
	t.Helper()
	var m migView
	h.adminJSON(t, "POST", "/admin/migrations/"+id+"/start", "", 200, &m)
	return m
}

func (h *harness) getMigration(t *testing.T, id string) migView {
	t.Helper()
	var m migView
	h.adminJSON(t, "GET", "/admin/migrations/"+id, "", 200, &m)
	return m
}

// validation is the part of GET /admin/migrations/{id}/validate the tests
// check.
type validation struct {
	Status string `json:"status"`
	Source struct {
		Requests int64 `json:"requests"`
		Errors   int64 `json:"errors"`
	} `json:"source"`
	Target struct {
		Requests int64 `json:"requests"`
		Errors   int64 `json:"errors"`
	} `json:"target"`
	Verdict string `json:"verdict"`
}

func (h *harness) validateMigration(t *testing.T, id string) validation {
	t.Helper()
	var v validation
	h.adminJSON(t, "GET", "/admin/migrations/"+id+"/validate", "", 200, &v)
	return v
}

// answer is one chat completion as a go-openai client got it.
type answer struct {
	source string // X-Veil-Key-Source
	id     string // X-Request-Id
	resp   openai.ChatCompletionResponse
	err    error
}

// ask sends weddingChat, with the conversation's user when one is given.
func ask(ctx context.Context, c *openai.Client, user string) answer {
	req := weddingChat
	req.User = user
	resp, err := c.CreateChatCompletion(ctx, req)
	if err != nil {
		return answer{err: err}
	}
	return answer{source: resp.Header().Get("X-Veil-Key-Source"), id: resp.Header().Get("X-Request-Id"), resp: resp}
}

// sides counts the requests served on each key source.
type sides struct{ client, platform int }

func (s *sides) add(source string) {
	if source == "client" {
		s.client++
	} else {
		s.platform++
	}
}

func (s sides) share() float64 {
	if s.client+s.platform == 0 {
		return 0
	}
	return float64(s.client) / float64(s.client+s.platform)
}

// traffic is what ramp sent and how it was served.
type traffic struct {
	// perStage counts the requests by the stage GET showed both before and
	// after them.
	perStage []sides
	// served maps the request ID of every answered request to the key
	// source it was served on.
	served map[string]string
	// ramping counts the answered requests sent while the migration was
	// ramping: those its gates and validation count, bar one in flight
	// when it ended.
	ramping sides
	// errs counts client errors.
	errs int
}

func newTraffic(stages int) *traffic {
	return &traffic{perStage: make([]sides, stages), served: map[string]string{}}
}

// ramp sends steady requests, one at a time, until the migration as GET
// shows it satisfies until; it returns the migration as last seen.
func ramp(t *testing.T, h *harness, id string, tr *traffic, until func(migView) bool) migView {
	t.Helper()
	ctx := t.Context()
	c := h.client()
	cur := h.getMigration(t, id)
	for n := 0; !until(cur) && n < maxRequests; n++ {
		a := ask(ctx, c, "")
		next := h.getMigration(t, id)
		if a.err != nil {
			if tr.errs == 0 {
				t.Logf("first client error: %v", a.err)
			}
			tr.errs++
			cur = next
			continue
		}
		tr.served[a.id] = a.source
		if cur.Status == "ramping" {
			tr.ramping.add(a.source)
			if next.Status == "ramping" && next.Stage == cur.Stage && cur.Stage < len(tr.perStage) {
				tr.perStage[cur.Stage].add(a.source)
			}
		}
		cur = next
	}
	if !until(cur) {
		t.Fatalf("after %d requests the migration is still %s at stage %d", maxRequests, cur.Status, cur.Stage)
	}
	return cur
}

// checkValidation waits until the migration's validation counts what the
// clients were served while it ramped: every request on platform keys (at
// 100%, the last stage, none is), and every one on bella's key, give or
// take the one at the moment the migration completed.
func checkValidation(t *testing.T, h *harness, id string, tr *traffic) {
	t.Helper()
	var v validation
	waitUntil(t, func() bool {
		v = h.validateMigration(t, id)
		// One request may sit on either side of the completion: in flight
		// when it completed (the client counted it as ramping, veil may
		// not), or sent just after the GET that showed it completed while
		// the routing still saw the last stage (veil counted it, the
		// client did not).
		d := int64(tr.ramping.client) - v.Target.Requests
		return v.Source.Requests == int64(tr.ramping.platform) && d >= -1 && d <= 1
	}, func() string {
		return fmt.Sprintf("validation %+v; clients were served %+v while it ramped", v, tr.ramping)
	})
	if v.Target.Errors != 0 || v.Source.Errors != 0 || v.Status != "completed" || v.Verdict != "pass" {
		t.Errorf("validation: %+v", v)
	}
}

// waitLines waits until buf holds at least one log line with message msg
// (the audit line and the alert of a change follow its write to the store)
// and returns them all.
func waitLines(t *testing.T, buf *lockedBuffer, msg string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	waitUntil(t, func() bool {
		lines = logLines(buf, msg)
		return len(lines) > 0
	}, func() string { return "no log line " + strconv.Quote(msg) })
	return lines
}

// checkRecords checks the usage record of every served request: it names
// the migration and the key source the client saw, and a call on the
// supplier's key is billed to it with reason migration.
func checkRecords(t *testing.T, tp *tap, migID string, served map[string]string) sides {
	t.Helper()
	var s sides
	for rid, source := range served {
		r := tp.one(t, rid)
		s.add(source)
		if r.MigrationID != migID || string(r.KeySource) != source {
			t.Errorf("record %s: migration %q key source %q, want %q and %q", rid, r.MigrationID, r.KeySource, migID, source)
		}
		if source == "client" && (r.Billed != billing.PaidByClient || r.Reason != "migration") {
			t.Errorf("record %s on the client key: billed %q reason %q", rid, r.Billed, r.Reason)
		}
		if source == "platform" && r.Billed != billing.PaidByPlatform {
			t.Errorf("record %s on the platform key: billed %q", rid, r.Billed)
		}
	}
	return s
}

// upstreamChats counts the chat completions the fake received with key.
func upstreamChats(up *fakeopenai.Server, key string) int {
	n := 0
	for _, r := range up.Requests() {
		if r.Path == "/v1/chat/completions" && r.Header.Get("Authorization") == "Bearer "+key {
			n++
		}
	}
	return n
}

// logLines returns the JSON log lines in buf whose message is msg.
func logLines(buf *lockedBuffer, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.Contains(line, `"msg":"`+msg+`"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitUntil is waitFor that says, when the condition never held, how far
// it got.
func waitUntil(t *testing.T, cond func() bool, got func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition never held: %s", got())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// restart shuts the harness's veil down and starts a new one on the same
// configuration (and so the same data directory), the same upstream and
// the same logs.
func (h *harness) restart(t *testing.T, tp func(*usage.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.app.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	cfg, err := config.ParseWithEnv([]byte(h.yaml), t.Name()+".yaml", h.lookup)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log, err := logging.New("debug", "json", multiWriter{h.logs, suiteLog})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := logging.New("debug", "json", multiWriter{h.logs, h.audit, suiteLog})
	if err != nil {
		t.Fatal(err)
	}
	secrets := keys.Sources{"env": keys.EnvSource{LookupEnv: h.lookup}}
	a, err := app.New(cfg, app.Options{Log: log, Audit: audit, Version: "test", Secrets: secrets, UsageTap: tp})
	if err != nil {
		t.Fatalf("app after restart: %v", err)
	}
	if err := a.Start(); err != nil {
		t.Fatalf("start after restart: %v", err)
	}
	h.app = a // the harness's cleanup shuts this one down
}

// TestMigrationRamp: a migration from platform keys to bella's own key
// ramps 10%, 50%, 100% with passing gates: the share of requests served on
// bella's key grows stage by stage, no client sees an error, every usage
// record names the migration, the validation counts what the clients were
// served, and once completed every request uses bella's key.
func TestMigrationRamp(t *testing.T) {
	tp := &tap{}
	s, bellaKey := withBella(tp, bellaPlatform)
	h := start(t, s)
	ctx := t.Context()

	plan := h.planMigration(t, rampPlan(`[{"share":0.1,"dwell":"300ms"},{"share":0.5,"dwell":"300ms"},{"share":1,"dwell":"300ms"}]`, 5))
	if plan.Status != "planned" || plan.Supplier != testSupplier || plan.From.Mode != "platform" || plan.To.Mode != "client" ||
		len(plan.Stages) != 3 || plan.events("planned") != 1 {
		t.Fatalf("plan: %+v", plan)
	}
	// A plan changes nothing.
	a := ask(ctx, h.client(), "")
	if a.err != nil || a.source != "platform" {
		t.Fatalf("a request with the plan made: %q %v", a.source, a.err)
	}
	if r := tp.one(t, a.id); r.MigrationID != "" {
		t.Errorf("a planned migration routed a request: %q", r.MigrationID)
	}
	if m := h.startMigration(t, plan.ID); m.Status != "ramping" || m.Stage != 0 || m.events("started") != 1 {
		t.Fatalf("started: %+v", m)
	}

	tr := newTraffic(3)
	m := ramp(t, h, plan.ID, tr, func(m migView) bool { return m.Status != "ramping" })
	if m.Status != "completed" {
		t.Fatalf("the ramp ended %s: %+v", m.Status, m.Events)
	}
	if tr.errs != 0 {
		t.Errorf("%d client errors during the ramp", tr.errs)
	}
	st := tr.perStage
	for i := range st {
		t.Logf("stage %d (%g%%): %d on bella's key, %d on platform keys (%.2f)", i+1, m.Stages[i].Share*100,
			st[i].client, st[i].platform, st[i].share())
	}
	if m.events("advanced") != 2 || m.events("completed") != 1 || m.events("failed") != 0 {
		t.Errorf("events: %+v", m.Events)
	}
	// Both paths served in the partial stages (the gates needed a sample of
	// each), the share grew, and at 100% only the request crossing into
	// the stage could have been routed by the previous one.
	for i := range 2 {
		if st[i].client == 0 || st[i].platform == 0 {
			t.Errorf("stage %d served %+v; both paths should have served", i+1, st[i])
		}
	}
	if !(st[0].share() < st[1].share() && st[1].share() < st[2].share()) {
		t.Errorf("the client share did not grow by stage: %.2f, %.2f, %.2f", st[0].share(), st[1].share(), st[2].share())
	}
	if st[2].platform > 1 {
		t.Errorf("%d requests on platform keys at 100%%", st[2].platform)
	}

	// Completed: every request is served on bella's key.
	for i := range 10 {
		a := ask(ctx, h.client(), "")
		if a.err != nil || a.source != "client" {
			t.Fatalf("request %d after completion: %q %v", i, a.source, a.err)
		}
		if got := h.lastAuth(); got != "Bearer "+bellaKey {
			t.Fatalf("request %d after completion did not carry bella's key", i)
		}
		tr.served[a.id] = a.source
	}
	total := checkRecords(t, tp, plan.ID, tr.served)
	if got := upstreamChats(h.up, bellaKey); got != total.client {
		t.Errorf("the fake saw bella's key on %d chat calls; clients were served %d on it", got, total.client)
	}
	checkValidation(t, h, plan.ID, tr)
	if lines := waitLines(t, h.audit, "migration completed"); len(lines) != 1 || lines[0]["migration"] != plan.ID {
		t.Errorf("completion audit lines: %v", lines)
	}
	if alerts := waitLines(t, h.logs, "alert: migration completed"); len(alerts) != 1 || alerts[0]["event"] != "migration_completed" {
		t.Errorf("completion alerts: %v", alerts)
	}
	// The config still says platform; explain and the supplier say what
	// serves bella now, and why.
	ex := h.explainView(t, "supplier="+testSupplier+"&model=gpt-4o-mini")
	if ex.Mode != "client" || ex.ModeSource != "migration ("+plan.ID+", completed)" || ex.ConfiguredMode != "platform" ||
		len(ex.Attempts) == 0 || ex.Attempts[0].KeySource != "client" || ex.Attempts[len(ex.Attempts)-1].KeySource != "platform" ||
		ex.Attempts[len(ex.Attempts)-1].Reason != "migration_fallback" {
		t.Errorf("explain once completed: %+v", ex)
	}
	var sup supplierView
	h.adminJSON(t, "GET", "/admin/suppliers/"+testSupplier, "", 200, &sup)
	if sup.Mode != "client" || sup.ModeSource != ex.ModeSource || sup.ConfiguredMode != "platform" {
		t.Errorf("supplier once completed: %+v", sup)
	}
}

// explainView is the part of GET /admin/explain the tests check.
type explainView struct {
	Mode           string `json:"mode"`
	ModeSource     string `json:"mode_source"`
	ConfiguredMode string `json:"configured_mode"`
	Attempts       []struct {
		Provider  string `json:"provider"`
		KeySource string `json:"key_source"`
		Reason    string `json:"reason"`
	} `json:"attempts"`
	OtherPath *struct {
		Path  string  `json:"path"`
		Mode  string  `json:"mode"`
		Share float64 `json:"share"`
	} `json:"other_path"`
}

func (h *harness) explainView(t *testing.T, query string) explainView {
	t.Helper()
	var ex explainView
	h.adminJSON(t, "GET", "/admin/explain?"+query, "", 200, &ex)
	return ex
}

// supplierView is the part of GET /admin/suppliers/{id} the tests check.
type supplierView struct {
	Mode           string `json:"mode"`
	ModeSource     string `json:"mode_source"`
	ConfiguredMode string `json:"configured_mode"`
	DeferredSwitch *struct {
		WaitsOn   string `json:"waits_on"`
		Reason    string `json:"reason"`
		Outcome   string `json:"outcome"`
		Migration string `json:"migration"`
	} `json:"deferred_switch"`
}

// TestMigrationGateRollsBack: when bella's key starts being refused in the
// middle of a ramp, the requests sent to it fall back to platform keys, so
// no client sees an error, and the error-rate gate fails the migration by
// itself: status failed, an event naming the gate, an audit line and an
// alert, and traffic back on platform keys.
func TestMigrationGateRollsBack(t *testing.T) {
	tp := &tap{}
	s, _ := withBella(tp, bellaPlatform)
	h := start(t, s)
	ctx := t.Context()

	plan := h.planMigration(t, rampPlan(`[{"share":0.5,"dwell":"300ms"},{"share":1,"dwell":"300ms"}]`, 5))
	h.startMigration(t, plan.ID)
	// From now on only the platform key is accepted: only the target path
	// (bella's key) fails, with 401s.
	h.up.SetKeys(h.platformKey)

	tr := newTraffic(2)
	m := ramp(t, h, plan.ID, tr, func(m migView) bool { return m.Status != "ramping" })
	if m.Status != "failed" {
		t.Fatalf("the migration ended %s: %+v", m.Status, m.Events)
	}
	t.Logf("until the gate failed: %d answered on platform keys, %d client errors", len(tr.served), tr.errs)
	if tr.errs != 0 || len(tr.served) == 0 {
		t.Errorf("%d client errors: a failing target must fall back to the source", tr.errs)
	}
	for rid, source := range tr.served {
		if source != "platform" {
			t.Errorf("request %s was answered 200 on %s keys, which the fake refuses", rid, source)
		}
	}
	fellBack := 0
	for _, r := range tp.all() {
		if r.Status != 200 {
			t.Errorf("a failed request: key source %q status %d", r.KeySource, r.Status)
		}
		if r.MigrationID == plan.ID && len(r.Attempts) > 0 && r.Attempts[0].KeySource == "client" {
			fellBack++
			if r.KeySource != "platform" || r.Attempts[0].Status != 401 {
				t.Errorf("a target request not answered by the fallback: %+v", r)
			}
		}
	}
	if fellBack == 0 {
		t.Error("no request tried the target before falling back")
	}
	if m.events("failed") != 1 || m.events("advanced") != 0 {
		t.Errorf("events: %+v", m.Events)
	}
	last := m.Events[len(m.Events)-1]
	if last.Kind != "failed" || !strings.Contains(last.Message, "gate failed") || !strings.Contains(last.Message, "target error rate") {
		t.Errorf("the failure event does not name the gate: %+v", last)
	}
	lines := waitLines(t, h.audit, "migration failed a gate; traffic back on the source")
	if gate, _ := lines[0]["gate"].(string); len(lines) != 1 || lines[0]["migration"] != plan.ID || !strings.Contains(gate, "target error rate") {
		t.Errorf("failure audit lines: %v", lines)
	}
	alerts := waitLines(t, h.logs, "alert: migration failed")
	if msg, _ := alerts[0]["message"].(string); len(alerts) != 1 || alerts[0]["event"] != "migration_failed" || !strings.Contains(msg, plan.ID) {
		t.Errorf("failure alerts: %v", alerts)
	}

	// Back on platform keys, by the supplier's own mode.
	for i := range 20 {
		a := ask(ctx, h.client(), "")
		if a.err != nil || a.source != "platform" {
			t.Fatalf("request %d after the failure: %q %v", i, a.source, a.err)
		}
		if got := h.lastAuth(); got != "Bearer "+h.platformKey {
			t.Fatalf("request %d after the failure did not carry the platform key", i)
		}
		if r := tp.one(t, a.id); r.MigrationID != "" || r.Billed != billing.PaidByPlatform {
			t.Errorf("record after the failure: migration %q billed %q", r.MigrationID, r.Billed)
		}
	}
	// A failed migration is final.
	if code, body := h.adminDo("POST", "/admin/migrations/"+plan.ID+"/rollback", `{"reason":"again"}`); code != 409 {
		t.Errorf("rolling back a failed migration: %d %s", code, body)
	}
}

// TestMigrationResumesAfterRestart: veil stopped in the middle of a ramp
// (embedded store with a data directory) starts again with the migration
// at the same stage, the stage's dwell counting from its original start,
// routes by it, drives it to completion from the new process, and the
// counts from before the restart still count.
func TestMigrationResumesAfterRestart(t *testing.T) {
	tp := &tap{}
	s, bellaKey := withBella(tp, "store:\n  type: embedded\n  data_dir: "+t.TempDir()+"\n"+bellaPlatform)
	h := start(t, s)

	plan := h.planMigration(t, rampPlan(`[{"share":0.1,"dwell":"300ms"},{"share":0.5,"dwell":"300ms"},{"share":1,"dwell":"300ms"}]`, 5))
	h.startMigration(t, plan.ID)
	tr := newTraffic(3)
	before := ramp(t, h, plan.ID, tr, func(m migView) bool { return m.Status != "ramping" || m.Stage >= 1 })
	if before.Status != "ramping" || before.Stage != 1 {
		t.Fatalf("before the restart: %s at stage %d", before.Status, before.Stage)
	}

	// Stopped right after the advance, stage 2 has at most a request or
	// two of its sample, so nothing can advance it until traffic is back.
	h.restart(t, tp.add)
	after := h.getMigration(t, plan.ID)
	if after.Status != "ramping" || after.Stage != 1 || !after.StageStarted.Equal(before.StageStarted) ||
		len(after.Events) != len(before.Events) {
		t.Fatalf("after the restart: %s at stage %d since %v with %d events; before: stage %d since %v with %d events",
			after.Status, after.Stage, after.StageStarted, len(after.Events), before.Stage, before.StageStarted, len(before.Events))
	}

	tr.perStage = make([]sides, 3) // from here on, after the restart
	m := ramp(t, h, plan.ID, tr, func(m migView) bool { return m.Status != "ramping" })
	if m.Status != "completed" {
		t.Fatalf("after the restart the migration ended %s: %+v", m.Status, m.Events)
	}
	if tr.errs != 0 {
		t.Errorf("%d client errors", tr.errs)
	}
	t.Logf("stage 2 after the restart: %+v", tr.perStage[1])
	if tr.perStage[1].client == 0 || tr.perStage[1].platform == 0 {
		t.Errorf("after the restart stage 2 served %+v; both paths should have served", tr.perStage[1])
	}
	if m.events("started") != 1 || m.events("advanced") != 2 || m.events("completed") != 1 {
		t.Errorf("events: %+v", m.Events)
	}
	// The new process drove the rest: its holder is not the one that
	// started the migration and made the first advance.
	completed := waitLines(t, h.audit, "migration completed")
	started, advanced := logLines(h.audit, "migration started"), logLines(h.audit, "migration advanced")
	if len(started) != 1 || len(advanced) != 2 || len(completed) != 1 || advanced[0]["holder"] != started[0]["holder"] ||
		advanced[1]["holder"] == started[0]["holder"] || completed[0]["holder"] != advanced[1]["holder"] {
		t.Errorf("started by %v, advanced by %v, completed by %v", started, advanced, completed)
	}

	a := ask(t.Context(), h.client(), "")
	if a.err != nil || a.source != "client" || h.lastAuth() != "Bearer "+bellaKey {
		t.Fatalf("after completion: %q %v", a.source, a.err)
	}
	tr.served[a.id] = a.source
	checkRecords(t, tp, plan.ID, tr.served)
	// The counts of both lives add up to what the clients were served.
	checkValidation(t, h, plan.ID, tr)
}

// TestMigrationSharedRedis: two veils sharing one Redis follow one
// migration: both admin APIs show the same status and stage, both route a
// conversation to the same side at 50% and everything to bella's key once
// completed, and only one of them drives the stages.
func TestMigrationSharedRedis(t *testing.T) {
	rs := redistest.Start(t)
	tp := &tap{}
	s, bellaKey := withBella(tp, "store:\n  type: redis\n  addr: "+rs.Addr+"\n"+bellaPlatform)
	h1, h2 := start(t, s), start(t, s)
	ctx := t.Context()

	// A sample of 20 per path: the conversations below stay far from it,
	// so the first stage holds until the steady traffic at the end.
	plan := h1.planMigration(t, rampPlan(`[{"share":0.5,"dwell":"300ms"},{"share":1,"dwell":"300ms"}]`, 20))
	h1.startMigration(t, plan.ID)

	// Find a conversation on each side; h1 routes by the stage at once.
	var toClient, toPlatform string
	for i := 0; (toClient == "" || toPlatform == "") && i < 200; i++ {
		user := "couple-" + itoa(i)
		a := ask(ctx, h1.client(), user)
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.source == "client" && toClient == "" {
			toClient = user
		}
		if a.source == "platform" && toPlatform == "" {
			toPlatform = user
		}
	}
	if toClient == "" || toPlatform == "" {
		t.Fatalf("200 conversations all went one way (client %q, platform %q)", toClient, toPlatform)
	}
	// h2 follows the store: its requests name the migration once it does.
	// The conversation on platform keys adds nothing to the target's
	// sample meanwhile.
	waitFor(t, func() bool {
		a := ask(ctx, h2.client(), toPlatform)
		return a.err == nil && tp.one(t, a.id).MigrationID == plan.ID
	})
	m1, m2 := h1.getMigration(t, plan.ID), h2.getMigration(t, plan.ID)
	if m1.Status != "ramping" || m1.Stage != 0 || m2.Status != m1.Status || m2.Stage != m1.Stage ||
		!m2.StageStarted.Equal(m1.StageStarted) {
		t.Fatalf("the replicas disagree: %s stage %d since %v, %s stage %d since %v",
			m1.Status, m1.Stage, m1.StageStarted, m2.Status, m2.Stage, m2.StageStarted)
	}
	// Both split by the same rule: a conversation is on the same side on
	// either replica.
	for _, h := range []*harness{h1, h2} {
		for range 3 {
			if a := ask(ctx, h.client(), toClient); a.err != nil || a.source != "client" {
				t.Errorf("conversation %s: %q %v, want client", toClient, a.source, a.err)
			}
			if a := ask(ctx, h.client(), toPlatform); a.err != nil || a.source != "platform" {
				t.Errorf("conversation %s: %q %v, want platform", toPlatform, a.source, a.err)
			}
		}
	}

	// Steady traffic to both, until completed.
	cur := m1
	errs := 0
	for n := 0; cur.Status == "ramping" && n < maxRequests; n++ {
		h := []*harness{h1, h2}[n%2]
		if a := ask(ctx, h.client(), ""); a.err != nil {
			errs++
		}
		cur = h.getMigration(t, plan.ID)
	}
	if cur.Status != "completed" {
		t.Fatalf("the migration ended %s at stage %d: %+v", cur.Status, cur.Stage, cur.Events)
	}
	if errs != 0 {
		t.Errorf("%d client errors", errs)
	}
	if m1, m2 = h1.getMigration(t, plan.ID), h2.getMigration(t, plan.ID); m2.Status != m1.Status || m2.Stage != m1.Stage ||
		len(m2.Events) != len(m1.Events) {
		t.Errorf("the replicas disagree after completion: %s stage %d, %s stage %d", m1.Status, m1.Stage, m2.Status, m2.Stage)
	}
	if m1.events("advanced") != 1 || m1.events("completed") != 1 {
		t.Errorf("events: %+v", m1.Events)
	}
	// Both route everything to bella's key (h2 within its next refresh).
	for _, h := range []*harness{h1, h2} {
		waitFor(t, func() bool { return ask(ctx, h.client(), toPlatform).source == "client" })
		for range 5 {
			if a := ask(ctx, h.client(), ""); a.err != nil || a.source != "client" || h.lastAuth() != "Bearer "+bellaKey {
				t.Errorf("after completion: %q %v", a.source, a.err)
			}
		}
	}
	// One replica drove both transitions, under one holder; the other
	// wrote none.
	waitUntil(t, func() bool {
		// The alert follows the audit line.
		return len(logLines(h1.logs, "alert: migration completed"))+len(logLines(h2.logs, "alert: migration completed")) > 0
	}, func() string { return "no completion alert on either replica" })
	var drivers []string
	holders := map[any]bool{}
	for i, h := range []*harness{h1, h2} {
		advanced, completed := logLines(h.audit, "migration advanced"), logLines(h.audit, "migration completed")
		if len(advanced)+len(completed) > 0 {
			drivers = append(drivers, "h"+itoa(i+1))
		}
		for _, l := range append(advanced, completed...) {
			holders[l["holder"]] = true
		}
	}
	if len(drivers) != 1 || len(holders) != 1 {
		t.Errorf("transitions were written by %v under holders %v; want one replica", drivers, holders)
	}
	if n := len(logLines(h1.logs, "alert: migration completed")) + len(logLines(h2.logs, "alert: migration completed")); n != 1 {
		t.Errorf("%d completion alerts across the replicas", n)
	}
}

// TestScenarioQuotaSwitchUnderLoad: scenario 1 under concurrent load. A
// tier of 3 requests a minute that switches to the client's key: no client
// sees an error, one migration with reason quota_exhausted is recorded
// completed, later requests are served on bella's key, and the switch is
// audited and alerted.
func TestScenarioQuotaSwitchUnderLoad(t *testing.T) {
	tp := &tap{}
	s, bellaKey := bellaOnPeakTier(tp, 3)
	h := start(t, s)
	ctx := t.Context()

	const workers, each = 8, 8
	var errs atomic.Int64
	var mu sync.Mutex
	served := map[string]string{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h.client()
			for range each {
				a := ask(ctx, c, "")
				if a.err != nil {
					errs.Add(1)
					t.Errorf("a client error under load: %v", a.err)
					continue
				}
				mu.Lock()
				served[a.id] = a.source
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if errs.Load() != 0 {
		t.Fatalf("%d client errors under load", errs.Load())
	}

	var switched []migView
	waitFor(t, func() bool {
		var all []migView
		h.adminJSON(t, "GET", "/admin/migrations", "", 200, &all)
		switched = switched[:0]
		for _, m := range all {
			if m.Reason == "quota_exhausted" {
				switched = append(switched, m)
			}
		}
		return len(switched) > 0
	})
	if len(switched) != 1 {
		t.Fatalf("%d quota_exhausted migrations; concurrent switches should share one", len(switched))
	}
	mig := switched[0]
	if mig.Status != "completed" || mig.Supplier != testSupplier || mig.From.Mode != "platform" || mig.To.Mode != "client" ||
		mig.events("switched") != 1 {
		t.Errorf("the switch: %+v", mig)
	}

	var platform, client int
	for rid, source := range served {
		r := tp.one(t, rid)
		switch source {
		case "platform":
			platform++
			if r.MigrationID != "" || r.Billed != billing.PaidByPlatform {
				t.Errorf("platform record %s: migration %q billed %q", rid, r.MigrationID, r.Billed)
			}
		case "client":
			client++
			if r.Billed != billing.PaidByClient || (r.Reason != "quota_exhausted:rpm" && r.MigrationID != mig.ID) {
				t.Errorf("client record %s: reason %q billed %q migration %q", rid, r.Reason, r.Billed, r.MigrationID)
			}
		default:
			t.Errorf("request %s served on %q", rid, source)
		}
	}
	t.Logf("under load: %d on platform keys, %d on bella's key", platform, client)
	if platform == 0 || client == 0 {
		t.Errorf("%d platform and %d client requests; the tier should have served some of each", platform, client)
	}

	// From now on bella is on its own key for good.
	for i := range 10 {
		a := ask(ctx, h.client(), "")
		if a.err != nil || a.source != "client" || h.lastAuth() != "Bearer "+bellaKey {
			t.Fatalf("request %d after the switch: %q %v", i, a.source, a.err)
		}
		if r := tp.one(t, a.id); r.MigrationID != mig.ID || r.Billed != billing.PaidByClient {
			t.Errorf("record after the switch: migration %q billed %q", r.MigrationID, r.Billed)
		}
	}
	lines := waitLines(t, h.audit, "supplier switched")
	if len(lines) != 1 || lines[0]["migration"] != mig.ID || lines[0]["reason"] != "quota_exhausted" {
		t.Errorf("switch audit lines: %v", lines)
	}
	alerts := waitLines(t, h.logs, "alert: migration switched")
	if len(alerts) != 1 || alerts[0]["event"] != "migration_switched" || alerts[0]["supplier"] != testSupplier {
		t.Errorf("switch alerts: %v", alerts)
	}
}

// TestScenarioQuotaSwitchDuringRamp: bella's tier (3 requests a minute,
// then switch_to_client) runs out while a three-stage ramp to its own key
// waits at 10% for a sample it will not get: no client sees an error, the
// ramp stays at its first stage (no stage without its gates), the switch is
// deferred on it and shown by the supplier, explain and the metrics; rolled
// back, the ramp hands bella to the switch, which pins it to its own key.
func TestScenarioQuotaSwitchDuringRamp(t *testing.T) {
	tp := &tap{}
	s, bellaKey := bellaOnPeakTier(tp, 3)
	h := start(t, s)
	ctx := t.Context()
	plan := h.planMigration(t, rampPlan(`[{"share":0.1,"dwell":"50ms"},{"share":0.5,"dwell":"50ms"},{"share":1,"dwell":"50ms"}]`, 1000))
	h.startMigration(t, plan.ID)

	var quotaSwitched int
	for i := range 30 {
		a := ask(ctx, h.client(), "")
		if a.err != nil {
			t.Fatalf("request %d: %v", i, a.err)
		}
		if r := tp.one(t, a.id); r.Reason == "quota_exhausted:rpm" {
			quotaSwitched++
			if r.MigrationID != "" || a.source != "client" {
				t.Errorf("a request the tier switched: source %q, migration %q", a.source, r.MigrationID)
			}
		}
	}
	if quotaSwitched == 0 {
		t.Fatal("the tier switched no request")
	}
	var sup supplierView
	waitUntil(t, func() bool {
		h.adminJSON(t, "GET", "/admin/suppliers/"+testSupplier, "", 200, &sup)
		return sup.DeferredSwitch != nil
	}, func() string { return fmt.Sprintf("supplier %+v", sup) })
	time.Sleep(300 * time.Millisecond) // dwells of every stage over, and several driver steps
	m := h.getMigration(t, plan.ID)
	if m.Status != "ramping" || m.Stage != 0 || m.events("advanced") != 0 || m.events("switched") != 0 || m.events("switch_deferred") != 1 {
		t.Fatalf("the ramp after the tier ran out: %s at stage %d, %+v", m.Status, m.Stage, m.Events)
	}
	if d := sup.DeferredSwitch; d.WaitsOn != plan.ID || d.Reason != "quota_exhausted" || d.Outcome != "" ||
		sup.ModeSource != "migration ("+plan.ID+", stage 1 of 3, 10%)" {
		t.Errorf("supplier during the ramp: %+v, deferred %+v", sup, d)
	}
	if ex := h.explainView(t, "supplier="+testSupplier); ex.Mode != "client" || ex.OtherPath == nil || ex.OtherPath.Mode != "platform" ||
		ex.OtherPath.Share != 0.9 {
		t.Errorf("explain during the ramp: %+v", ex)
	}
	if code, body := h.admin("/metrics", ""); code != 200 || !strings.Contains(body, `veil_migration_switch_deferrals_total{outcome="deferred"} 1`) {
		t.Errorf("metrics %d lack the deferral", code)
	}

	h.adminJSON(t, "POST", "/admin/migrations/"+plan.ID+"/rollback", `{"reason":"not this week"}`, 200, nil)
	// The driver makes the switch, then writes how the deferral ended on
	// the rolled-back ramp: wait for the second, which follows the first.
	waitUntil(t, func() bool {
		m = h.getMigration(t, plan.ID)
		return m.events("deferred_switch_ended") > 0
	}, func() string { return fmt.Sprintf("migration %+v", m) })
	if m.Status != "rolled_back" || m.events("deferred_switch_ended") != 1 {
		t.Errorf("the ramp after its rollback: %+v", m)
	}
	h.adminJSON(t, "GET", "/admin/suppliers/"+testSupplier, "", 200, &sup)
	if !strings.HasPrefix(sup.ModeSource, "quota switch (") {
		t.Errorf("supplier after the deferral ended: mode source %q", sup.ModeSource)
	}
	if sup.Mode != "client" || sup.ConfiguredMode != "platform" {
		t.Errorf("supplier after the switch applied: %+v", sup)
	}
	for i := range 5 {
		if a := ask(ctx, h.client(), ""); a.err != nil || a.source != "client" || h.lastAuth() != "Bearer "+bellaKey {
			t.Fatalf("request %d after the switch applied: %q %v", i, a.source, a.err)
		}
	}
}

// cmpSideView is one side of a comparison report.
type cmpSideView struct {
	System               string  `json:"system"`
	Requests             int64   `json:"requests"`
	Errors               int64   `json:"errors"`
	LatencyP50           int64   `json:"latency_p50_ns"`
	LatencyP95           int64   `json:"latency_p95_ns"`
	MeanPromptTokens     float64 `json:"mean_prompt_tokens"`
	MeanCompletionTokens float64 `json:"mean_completion_tokens"`
	CostUSD              float64 `json:"cost_usd"`
	CostPer1K            float64 `json:"cost_per_1k_usd"`
}

// cmpReportView is GET /admin/comparisons/{id}.
type cmpReportView struct {
	Comparison struct {
		ID       string  `json:"id"`
		Supplier string  `json:"supplier"`
		Other    string  `json:"other"`
		Primary  string  `json:"primary"`
		Requests int     `json:"requests"`
		Sample   float64 `json:"sample"`
		Billed   string  `json:"billed"`
		Status   string  `json:"status"`
		Reason   string  `json:"reason"`
		Shadowed int64   `json:"shadowed"`
		Recorded int64   `json:"recorded"`
	} `json:"comparison"`
	Primary    cmpSideView `json:"primary"`
	Shadow     cmpSideView `json:"shadow"`
	Similarity struct {
		Pairs   int64   `json:"pairs"`
		Mean    float64 `json:"mean"`
		P10     float64 `json:"p10"`
		Similar float64 `json:"similar"`
	} `json:"similarity"`
	Recommendation string   `json:"recommendation"`
	Reasons        []string `json:"reasons"`
	Text           string   `json:"text"`
}

// TestCompareReport: a comparison of bella's platform keys against its own
// key, every request sampled, 10 requests: the report's counts, token
// means and costs are those of the answers the fake gave on each side, the
// answers (the same prompt on two keys) are alike, the shadow calls went to
// bella's key and their records are marked shadow, and no client got a
// shadow's answer.
func TestCompareReport(t *testing.T) {
	const n = 10
	tp := &tap{}
	s, bellaKey := withBella(tp, bellaPlatform+usagePrices)
	h := start(t, s)
	ctx := t.Context()

	var cmp struct {
		ID      string `json:"id"`
		Primary string `json:"primary"`
		Other   string `json:"other"`
		Status  string `json:"status"`
		Billed  string `json:"billed"`
	}
	h.adminJSON(t, "POST", "/admin/comparisons", `{"supplier":"bella-photography","other":"client","requests":10,"sample":1}`, 201, &cmp)
	if cmp.Primary != "platform" || cmp.Other != "client" || cmp.Status != "running" || cmp.Billed != "platform" {
		t.Fatalf("comparison: %+v", cmp)
	}

	// The replica claims part of the count at once and the rest at its
	// next pass; requests keep coming until all 10 pairs are recorded.
	answers := map[string]openai.ChatCompletionResponse{}
	var rep cmpReportView
	for i := 0; i < maxRequests; i++ {
		h.adminJSON(t, "GET", "/admin/comparisons/"+cmp.ID, "", 200, &rep)
		if rep.Comparison.Recorded >= n {
			break
		}
		a := ask(ctx, h.client(), "")
		if a.err != nil {
			t.Fatalf("request %d: %v", i, a.err)
		}
		if a.source != "platform" {
			t.Errorf("request %d answered on %q keys; the client must get the primary's answer", i, a.source)
		}
		answers[a.id] = a.resp
		time.Sleep(20 * time.Millisecond)
	}
	if rep.Comparison.Recorded != n {
		t.Fatalf("%d pairs recorded, want %d", rep.Comparison.Recorded, n)
	}
	var shadows []*usage.Record
	waitFor(t, func() bool {
		shadows = shadows[:0]
		for _, r := range tp.all() {
			if r.Shadow {
				shadows = append(shadows, r)
			}
		}
		return len(shadows) >= n
	})
	if len(shadows) != n {
		t.Fatalf("%d shadow records, want %d", len(shadows), n)
	}

	// What the fake answered, on each side.
	var pPrompt, pCompletion, sPrompt, sCompletion int64
	var pCost, sCost float64
	for _, sr := range shadows {
		rid := strings.TrimSuffix(sr.RequestID, "-shadow")
		resp, ok := answers[rid]
		if !ok || rid == sr.RequestID {
			t.Fatalf("shadow record %s matches no client request", sr.RequestID)
		}
		pr := tp.one(t, rid)
		if pr.Shadow || pr.KeySource != "platform" || pr.Billed != billing.PaidByPlatform {
			t.Errorf("primary record %s: shadow %v key source %q billed %q", rid, pr.Shadow, pr.KeySource, pr.Billed)
		}
		if pr.PromptTokens != int64(resp.Usage.PromptTokens) || pr.CompletionTokens != int64(resp.Usage.CompletionTokens) {
			t.Errorf("primary record %s: %d/%d tokens, the client was told %d/%d", rid, pr.PromptTokens, pr.CompletionTokens,
				resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
		}
		pPrompt += int64(resp.Usage.PromptTokens)
		pCompletion += int64(resp.Usage.CompletionTokens)
		if pr.CostUSD != nil {
			pCost += *pr.CostUSD
		}
		if sr.Status != 200 || sr.KeySource != "client" || sr.Provider != "openai" || sr.MigrationID != cmp.ID || sr.Supplier != testSupplier {
			t.Errorf("shadow record %s: status %d key source %q provider %q comparison %q", sr.RequestID, sr.Status, sr.KeySource,
				sr.Provider, sr.MigrationID)
		}
		if sr.Billed != billing.PaidByPlatform {
			t.Errorf("shadow record %s billed %q; a comparison's shadow is billed platform unless it says client", sr.RequestID, sr.Billed)
		}
		sPrompt += sr.PromptTokens
		sCompletion += sr.CompletionTokens
		if sr.CostUSD != nil {
			sCost += *sr.CostUSD
		}
	}

	// The daily aggregates keep the shadow calls, on bella's key, as
	// WedSync's spend, not bella's.
	agg := h.usageReport(t, "supplier="+testSupplier+"&group_by=key_source,billed", func(rep admin.UsageReport) bool {
		for _, r := range rep.Rows {
			if r.KeySource == "client" && r.Billed == "platform" {
				return r.Requests >= n
			}
		}
		return false
	})
	for _, r := range agg.Rows {
		switch {
		case r.KeySource == "client" && (r.Billed != "platform" || r.Requests != n):
			t.Errorf("aggregate on bella's key: %+v; want the %d shadow calls billed platform", r, n)
		case r.KeySource == "platform" && r.Billed != "platform":
			t.Errorf("aggregate on the platform's keys billed %q", r.Billed)
		}
	}

	c := rep.Comparison
	if c.Shadowed != n || c.Status != "done" || c.Reason != "requests" {
		t.Errorf("comparison: shadowed %d status %q reason %q", c.Shadowed, c.Status, c.Reason)
	}
	p, sh := rep.Primary, rep.Shadow
	if p.System != "platform" || sh.System != "client" || p.Requests != n || sh.Requests != n || p.Errors != 0 || sh.Errors != 0 {
		t.Errorf("sides: primary %+v shadow %+v", p, sh)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	if !near(p.MeanPromptTokens, float64(pPrompt)/n) || !near(p.MeanCompletionTokens, float64(pCompletion)/n) {
		t.Errorf("primary token means %v/%v, the fake answered %v/%v", p.MeanPromptTokens, p.MeanCompletionTokens,
			float64(pPrompt)/n, float64(pCompletion)/n)
	}
	if !near(sh.MeanPromptTokens, float64(sPrompt)/n) || !near(sh.MeanCompletionTokens, float64(sCompletion)/n) {
		t.Errorf("shadow token means %v/%v, the fake answered %v/%v", sh.MeanPromptTokens, sh.MeanCompletionTokens,
			float64(sPrompt)/n, float64(sCompletion)/n)
	}
	// The same prompt costs the same on either key of one provider.
	if pCost <= 0 || !near(p.CostUSD, pCost) || !near(sh.CostUSD, sCost) || !near(pCost, sCost) {
		t.Errorf("costs: primary %v (records %v), shadow %v (records %v)", p.CostUSD, pCost, sh.CostUSD, sCost)
	}
	if p.LatencyP50 <= 0 || sh.LatencyP50 <= 0 || p.LatencyP95 < p.LatencyP50 || sh.LatencyP95 < sh.LatencyP50 {
		t.Errorf("latencies: primary %d/%d, shadow %d/%d", p.LatencyP50, p.LatencyP95, sh.LatencyP50, sh.LatencyP95)
	}
	sim := rep.Similarity
	if sim.Pairs != n || sim.Mean < 0 || sim.Mean > 1 || !near(sim.Mean, 1) || !near(sim.P10, 1) || !near(sim.Similar, 1) {
		t.Errorf("similarity: %+v; the fake gives the same answer to the same prompt on either key", sim)
	}
	if rep.Recommendation != "collect more data" || len(rep.Reasons) == 0 {
		t.Errorf("recommendation %q %v; 10 pairs are fewer than the 30 needed", rep.Recommendation, rep.Reasons)
	}
	if !strings.Contains(rep.Text, "Comparison "+cmp.ID) || !strings.Contains(rep.Text, "Recommendation: collect more data") {
		t.Errorf("text:\n%s", rep.Text)
	}

	// The shadows, and only they, went to bella's key.
	if got := upstreamChats(h.up, bellaKey); got != n {
		t.Errorf("the fake saw bella's key on %d chat calls, want %d", got, n)
	}
	if got := upstreamChats(h.up, h.platformKey); got != len(answers) {
		t.Errorf("the fake saw the platform key on %d chat calls; clients sent %d", got, len(answers))
	}
	// The count is never exceeded.
	for range 5 {
		if a := ask(ctx, h.client(), ""); a.err != nil || a.source != "platform" {
			t.Fatalf("after the comparison: %q %v", a.source, a.err)
		}
	}
	time.Sleep(300 * time.Millisecond) // a shadow call would have been sent by now
	if got := upstreamChats(h.up, bellaKey); got != n {
		t.Errorf("after the comparison was done the fake saw bella's key on %d chat calls, want %d", got, n)
	}

	var stopped struct {
		Status string `json:"status"`
	}
	h.adminJSON(t, "POST", "/admin/comparisons/"+cmp.ID+"/stop", "", 200, &stopped)
	if stopped.Status != "done" {
		t.Errorf("stopping a finished comparison: %q", stopped.Status)
	}
}

// bellaOnPeakTier is withBella with bella on platform keys in a tier of
// rpm requests a minute that switches it to its own key when used up.
func bellaOnPeakTier(tp *tap, rpm int) (setup, string) {
	return withBella(tp, fmt.Sprintf(`tiers:
  - name: peak
    requests_per_minute: %d
    on_exhausted: switch_to_client
suppliers:
  entries:
    - id: bella-photography
      mode: platform
      tier: peak
      keys:
        openai: env://BELLA_KEY
`, rpm))
}
