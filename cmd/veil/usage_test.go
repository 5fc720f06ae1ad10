package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestUsageReport: calls through a running veil show up in `veil usage`,
// read from its admin listener.
func TestUsageReport(t *testing.T) {
	const adminToken = "veil-usage-test-admin-0123456789"
	up := startFake(t, fakeopenai.Options{})
	t.Setenv("TEST_ADMIN_TOKEN", adminToken)
	v := startVeil(t, up.URL(), "admin:\n  token: env://TEST_ADMIN_TOKEN\n"+
		"usage:\n  sinks: []\n  flush_interval: 10ms\n"+
		"prices:\n  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}\n")
	for _, supplier := range []string{"bella-photography", "bella-photography", "rose-venue"} {
		v.post(t, supplier, "gpt-4o-mini")
	}
	cfg := v.config
	var out string
	for range 200 { // aggregates are written in the background
		code, o, errOut := runCmd("usage", "--config", cfg, "--group-by", "supplier")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		out = o
		if strings.Contains(out, "bella-photography") && strings.Contains(out, "rose-venue") {
			break
		}
		sleepBriefly()
	}
	for _, want := range []string{"SUPPLIER", "bella-photography", "rose-venue", "TOTAL"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		if strings.Contains(l, "bella-photography") && !strings.Contains(strings.Fields(l)[1], "2") {
			t.Errorf("bella made 2 requests: %q", l)
		}
	}
}

func sleepBriefly() { time.Sleep(20 * time.Millisecond) }

// TestStatusCommand: `veil status` prints a running veil's targets with
// their breakers.
func TestStatusCommand(t *testing.T) {
	up := startFake(t, fakeopenai.Options{})
	t.Setenv("TEST_ADMIN_TOKEN", "veil-status-test-admin-0123456789")
	v := startVeil(t, up.URL(), "admin:\n  token: env://TEST_ADMIN_TOKEN\nusage:\n  sinks: []\n")
	v.post(t, "rose-venue", "gpt-4o-mini")
	code, out, errOut := runCmd("status", "--config", v.config)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"config generation 0", "TARGET", "openai", "closed", "SUCCESS 1M", "100.0%"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// TestUsageReconcile: `veil usage reconcile` finds the records of a file
// sink equal to a running veil's aggregates, by payer and workflow too,
// and names an aggregate that differs (exit 1).
func TestUsageReconcile(t *testing.T) {
	up := startFake(t, fakeopenai.Options{})
	t.Setenv("TEST_ADMIN_TOKEN", "veil-reconcile-test-admin-0123456789")
	records := filepath.Join(t.TempDir(), "usage.jsonl")
	v := startVeil(t, up.URL(), "admin:\n  token: env://TEST_ADMIN_TOKEN\n"+
		"usage:\n  flush_interval: 10ms\n  sinks:\n    - {type: file, path: "+records+"}\n"+
		"prices:\n  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}\n"+
		"tiers:\n  - name: monthly\n    monthly_tokens: 1000000\n    monthly_cost_usd: 100\nsuppliers:\n  default_tier: monthly\n")
	for _, c := range []struct{ supplier, workflow string }{
		{"bella-photography", "photography"}, {"bella-photography", "photography"}, {"bella-photography", "venue"},
		{"rose-venue", ""},
	} {
		postWorkflow(t, v, c.supplier, c.workflow)
	}
	const counted = "3 aggregates from the records, 3 in the store"
	var code int
	var out, errOut string
	for range 200 { // records and aggregates are written in the background
		code, out, errOut = runCmd("usage", "reconcile", "--config", v.config, records)
		if code == 0 && strings.Contains(out, counted) {
			break
		}
		sleepBriefly()
	}
	if code != 0 || !strings.Contains(out, counted) || !strings.Contains(out, "no differences") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	data, err := os.ReadFile(records)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(data)), "\n")
	reconcile := func(doctored string) (int, string) {
		t.Helper()
		name := filepath.Join(t.TempDir(), "doctored.jsonl")
		if err := os.WriteFile(name, []byte(doctored), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runCmd("usage", "reconcile", "--config", v.config, name)
		return code, out
	}
	// A record the store never saw.
	extra := strings.Replace(lines[0], `"rose-venue"`, `"lily-florist"`, 1)
	extra = strings.Replace(extra, `"bella-photography"`, `"lily-florist"`, 1)
	code, out = reconcile(string(data) + strings.TrimSpace(extra) + "\n")
	if code != 1 || !strings.Contains(out, "lily-florist openai gpt-4o-mini platform billed platform workflow ") ||
		!strings.Contains(out, ": records 1 requests") || !strings.Contains(out, "store 0 requests") {
		t.Fatalf("exit %d, want 1 naming lily-florist's aggregate:\n%s", code, out)
	}
	// Its tier's monthly counters say nothing of it either.
	if !strings.Contains(out, "quota lily-florist month_tokens this month: records ") || !strings.Contains(out, ", counters 0") {
		t.Fatalf("want lily-florist's monthly tokens named:\n%s", out)
	}
	// A record of rose's billed to the client instead: both of its
	// payers' aggregates differ.
	var doctored strings.Builder
	for _, l := range lines {
		if strings.Contains(l, `"rose-venue"`) {
			l = strings.Replace(l, `"billed":"platform"`, `"billed":"client"`, 1)
		}
		doctored.WriteString(l)
	}
	code, out = reconcile(doctored.String() + "\n")
	for _, want := range []string{
		"rose-venue openai gpt-4o-mini platform billed client workflow -: records 1 requests",
		"rose-venue openai gpt-4o-mini platform billed platform workflow -: records 0 requests",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d, want 1 and %q:\n%s", code, want, out)
		}
	}
	// `veil usage` shows the same by payer and workflow.
	code, out, errOut = runCmd("usage", "--config", v.config, "--group-by", "billed,workflow")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"BILLED", "WORKFLOW", "photography", "venue", "TOTAL"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "platform" && f[1] == "photography" && f[2] != "2" {
			t.Errorf("2 requests of the photography workflow: %q", l)
		}
	}
}

