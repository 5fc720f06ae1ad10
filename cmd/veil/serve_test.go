package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestMain lets the test binary stand in for the veil binary: with
// VEIL_TEST_RUN_MAIN set it runs the command line instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("VEIL_TEST_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeAndDrain runs `veil serve` as its own process, sends a request
// through it, then SIGTERM: veil drains and exits 0, and its logs never
// show the keys it was given.
func TestServeAndDrain(t *testing.T) {
	const platformKey, callerToken = "sk-serve-test-platform-0123456789", "veil-serve-test-caller-0123456789"
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{platformKey}})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "veil.yaml")
	yaml := "listen:\n  proxy: " + proxyAddr + "\n  admin: " + adminAddr + "\n" +
		"providers:\n  - name: openai\n    type: openai\n    base_url: " + up.URL() + "\n    api_key: env://TEST_PLATFORM_KEY\n" +
		"callers:\n  - name: app\n    token: env://TEST_CALLER_TOKEN\n    suppliers: [\"*\"]\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "VEIL_TEST_RUN_MAIN=1", "TEST_PLATFORM_KEY="+platformKey, "TEST_CALLER_TOKEN="+callerToken)
	var logs bytes.Buffer
	cmd.Stderr, cmd.Stdout = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("veil exited before it was ready (%v):\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("veil never became ready:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", "http://"+proxyAddr+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a toast"}]}`))
	req.Header.Set("Authorization", "Bearer "+callerToken)
	req.Header.Set("X-Supplier-ID", "rose-venue")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("veil exited with %v:\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second): // failure guard only
		t.Fatal("veil did not exit after SIGTERM")
	}
	out := logs.String()
	for _, want := range []string{`"msg":"request"`, `"msg":"draining"`, `"msg":"stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if strings.Contains(out, platformKey) || strings.Contains(out, callerToken) {
		t.Error("a secret appears in veil's logs")
	}
}
