package vault

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/wedsync/veil/internal/vaulttest"
	"github.com/wedsync/veil/keys"
)

// Tests in this file run against a real Vault dev server each.

const (
	acmePath     = "wedsync/suppliers/acme/openai"
	otherPath    = "wedsync/suppliers/other/openai"
	platformPath = "wedsync/platform/openai"
)

func TestTokenAuthReads(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-acme-v1"})
	v2 := h.writeKV(t, acmePath, map[string]any{"api_key": "sk-acme-v2", "organization": "org-acme", "project": "proj-1"})
	h.writeKV(t, platformPath, map[string]any{"api_keys": []any{"sk-plat-1", "sk-plat-2"}})
	h.writeKV(t, "wedsync/suppliers/gone/openai", map[string]any{"api_key": "sk-gone"})
	h.srv.DeleteKV(t, "wedsync/suppliers/gone/openai")

	c := h.started(t, h.rootAuth())
	if err := c.Ready(); err != nil {
		t.Fatalf("Ready after Start: %v", err)
	}

	t.Run("ReadKV", func(t *testing.T) {
		kv, err := c.ReadKV(ctx, "secret", acmePath)
		if err != nil {
			t.Fatal(err)
		}
		if kv.Version != v2 || v2 != 2 {
			t.Errorf("version = %d, want 2", kv.Version)
		}
		if kv.CreatedTime.IsZero() {
			t.Error("no created time")
		}
		for field, want := range map[string]string{"api_key": "sk-acme-v2", "organization": "org-acme", "project": "proj-1"} {
			if s, ok := kv.Field(field); !ok || s.Reveal() != want {
				t.Errorf("%s = %q, want %q", field, s.Reveal(), want)
			}
		}
		plat, err := c.ReadKV(ctx, "/secret/", "/"+platformPath+"/")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range plat.Secrets("api_keys") {
			got = append(got, s.Reveal())
		}
		if !slices.Equal(got, []string{"sk-plat-1", "sk-plat-2"}) {
			t.Errorf("api_keys = %q", got)
		}
	})

	t.Run("KVVersion", func(t *testing.T) {
		v, err := c.KVVersion(ctx, "secret", acmePath)
		if err != nil || v != 2 {
			t.Fatalf("KVVersion = %d, %v; want 2", v, err)
		}
		v3 := h.writeKV(t, acmePath, map[string]any{"api_key": "sk-acme-v3"})
		if v, err := c.KVVersion(ctx, "secret", acmePath); err != nil || v != v3 {
			t.Errorf("after a write: KVVersion = %d, %v; want %d", v, err, v3)
		}
	})

	t.Run("Resolve", func(t *testing.T) {
		sources := keys.DefaultSources()
		sources["vault"] = c
		tests := []struct {
			ref, want string
		}{
			{"vault://secret/" + platformPath + "#api_keys", `["sk-plat-1","sk-plat-2"]`},
			{"vault://secret/" + acmePath + "#api_key", "sk-acme-v3"},
			{"vault://secret/" + acmePath, "sk-acme-v3"},
		}
		for _, tt := range tests {
			s, err := sources.Resolve(ctx, tt.ref)
			if err != nil {
				t.Errorf("%s: %v", tt.ref, err)
				continue
			}
			if s.Reveal() != tt.want {
				t.Errorf("%s = %q, want %q", tt.ref, s.Reveal(), tt.want)
			}
		}
	})

	t.Run("not found", func(t *testing.T) {
		tests := []struct {
			name string
			call func() error
			has  string
		}{
			{"missing secret", func() error { _, err := c.ReadKV(ctx, "secret", "wedsync/suppliers/nobody/openai"); return err }, "not found"},
			{"deleted version", func() error { _, err := c.ReadKV(ctx, "secret", "wedsync/suppliers/gone/openai"); return err }, "version 1 is deleted"},
			{"missing metadata", func() error { _, err := c.KVVersion(ctx, "secret", "wedsync/suppliers/nobody/openai"); return err }, "not found"},
			{"deleted version metadata", func() error { _, err := c.KVVersion(ctx, "secret", "wedsync/suppliers/gone/openai"); return err }, "version 1 is deleted"},
			{"missing field", func() error { _, err := c.Resolve(ctx, "vault://secret/"+acmePath+"#nope"); return err }, `no field "nope"`},
			{"missing mount", func() error { _, err := c.ReadKV(ctx, "nomount", "x"); return err }, "not found"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call()
				if !errors.Is(err, ErrNotFound) || IsUnreachable(err) || errors.Is(err, ErrForbidden) {
					t.Fatalf("err = %v, want only ErrNotFound", err)
				}
				if !strings.Contains(err.Error(), tt.has) {
					t.Errorf("error %q lacks %q", err, tt.has)
				}
				h.checkErr(t, err)
			})
		}
	})

	t.Run("caller canceled", func(t *testing.T) {
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.ReadKV(canceled, "secret", acmePath)
		if !errors.Is(err, context.Canceled) || IsUnreachable(err) {
			t.Errorf("err = %v, want context.Canceled and not unreachable", err)
		}
	})
}

