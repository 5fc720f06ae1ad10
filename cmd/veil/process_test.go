package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Keys and tokens the subprocess tests hand to veil.
const (
	testPlatformKey = "sk-process-test-platform-0123456789"
	testCallerToken = "veil-process-test-caller-0123456789"
)

// veilProc is `veil serve` run as its own process by a test (the test
// binary itself, through VEIL_TEST_RUN_MAIN).
type veilProc struct {
	cmd          *exec.Cmd
	exited       chan error
	proxy, admin string
	config       string
	logs         *lockedBuf
}

// veilConfig is the config of a test veil: its listeners, one openai
// provider at upstream with the platform key from the environment, one
// caller for every supplier, then extra.
func veilConfig(proxy, admin, upstream, extra string) string {
	return "listen:\n  proxy: " + proxy + "\n  admin: " + admin + "\n" +
		"providers:\n  - name: openai\n    type: openai\n    base_url: " + upstream + "\n    api_key: env://TEST_PLATFORM_KEY\n" +
		"callers:\n  - name: app\n    token: env://TEST_CALLER_TOKEN\n    suppliers: [\"*\"]\n" + extra
}

// startVeil writes the config and runs `veil serve` until it is ready.
func startVeil(t *testing.T, upstream, extra string, args ...string) *veilProc {
	t.Helper()
	v := &veilProc{proxy: freeAddr(t), admin: freeAddr(t), config: filepath.Join(t.TempDir(), "veil.yaml"),
		exited: make(chan error, 1), logs: &lockedBuf{}}
	if err := os.WriteFile(v.config, []byte(veilConfig(v.proxy, v.admin, upstream, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	v.cmd = exec.Command(os.Args[0], append([]string{"serve", "--config", v.config}, args...)...)
	v.cmd.Env = append(os.Environ(), "VEIL_TEST_RUN_MAIN=1", "TEST_PLATFORM_KEY="+testPlatformKey, "TEST_CALLER_TOKEN="+testCallerToken)
	v.cmd.Stdout, v.cmd.Stderr = v.logs, v.logs
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { v.exited <- v.cmd.Wait() }()
	t.Cleanup(func() { _ = v.cmd.Process.Kill() })
	waitReady(t, v.admin, v.exited)
	return v
}

// post sends a chat completion for supplier with the caller token.
func (v *veilProc) post(t *testing.T, supplier, model string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+v.proxy+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"a toast"}]}`))
	req.Header.Set("Authorization", "Bearer "+testCallerToken)
	req.Header.Set("X-Supplier-ID", supplier)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// lockedBuf collects a child's output safely while it runs.
type lockedBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
