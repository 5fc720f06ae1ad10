package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/alert"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
)

// TestOpenBreakerReachesTheWebhook: a provider that answers only 503 opens
// its breaker, and the alert reaches the webhook with its header and the
// log; the header's value is logged nowhere.
func TestOpenBreakerReachesTheWebhook(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
	}))
	defer upstream.Close()
	type delivery struct {
		payload alert.Payload
		auth    string
	}
	got := make(chan delivery, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p alert.Payload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		got <- delivery{p, r.Header.Get("Authorization")}
	}))
	defer hook.Close()

	const hookToken = "Bearer alert-hook-7c1e"
	env := map[string]string{"PLATFORM_KEY": "sk-platform-test", "CALLER_TOKEN": "veil-caller-test", "HOOK_TOKEN": hookToken}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	yaml := fmt.Sprintf(`listen:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
limits:
  disable_probes: true
  breaker_failures: 3
providers:
  - name: openai
    type: openai
    base_url: %s/v1
    api_key: env://PLATFORM_KEY
callers:
  - name: wedsync-app
    token: env://CALLER_TOKEN
    suppliers: ["*"]
usage:
  sinks: []
alerts:
  webhook:
    url: %s/veil-alerts
    headers: {Authorization: env://HOOK_TOKEN}
`, upstream.URL, hook.URL)
	cfg, err := config.ParseWithEnv([]byte(yaml), "veil.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	a, err := New(cfg, Options{Log: zap.New(core), Audit: zap.NewNop(), Version: "test",
		Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()

	// Each call is tried and retried on the only provider: three 503s in a
	// row open its breaker.
	for i := 0; i < 3 && a.health.Target("openai").Snapshot().Breaker != "open"; i++ {
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.ProxyAddr()+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Which flowers last all day?"}]}`))
		req.Header.Set("Authorization", "Bearer veil-caller-test")
		req.Header.Set("X-Supplier-ID", "bella-photography")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	d := <-got
	if d.payload.Provider != "openai" || d.payload.Up || d.payload.Source != "breaker" || d.payload.Breaker != "open" ||
		d.payload.Cause != "3 consecutive failures" {
		t.Errorf("webhook got %+v", d.payload)
	}
	if d.auth != hookToken {
		t.Errorf("webhook authorization %q", d.auth)
	}
	down := logs.FilterMessage("alert: provider is down").All()
	if len(down) != 1 || down[0].ContextMap()["provider"] != "openai" || down[0].ContextMap()["source"] != "breaker" {
		t.Errorf("alert log lines %+v", down)
	}
	for _, e := range logs.All() {
		if line := e.Message + fmt.Sprint(e.ContextMap()); strings.Contains(line, "alert-hook-7c1e") {
			t.Errorf("a log line holds the webhook's header: %s", line)
		}
	}
}