func TestScheduledDeletionUsesClock(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	v := h.writeKV(t, acmePath, map[string]any{"api_key": "sk-scheduled"})
	if err := h.srv.Client.KVv2("secret").PatchMetadata(ctx, acmePath, vaultMetadataDeleteAfter(time.Hour)); err != nil {
		t.Fatal(err)
	}
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-scheduled-2"}) // gets a deletion time an hour on
	var now time.Time
	c := h.started(t, h.rootAuth(), func(o *Options) { o.Now = func() time.Time { return now } })

	now = time.Now()
	if got, err := c.KVVersion(ctx, "secret", acmePath); err != nil || got != v+1 {
		t.Fatalf("before the scheduled deletion: %d, %v; want %d", got, err, v+1)
	}
	now = time.Now().Add(2 * time.Hour)
	if _, err := c.KVVersion(ctx, "secret", acmePath); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the scheduled deletion: err = %v, want ErrNotFound", err)
	}
}

func TestSupplierCannotReadAnother(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-acme-own"})
	h.writeKV(t, otherPath, map[string]any{"api_key": "sk-other-private"})
	h.writeKV(t, platformPath, map[string]any{"api_key": "sk-platform-private"})
	h.srv.WritePolicy(t, "supplier-acme", vaulttest.SupplierPolicy("acme"))
	token := h.token(t, []string{"supplier-acme"}, time.Hour, 0, true)

	c := h.started(t, Auth{Token: keys.NewSecret(token)})
	kv, err := c.ReadKV(ctx, "secret", acmePath)
	if err != nil {
		t.Fatalf("own key: %v", err)
	}
	if s, _ := kv.Field("api_key"); s.Reveal() != "sk-acme-own" {
		t.Errorf("own key = %q", s.Reveal())
	}
	if _, err := c.KVVersion(ctx, "secret", acmePath); err != nil {
		t.Errorf("own metadata: %v", err)
	}

	denied := []struct {
		name string
		call func() error
	}{
		{"other supplier", func() error { _, err := c.ReadKV(ctx, "secret", otherPath); return err }},
		{"other supplier metadata", func() error { _, err := c.KVVersion(ctx, "secret", otherPath); return err }},
		{"platform", func() error { _, err := c.ReadKV(ctx, "secret", platformPath); return err }},
		{"platform via Resolve", func() error { _, err := c.Resolve(ctx, "vault://secret/"+platformPath+"#api_key"); return err }},
	}
	for _, tt := range denied {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrForbidden) || IsUnreachable(err) || errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want only ErrForbidden", err)
			}
			if !strings.Contains(err.Error(), "permission denied (HTTP 403)") {
				t.Errorf("message %q", err)
			}
			h.checkErr(t, err)
		})
	}
}

