package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestUsageReport: calls through a running veil show up in `veil usage`,
// read from its admin listener.
func TestUsageReport(t *testing.T) {
	const platformKey, callerToken, adminToken = "sk-usage-test-platform-0123456789", "veil-usage-test-caller-0123456789", "veil-usage-test-admin-0123456789"
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{platformKey}})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "veil.yaml")
	yaml := "listen:\n  proxy: " + proxyAddr + "\n  admin: " + adminAddr + "\n" +
		"admin:\n  token: env://TEST_ADMIN_TOKEN\n" +
		"providers:\n  - name: openai\n    type: openai\n    base_url: " + up.URL() + "\n    api_key: env://TEST_PLATFORM_KEY\n" +
		"callers:\n  - name: app\n    token: env://TEST_CALLER_TOKEN\n    suppliers: [\"*\"]\n" +
		"usage:\n  sinks: []\n  flush_interval: 10ms\n" +
		"prices:\n  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_ADMIN_TOKEN", adminToken)
	cmd := exec.Command(os.Args[0], "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "VEIL_TEST_RUN_MAIN=1", "TEST_PLATFORM_KEY="+platformKey, "TEST_CALLER_TOKEN="+callerToken)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()
	waitReady(t, adminAddr, exited)
	for _, supplier := range []string{"bella-photography", "bella-photography", "rose-venue"} {
		req, _ := http.NewRequest("POST", "http://"+proxyAddr+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a toast"}]}`))
		req.Header.Set("Authorization", "Bearer "+callerToken)
		req.Header.Set("X-Supplier-ID", supplier)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
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
