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

func TestStoreRedisKinds(t *testing.T) {
	tests := []struct {
		name, doc string
		check     func(s Store) bool
	}{
		{"cluster", "store:\n  type: redis\n  addrs: [redis-0:6379, redis-1:6379, redis-2:6379]\n",
			func(s Store) bool { return len(s.Addrs) == 3 && s.Addrs[2] == "redis-2:6379" && s.Addr == "" }},
		{"sentinel", "store:\n  type: redis\n  db: 1\n  sentinel:\n    master: veil\n    addrs: [s-0:26379, s-1:26379]\n" +
			"    password: env://SENTINEL_PASSWORD\n",
			func(s Store) bool {
				return s.Sentinel.Master == "veil" && len(s.Sentinel.Addrs) == 2 && s.Sentinel.Password == "env://SENTINEL_PASSWORD" && s.DB == 1
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseWithEnv([]byte(okProviders+okCallers+tc.doc), "veil.yaml", noEnv)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c.Store) {
				t.Errorf("store %+v", c.Store)
			}
		})
	}
}

func TestTiersValidation(t *testing.T) {
	cases := []struct{ name, doc, field, msg string }{
		{"unknown default tier", "suppliers:\n  default_tier: gold\n", "suppliers.default_tier", "does not name a tier"},
		{"bad action", "tiers:\n  - name: t\n    on_exhausted: queue\n", "tiers[0].on_exhausted", "must be one of"},
		{"switch without client keys", "tiers:\n  - name: t\n    on_exhausted: switch_to_client\n", "tiers[0].on_exhausted", "needs suppliers' own keys"},
		{"negative", "tiers:\n  - name: t\n    tokens_per_minute: -1\n", "tiers[0]", "must not be negative"},
		{"redis without addr", "store:\n  type: redis\n", "store.addr", "is required"},
		{"redis addr without port", "store:\n  type: redis\n  addr: redis\n", "store.addr", `must be host:port, got "redis"`},
		{"redis addr and addrs", "store:\n  type: redis\n  addr: a:1\n  addrs: [b:2]\n", "store", "exclusive: set one, got addr and addrs"},
		{"redis addrs and sentinel", "store:\n  type: redis\n  addrs: [b:2]\n  sentinel:\n    master: m\n    addrs: [s:1]\n",
			"store", "got addrs and sentinel"},
		{"redis cluster address", "store:\n  type: redis\n  addrs: [b:2, c]\n", "store.addrs[1]", `must be host:port, got "c"`},
		{"redis cluster database", "store:\n  type: redis\n  addrs: [b:2]\n  db: 2\n", "store.db", "only database 0"},
		{"sentinel without master", "store:\n  type: redis\n  sentinel:\n    addrs: [s:1]\n", "store.sentinel.master", "is required"},
		{"sentinel without addrs", "store:\n  type: redis\n  sentinel:\n    master: m\n", "store.sentinel.addrs", "is required"},
		{"sentinel address", "store:\n  type: redis\n  sentinel:\n    master: m\n    addrs: [\":1\"]\n", "store.sentinel.addrs[0]", "host:port"},
		{"literal sentinel password", "store:\n  type: redis\n  sentinel:\n    master: m\n    addrs: [s:1]\n    password: hunter2\n",
			"store.sentinel.password", ""},
		{"prefix with a hash tag", "store:\n  type: redis\n  addr: a:1\n  prefix: \"{veil}:\"\n", "store.prefix", "must not contain"},
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
