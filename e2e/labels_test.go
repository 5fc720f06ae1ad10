package e2e

import (
	"io"
	"strings"
	"testing"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestModelLabelsComeFromTheConfig: a model the config does not name is
// served through the default routing but reported under model="other",
// junk names refused at the door add no series either, and a reload that
// names a model gives it its own label from then on.
func TestModelLabelsComeFromTheConfig(t *testing.T) {
	h := start(t, setup{fake: fakeopenai.Options{AllowUnknownModels: true}, extra: `prices:
  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}
`})
	chat := func(model string) int {
		t.Helper()
		body := `{"model":` + model + `,"messages":[{"role":"user","content":"Which flowers last all day?"}]}`
		resp := h.do("POST", "/v1/chat/completions", body, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, model := range []string{`"gpt-4o-mini"`, `"unlisted-model-7f3a9c"`} {
		if code := chat(model); code != 200 {
			t.Fatalf("model %s: status %d, want 200", model, code)
		}
	}
	junk := map[string]string{
		"path climb":   `"../../admin"`,
		"CR LF":        `"gpt-4o-mini\r\nX-Injected-Label: 1"`,
		"raw newline":  `"gpt-4o-mini\nX-Injected-Label: 2"`,
		"query":        `"gpt-4o-mini?x-injected-label=3"`,
		"control char": `"gpt-4o-mini\u0000x-injected-label"`,
	}
	for name, model := range junk {
		if code := chat(model); code == 200 {
			t.Errorf("%s: %s was served", name, model)
		}
	}

	metrics := func() string {
		t.Helper()
		code, body := h.admin("/metrics", "")
		if code != 200 {
			t.Fatalf("metrics %d", code)
		}
		return body
	}
	body := metrics()
	for _, want := range []string{
		`veil_requests_total{endpoint="chat_completions",model="gpt-4o-mini",provider="openai",status_class="2xx"} 1`,
		`veil_requests_total{endpoint="chat_completions",model="other",provider="openai",status_class="2xx"} 1`,
		`veil_upstream_duration_seconds_count{model="other",provider="openai",status_class="2xx"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, banned := range []string{"unlisted-model-7f3a9c", "../", "admin\"", "injected", "Injected"} {
		if strings.Contains(body, banned) {
			t.Errorf("metrics carry %q", banned)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "veil_") && strings.Contains(line, `model="`) &&
			!strings.Contains(line, `model="gpt-4o-mini"`) && !strings.Contains(line, `model="other"`) && !strings.Contains(line, `model=""`) {
			t.Errorf("a model label the config does not name: %s", line)
			break
		}
	}

	if err := h.app.Reload(h.reconfigure(t, "aliases:\n  wedsync-fast: unlisted-model-7f3a9c\n")); err != nil {
		t.Fatal(err)
	}
	if code := chat(`"unlisted-model-7f3a9c"`); code != 200 {
		t.Fatalf("after the reload: status %d, want 200", code)
	}
	if want := `veil_requests_total{endpoint="chat_completions",model="unlisted-model-7f3a9c",provider="openai",status_class="2xx"} 1`; !strings.Contains(metrics(), want) {
		t.Errorf("after a reload naming the model, metrics lack %s", want)
	}
}
