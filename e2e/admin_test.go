package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wedsync/veil/keys"
)

func (h *harness) admin(path, token string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+h.app.AdminAddr()+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminListener(t *testing.T) {
	// The model label takes only the model names the config lists.
	h := start(t, setup{providers: `
  - name: openai
    type: openai
    base_url: %s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]`})
	if _, err := h.client().CreateChatCompletion(ctxT(t), weddingChat); err != nil {
		t.Fatal(err)
	}
	if code, _ := h.admin("/healthz", ""); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := h.admin("/readyz", ""); code != 200 {
		t.Errorf("readyz %d", code)
	}

	t.Run("metrics", func(t *testing.T) {
		code, body := h.admin("/metrics", "")
		if code != 200 {
			t.Fatalf("metrics %d", code)
		}
		for _, want := range []string{
			`veil_requests_total{endpoint="chat_completions",model="gpt-4o-mini",provider="openai",status_class="2xx"} 1`,
			`veil_request_duration_seconds_bucket{endpoint="chat_completions"`,
			`veil_upstream_duration_seconds_count{model="gpt-4o-mini",provider="openai",status_class="2xx"} 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if strings.Contains(body, `supplier="`) {
			t.Error("metrics carry a supplier label")
		}
	})

	t.Run("status needs the token", func(t *testing.T) {
		streamReq := weddingChat
		streamReq.Stream = true
		collectStream(t, h.client(), streamReq)
		if code, _ := h.admin("/admin/status", ""); code != 401 {
			t.Errorf("without token: %d", code)
		}
		if code, _ := h.admin("/admin/status", "wrong"); code != 401 {
			t.Errorf("wrong token: %d", code)
		}
		code, body := h.admin("/admin/status", h.adminToken)
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		var st struct {
			Providers []struct {
				Name            string   `json:"name"`
				KeyFingerprints []string `json:"key_fingerprints"`
			} `json:"providers"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Providers) != 1 || len(st.Providers[0].KeyFingerprints) != 1 || st.Providers[0].KeyFingerprints[0] != keys.Fingerprint(h.platformKey) {
			t.Errorf("status providers %+v", st.Providers)
		}
		if strings.Contains(body, h.platformKey) || strings.Contains(body, h.token) {
			t.Error("the status document shows a secret")
		}
		if !strings.Contains(body, `"remaining_requests": `) {
			t.Error("the status does not show the provider's remaining capacity")
		}
		if !strings.Contains(body, `"success_rate_1m": 1`) {
			t.Error("the status does not show the rolling success rate")
		}
		// The stream's statistics land when its exchange finishes, just
		// after the client has read [DONE].
		waitFor(t, func() bool {
			_, body := h.admin("/admin/status", h.adminToken)
			return strings.Contains(body, `"ttft_ewma_ms": `)
		})
	})
}
