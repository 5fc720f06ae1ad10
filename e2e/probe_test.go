package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestProbesTakeADeadProviderOut: active probes find a provider that does
// not answer, raise an alert and leave it out of the plan, so calls go
// straight to the next provider; when it answers again, it is back.
func TestProbesTakeADeadProviderOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	_ = ln.Close() // nothing listens here until the provider comes back
	providers := fmt.Sprintf(`
  - name: primary
    type: openai
    base_url: http://%s/v1
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]
  - name: secondary
    type: openai
    base_url: %%[1]s
    api_key: env://PLATFORM_KEY
    models: [gpt-4o-mini]`, deadAddr)
	h := start(t, setup{limits: "  probe_interval: 50ms\n  probe_failures: 2\n", providers: providers})

	waitFor(t, func() bool {
		return strings.Contains(h.logs.String(), `"alert: provider is down","provider":"primary"`)
	})
	resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Veil-Provider") != "secondary" || resp.Header.Get("X-Veil-Attempts") != "1" {
		t.Errorf("with primary probed down: status %d provider %q attempts %q", resp.StatusCode,
			resp.Header.Get("X-Veil-Provider"), resp.Header.Get("X-Veil-Attempts"))
	}
	if _, body := h.admin("/admin/status", h.adminToken); !strings.Contains(body, `"probed_down": true`) ||
		!strings.Contains(body, `"last_probe_error": "`) {
		t.Errorf("status does not show the probed-down provider: %s", body)
	}
	if _, body := h.admin("/metrics", ""); !strings.Contains(body, `veil_target_up{provider="primary"} 0`) {
		t.Error("veil_target_up does not show the probed-down provider")
	}

	back := fakeopenai.New(fakeopenai.Options{Keys: []string{h.platformKey}})
	if err := back.Start(deadAddr); err != nil {
		t.Skipf("the freed port was taken meanwhile: %v", err)
	}
	t.Cleanup(func() { _ = back.Close() })
	waitFor(t, func() bool {
		return strings.Contains(h.logs.String(), `"alert: provider is back","provider":"primary"`)
	})
	waitFor(t, func() bool {
		resp := h.do("POST", "/v1/chat/completions", chatBody, nil)
		resp.Body.Close()
		return resp.Header.Get("X-Veil-Provider") == "primary"
	})
}
