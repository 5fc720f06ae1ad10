package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wedsync/veil/billing"
)

// post sends body to veil's chat endpoint as supplier, with the header
// pairs given (an empty value sends none), and returns the answer with its
// body read.
func post(t *testing.T, h *harness, supplier, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.baseURL()+"/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("X-Supplier-ID", supplier)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestUpstreamRequestID: the provider's ID of its answer is kept in the
// record and returned as X-Veil-Upstream-Request-Id, and every answer has
// exactly one X-Request-Id, veil's.
func TestUpstreamRequestID(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{tap: tp.add})
	for _, tc := range []struct{ name, body string }{{"plain", chatBody}, {"streamed", streamBody}} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, h, testSupplier, tc.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			ids := resp.Header.Values("X-Request-Id")
			if len(ids) != 1 {
				t.Fatalf("X-Request-Id %q, want exactly one", ids)
			}
			r := tp.one(t, ids[0])
			up := resp.Header.Get("X-Veil-Upstream-Request-Id")
			if !strings.HasPrefix(up, "req_") || r.UpstreamRequestID != up {
				t.Errorf("upstream request id: header %q, record %q; want the provider's req_ id in both", up, r.UpstreamRequestID)
			}
		})
	}
}

// TestVeilRefusalsBillNobody: calls veil answers itself, without asking a
// provider, are billed to nobody; a provider's own error answer is billed
// to the owner of the key it was made with.
func TestVeilRefusalsBillNobody(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{tap: tp.add, extra: `tiers:
  - name: tiny
    requests_per_minute: 1
suppliers:
  entries:
    - id: tiny-florist
      mode: platform
      tier: tiny
`})
	for _, tc := range []struct {
		name, supplier, body string
		status               int
		billed               billing.Payer
	}{
		{"the provider's own 404", testSupplier, `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, 404,
			billing.PaidByPlatform},
		{"served", "tiny-florist", chatBody, 200, billing.PaidByPlatform},
		{"over its quota", "tiny-florist", chatBody, 429, billing.PaidByNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, h, tc.supplier, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if r := tp.one(t, resp.Header.Get("X-Request-Id")); r.Billed != tc.billed {
				t.Errorf("billed %q, want %q", r.Billed, tc.billed)
			}
		})
	}
}

// TestUnknownWorkflowRecordedAsOther: a workflow the config does not know
// is recorded as "other", so that callers cannot make up aggregates; a
// built-in or configured one is recorded as named.
func TestUnknownWorkflowRecordedAsOther(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{tap: tp.add, extra: `routes:
  - workflow: seating-charts
    model: gpt-4o-mini
`})
	for _, tc := range []struct{ sent, recorded string }{
		{"venue", "venue"}, {"seating-charts", "seating-charts"}, {"../../admin", "other"}, {strings.Repeat("x", 500), "other"}, {"", ""},
	} {
		status, id := postWorkflow(t, h, testSupplier, tc.sent, chatBody)
		if status != http.StatusOK {
			t.Fatalf("workflow %q: status %d", tc.sent, status)
		}
		if r := tp.one(t, id); r.Workflow != tc.recorded {
			t.Errorf("workflow %q recorded as %q, want %q", tc.sent, r.Workflow, tc.recorded)
		}
	}
}