func TestAppRoleLogin(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-approle"})
	h.srv.WritePolicy(t, "supplier-acme", vaulttest.SupplierPolicy("acme"))
	auth := h.appRole(t, "veil", []string{"supplier-acme"}, time.Hour, 2*time.Hour)

	c := h.started(t, auth)
	if err := c.Ready(); err != nil {
		t.Fatal(err)
	}
	s, err := c.Resolve(ctx, "vault://secret/"+acmePath)
	if err != nil || s.Reveal() != "sk-approle" {
		t.Fatalf("Resolve = %q, %v", s.Reveal(), err)
	}
	logins := h.logs.FilterMessage("vault login").All()
	if len(logins) != 1 {
		t.Fatalf("%d login lines, want 1", len(logins))
	}
	fields := logins[0].ContextMap()
	if fields["method"] != MethodAppRole || fields["accessor"] == "" || !slices.Contains(anyStrings(fields["policies"]), "supplier-acme") {
		t.Errorf("login line fields = %v", fields)
	}

	t.Run("wrong secret ID", func(t *testing.T) {
		bad := auth
		bad.SecretID = keys.NewSecret("00000000-dead-beef-0000-000000000000")
		h.secret(bad.SecretID.Reveal())
		c := h.client(t, bad)
		err := c.Start(ctx)
		if err == nil || IsUnreachable(err) || !strings.Contains(err.Error(), "invalid role or secret ID") {
			t.Fatalf("Start = %v, want a rejected login", err)
		}
		h.checkErr(t, err)
		if err := c.Ready(); err == nil {
			t.Error("Ready after a failed login")
		}
		if _, err := c.ReadKV(ctx, "secret", acmePath); !errors.Is(err, ErrNotReady) {
			t.Errorf("ReadKV before a login = %v, want ErrNotReady", err)
		}
	})
}

func TestKubernetesLoginFailsWithoutLeaking(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ2ZWlsLXRlc3QifQ.c2lnbmF0dXJlLXNlY3JldA"
	h.secret(jwt)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(jwt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("missing token file", func(t *testing.T) {
		c := h.client(t, Auth{Method: MethodKubernetes, Role: "veil", TokenFile: file + ".missing"})
		err := c.Start(ctx)
		if err == nil || !strings.Contains(err.Error(), "reading service account token") {
			t.Fatalf("Start = %v", err)
		}
	})
	t.Run("method not enabled", func(t *testing.T) {
		c := h.client(t, Auth{Method: MethodKubernetes, Role: "veil", TokenFile: file})
		err := c.Start(ctx)
		if err == nil || IsUnreachable(err) {
			t.Fatalf("Start = %v, want a rejected login", err)
		}
		if !strings.Contains(err.Error(), "kubernetes login") {
			t.Errorf("error %q does not name the method", err)
		}
		h.checkErr(t, err)
	})
}

func TestTokenRenewal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-renewed"})
	h.srv.WritePolicy(t, "supplier-acme", vaulttest.SupplierPolicy("acme"))
	// A periodic token: each renewal gives it the period again, with no
	// max TTL. Without renewal it would expire after 3s. (Vault accepts
	// shorter periods, but reports TTLs in whole seconds, rounded, and the
	// watcher renews at 2/3 of the lease: 3s leaves ~1s of margin for a
	// loaded test machine.)
	const period = 3 * time.Second
	token := h.token(t, []string{"supplier-acme"}, 0, period, true)
	c := h.started(t, Auth{Token: keys.NewSecret(token)})

	// Read for 3 periods; every read must work.
	end := time.Now().Add(3 * period)
	reads := 0
	for time.Now().Before(end) {
		if _, err := c.ReadKV(ctx, "secret", acmePath); err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		reads++
		time.Sleep(200 * time.Millisecond)
	}
	// The token itself is still alive, and was renewed by the client.
	if _, err := h.srv.Client.Auth().Token().LookupWithContext(ctx, token); err != nil {
		t.Errorf("token expired: %v", err)
	}
	if n := h.messages()["vault token renewed"]; n < 2 {
		t.Errorf("%d renewal lines, want at least 2", n)
	}
}

