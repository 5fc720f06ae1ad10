package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
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
	const platformKey, callerToken = "sk-drain-test-platform-0123456789", "veil-drain-test-caller-0123456789"
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{platformKey}, NoRecord: true, Latency: 2 * time.Millisecond})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	dir := t.TempDir()
	usageFile := filepath.Join(dir, "usage.ndjson")
	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "veil.yaml")
	yaml := "listen:\n  proxy: " + proxyAddr + "\n  admin: " + adminAddr + "\n" +
		"providers:\n  - name: openai\n    type: openai\n    base_url: " + up.URL() + "\n    api_key: env://TEST_PLATFORM_KEY\n" +
		"callers:\n  - name: app\n    token: env://TEST_CALLER_TOKEN\n    suppliers: [\"*\"]\n" +
		"usage:\n  sinks:\n    - type: file\n      path: " + usageFile + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "--config", cfg, "--drain-timeout", "20s")
	cmd.Env = append(os.Environ(), "VEIL_TEST_RUN_MAIN=1", "TEST_PLATFORM_KEY="+platformKey, "TEST_CALLER_TOKEN="+callerToken)
	logFile, err := os.Create(filepath.Join(dir, "veil.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()
	waitReady(t, adminAddr, exited)

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
