package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	cmd, exited, proxyAddr, callerToken := v.cmd, v.exited, v.proxy, testCallerToken

	var mu sync.Mutex
	answered := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", "http://"+proxyAddr+"/v1/chat/completions",
					strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a toast"}]}`))
				req.Header.Set("Authorization", "Bearer "+callerToken)
				req.Header.Set("X-Supplier-ID", "rose-venue")
				resp, err := client.Do(req)
				if err != nil {
					continue // refused while draining: not answered, not billed
				}
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					answered[resp.Header.Get("X-Request-Id")] = true
					mu.Unlock()
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(answered)
		mu.Unlock()
		if n >= 300 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	close(stop)
	wg.Wait()

	f, err := os.Open(usageFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("bad usage line %q: %v", sc.Text(), err)
		}
		seen[rec.RequestID]++
	}
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
