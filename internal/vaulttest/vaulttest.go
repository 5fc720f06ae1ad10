// Package vaulttest runs a real HashiCorp Vault server in dev mode for
// tests: in memory, unsealed, with KV version 2 mounted at "secret" and a
// random root token. Each Server sits behind a TCP proxy that can make it
// unreachable (Block) and reachable again (Unblock).
//
// The Vault binary is built once by scripts/install-vault.sh (make setup);
// tests skip without it, except in CI, where they fail.
package vaulttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wedsync/veil/internal/proctest"
)

// Version is the Vault version the tests run.
const Version = "1.21.0"

// Guards against a server that never comes up or never goes down. They
// bound failures only; a healthy dev server starts in well under a second.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
	callTimeout  = 30 * time.Second
)

// KVMount is where dev mode mounts the KV version 2 engine.
const KVMount = "secret"

// Binary returns the path of the Vault binary: $VEIL_VAULT_BIN, else
// vault-<Version>/vault under $VEIL_TOOLS_DIR or ~/.cache/veil-tools, where
// scripts/install-vault.sh puts it. When it is missing the test fails if
// $CI is true (Vault tests must never be skipped in CI) and is skipped
// otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	path := os.Getenv("VEIL_VAULT_BIN")
	if path == "" {
		dir := os.Getenv("VEIL_TOOLS_DIR")
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				home = "/root"
			}
			dir = filepath.Join(home, ".cache", "veil-tools")
		}
		path = filepath.Join(dir, "vault-"+Version, "vault")
	}
	info, err := os.Stat(path) //nolint:gosec // G703: the path is the test runner's own setting
	if err == nil && (info.IsDir() || info.Mode().Perm()&0o111 == 0) {
		err = errors.New("not an executable file")
	}
	if err != nil {
		msg := fmt.Sprintf("vault %s binary unavailable at %s (%v): run `make setup` "+
			"(or bash scripts/install-vault.sh), or set VEIL_VAULT_BIN", Version, path, err)
		proctest.Unavailable(t, msg)
	}
	return path
}

// Server is a Vault dev server run for one test.
type Server struct {
	// Addr is the URL of the proxy in front of Vault, such as
	// http://127.0.0.1:41234: what the code under test is given.
	Addr string
	// RootToken is the server's random root token.
	RootToken string
	// Client is a root client talking to Vault directly, not through the
	// proxy, so that Block does not affect it.
	Client *api.Client

	t     testing.TB
	proc  *proctest.Proc
	proxy *proxy

	mu       sync.Mutex
	approle  bool
	stopOnce sync.Once
}

// Start starts a Vault dev server and its proxy and registers Stop with
// t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{t: t, RootToken: "root-" + randomHex(16)}
	home := t.TempDir()
	var addr string
	for attempt := 1; ; attempt++ {
		var err error
		addr, err = s.startProcess(bin, home)
		if err == nil {
			break
		}
		s.proc.Kill()
		if attempt == 3 || !strings.Contains(s.proc.Output(), "address already in use") {
			t.Fatalf("vaulttest: starting vault: %v\n%s", err, s.proc.Output())
		}
	}
	t.Cleanup(s.Stop)

	p, err := newProxy(addr)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	s.proxy = p
	s.Addr = "http://" + p.addr

	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		t.Fatalf("vaulttest: %v", cfg.Error)
	}
	cfg.Address = "http://" + addr
	cfg.AgentAddress = ""
	cfg.Timeout = callTimeout
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	client.ClearNamespace()
	client.SetToken(s.RootToken)
	s.Client = client
	return s
}

// startProcess starts Vault on a free port pair (dev mode puts its
// cluster listener on the port after the API's) and waits until it
// answers sys/health. It returns the API's host:port.
func (s *Server) startProcess(bin, home string) (string, error) {
	port, err := freePortPair()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.CommandContext(context.Background(), bin, "server", "-dev", //nolint:gosec // G204: the test fixture runs the Vault binary it was given
		"-dev-root-token-id="+s.RootToken,
		"-dev-listen-address="+addr,
		"-dev-no-store-token")
	cmd.Dir = home
	cmd.Env = childEnv(home)
	if s.proc, err = proctest.Start("vault", cmd); err != nil {
		return "", err
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	err = s.proc.WaitReady(startTimeout, 50*time.Millisecond, func() error {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+addr+"/v1/sys/health", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sys/health answered %d", resp.StatusCode)
		}
		return nil
	})
	return addr, err
}

// Stop stops the proxy and the server: SIGTERM, then SIGKILL if it has
// not exited within a guard time. It shows the server's output when the
// test failed. Start registers it with t.Cleanup; calling it again does
// nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.proxy != nil {
			s.proxy.close()
		}
		if s.Client != nil {
			if tr, ok := s.Client.CloneConfig().HttpClient.Transport.(*http.Transport); ok {
				tr.CloseIdleConnections()
			}
		}
		s.proc.Finish(s.t, stopTimeout)
	})
}

// Block makes Vault unreachable through Addr: the proxy closes its open
// connections and stops listening, so that new connections are refused.
// Client is not affected.
func (s *Server) Block() {
	s.proxy.block()
}

