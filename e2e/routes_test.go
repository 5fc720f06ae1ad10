package e2e

import (
	"encoding/json"
	"io"
	"testing"

	"github.com/wedsync/veil/internal/jsonfield"
)

// TestWorkflowRoutes: X-Workflow picks the workflow's model when the
// request names none, forces it where the route says so, refuses models a
// workflow does not allow, and aliases resolve to real models upstream.
func TestWorkflowRoutes(t *testing.T) {
	h := start(t, setup{extra: `routes:
  - workflow: photography
    model: gpt-4o
    allowed_models: [gpt-4o, gpt-4o-mini]
  - workflow: planning
    model: wedsync-fast
    force: true
aliases:
  wedsync-fast: gpt-4o-mini
`})
	upstreamModel := func() string {
		var r jsonfield.Request
		if err := jsonfield.ScanRequest(h.lastUpstream().Body, &r); err != nil {
			t.Fatal(err)
		}
		return string(r.Model)
	}
	cases := []struct {
		name, workflow, body string
		status               int
		upstream             string
	}{
		{"route model when none is named", "photography", `{"messages":[{"role":"user","content":"tag this photo"}]}`, 200, "gpt-4o"},
		{"explicit model wins", "photography", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, 200, "gpt-4o-mini"},
		{"model not allowed", "photography", `{"model":"gpt-3.5-turbo","messages":[]}`, 400, ""},
		{"forced model", "planning", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, 200, "gpt-4o-mini"},
		{"alias", "", `{"model":"wedsync-fast","messages":[{"role":"user","content":"hi"}]}`, 200, "gpt-4o-mini"},
		{"unknown workflow is only a hint", "florals", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, 200, "gpt-4o"},
		{"no model and no route", "", `{"messages":[]}`, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do("POST", "/v1/chat/completions", tc.body, map[string]string{"X-Workflow": tc.workflow})
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				var e envelope
				_ = json.Unmarshal(body, &e)
				if e.Error.Param == nil || *e.Error.Param != "model" {
					t.Errorf("error %s", body)
				}
				return
			}
			if got := upstreamModel(); got != tc.upstream {
				t.Errorf("upstream model %q, want %q", got, tc.upstream)
			}
			if got := resp.Header.Get("X-Veil-Model"); got != tc.upstream {
				t.Errorf("X-Veil-Model %q", got)
			}
		})
	}
}

// TestAdminExplain: support staff can ask how a supplier's request would be
// served, and why.
func TestAdminExplain(t *testing.T) {
	h := start(t, setup{extra: `tiers:
  - name: starter
    requests_per_minute: 60
suppliers:
  default_tier: starter
routes:
  - workflow: photography
    model: gpt-4o
`})
	if _, err := h.client().CreateChatCompletion(ctxT(t), weddingChat); err != nil {
		t.Fatal(err)
	}
	code, body := h.admin("/admin/explain?supplier="+testSupplier+"&workflow=photography", h.adminToken)
	if code != 200 {
		t.Fatalf("explain %d: %s", code, body)
	}
	var ex struct {
		Mode     string `json:"mode"`
		Attempts []struct {
			Provider, Model, Reason string
			KeySource               string `json:"key_source"`
		} `json:"attempts"`
		Tier struct {
			Name string           `json:"name"`
			Used map[string]int64 `json:"used"`
		} `json:"tier"`
	}
	if err := json.Unmarshal([]byte(body), &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Mode != "platform" || len(ex.Attempts) != 1 || ex.Attempts[0].Model != "gpt-4o" || ex.Attempts[0].KeySource != "platform" {
		t.Errorf("explain %s", body)
	}
	if ex.Tier.Name != "starter" || ex.Tier.Used["rpm"] != 1 {
		t.Errorf("tier %+v", ex.Tier)
	}
	if code, _ := h.admin("/admin/explain?supplier="+testSupplier, ""); code != 401 {
		t.Errorf("explain without the admin token: %d", code)
	}
}