func TestAppRoleReloginAfterMaxTTL(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-relogin"})
	h.srv.WritePolicy(t, "supplier-acme", vaulttest.SupplierPolicy("acme"))
	// Tokens live 3s, renewable up to 6s: keeping up needs renewals, then
	// new logins. The client logs in again when a renewal comes back
	// capped (at about 4s), not waiting for the lease to run out.
	const ttl, maxTTL = 3 * time.Second, 6 * time.Second
	c := h.started(t, h.appRole(t, "veil", []string{"supplier-acme"}, ttl, maxTTL))

	end := time.Now().Add(2 * maxTTL)
	reads := 0
	for time.Now().Before(end) {
		if _, err := c.ReadKV(ctx, "secret", acmePath); err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		reads++
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(h.accessors()); n < 3 {
		t.Errorf("%d distinct tokens over 2 max TTLs, want at least 3", n)
	}
	relogins := h.logs.FilterMessage("vault re-login").FilterField(zap.String("reason", reasonMaxTTL)).Len()
	if relogins < 2 {
		t.Errorf("%d re-logins for max TTL, want at least 2", relogins)
	}
}

func TestRevokedTokenIsReplaced(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-revoked"})
	h.srv.WritePolicy(t, "supplier-acme", vaulttest.SupplierPolicy("acme"))
	c := h.started(t, h.appRole(t, "veil", []string{"supplier-acme"}, time.Hour, 2*time.Hour))
	first := h.accessors()
	if len(first) != 1 {
		t.Fatalf("accessors after Start: %v", first)
	}
	if err := h.srv.Client.Auth().Token().RevokeAccessorWithContext(ctx, first[0]); err != nil {
		t.Fatal(err)
	}
	_, err := c.ReadKV(ctx, "secret", acmePath)
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("read with a revoked token = %v, want ErrForbidden", err)
	}
	eventually(t, "read after revocation", func() error {
		_, err := c.ReadKV(ctx, "secret", acmePath)
		return err
	})
	if got := h.accessors(); len(got) != 2 {
		t.Errorf("accessors = %v, want a second login", got)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-unreachable"})
	c := h.started(t, h.rootAuth(), func(o *Options) { o.Timeout = 2 * time.Second })

	calls := []struct {
		name string
		call func() error
	}{
		{"ReadKV", func() error { _, err := c.ReadKV(ctx, "secret", acmePath); return err }},
		{"KVVersion", func() error { _, err := c.KVVersion(ctx, "secret", acmePath); return err }},
		{"Resolve", func() error { _, err := c.Resolve(ctx, "vault://secret/"+acmePath); return err }},
	}
	for round := range 2 {
		h.srv.Block()
		for _, tt := range calls {
			err := tt.call()
			if !IsUnreachable(err) || errors.Is(err, ErrForbidden) || errors.Is(err, ErrNotFound) {
				t.Errorf("round %d, %s while blocked = %v, want unreachable only", round, tt.name, err)
			}
			h.checkErr(t, err)
		}
		h.srv.Unblock()
		for _, tt := range calls {
			if err := tt.call(); err != nil {
				t.Errorf("round %d, %s after Unblock: %v", round, tt.name, err)
			}
		}
	}
}

func TestStartWhileUnreachable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-late"})
	h.srv.WritePolicy(t, "supplier-acme", vaulttest.SupplierPolicy("acme"))
	c := h.client(t, h.appRole(t, "veil", []string{"supplier-acme"}, time.Hour, 2*time.Hour),
		func(o *Options) { o.Timeout = 2 * time.Second })

	h.srv.Block()
	err := c.Start(ctx)
	if !IsUnreachable(err) {
		t.Fatalf("Start while blocked = %v, want unreachable", err)
	}
	if err := c.Ready(); !errors.Is(err, ErrNotReady) || !IsUnreachable(err) {
		t.Errorf("Ready = %v, want not ready because unreachable", err)
	}
	_, err = c.ReadKV(ctx, "secret", acmePath)
	if !errors.Is(err, ErrNotReady) || !IsUnreachable(err) {
		t.Errorf("ReadKV before a login = %v, want not ready and unreachable", err)
	}
	h.srv.Unblock()
	eventually(t, "login after Unblock", c.Ready)
	if _, err := c.ReadKV(ctx, "secret", acmePath); err != nil {
		t.Fatal(err)
	}
	if n := h.messages()["vault login failed"]; n < 1 {
		t.Errorf("%d login failure lines, want at least 1", n)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	// Every test checks its logs when it ends (see newHarness); this one
	// goes through logins, renewals, failures and outages in one log and
	// checks that the log is there to be checked.
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-log-acme", "organization": "org-log"})
	h.writeKV(t, otherPath, map[string]any{"api_key": "sk-log-other"})
	h.srv.WritePolicy(t, "supplier-acme", vaulttest.SupplierPolicy("acme"))

	root := h.started(t, h.rootAuth(), func(o *Options) { o.Timeout = 2 * time.Second })
	periodic := h.started(t, Auth{Token: keys.NewSecret(h.token(t, []string{"supplier-acme"}, 0, 2*time.Second, true))},
		func(o *Options) { o.Timeout = 2 * time.Second })
	app := h.started(t, h.appRole(t, "veil", []string{"supplier-acme"}, 2*time.Second, 3*time.Second),
		func(o *Options) { o.Timeout = 2 * time.Second })
	bad := h.appRole(t, "veil-bad", nil, 0, 0)
	bad.SecretID = keys.NewSecret("11111111-dead-beef-0000-000000000000")
	h.secret(bad.SecretID.Reveal())
	if err := h.client(t, bad).Start(ctx); err == nil {
		t.Fatal("login with a wrong secret ID succeeded")
	}

	for _, c := range []*Client{root, periodic, app} {
		if _, err := c.ReadKV(ctx, "secret", acmePath); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := app.ReadKV(ctx, "secret", otherPath); !errors.Is(err, ErrForbidden) {
		t.Fatalf("forbidden read = %v", err)
	}
	h.srv.Block()
	time.Sleep(3 * time.Second) // renewals and re-logins fail meanwhile
	h.srv.Unblock()
	eventually(t, "approle read after the outage", func() error {
		_, err := app.ReadKV(ctx, "secret", acmePath)
		return err
	})

	out := h.out.String()
	for _, want := range []string{"vault login", "vault token valid", "vault token renewed", "accessor"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	h.checkNoSecrets(t, "logs", out)
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	// Not parallel: goleak compares against the goroutines of this test
	// alone.
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-leak"})
	h.srv.WritePolicy(t, "supplier-acme", vaulttest.SupplierPolicy("acme"))
	auth := h.appRole(t, "veil", []string{"supplier-acme"}, 2*time.Second, time.Minute)
	// Unblock replaces the proxy's accept loop.
	ignore := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/wedsync/veil/internal/vaulttest.(*proxy).serve")}

	tests := []struct {
		name string
		run  func(t *testing.T, c *Client)
	}{
		{"after reads and a renewal", func(t *testing.T, c *Client) {
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, "a renewal", func() error {
				if _, err := c.ReadKV(ctx, "secret", acmePath); err != nil {
					return err
				}
				if h.messages()["vault token renewed"] == 0 {
					return errors.New("no renewal yet")
				}
				return nil
			})
		}},
		{"right after Start", func(t *testing.T, c *Client) {
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"while retrying a login", func(t *testing.T, c *Client) {
			h.srv.Block()
			defer h.srv.Unblock()
			if err := c.Start(ctx); !IsUnreachable(err) {
				t.Fatalf("Start = %v", err)
			}
		}},
		{"never started", func(t *testing.T, c *Client) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Options{Address: h.srv.Addr, Auth: auth, Log: h.log, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			tt.run(t, c)
			c.Close()
			if err := goleak.Find(ignore...); err != nil {
				t.Error(err)
			}
		})
	}
}

// vaultMetadataDeleteAfter returns a metadata patch that schedules the
// deletion of new versions d after they are written.
func vaultMetadataDeleteAfter(d time.Duration) api.KVMetadataPatchInput {
	return api.KVMetadataPatchInput{DeleteVersionAfter: &d}
}

func anyStrings(v any) []string {
	switch v := v.(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
