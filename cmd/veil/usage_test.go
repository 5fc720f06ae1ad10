package main

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestUsageReport: calls through a running veil show up in `veil usage`,
// read from its admin listener.
func TestUsageReport(t *testing.T) {
	const adminToken = "veil-usage-test-admin-0123456789"
	up := startFake(t, fakeopenai.Options{})
	t.Setenv("TEST_ADMIN_TOKEN", adminToken)
	v := startVeil(t, up.URL(), "admin:\n  token: env://TEST_ADMIN_TOKEN\n"+
		"usage:\n  sinks: []\n  flush_interval: 10ms\n"+
		"prices:\n  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}\n")
	for _, supplier := range []string{"bella-photography", "bella-photography", "rose-venue"} {
		v.post(t, supplier, "gpt-4o-mini")
	}
	cfg := v.config
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

// TestStatusCommand: `veil status` prints a running veil's targets with
// their breakers.
func TestStatusCommand(t *testing.T) {
	up := startFake(t, fakeopenai.Options{})
	t.Setenv("TEST_ADMIN_TOKEN", "veil-status-test-admin-0123456789")
	v := startVeil(t, up.URL(), "admin:\n  token: env://TEST_ADMIN_TOKEN\nusage:\n  sinks: []\n")
	v.post(t, "rose-venue", "gpt-4o-mini")
	code, out, errOut := runCmd("status", "--config", v.config)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"config generation 0", "TARGET", "openai", "closed", "SUCCESS 1M", "100.0%"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
