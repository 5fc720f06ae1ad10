package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/migrate"
)

// Suppliers' own keys in the migration tests, given to veil through env://.
const (
	testBellaKey = "sk-migrate-test-bella-0123456789"
	testRoseKey  = "sk-migrate-test-rose-0123456789"
)

// startMigrateVeil runs a veil with an admin token, prices, and two
// suppliers with keys of their own that the fake upstream accepts.
func startMigrateVeil(t *testing.T) *veilProc {
	t.Helper()
	up := startFake(t, fakeopenai.Options{Keys: []string{testBellaKey, testRoseKey}})
	t.Setenv("TEST_ADMIN_TOKEN", "veil-migrate-test-admin-0123456789")
	t.Setenv("TEST_BELLA_KEY", testBellaKey)
	t.Setenv("TEST_ROSE_KEY", testRoseKey)
	return startVeil(t, up.URL(), "admin:\n  token: env://TEST_ADMIN_TOKEN\n"+
		"usage:\n  sinks: []\n  flush_interval: 10ms\n"+
		"prices:\n  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}\n"+
		"suppliers:\n  entries:\n"+
		"    - id: bella-photography\n      keys: {openai: env://TEST_BELLA_KEY}\n"+
		"    - id: rose-venue\n      keys: {openai: env://TEST_ROSE_KEY}\n")
}

