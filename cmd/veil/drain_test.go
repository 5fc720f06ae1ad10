package main

import (
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestSIGTERMUnderLoadLosesNoRecord: veil is stopped with SIGTERM while
// requests stream in; every request answered 2xx has exactly one usage
// record in the file sink, and veil exits 0.
func TestSIGTERMUnderLoadLosesNoRecord(t *testing.T) {
	up := startFake(t, fakeopenai.Options{NoRecord: true, Latency: 2 * time.Millisecond})
	usageFile := filepath.Join(t.TempDir(), "usage.ndjson")
	v := startVeil(t, up.URL(), "usage:\n  sinks:\n    - type: file\n      path: "+usageFile+"\n", "--drain-timeout", "20s")
	cmd, exited := v.cmd, v.exited
	load := startLoad(v.proxy, 8, []string{`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a toast"}]}`}, nil)
	load.waitAnswered(t, 300)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("veil exited with %v", err)
		}
	case <-time.After(40 * time.Second): // failure guard only
		t.Fatal("veil did not exit after SIGTERM")
	}
	answered := load.end()

	seen := readRecordIDs(t, usageFile)
	missing, doubled := 0, 0
	for id := range answered {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			doubled++
		}
	}
	t.Logf("%d requests answered 2xx, %d records", len(answered), len(seen))
	if missing > 0 || doubled > 0 {
		t.Errorf("%d answered requests have no record, %d have more than one", missing, doubled)
	}
}

func waitReady(t *testing.T, adminAddr string, exited chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("veil exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("veil never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
