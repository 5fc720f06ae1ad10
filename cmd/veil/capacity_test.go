package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestCapacityCommand: `veil capacity` run by a viewer shows a running
// veil's providers with the limits the provider reported, its tiers with
// the suppliers that used them, and twelve months of forecast; with
// --output json it prints the admin document.
func TestCapacityCommand(t *testing.T) {
	up := startFake(t, fakeopenai.Options{})
	t.Setenv("TEST_VIEWER_TOKEN", "veil-capacity-viewer-0123456789")
	v := startVeil(t, up.URL(), "admin:\n  tokens:\n    - {name: vera, role: viewer, token: env://TEST_VIEWER_TOKEN}\n"+
		"usage:\n  sinks: []\n  flush_interval: 10ms\n"+
		"tiers:\n  - {name: starter, requests_per_minute: 100, tokens_per_minute: 100000}\n"+
		"suppliers:\n  default_tier: starter\n")
	t.Setenv(envOperatorToken, "veil-capacity-viewer-0123456789")
	for range 2 {
		if resp := v.post(t, "bella-photography", "gpt-4o-mini"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	var rep admin.CapacityReport
	for range 200 { // the aggregates that name bella are written in the background
		out := mustRun(t, "capacity", "--config", v.config, "--output", "json")
		rep = admin.CapacityReport{}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("--output json: %v\n%s", err, out)
		}
		if len(rep.Tiers) == 1 && rep.Tiers[0].Suppliers == 1 {
			break
		}
		sleepBriefly()
	}
	if len(rep.Providers) != 1 || rep.Providers[0].Requests.Limit == nil || *rep.Providers[0].Requests.Limit != 10000 ||
		rep.Providers[0].Accounts != 1 || rep.Providers[0].Headroom == nil {
		t.Errorf("providers %+v, want openai with the fake's limit of 10000 requests on one account", rep.Providers)
	}
	if len(rep.Tiers) != 1 || rep.Tiers[0].Suppliers != 1 || len(rep.Tiers[0].Top) != 1 || rep.Tiers[0].Top[0].Supplier != "bella-photography" {
		t.Fatalf("tiers %+v, want starter with bella-photography", rep.Tiers)
	}
	if len(rep.Forecast.Months) != 12 || rep.Forecast.RequestsPerMinute == nil {
		t.Errorf("forecast %+v", rep.Forecast)
	}

	out := mustRun(t, "capacity", "--config", v.config)
	for _, want := range []string{"PROVIDER", "openai", "10000", "TIER", "starter", "requests/minute", "bella-photography",
		"MONTH", rep.Forecast.Months[0].Month, rep.Forecast.Months[11].Month, "peak season 03-01 to 10-31", "flagged above 50%"} {
		if !strings.Contains(out, want) {
			t.Errorf("the tables lack %q:\n%s", want, out)
		}
	}

	for _, args := range [][]string{{"capacity"}, {"capacity", "--config", v.config, "--output", "yaml"}, {"capacity", "--config", v.config, "extra"}} {
		if code, _, errOut := runCmd(args...); code != 2 {
			t.Errorf("%v: exit %d, %q; want a usage error", args, code, errOut)
		}
	}
}

// TestPrintPoolHeadroom: the tables show a pool's headroom and how many
// accounts it is made of.
func TestPrintPoolHeadroom(t *testing.T) {
	at := time.Date(2026, 6, 13, 14, 30, 0, 0, time.UTC)
	headroom, limit, left := 0.8199, int64(1100), int64(902)
	var b bytes.Buffer
	rep := admin.CapacityReport{At: at, Providers: []admin.ProviderHeadroom{{Provider: "openai", Breaker: "closed", ReportedAt: &at,
		Accounts: 2, Headroom: &headroom, Requests: admin.WindowHeadroom{Limit: &limit, Remaining: &left}}}}
	if err := printCapacity(&b, &rep); err != nil {
		t.Fatal(err)
	}
	rows := func() map[string][]string {
		out := map[string][]string{}
		for _, line := range strings.Split(b.String(), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				out[f[0]] = f
			}
		}
		return out
	}
	if r := rows(); strings.Join(r["PROVIDER"][:4], " ") != "PROVIDER BREAKER ACCOUNTS HEADROOM" ||
		strings.Join(r["openai"][:5], " ") != "openai closed 2 82.0% 902" {
		t.Errorf("providers table:\n%s", b.String())
	}

	b.Reset()
	st := admin.Status{Health: []health.Snapshot{
		{Target: "openai", Breaker: "closed", Headroom: &headroom, Pool: &health.PoolLimits{Accounts: 2, Requests: health.PoolWindow{Remaining: &left}}},
		{Target: "azure", Breaker: "closed", Headroom: &headroom, Pool: &health.PoolLimits{Accounts: 1, Requests: health.PoolWindow{Remaining: &limit}}},
	}}
	if err := printStatus(&b, &st); err != nil {
		t.Fatal(err)
	}
	r := rows()
	// REQS LEFT is the eleventh field (the latency takes two), HEADROOM next.
	if got := strings.Join(r["openai"][10:14], " "); got != "902 82.0% (2 accounts)" {
		t.Errorf("a pool of two accounts: %q", got)
	}
	if got := strings.Join(r["azure"][10:13], " "); got != "1100 82.0% -" {
		t.Errorf("one account: %q", got)
	}
}