// Unblock makes Vault reachable through Addr again, with the same state.
// Call it from the test's goroutine: it fails the test when the port
// cannot be listened on again.
func (s *Server) Unblock() {
	s.t.Helper()
	if err := s.proxy.unblock(); err != nil {
		s.t.Fatalf("vaulttest: %v", err)
	}
}

// WriteKV writes data to path in the KV version 2 engine mounted at
// "secret" and returns the new version number.
func (s *Server) WriteKV(t testing.TB, path string, data map[string]any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	kv, err := s.Client.KVv2(KVMount).Put(ctx, path, data)
	if err != nil {
		t.Fatalf("vaulttest: writing %s/%s: %v", KVMount, path, err)
	}
	return kv.VersionMetadata.Version
}

// DeleteKV soft-deletes the current version of the secret at path in
// "secret": reads fail as not found while its metadata remains.
func (s *Server) DeleteKV(t testing.TB, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := s.Client.KVv2(KVMount).Delete(ctx, path); err != nil {
		t.Fatalf("vaulttest: deleting %s/%s: %v", KVMount, path, err)
	}
}

// WritePolicy creates or replaces the ACL policy name.
func (s *Server) WritePolicy(t testing.TB, name, hcl string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := s.Client.Sys().PutPolicyWithContext(ctx, name, hcl); err != nil {
		t.Fatalf("vaulttest: writing policy %s: %v", name, err)
	}
}

// AppRole creates (or replaces) the AppRole role, enabling the AppRole auth
// method at "approle" the first time, and returns its role ID and a new
// secret ID. Zero TTLs leave Vault's defaults.
func (s *Server) AppRole(t testing.TB, role string, policies []string, tokenTTL, tokenMaxTTL time.Duration) (roleID, secretID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.approle {
		err := s.Client.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"})
		if err != nil {
			t.Fatalf("vaulttest: enabling approle: %v", err)
		}
		s.approle = true
	}
	path := "auth/approle/role/" + role
	if _, err := s.Client.Logical().WriteWithContext(ctx, path, map[string]any{
		"token_policies": policies,
		"token_ttl":      int(tokenTTL / time.Second),
		"token_max_ttl":  int(tokenMaxTTL / time.Second),
	}); err != nil {
		t.Fatalf("vaulttest: writing approle role %s: %v", role, err)
	}
	r, err := s.Client.Logical().ReadWithContext(ctx, path+"/role-id")
	if err != nil || r == nil {
		t.Fatalf("vaulttest: reading role ID of %s: %v", role, err)
	}
	roleID, _ = r.Data["role_id"].(string)
	w, err := s.Client.Logical().WriteWithContext(ctx, path+"/secret-id", nil)
	if err != nil || w == nil {
		t.Fatalf("vaulttest: creating secret ID of %s: %v", role, err)
	}
	secretID, _ = w.Data["secret_id"].(string)
	if roleID == "" || secretID == "" {
		t.Fatalf("vaulttest: approle role %s: empty role or secret ID", role)
	}
	return roleID, secretID
}

// Token creates a child token of the root token with policies (plus
// "default", which allows lookup-self and renew-self). A zero ttl or
// period leaves it unset; a period makes the token periodic.
func (s *Server) Token(t testing.TB, policies []string, ttl, period time.Duration, renewable bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := &api.TokenCreateRequest{Policies: policies, Renewable: &renewable}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	if period > 0 {
		req.Period = period.String()
	}
	secret, err := s.Client.Auth().Token().CreateWithContext(ctx, req)
	if err != nil || secret == nil || secret.Auth == nil {
		t.Fatalf("vaulttest: creating token: %v", err)
	}
	return secret.Auth.ClientToken
}

// SupplierPolicy returns the HCL of a policy that lets a supplier's token
// read its own provider keys, and their metadata, under
// secret/wedsync/suppliers/<supplier>/ and nothing else.
func SupplierPolicy(supplier string) string {
	return fmt.Sprintf(`path "secret/data/wedsync/suppliers/%[1]s/*" {
  capabilities = ["read"]
}

path "secret/metadata/wedsync/suppliers/%[1]s/*" {
  capabilities = ["read"]
}
`, supplier)
}

// childEnv returns the environment of the Vault process: the test's
// without any VAULT_* variable, with HOME in a temporary directory.
func childEnv(home string) []string {
	env := []string{"HOME=" + home}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// freePortPair returns a port p such that p and p+1 were both free. It
// looks below Linux's ephemeral range (32768 and up) first, where outgoing
// connections never take ports, so that a busy machine, with thousands of
// connections open or in TIME_WAIT, still has pairs to offer; then in the
// ports the kernel hands out.
func freePortPair() (int, error) {
	for range 200 {
		port := 20000 + mrand.IntN(12000) //nolint:gosec // G404: a port to try, not a secret
		if pairFree(port) {
			return port, nil
		}
	}
	for range 50 {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l1.Addr().(*net.TCPAddr).Port
		l1.Close()
		if pairFree(port) {
			return port, nil
		}
	}
	return 0, errors.New("no free port pair")
}

// pairFree reports whether port and port+1 can both be listened on.
func pairFree(port int) bool {
	l1, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	defer l1.Close()
	l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
	if err != nil {
		return false
	}
	l2.Close()
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
