package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/redistest"
)

func (h *harness) adminDo(method, path, body string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest(method, "http://"+h.app.AdminAddr()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSupplierOverrides: PUT /admin/suppliers/{id} changes a supplier's
// mode at run time, on every replica sharing the store; DELETE restores
// the config's settings; a bad override is refused.
func TestSupplierOverrides(t *testing.T) {
	rs := redistest.Start(t)
	roseKey := secret("sk-rose-own-")
	s := setup{
		fake: fakeopenai.Options{Keys: []string{roseKey}},
		env:  map[string]string{"ROSE_KEY": roseKey},
		extra: `store:
  type: redis
  addr: ` + rs.Addr + `
suppliers:
  entries:
    - id: rose-venue
      mode: platform
      keys:
        openai: env://ROSE_KEY
`}
	h1, h2 := start(t, s), start(t, s)
	source := func(h *harness) string {
		resp, err := h.clientFor("rose-venue").CreateChatCompletion(ctxT(t), weddingChat)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header().Get("X-Veil-Key-Source")
	}
	if source(h1) != "platform" {
		t.Fatal("rose should start on platform keys")
	}
	code, body := h1.adminDo("PUT", "/admin/suppliers/rose-venue", `{"mode":"client"}`)
	if code != 200 || !strings.Contains(body, `"mode": "client"`) {
		t.Fatalf("put %d: %s", code, body)
	}
	if source(h1) != "client" {
		t.Error("the override did not apply on the replica that took it")
	}
	waitFor(t, func() bool { return source(h2) == "client" }) // the other replica follows the store
	if code, body := h1.adminDo("PUT", "/admin/suppliers/rose-venue", `{"tier":"gold"}`); code != 400 {
		t.Errorf("an override naming an unknown tier: %d %s", code, body)
	}
	if code, body := h1.adminDo("PUT", "/admin/suppliers/rose-venue", `{"colour":"blue"}`); code != 400 {
		t.Errorf("an unknown field: %d %s", code, body)
	}
	if code, body := h1.adminDo("DELETE", "/admin/suppliers/rose-venue", ""); code != 200 || !strings.Contains(body, `"mode": "platform"`) {
		t.Errorf("delete %d: %s", code, body)
	}
	if source(h1) != "platform" {
		t.Error("deleting the override did not restore the config's mode")
	}
	if !strings.Contains(h1.logs.String(), `"admin action"`) {
		t.Error("admin changes are not audited")
	}
}
