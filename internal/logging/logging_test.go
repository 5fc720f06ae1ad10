package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	l, err := New("warn", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["msg"] != "shown" || line["ts"] == nil {
		t.Errorf("line %q: %v", buf.String(), err)
	}
	for _, bad := range [][2]string{{"loud", "json"}, {"info", "xml"}} {
		if _, err := New(bad[0], bad[1], &buf); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestAuditToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, closeFn, err := Audit(path, "json")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("caller authentication failed")
	_ = l.Sync()
	closeFn()
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), `"log":"audit"`) {
		t.Errorf("audit file %q: %v", b, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v", fi.Mode())
	}
}
