package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a testing.TB that records Skip and Fatal instead of acting
// on the test; both end the goroutine, as the real ones do.
type recorder struct {
	testing.TB
	mu      sync.Mutex
	skipped string
	fatal   string
}

func (r *recorder) Helper() {}

func (r *recorder) Skip(args ...any) {
	r.mu.Lock()
	r.skipped = fmt.Sprint(args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprint(args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls f with r on a goroutine of its own and waits for it.
func (r *recorder) run(f func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

func TestBinaryMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-vault")
	tests := []struct {
		name      string
		ci        string
		wantFatal bool
	}{
		{"local", "", false},
		{"ci false", "false", false},
		{"ci true", "true", true},
		{"ci 1", "1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("VEIL_VAULT_BIN", missing)
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			var got string
			r.run(func(tb testing.TB) { got = Binary(tb) })
			if got != "" {
				t.Fatalf("Binary returned %q for a missing binary", got)
			}
			msg := r.skipped
			if tt.wantFatal {
				msg = r.fatal
			}
			if msg == "" {
				t.Fatalf("want a %s, got skip %q fatal %q", map[bool]string{true: "fatal", false: "skip"}[tt.wantFatal], r.skipped, r.fatal)
			}
			for _, want := range []string{missing, "make setup", "VEIL_VAULT_BIN"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
		})
	}
}

// proxyClient returns a client that talks to s through its proxy.
func proxyClient(t *testing.T, s *Server, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.AgentAddress = ""
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearNamespace()
	c.SetToken(token)
	t.Cleanup(func() { cfg.HttpClient.CloseIdleConnections() })
	return c
}

func TestServer(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	c := proxyClient(t, s, s.RootToken)

	if v := s.WriteKV(t, "wedsync/suppliers/acme/openai", map[string]any{"api_key": "v1"}); v != 1 {
		t.Errorf("first version = %d, want 1", v)
	}
	if v := s.WriteKV(t, "wedsync/suppliers/acme/openai", map[string]any{"api_key": "v2"}); v != 2 {
		t.Errorf("second version = %d, want 2", v)
	}
	got, err := c.KVv2(KVMount).Get(ctx, "wedsync/suppliers/acme/openai")
	if err != nil {
		t.Fatalf("reading through the proxy: %v", err)
	}
	if got.Data["api_key"] != "v2" || got.VersionMetadata.Version != 2 {
		t.Errorf("read %v version %d, want v2 version 2", got.Data, got.VersionMetadata.Version)
	}

	s.DeleteKV(t, "wedsync/suppliers/acme/openai")
	// The api package reports a deleted current version as nil data.
	got, err = c.KVv2(KVMount).Get(ctx, "wedsync/suppliers/acme/openai")
	if err != nil || got.Data != nil {
		t.Errorf("after DeleteKV: data %v, err %v; want no data", got, err)
	}
	if _, err := c.KVv2(KVMount).Get(ctx, "wedsync/suppliers/acme/missing"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Errorf("missing secret: err = %v, want ErrSecretNotFound", err)
	}
}

func TestBlock(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	c := proxyClient(t, s, s.RootToken)
	health := func() error {
		_, err := c.Sys().HealthWithContext(ctx)
		return err
	}
	if err := health(); err != nil {
		t.Fatalf("before Block: %v", err)
	}
	for round := range 2 {
		s.Block()
		err := health()
		if err == nil {
			t.Fatalf("round %d: Vault reachable through a blocked proxy", round)
		}
		if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("round %d: blocked error = %v, want connection refused", round, err)
		}
		if _, err := s.Client.Sys().HealthWithContext(ctx); err != nil {
			t.Errorf("round %d: the root client goes through the proxy: %v", round, err)
		}
		s.Unblock()
		if err := health(); err != nil {
			t.Fatalf("round %d: after Unblock: %v", round, err)
		}
	}
	s.Unblock() // unblocking an unblocked server does nothing
}

func TestBlockClosesOpenConnections(t *testing.T) {
	s := Start(t)
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	get := func() error {
		resp, err := hc.Get(s.Addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(); err != nil { // leaves an idle keep-alive connection
		t.Fatal(err)
	}
	s.Block()
	defer s.Unblock()
	if err := get(); err == nil {
		t.Fatal("a kept-alive connection still reaches Vault after Block")
	}
}

func TestAuthHelpers(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	s.WritePolicy(t, "supplier-acme", SupplierPolicy("acme"))
	s.WriteKV(t, "wedsync/suppliers/acme/openai", map[string]any{"api_key": "acme-key"})
	s.WriteKV(t, "wedsync/suppliers/other/openai", map[string]any{"api_key": "other-key"})

	t.Run("token", func(t *testing.T) {
		token := s.Token(t, []string{"supplier-acme"}, time.Minute, 0, true)
		c := proxyClient(t, s, token)
		if _, err := c.KVv2(KVMount).Get(ctx, "wedsync/suppliers/acme/openai"); err != nil {
			t.Errorf("own secret: %v", err)
		}
		if _, err := c.KVv2(KVMount).GetMetadata(ctx, "wedsync/suppliers/acme/openai"); err != nil {
			t.Errorf("own metadata: %v", err)
		}
		_, err := c.KVv2(KVMount).Get(ctx, "wedsync/suppliers/other/openai")
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
			t.Errorf("other supplier's secret: err = %v, want 403", err)
		}
		info, err := c.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := info.Data["renewable"].(bool); !r {
			t.Error("token not renewable")
		}
	})

	t.Run("periodic token", func(t *testing.T) {
		token := s.Token(t, nil, 0, 5*time.Second, true)
		c := proxyClient(t, s, token)
		info, err := c.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p := fmt.Sprint(info.Data["period"]); p != "5" {
			t.Errorf("period = %s, want 5", p)
		}
	})

	t.Run("approle", func(t *testing.T) {
		roleID, secretID := s.AppRole(t, "veil", []string{"supplier-acme"}, 10*time.Second, 20*time.Second)
		again, _ := s.AppRole(t, "veil2", nil, 0, 0) // approle is enabled once
		if again == "" {
			t.Fatal("second role has no role ID")
		}
		c := proxyClient(t, s, "")
		secret, err := c.Logical().WriteWithContext(ctx, "auth/approle/login",
			map[string]any{"role_id": roleID, "secret_id": secretID})
		if err != nil {
			t.Fatal(err)
		}
		if d := secret.Auth.LeaseDuration; d != 10 {
			t.Errorf("token TTL = %ds, want 10s", d)
		}
		if !strings.Contains(strings.Join(secret.Auth.Policies, ","), "supplier-acme") {
			t.Errorf("policies = %v, want supplier-acme", secret.Auth.Policies)
		}
	})
}

func TestStopIsIdempotent(t *testing.T) {
	s := Start(t)
	s.Stop()
	s.Stop()
	select {
	case <-s.proc.Exited():
	default:
		t.Fatal("vault still running after Stop")
	}
}
