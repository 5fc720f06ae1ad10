package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestNamedOperators: a veil run with named admin tokens; each operator
// runs the admin commands with its own token in VEIL_OPERATOR_TOKEN. A
// viewer cannot roll a migration back, an operator can; the audit file
// names who did what, never a token, and its chain holds across a restart
// of veil.
func TestNamedOperators(t *testing.T) {
	tokens := map[string]string{"alice": "veil-alice-viewer-0123456789", "bob": "veil-bob-operator-0123456789"}
	up := startFake(t, fakeopenai.Options{Keys: []string{testBellaKey}})
	t.Setenv("TEST_ALICE_TOKEN", tokens["alice"])
	t.Setenv("TEST_BOB_TOKEN", tokens["bob"])
	t.Setenv("TEST_BELLA_KEY", testBellaKey)
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	extra := "admin:\n  tokens:\n" +
		"    - {name: alice, role: viewer, token: env://TEST_ALICE_TOKEN}\n" +
		"    - {name: bob, role: operator, token: env://TEST_BOB_TOKEN}\n" +
		"audit:\n  output: " + auditFile + "\n" +
		"usage:\n  sinks: []\n" +
		"suppliers:\n  entries:\n    - id: bella-photography\n      keys: {openai: env://TEST_BELLA_KEY}\n"
	v := startVeil(t, up.URL(), extra)
	as := func(name string) { t.Setenv(envOperatorToken, tokens[name]) }

	t.Setenv(envOperatorToken, "")
	if code, _, errOut := runCmd("migrate", "status", "--config", v.config); code != 1 || !strings.Contains(errOut, "set "+envOperatorToken) {
		t.Errorf("no operator token: exit %d, %q; want a hint to set %s", code, errOut, envOperatorToken)
	}

	as("bob")
	out := mustRun(t, "migrate", "plan", "--config", v.config, "--supplier", "bella-photography")
	id := regexp.MustCompile(`mig-[0-9a-f]{8}`).FindString(out)
	if id == "" {
		t.Fatalf("the plan names no migration:\n%s", out)
	}
	as("alice")
	mustRun(t, "migrate", "status", "--config", v.config)
	code, _, errOut := runCmd("migrate", "rollback", id, "--config", v.config)
	if code != 1 || !strings.Contains(errOut, "needs the operator role; alice has the viewer role") || !strings.Contains(errOut, "forbidden_role") {
		t.Errorf("alice's rollback: exit %d, %q; want 403 forbidden_role", code, errOut)
	}
	as("bob")
	mustRun(t, "migrate", "rollback", id, "--config", v.config)

	// A restart appends to the same audit file and goes on with its chain.
	_ = v.cmd.Process.Kill()
	if err := <-v.exited; err == nil {
		t.Fatal("veil exited cleanly after a kill")
	}
	v = startVeil(t, up.URL(), extra)
	as("bob") // the embedded store's migrations went with the process
	mustRun(t, "migrate", "plan", "--config", v.config, "--supplier", "bella-photography")
	as("alice")
	mustRun(t, "status", "--config", v.config)

	data, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for name, tok := range tokens {
		if strings.Contains(text, tok) {
			t.Errorf("the audit file holds %s's token", name)
		}
	}
	wantAll(t, "audit file", text, `"msg":"admin call refused","log":"audit","operator":"alice","role":"viewer"`,
		`"msg":"admin action","log":"audit","operator":"bob","role":"operator","method":"POST","path":"/admin/migrations/`+id+`/rollback"`,
		`"chain":"`)
	if n := strings.Count(text, `"operator":"bob","role":"operator","method":"POST","path":"/admin/migrations"`); n != 2 {
		t.Errorf("%d lines of bob's plans, want one per run:\n%s", n, text)
	}
	lines := strings.Count(text, "\n")
	out = mustRun(t, "audit", "verify", auditFile)
	if want := "ok: " + strconv.Itoa(lines) + " lines\n"; out != want {
		t.Errorf("audit verify: %q, want %q", out, want)
	}
}
