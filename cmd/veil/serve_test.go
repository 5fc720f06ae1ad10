package main

import (
	"net"
	"os"
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

// startFake starts a fake upstream that accepts the test platform key.
func startFake(t *testing.T, o fakeopenai.Options) *fakeopenai.Server {
	t.Helper()
	o.Keys = append(o.Keys, testPlatformKey)
	up := fakeopenai.New(o)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	return up
}

// TestServeAndDrain runs `veil serve` as its own process, sends a request
// through it, then SIGTERM: veil drains and exits 0, and its logs never
// show the keys it was given.
func TestServeAndDrain(t *testing.T) {
	up := startFake(t, fakeopenai.Options{})
	v := startVeil(t, up.URL(), "")
	if resp := v.post(t, "rose-venue", "gpt-4o-mini"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := v.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-v.exited:
		if err != nil {
			t.Fatalf("veil exited with %v:\n%s", err, v.logs.String())
		}
	case <-time.After(30 * time.Second): // failure guard only
		t.Fatal("veil did not exit after SIGTERM")
	}
	out := v.logs.String()
	for _, want := range []string{`"msg":"request"`, `"msg":"draining"`, `"msg":"stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if strings.Contains(out, testPlatformKey) || strings.Contains(out, testCallerToken) {
		t.Error("a secret appears in veil's logs")
	}
}
