package e2e

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wedsync/veil/config"
)

// reconfigure parses the harness's config with extra appended.
func (h *harness) reconfigure(t *testing.T, extra string) *config.Config {
	t.Helper()
	cfg, err := config.ParseWithEnv([]byte(h.yaml+extra), "reload.yaml", h.lookup)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// TestReloadUnderLoad: a reload while requests run fails none of them, and
// the new config applies from then on (a new alias resolves).
func TestReloadUnderLoad(t *testing.T) {
	h := start(t, setup{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h.client()
			for ctx.Err() == nil {
				if _, err := c.CreateChatCompletion(context.Background(), weddingChat); err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	waitFor(t, func() bool { return ok.Load() > 200 })
	for i := range 5 {
		extra := "aliases:\n  wedsync-fast: gpt-4o-mini\n"
		if i%2 == 1 {
			extra = "aliases:\n  wedsync-fast: gpt-4o\n"
		}
		if err := h.app.Reload(h.reconfigure(t, extra)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	before := ok.Load()
	waitFor(t, func() bool { return ok.Load() > before+200 })
	cancel()
	wg.Wait()
	t.Logf("%d requests, %d failed, across 5 reloads", ok.Load()+failed.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d requests failed during reloads", failed.Load())
	}
	req := weddingChat
	req.Model = "wedsync-fast"
	resp, err := h.client().CreateChatCompletion(ctxT(t), req)
	if err != nil || resp.Header().Get("X-Veil-Model") != "gpt-4o-mini" {
		t.Errorf("after the last reload wedsync-fast = %q (%v)", resp.Header().Get("X-Veil-Model"), err)
	}
	code, body := h.admin("/admin/status", h.adminToken)
	if code != 200 || !strings.Contains(body, `"generation": 5`) {
		t.Errorf("status after reloads: %s", body)
	}
}

// TestReloadRefused: a config that changes what only a restart applies, or
// whose secrets cannot be resolved, is refused and the running one stays.
func TestReloadRefused(t *testing.T) {
	h := start(t, setup{})
	cases := map[string]string{
		"the limits":       strings.Replace(h.yaml, "keepalive_interval: 100ms", "keepalive_interval: 200ms", 1),
		"a missing secret": h.yaml + "jwt:\n  hs256_keys: [env://NOT_SET_ANYWHERE]\n",
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.ParseWithEnv([]byte(doc), "reload.yaml", h.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.app.Reload(cfg); err == nil {
				t.Fatal("reload accepted")
			}
			if _, err := h.client().CreateChatCompletion(ctxT(t), weddingChat); err != nil {
				t.Errorf("serving after a refused reload: %v", err)
			}
			code, body := h.admin("/admin/status", h.adminToken)
			if code != 200 || !strings.Contains(body, `"ok": false`) {
				t.Errorf("status does not show the refusal: %s", body)
			}
		})
	}
}
