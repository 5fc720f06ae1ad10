package vault

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/internal/vaulttest"
	"github.com/wedsync/veil/keys"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// guard bounds waits for something that should happen soon; it only turns
// a hang into a failure.
const guard = 30 * time.Second

// harness is a Vault server for one test, with the clients it makes and
// every secret value the test uses. When the test ends it checks that the
// clients' logs (all levels, every field encoded as JSON) hold none of
// those values.
type harness struct {
	srv  *vaulttest.Server
	logs *observer.ObservedLogs
	out  *syncBuffer
	log  *zap.Logger

	mu      sync.Mutex
	secrets []string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := vaulttest.Start(t)
	core, logs := observer.New(zapcore.DebugLevel)
	out := &syncBuffer{}
	json := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(out), zapcore.DebugLevel)
	h := &harness{srv: srv, logs: logs, out: out, log: zap.New(zapcore.NewTee(core, json))}
	h.secret(srv.RootToken)
	// Registered before any client's Close, so it runs after them.
	t.Cleanup(func() {
		h.checkNoSecrets(t, "logs", out.String())
		if t.Failed() {
			t.Logf("client logs:\n%s", out.String())
		}
	})
	return h
}

// secret records values that must never appear in logs or errors.
func (h *harness) secret(values ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets = append(h.secrets, values...)
}

// checkNoSecrets fails t if text holds a recorded secret.
func (h *harness) checkNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s reveal the secret with fingerprint %s", what, keys.Fingerprint(s))
		}
	}
}

// checkErr fails t if err's message holds a recorded secret.
func (h *harness) checkErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		h.checkNoSecrets(t, "error "+err.Error(), err.Error())
	}
}

// writeKV writes a secret in "secret" and records its values.
func (h *harness) writeKV(t *testing.T, path string, data map[string]any) int {
	t.Helper()
	for _, v := range data {
		switch v := v.(type) {
		case string:
			h.secret(v)
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok {
					h.secret(s)
				}
			}
		}
	}
	return h.srv.WriteKV(t, path, data)
}

// token creates a child token and records it.
func (h *harness) token(t *testing.T, policies []string, ttl, period time.Duration, renewable bool) string {
	t.Helper()
	tok := h.srv.Token(t, policies, ttl, period, renewable)
	h.secret(tok)
	return tok
}

// appRole creates an AppRole role and records its credentials.
func (h *harness) appRole(t *testing.T, role string, policies []string, ttl, maxTTL time.Duration) Auth {
	t.Helper()
	roleID, secretID := h.srv.AppRole(t, role, policies, ttl, maxTTL)
	h.secret(roleID, secretID)
	return Auth{Method: MethodAppRole, RoleID: keys.NewSecret(roleID), SecretID: keys.NewSecret(secretID)}
}

// client returns a client of the server through its proxy, closed when
// the test ends. It does not start it.
func (h *harness) client(t *testing.T, auth Auth, opts ...func(*Options)) *Client {
	t.Helper()
	o := Options{Address: h.srv.Addr, Auth: auth, Log: h.log, Timeout: 10 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// started returns a started client and fails t if the first login fails.
func (h *harness) started(t *testing.T, auth Auth, opts ...func(*Options)) *Client {
	t.Helper()
	c := h.client(t, auth, opts...)
	if err := c.Start(context.Background()); err != nil {
		h.checkErr(t, err)
		t.Fatalf("Start: %v", err)
	}
	return c
}

// rootAuth is the token method with the root token.
func (h *harness) rootAuth() Auth {
	return Auth{Token: keys.NewSecret(h.srv.RootToken)}
}

// messages returns how many log entries have each message.
func (h *harness) messages() map[string]int {
	n := map[string]int{}
	for _, e := range h.logs.All() {
		n[e.Message]++
	}
	return n
}

// accessors returns the distinct accessors of "vault login" entries.
func (h *harness) accessors() []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range h.logs.FilterMessage("vault login").All() {
		a, _ := e.ContextMap()["accessor"].(string)
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// eventually calls f until it returns nil, failing t with f's last error
// after guard.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, guard, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
