package app

import (
	"net/http"
	"strings"
	"testing"
)

const reloadYAML = `listen:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
limits:
  disable_probes: true
providers:
  - {name: openai, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: env://K}
callers:
  - {name: app, token: env://T, suppliers: ["*"]}
usage:
  sinks: []
`

// TestReloadSwapsOnlyAWholeGeneration: a config whose generation does not
// build, or that changes a restart-only section, is refused and leaves the
// running runtime in place; a good one swaps it, for the proxy and the
// admin alike, and counts as the next generation.
func TestReloadSwapsOnlyAWholeGeneration(t *testing.T) {
	env := testEnv{"K": "sk-test", "T": "veil-test", "T2": "veil-second"}
	parse := env.parse
	a := env.start(t, reloadYAML)
	// secondAdmitted reports whether the proxy lets the second caller in.
	secondAdmitted := func(t *testing.T) bool {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.ProxyAddr()+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Which flowers last all day?"}]}`))
		req.Header.Set("Authorization", "Bearer veil-second")
		req.Header.Set("X-Supplier-ID", "bella-photography")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusUnauthorized
	}

	tests := []struct {
		name    string
		yaml    string
		wantErr string
		callers int
		gen     int
	}{
		{name: "a caller token that does not resolve",
			yaml:    strings.Replace(reloadYAML, "usage:", "  - {name: second, token: env://MISSING, suppliers: [\"*\"]}\nusage:", 1),
			wantErr: "caller second: token", callers: 1},
		{name: "a restart-only section",
			yaml:    strings.Replace(reloadYAML, "disable_probes: true", "disable_probes: true\n  breaker_failures: 9", 1),
			wantErr: "limits changed", callers: 1},
		{name: "a second caller",
			yaml:    strings.Replace(reloadYAML, "usage:", "  - {name: second, token: env://T2, suppliers: [\"*\"]}\nusage:", 1),
			callers: 2, gen: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.rt.Load()
			err := a.Reload(parse(t, tt.yaml))
			after := a.rt.Load()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Reload error %v, want one with %q", err, tt.wantErr)
				}
				if after != before {
					t.Errorf("a refused reload swapped the runtime")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if after == before {
					t.Errorf("the runtime was not swapped")
				}
			}
			if n := len(after.Config.Callers); n != tt.callers {
				t.Errorf("callers in force %d, want %d", n, tt.callers)
			}
			if got := secondAdmitted(t); got != (tt.callers == 2) {
				t.Errorf("the proxy admits the second caller: %v, want %v", got, tt.callers == 2)
			}
			st := a.Process().Reload
			if st.OK != (tt.wantErr == "") || st.Generation != tt.gen || (st.Error == "") != (tt.wantErr == "") {
				t.Errorf("reload status %+v", st)
			}
		})
	}
}