// postWorkflow sends a chat completion for supplier with the caller token,
// in a workflow when it is not empty, and wants it answered.
func postWorkflow(t *testing.T, v *veilProc, supplier, workflow string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+v.proxy+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a toast"}]}`))
	req.Header.Set("Authorization", "Bearer "+testCallerToken)
	req.Header.Set("X-Supplier-ID", supplier)
	if workflow != "" {
		req.Header.Set("X-Workflow", workflow)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: status %d", supplier, workflow, resp.StatusCode)
	}
}

// TestHealthCommand: `veil health` exits 0 for a ready veil and 1 when
// nothing answers, saying why.
func TestHealthCommand(t *testing.T) {
	up := startFake(t, fakeopenai.Options{})
	v := startVeil(t, up.URL(), "")
	if code, out, errOut := runCmd("health", "--config", v.config); code != 0 || !strings.Contains(out, "ready") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, addr := range []string{v.admin, "http://" + v.admin, "http://" + v.admin + "/"} {
		if code, out, errOut := runCmd("health", "--admin", addr); code != 0 {
			t.Fatalf("--admin %s: exit %d: %s%s", addr, code, out, errOut)
		}
	}
	for _, addr := range []string{"https://" + v.admin, "http://" + v.admin + "/admin", "localhost"} {
		if code, _, errOut := runCmd("health", "--admin", addr); code != 2 || !strings.Contains(errOut, "want HOST:PORT") {
			t.Errorf("--admin %s: exit %d: %s", addr, code, errOut)
		}
	}
	if code, _, errOut := runCmd("health", "--admin", freeAddr(t)); code != 1 || !strings.Contains(errOut, "not ready") {
		t.Fatalf("nothing listening: exit %d: %s", code, errOut)
	}
}
