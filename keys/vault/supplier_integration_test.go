package vault

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/internal/vaulttest"
	"github.com/wedsync/veil/keys"
)

// Tests in this file run the supplier key cache on a real Vault dev
// server, as veil does.

// supplierCache returns a key cache reading through c, refreshing often,
// and its audit log; it is closed when the test ends.
func supplierCache(t *testing.T, c *Client) (*keys.SupplierKeys, *observer.ObservedLogs) {
	t.Helper()
	core, audit := observer.New(zapcore.InfoLevel)
	cache, err := keys.NewSupplierKeys(keys.SupplierKeysOptions{
		Fetcher:      &SupplierFetcher{Client: c, Mount: "secret", PathTemplate: "wedsync/suppliers/{supplier}/{provider}"},
		Refresh:      200 * time.Millisecond,
		MaxStaleness: time.Hour,
		FetchTimeout: 5 * time.Second,
		Audit:        zap.New(core),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	return cache, audit
}

// count waits a little for more lines of msg, then returns how many there
// are: enough to catch a line written once per request or per refresh.
func count(logs *observer.ObservedLogs, msg string) int {
	time.Sleep(time.Second)
	return logs.FilterMessage(msg).Len()
}

// TestSupplierKeysTokenRejected: when Vault rejects the token of the
// token method, keys fail as "credentials rejected" (not "unreachable"),
// the rejection is logged once with the auth method, and the cache audits
// it once, while it keeps serving the key it holds.
func TestSupplierKeysTokenRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-acme-rejected-0123456789"})
	h.srv.WritePolicy(t, "supplier-acme", vaulttest.SupplierPolicy("acme"))
	token := h.token(t, []string{"supplier-acme"}, time.Hour, 0, true)
	c := h.started(t, Auth{Token: keys.NewSecret(token)}, func(o *Options) { o.Timeout = 2 * time.Second })
	cache, audit := supplierCache(t, c)
	k, err := cache.Get(ctx, "acme", "openai")
	if err != nil {
		t.Fatal(err)
	}

	if err := h.srv.Client.Auth().Token().RevokeTreeWithContext(ctx, token); err != nil {
		t.Fatal(err)
	}
	f := &SupplierFetcher{Client: c, Mount: "secret", PathTemplate: "wedsync/suppliers/{supplier}/{provider}"}
	_, err = f.Fetch(ctx, "acme", "openai")
	if !errors.Is(err, keys.ErrCredentialsRejected) || errors.Is(err, keys.ErrUnreachable) || errors.Is(err, keys.ErrKeyMissing) {
		t.Fatalf("fetch with a revoked token = %v, want credentials rejected only", err)
	}
	h.checkErr(t, err)

	// Never loaded: the error says so, and why.
	_, err = cache.Get(ctx, "acme", "anthropic")
	if !errors.Is(err, keys.ErrNotLoaded) || !errors.Is(err, keys.ErrCredentialsRejected) {
		t.Errorf("first get with a revoked token = %v, want not loaded and credentials rejected", err)
	}
	h.checkErr(t, err)

	const rejectedLine = "supplier key source rejected veil's credentials; cached keys are served until they are stale"
	eventually(t, "the rejection audited and logged", func() error {
		if audit.FilterMessage(rejectedLine).Len() == 0 || h.logs.FilterMessage("vault token rejected").Len() == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	// Keep reading past the interval between two checks of the token: the
	// rejection stays one event.
	end := time.Now().Add(nudgeInterval + time.Second)
	for time.Now().Before(end) {
		if got, err := cache.Get(ctx, "acme", "openai"); err != nil || got != k {
			t.Fatalf("the cached key while Vault rejects veil: %v %v", got, err)
		}
		_, _ = f.Fetch(ctx, "acme", "openai")
		time.Sleep(100 * time.Millisecond)
	}
	if n := count(h.logs, "vault token rejected"); n != 1 {
		t.Errorf("%d \"vault token rejected\" lines, want 1", n)
	}
	if e := h.logs.FilterMessage("vault token rejected").All(); len(e) > 0 && e[0].ContextMap()["method"] != MethodToken {
		t.Errorf("rejection line %v, want the auth method", e[0].ContextMap())
	}
	if n := count(audit, rejectedLine); n != 1 {
		t.Errorf("%d audit lines for the rejection, want 1", n)
	}
}

// TestSupplierKeysRecoveryAudited: a Vault that becomes unreachable is
// audited once, a key never loaded meanwhile fails as "not loaded,
// unreachable", and Vault's recovery is audited once.
func TestSupplierKeysRecoveryAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.writeKV(t, acmePath, map[string]any{"api_key": "sk-acme-recovery-0123456789"})
	c := h.started(t, h.rootAuth(), func(o *Options) { o.Timeout = 2 * time.Second })
	cache, audit := supplierCache(t, c)
	k, err := cache.Get(ctx, "acme", "openai")
	if err != nil {
		t.Fatal(err)
	}

	h.srv.Block()
	_, err = cache.Get(ctx, "other", "openai")
	if !errors.Is(err, keys.ErrNotLoaded) || !errors.Is(err, keys.ErrUnreachable) || errors.Is(err, keys.ErrCredentialsRejected) {
		t.Errorf("first get while Vault is down = %v, want not loaded and unreachable", err)
	}
	h.checkErr(t, err)
	const downLine = "supplier key source unreachable; cached keys are served until they are stale"
	eventually(t, "the outage audited", func() error {
		if audit.FilterMessage(downLine).Len() == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	if got, err := cache.Get(ctx, "acme", "openai"); err != nil || got != k {
		t.Errorf("the cached key while Vault is down: %v %v", got, err)
	}
	if n := count(audit, downLine); n != 1 {
		t.Errorf("%d audit lines for the outage, want 1", n)
	}

	h.srv.Unblock()
	const upLine = "supplier key source recovered"
	eventually(t, "the recovery audited", func() error {
		if audit.FilterMessage(upLine).Len() == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	if n := count(audit, upLine); n != 1 {
		t.Errorf("%d audit lines for the recovery, want 1", n)
	}
	line := audit.FilterMessage(upLine).All()[0].ContextMap()
	if line["after"] != "unreachable" || line["failed_calls"] == int64(0) {
		t.Errorf("recovery line %v", line)
	}
	if got, err := cache.Get(ctx, "acme", "openai"); err != nil || got.Fingerprint() != k.Fingerprint() {
		t.Errorf("after the recovery: %v %v", got, err)
	}
	for _, e := range audit.All() {
		h.checkNoSecrets(t, "audit line "+e.Message, fmt.Sprint(e.ContextMap()))
	}
}
