package config

import (
	"strings"
	"testing"
	"time"
)

func TestUsageParse(t *testing.T) {
	doc := okProviders + okCallers + `usage:
  sinks:
    - type: stdout
    - type: file
      path: /var/log/veil/usage.ndjson
    - type: webhook
      url: https://billing.wedsync.internal/usage
      headers:
        Authorization: env://BILLING_TOKEN
      spill_dir: /var/lib/veil/spill
    - type: redis
      addr: 127.0.0.1:6379
prices:
  - provider: openai
    model: gpt-4o-mini
    input_per_mtok: 0.15
    cached_input_per_mtok: 0.075
    output_per_mtok: 0.6
    effective: 2024-07-18
  - provider: openai
    model: gpt-4o
    input_per_mtok: 2.5
    output_per_mtok: 10
`
	c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Usage.Sinks) != 4 || c.Usage.Sinks[1].MaxBytes != DefaultUsageFileMaxBytes || c.Usage.Sinks[3].Stream != DefaultRedisStream {
		t.Errorf("sinks %+v", c.Usage.Sinks)
	}
	if c.Usage.Sinks[2].Headers["Authorization"] != "env://BILLING_TOKEN" {
		t.Errorf("webhook headers %v", c.Usage.Sinks[2].Headers)
	}
	if len(c.Prices) != 2 || c.Prices[0].OutputPerMTok != 0.6 || c.Prices[1].InputPerMTok != 2.5 {
		t.Errorf("prices %+v", c.Prices)
	}
	if at, _ := c.Prices[0].EffectiveTime(); !at.Equal(time.Date(2024, 7, 18, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("effective %v", at)
	}
}

func TestUsageDefaultsToStdout(t *testing.T) {
	c, err := ParseWithEnv([]byte(okProviders+okCallers), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Usage.Sinks) != 1 || c.Usage.Sinks[0].Type != SinkStdout {
		t.Errorf("default sinks %+v", c.Usage.Sinks)
	}
}

func TestUsageValidation(t *testing.T) {
	cases := []struct{ name, doc, field, msg string }{
		{"relative file", `usage:
  sinks:
    - type: file
      path: usage.log
`, "usage.sinks[0].path", "absolute"},
		{"webhook without spill dir", `usage:
  sinks:
    - type: webhook
      url: https://billing/usage
`, "usage.sinks[0].spill_dir", "absolute directory"},
		{"literal webhook secret", `usage:
  sinks:
    - type: webhook
      url: https://billing/usage
      spill_dir: /var/lib/veil/spill
      headers:
        Authorization: Bearer abc
`, "usage.sinks[0].headers.Authorization", "secret reference"},
		{"redis sink without servers", `usage:
  sinks:
    - type: redis
`, "usage.sinks[0].addr", "is required"},
		{"redis sink address", `usage:
  sinks:
    - type: redis
      addr: redis
`, "usage.sinks[0].addr", `must be host:port, got "redis"`},
		{"redis sink addr and sentinel", `usage:
  sinks:
    - type: redis
      addr: redis:6379
      sentinel:
        master: m
        addrs: [s:26379]
`, "usage.sinks[0]", "exclusive"},
		{"redis sink cluster address", `usage:
  sinks:
    - type: redis
      addrs: [redis-0:6379, redis-1]
`, "usage.sinks[0].addrs[1]", "host:port"},
		{"unknown sink", `usage:
  sinks:
    - type: kafka
`, "usage.sinks[0].type", "must be one of"},
		{"price for unknown provider", `prices:
  - provider: anthropic
    model: claude
`, "prices[0].provider", "does not name a provider"},
		{"negative price", `prices:
  - provider: openai
    model: gpt-4o
    input_per_mtok: -1
`, "prices[0]", "must not be negative"},
		{"bad date", `prices:
  - provider: openai
    model: gpt-4o
    effective: July 2024
`, "prices[0].effective", "a date"},
		{"price as string", `prices:
  - provider: openai
    model: gpt-4o
    input_per_mtok: cheap
`, "prices[0].input_per_mtok", "must be a number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(okProviders+okCallers+tc.doc), "veil.yaml", noEnv)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, fe := range fieldErrors(t, err) {
				if fe.Field == tc.field && strings.Contains(fe.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("no error on %s containing %q in:\n%v", tc.field, tc.msg, err)
		})
	}
}

func TestUsageExplicitlyOff(t *testing.T) {
	c, err := ParseWithEnv([]byte(okProviders+okCallers+"usage:\n  sinks: []\n"), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Usage.Sinks) != 0 {
		t.Errorf("sinks %+v, want none", c.Usage.Sinks)
	}
}
