package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/wedsync/veil/internal/logging"
)

// writeAuditLines appends one audit line per message to the audit file at
// path through a logger of its own, as one veil run does.
func writeAuditLines(t *testing.T, path string, msgs ...string) {
	t.Helper()
	l, closeFn, err := logging.Audit(path, "json")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		l.Info(m, zap.String("operator", "bob"), zap.String("role", "operator"), zap.String("remote", "10.1.2.3"))
	}
	_ = l.Sync()
	closeFn()
}

// TestAuditVerify: `veil audit verify` passes a file appended across two
// logger opens, and names the first line that breaks the chain when a line
// was edited, deleted or two were swapped.
func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	writeAuditLines(t, path, "admin action", "comparison started", "admin call refused")
	writeAuditLines(t, path, "admin action", "cache purged")

	code, out, errOut := runCmd("audit", "verify", path)
	if code != 0 || out != "ok: 5 lines\n" {
		t.Fatalf("intact file: exit %d, out %q, err %q", code, out, errOut)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	orig := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	tests := []struct {
		name     string
		lines    func() []string
		wantLine string
	}{
		{"edited line", func() []string {
			l := append([]string(nil), orig...)
			l[3] = strings.Replace(l[3], `"operator":"bob"`, `"operator":"eve"`, 1)
			return l
		}, "line 4"},
		{"deleted line", func() []string { return append(append([]string(nil), orig[:1]...), orig[2:]...) }, "line 2"},
		{"reordered pair", func() []string {
			l := append([]string(nil), orig...)
			l[2], l[3] = l[3], l[2]
			return l
		}, "line 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".log")
			if err := os.WriteFile(bad, []byte(strings.Join(tt.lines(), "")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCmd("audit", "verify", bad)
			if code != 1 || !strings.Contains(out, tt.wantLine+":") || !strings.Contains(errOut, "chain is broken at "+tt.wantLine) {
				t.Errorf("exit %d, out %q, err %q; want exit 1 naming %s", code, out, errOut, tt.wantLine)
			}
		})
	}
}

func TestAuditVerifyUsage(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"audit", "verify", "--help"}, 0, "hash chain"},
		{[]string{"audit", "--help"}, 0, "hash chain"},
		{[]string{"audit", "verify"}, 2, ""},
		{[]string{"audit", "check", "x"}, 2, ""},
		{[]string{"audit", "verify", "a", "b"}, 2, ""},
		{[]string{"audit", "verify", "--fast", "a"}, 2, ""},
		{[]string{"audit", "verify", filepath.Join(t.TempDir(), "missing.log")}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCmd(tt.args...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Errorf("exit %d, out %q, err %q; want exit %d with %q", code, out, errOut, tt.wantCode, tt.wantOut)
			}
		})
	}
}
