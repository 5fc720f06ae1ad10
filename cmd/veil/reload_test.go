package main

import (
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

// TestSIGHUPReloads: editing the config file and sending SIGHUP applies the
// new config to a running veil without a restart.
func TestSIGHUPReloads(t *testing.T) {
	const platformKey, callerToken = "sk-hup-test-platform-0123456789", "veil-hup-test-caller-0123456789"
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{platformKey}})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "veil.yaml")
	base := "listen:\n  proxy: " + proxyAddr + "\n  admin: " + adminAddr + "\n" +
		"providers:\n  - name: openai\n    type: openai\n    base_url: " + up.URL() + "\n    api_key: env://TEST_PLATFORM_KEY\n" +
		"callers:\n  - name: app\n    token: env://TEST_CALLER_TOKEN\n    suppliers: [\"*\"]\n" +
		"usage:\n  sinks: []\n"
	if err := os.WriteFile(cfg, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "VEIL_TEST_RUN_MAIN=1", "TEST_PLATFORM_KEY="+platformKey, "TEST_CALLER_TOKEN="+callerToken)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()
	waitReady(t, adminAddr, exited)

	served := func() string {
		req, _ := http.NewRequest("POST", "http://"+proxyAddr+"/v1/chat/completions",
			strings.NewReader(`{"model":"wedsync-fast","messages":[{"role":"user","content":"a toast"}]}`))
		req.Header.Set("Authorization", "Bearer "+callerToken)
		req.Header.Set("X-Supplier-ID", "rose-venue")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Veil-Model")
	}
	if got := served(); got != "wedsync-fast" {
		t.Fatalf("before the reload: %q", got)
	}
	if err := os.WriteFile(cfg, []byte(base+"aliases:\n  wedsync-fast: gpt-4o-mini\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second) // failure guard only
	for served() != "gpt-4o-mini" {
		if time.Now().After(deadline) {
			t.Fatal("the new config never applied")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
