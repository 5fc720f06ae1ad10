package config

import (
	"strings"
	"testing"
)

func TestTiersParse(t *testing.T) {
	doc := okProviders + okCallers + `tiers:
  - name: starter
    requests_per_minute: 60
    tokens_per_minute: 40000
    concurrent: 4
    monthly_tokens: 2000000
    monthly_cost_usd: 20
  - name: pro
    tokens_per_minute: 400000
    on_exhausted: switch_to_client
suppliers:
  default_tier: starter
  entries:
    - id: bella-photography
      tier: pro
      keys:
        openai: env://BELLA_KEY
store:
  type: redis
  addr: 127.0.0.1:6379
  on_unavailable: fail_closed
`
	c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	starter, _ := c.Tier("starter")
	if starter.OnExhausted != ExhaustedReject || starter.DefaultMaxTokens != DefaultTierMaxTokens || starter.MonthlyCostUSD != 20 {
		t.Errorf("starter %+v", starter)
	}
	if bella, _ := c.Supplier("bella-photography"); bella.Tier != "pro" {
		t.Errorf("bella %+v", bella)
	}
	if c.Store.Type != "redis" || c.Store.OnUnavailable != "fail_closed" || c.Store.Timeout == 0 {
		t.Errorf("store %+v", c.Store)
	}
}

func TestTiersValidation(t *testing.T) {
	cases := []struct{ name, doc, field, msg string }{
		{"unknown default tier", "suppliers:\n  default_tier: gold\n", "suppliers.default_tier", "does not name a tier"},
		{"bad action", "tiers:\n  - name: t\n    on_exhausted: queue\n", "tiers[0].on_exhausted", "must be one of"},
		{"switch without client keys", "tiers:\n  - name: t\n    on_exhausted: switch_to_client\n", "tiers[0].on_exhausted", "needs suppliers' own keys"},
		{"negative", "tiers:\n  - name: t\n    tokens_per_minute: -1\n", "tiers[0]", "must not be negative"},
		{"redis without addr", "store:\n  type: redis\n", "store.addr", "is required"},
		{"relative data dir", "store:\n  data_dir: data\n", "store.data_dir", "absolute"},
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
