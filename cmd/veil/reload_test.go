package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestSIGHUPReloads: editing the config file and sending SIGHUP applies the
// new config to a running veil without a restart.
func TestSIGHUPReloads(t *testing.T) {
	up := startFake(t, fakeopenai.Options{})
	v := startVeil(t, up.URL(), "usage:\n  sinks: []\n")
	served := func() string { return v.post(t, "rose-venue", "wedsync-fast").Header.Get("X-Veil-Model") }
	if got := served(); got != "wedsync-fast" {
		t.Fatalf("before the reload: %q", got)
	}
	extra := "usage:\n  sinks: []\naliases:\n  wedsync-fast: gpt-4o-mini\n"
	if err := os.WriteFile(v.config, []byte(veilConfig(v.proxy, v.admin, up.URL(), extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := v.cmd.Process.Signal(syscall.SIGHUP); err != nil {
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