// mustRun runs a command that must succeed and returns its output.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCmd(args...)
	if code != 0 {
		t.Fatalf("veil %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// wantAll fails the test for every string of want that out lacks.
func wantAll(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// TestMigrateCommands: a supplier's migration from the platform keys to its
// own key, through `veil migrate` against a running veil: plan (with a live
// probe of the supplier's key and a cost estimate from its usage), status,
// start, validate, rollback, and the admin API's refusals.
func TestMigrateCommands(t *testing.T) {
	v := startMigrateVeil(t)
	cfg := v.config
	for range 3 {
		if resp := v.post(t, "bella-photography", "gpt-4o-mini"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	base, token, err := adminTarget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ { // the estimate reads usage aggregates, written in the background
		var rep admin.UsageReport
		if err := fetchAdmin(base+"/admin/usage?supplier=bella-photography", token, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Total.Requests == 3 {
			break
		}
		if i == 500 {
			t.Fatalf("usage never showed the 3 requests: %+v", rep.Total)
		}
		sleepBriefly()
	}

	out := mustRun(t, "migrate", "plan", "--config", cfg, "--supplier", "bella-photography", "--stages", "50%:1h,100%:1h",
		"--min-sample", "2", "--max-p95-ratio", "1000", "--reason", "the supplier asked to pay with its own key")
	id := regexp.MustCompile(`mig-[0-9a-f]{8}`).FindString(out)
	if id == "" {
		t.Fatalf("the plan names no migration:\n%s", out)
	}
	wantAll(t, "plan", out, "Migration "+id+" for bella-photography: platform/openai -> client/openai (planned)",
		"Reason: the supplier asked to pay with its own key",
		"Target key probe: ok (HTTP 200", "key fingerprint "+keys.Fingerprint(testBellaKey),
		"Cost estimate over 30 days", "3 requests", "paid by WedSync (platform keys)", "paid by the supplier (its own key)",
		"WedSync -$", "the supplier +$", "gpt-4o-mini", "STAGE", "50%", "100%", "1h",
		"at most 5%", "at most 1000x", "2 requests per path",
		"Nothing has changed yet", "veil migrate start --config "+cfg+" "+id,
		"Projection for ", "with the wedding season (March to October)", "no usage before today to project from")

	out = mustRun(t, "migrate", "status", "--config", cfg)
	wantAll(t, "status table", out, "ID", "SUPPLIER", "FROM -> TO", "STATUS", "UPDATED", id, "bella-photography",
		"platform/openai -> client", "planned", "1/2")

	out = mustRun(t, "migrate", "start", id, "--config", cfg) // flags after the ID work too
	wantAll(t, "start", out, "Migration "+id+" for bella-photography: ramping, stage 1 of 2: 50% of traffic on client",
		"veil migrate watch --config "+cfg+" "+id)

	code, _, errOut := runCmd("migrate", "start", "--config", cfg, id)
	if code != 1 || !strings.Contains(errOut, "it is ramping") || !strings.Contains(errOut, "409") {
		t.Errorf("a second start: exit %d, %q", code, errOut)
	}

	// Both paths need the minimum sample for a verdict.
	for i := 0; ; i++ {
		for range 4 {
			v.post(t, "bella-photography", "gpt-4o-mini")
		}
		out = mustRun(t, "migrate", "validate", "--config", cfg, id)
		if strings.Contains(out, "Verdict: pass") {
			break
		}
		if i == 50 {
			t.Fatalf("no passing verdict:\n%s", out)
		}
	}
	wantAll(t, "validate", out, "Validation of "+id+" for bella-photography (ramping, stage 1)",
		"SOURCE platform/openai", "TARGET client", "requests", "success rate", "100%", "latency p50", "latency p95",
		"cost per 1k requests", "$0.", "p95 ratio", "STAGE", "Verdict: pass", "  - ")

	out = mustRun(t, "migrate", "status", "--config", cfg, id)
	wantAll(t, "status detail", out, "Migration "+id, "key fingerprint", "Cost estimate", "<- ramping",
		"Now: ramping, stage 1 of 2", "Events:", "AT", "EVENT", "planned platform/openai -> client/openai in 2 stages", "started")

	// veil migrate watch follows the ramp until it ends: here, the
	// rollback below.
	var watched lockedOut
	watchDone := make(chan int, 1)
	go func() {
		watchDone <- run([]string{"migrate", "watch", "--config", cfg, "--interval", "100ms", id}, &watched, io.Discard)
	}()
	for i := 0; !strings.Contains(watched.String(), "gates pass"); i++ {
		if i == 500 {
			t.Fatalf("watch never showed the stage's gates passing:\n%s", watched.String())
		}
		sleepBriefly()
	}

	out = mustRun(t, "migrate", "rollback", "--config", cfg, id, "--reason", "the supplier's key hit its rate limit")
	select {
	case code := <-watchDone:
		if code != 0 {
			t.Errorf("watch exited %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not end with the migration")
	}
	wantAll(t, "watch", watched.String(), id+": bella-photography from platform/openai to client/openai, 2 stages (50%, 100%)",
		"gates: at least 2 requests a path", "planned", "started", "stage 1 of 2 at 50%: source ", "requests, 0 errors, p95",
		"gates pass, dwell until", "rolled_back", "the supplier's key hit its rate limit", "rolled back; all traffic on platform/openai")
	wantAll(t, "rollback", out, "Migration "+id+" for bella-photography: rolled back; all traffic on platform/openai",
		"the supplier's key hit its rate limit")

	out = mustRun(t, "migrate", "plan", "--config", cfg, "--supplier", "rose-venue", "--output", "json")
	var planned migrate.Migration
	if err := json.Unmarshal([]byte(out), &planned); err != nil {
		t.Fatalf("plan --output json: %v\n%s", err, out)
	}
	if p := planned.Estimate.Projection; planned.Supplier != "rose-venue" || planned.Status != migrate.StatusPlanned || p == nil ||
		len(p.Months) != 12 {
		t.Errorf("plan --output json: %+v", planned)
	}

	out = mustRun(t, "migrate", "status", "--config", cfg)
	wantAll(t, "status table after the rollback", out, id, "rolled_back")
	out = mustRun(t, "migrate", "status", "--config", cfg, id)
	wantAll(t, "status detail after the rollback", out, "rolled_back", "finished")

	t.Run("errors", func(t *testing.T) {
		code, out, errOut := runCmd("migrate", "rollback", "--config", cfg, id)
		if code != 1 || !strings.Contains(errOut, "migration_conflict") || out != "" {
			t.Errorf("a second rollback: exit %d, %q %q", code, out, errOut)
		}
		code, _, errOut = runCmd("migrate", "plan", "--config", cfg, "--supplier", "nobody-here")
		if code != 1 || !strings.Contains(errOut, "target key probe failed") || !strings.Contains(errOut, "no key") ||
			strings.Contains(errOut, "Usage") {
			t.Errorf("a supplier without a key: exit %d, %q", code, errOut)
		}
		code, _, errOut = runCmd("migrate", "validate", "--config", cfg, "mig-00000000")
		if code != 1 || !strings.Contains(errOut, "migration not found") || !strings.Contains(errOut, "404") {
			t.Errorf("an unknown migration: exit %d, %q", code, errOut)
		}
		code, _, errOut = runCmd("migrate", "plan", "--config", cfg, "--supplier", "bella-photography", "--stages", "10%:10m,50%:10m")
		if code != 1 || !strings.Contains(errOut, "the last stage has share 0.5") {
			t.Errorf("a ramp short of 100%%: exit %d, %q", code, errOut)
		}
		for _, args := range [][]string{
			{"migrate"},
			{"migrate", "frobnicate"},
			{"migrate", "start", "--config", cfg},
			{"migrate", "start", "--config", cfg, "a", "b"},
			{"migrate", "status", id},
			{"migrate", "plan", "--config", cfg},
			{"migrate", "plan", "--config", cfg, "--supplier", "bella-photography", "--to", "elsewhere"},
			{"migrate", "plan", "--config", cfg, "--supplier", "bella-photography", "--stages", "half"},
			{"migrate", "plan", "--config", cfg, "--supplier", "bella-photography", "--output", "yaml"},
			{"migrate", "compare", "--config", cfg, "--report", "a", "--stop", "b"},
		} {
			if code, _, errOut := runCmd(args...); code != 2 || !strings.HasPrefix(errOut, "veil: usage: ") || strings.Count(errOut, "\n") != 1 {
				t.Errorf("veil %s: exit %d, %q", strings.Join(args, " "), code, errOut)
			}
		}
	})

	if strings.Contains(v.logs.String(), testBellaKey) {
		t.Error("veil logged the supplier's key")
	}
}

// TestMigrateCompareCommands: `veil migrate compare` starts a shadow
// comparison, lists it, prints its report's text and stops it.
func TestMigrateCompareCommands(t *testing.T) {
	v := startMigrateVeil(t)
	cfg := v.config
	out := mustRun(t, "migrate", "compare", "--config", cfg, "--supplier", "rose-venue", "--requests", "10", "--sample", "1",
		"--window", "2h")
	id := regexp.MustCompile(`cmp_[a-z0-9]+`).FindString(out)
	if id == "" {
		t.Fatalf("no comparison ID:\n%s", out)
	}
	wantAll(t, "compare start", out, "Comparison "+id+" started for rose-venue: platform (primary) against client (shadow)",
		"100% of requests shadowed", "billed to platform", "after 10 shadowed requests", "(2h)",
		"veil compare report --config "+cfg+" "+id)

	code, _, errOut := runCmd("migrate", "compare", "--config", cfg, "--supplier", "rose-venue")
	if code != 1 || !strings.Contains(errOut, "already running") {
		t.Errorf("a second comparison: exit %d, %q", code, errOut)
	}

	for range 4 {
		if resp := v.post(t, "rose-venue", "gpt-4o-mini"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	out = mustRun(t, "migrate", "compare", "--config", cfg, "--report", id)
	wantAll(t, "report", out, "Comparison "+id+" for rose-venue: platform (primary) against client (shadow), running",
		"platform (primary)", "client (shadow)", "requests", "latency p95", "cost per 1,000 requests",
		"Recommendation: "+compare.CollectMore)

	out = mustRun(t, "migrate", "compare", "--config", cfg)
	wantAll(t, "comparison list", out, "ID", "PRIMARY -> SHADOW", id, "rose-venue", "platform -> client", "running")

	out = mustRun(t, "migrate", "compare", "--config", cfg, "--stop", id)
	wantAll(t, "stop", out, "Comparison "+id+" for rose-venue: stopped", "veil compare report --config "+cfg+" "+id)
	out = mustRun(t, "migrate", "compare", "--config", cfg, "--report", id)
	wantAll(t, "report after the stop", out, "stopped")

	code, _, errOut = runCmd("migrate", "compare", "--config", cfg, "--report", "cmp_nosuchthing")
	if code != 1 || !strings.Contains(errOut, "comparison not found") {
		t.Errorf("an unknown comparison: exit %d, %q", code, errOut)
	}
}

func TestParseStages(t *testing.T) {
	got, err := parseStages("10%:10m, 0.5:1h30m,100%")
	want := []migrate.Stage{{Share: 0.1, Dwell: 10 * time.Minute}, {Share: 0.5, Dwell: 90 * time.Minute}, {Share: 1}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("%v %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("stage %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", "10%:soon", "ten:10m", "%:10m", "50%:-1m"} {
		if _, err := parseStages(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestFormats(t *testing.T) {
	for d, want := range map[time.Duration]string{10 * time.Minute: "10m", time.Hour: "1h", 90 * time.Minute: "1h30m",
		45 * time.Second: "45s", 0: "0s"} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for v, want := range map[float64]string{0.1: "10%", 0.07: "7%", 1: "100%", 0.125: "12.5%"} {
		if got := fmtPercent(v); got != want {
			t.Errorf("fmtPercent(%v) = %q, want %q", v, got, want)
		}
	}
	if got := fmtDeltaUSD(-0.5); got != "-$0.500000" {
		t.Errorf("fmtDeltaUSD: %q", got)
	}
}

// TestREADMECommands: every command of the usage text is in the README's
// Commands block.
func TestREADMECommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "## Commands\n\n```\n")
	if !ok {
		t.Fatal("the README has no Commands block")
	}
	block, _, _ = strings.Cut(block, "```")
	for _, line := range strings.Split(usage, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "veil" {
			continue
		}
		cmd := []string{"veil"}
		for _, f := range fields[1:] {
			if strings.ContainsAny(f[:1], "-[<") || strings.ToUpper(f) == f {
				break
			}
			cmd = append(cmd, f)
		}
		if name := strings.Join(cmd, " "); !strings.Contains(block, name+" ") && !strings.Contains(block, name+"\n") {
			t.Errorf("the README's Commands block lacks %q", name)
		}
	}
}

// lockedOut is a buffer a command writes while a test reads it.
type lockedOut struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedOut) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedOut) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
