package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/vaulttest"
)

// Secret values the start-up tests hand to veil; none may ever be printed.
const (
	startupRedisPass    = "redis-startup-test-pass-0123456789"
	startupFileSecret   = "sk-startup-file-secret-0123456789"
	startupRejectedTok  = "hvs-startup-rejected-token-0123456789"
	startupVaultKVValue = "sk-startup-vault-kv-0123456789"
)

// startupCase is one way `veil serve` can fail to start.
type startupCase struct {
	name string
	// config is the config file's body; listeners default to free loopback
	// ports when it has no listen section. "" means no file at all.
	config string
	// args are extra arguments after serve (--config FILE comes first
	// unless args replace it with noConfig).
	args     []string
	noConfig bool
	// want must appear in the one line of error output.
	want string
}

// startupProviders is a provider and a caller whose secrets are set in the
// environment of every start-up case.
const startupProviders = "providers:\n  - name: openai\n    type: openai\n    base_url: http://127.0.0.1:1/v1\n    api_key: env://TEST_PLATFORM_KEY\n" +
	"callers:\n  - name: app\n    token: env://TEST_CALLER_TOKEN\n    suppliers: [\"*\"]\n"

// TestStartupFailures drives every way `veil serve` can fail to start
// through the real command, as its own process: each ends with a non-zero
// exit and exactly one line of error output naming the cause, never a panic, and
// never prints a secret.
func TestStartupFailures(t *testing.T) {
	v := vaulttest.Start(t)
	v.WriteKV(t, "wedsync/platform/openai", map[string]any{"api_key": startupVaultKVValue})
	// Paths below a regular file can be neither read nor created, even by
	// root; a directory cannot be read as a secret.
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte(startupFileSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	aDir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	closed := freeAddr(t) // nothing listens there

	vaultWith := func(token string) string {
		return "vault:\n  enabled: true\n  address: " + v.Addr + "\n  timeout: 2s\n  auth:\n    token: " + token + "\n"
	}
	vaultProvider := strings.Replace(startupProviders, "env://TEST_PLATFORM_KEY", "vault://secret/wedsync/platform/openai#api_key", 1)
	cases := []startupCase{
		{name: "no config flag", noConfig: true, want: "serve needs --config FILE"},
		{name: "unknown flag", args: []string{"--frobnicate"}, config: startupProviders, want: "serve: flag provided but not defined: -frobnicate"},
		{name: "missing file", want: "read config: open"},
		{name: "yaml syntax", config: "providers: [\n", want: "veil.yaml:"},
		{name: "unknown field", config: startupProviders + "listne: {}\n", want: "listne"},
		{name: "several problems", config: "providers:\n  - name: openai\n    type: openai\n    base_url: ftp://x\n    api_key: " + startupFileSecret + "\ncallers: []\n",
			want: "providers[0].base_url"},
		{name: "invalid listen address", config: "listen:\n  proxy: nonsense\n" + startupProviders, want: "listen.proxy: must be host:port"},
		{name: "admin token missing off loopback", config: "listen:\n  admin: 0.0.0.0:0\n" + startupProviders, want: "admin.token: is required"},
		{name: "bad log level", config: startupProviders + "log:\n  level: loud\n", want: "log.level"},
		{name: "platform key env unset", config: strings.Replace(startupProviders, "TEST_PLATFORM_KEY", "TEST_UNSET_KEY", 1), want: "TEST_UNSET_KEY"},
		{name: "caller token env unset", config: strings.Replace(startupProviders, "TEST_CALLER_TOKEN", "TEST_UNSET_TOKEN", 1), want: "TEST_UNSET_TOKEN"},
		{name: "platform key file unreadable", config: strings.Replace(startupProviders, "env://TEST_PLATFORM_KEY", "file://"+aDir, 1), want: aDir},
		{name: "platform key file missing", config: strings.Replace(startupProviders, "env://TEST_PLATFORM_KEY", "file://"+notDir+"/key", 1), want: notDir + "/key"},
		{name: "admin token env unset", config: "admin:\n  token: env://TEST_UNSET_ADMIN\n" + startupProviders, want: "TEST_UNSET_ADMIN"},
		{name: "vault token env unset", config: vaultProvider + vaultWith("env://TEST_UNSET_VAULT"), want: "TEST_UNSET_VAULT"},
		{name: "vault unreachable", config: vaultProvider + strings.Replace(vaultWith("env://TEST_VAULT_TOKEN"), v.Addr, "http://"+closed, 1), want: "vault"},
		{name: "vault token rejected", config: vaultProvider + vaultWith("env://TEST_REJECTED_TOKEN"), want: "vault login"},
		{name: "vault path missing", config: strings.Replace(vaultProvider, "platform/openai", "platform/nothing", 1) + vaultWith("env://TEST_VAULT_TOKEN"), want: "secret/wedsync/platform/nothing"},
		{name: "redis password env unset", config: startupProviders + "store:\n  type: redis\n  addr: " + closed + "\n  password: env://TEST_UNSET_REDIS\n", want: "TEST_UNSET_REDIS"},
		{name: "store dir unwritable", config: startupProviders + "store:\n  data_dir: " + notDir + "/state\n", want: "store.data_dir"},
		{name: "audit log unwritable", config: startupProviders + "audit:\n  output: " + notDir + "/audit.log\n", want: "audit log"},
		{name: "vault ca cert missing", config: vaultProvider + vaultWith("env://TEST_VAULT_TOKEN") + "  ca_cert: " + notDir + "/ca.pem\n", want: "vault"},
		{name: "alert webhook header env unset", config: startupProviders + "alerts:\n  webhook:\n    url: https://alerts.example/veil\n    headers:\n      Authorization: env://TEST_UNSET_ALERT\n",
			want: "TEST_UNSET_ALERT"},
		{name: "usage file unwritable", config: startupProviders + "usage:\n  sinks:\n    - type: file\n      path: " + notDir + "/usage.jsonl\n", want: "usage.sinks[0]"},
		{name: "usage webhook header env unset", config: startupProviders + "usage:\n  sinks:\n    - type: webhook\n      url: https://usage.example/in\n      spill_dir: " + aDir + "\n      headers:\n        Authorization: env://TEST_UNSET_USAGE\n",
			want: "TEST_UNSET_USAGE"},
		{name: "usage redis password env unset", config: startupProviders + "usage:\n  sinks:\n    - type: redis\n      addr: " + closed + "\n      password: env://TEST_UNSET_USAGE_REDIS\n",
			want: "TEST_UNSET_USAGE_REDIS"},
		{name: "jwt key env unset", config: startupProviders + "jwt:\n  hs256_keys: [env://TEST_UNSET_JWT]\n", want: "TEST_UNSET_JWT"},
		{name: "proxy address in use", config: "listen:\n  proxy: " + busy.Addr().String() + "\n" + startupProviders, want: "proxy listener"},
		{name: "admin address in use", config: "listen:\n  admin: " + busy.Addr().String() + "\n" + startupProviders, want: "admin listener"},
		{name: "proxy address not local", config: "listen:\n  proxy: 192.0.2.1:0\n" + startupProviders, want: "proxy listener"},
	}
	env := []string{"TEST_PLATFORM_KEY=" + testPlatformKey, "TEST_CALLER_TOKEN=" + testCallerToken,
		"TEST_VAULT_TOKEN=" + v.RootToken, "TEST_REJECTED_TOKEN=" + startupRejectedTok, "TEST_REDIS_PASS=" + startupRedisPass}
	secrets := []string{testPlatformKey, testCallerToken, v.RootToken, startupRejectedTok, startupRedisPass,
		startupFileSecret, startupVaultKVValue}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "veil.yaml")
			if c.config != "" {
				body := c.config
				if !strings.Contains(body, "listen:") {
					body = "listen:\n  proxy: 127.0.0.1:0\n  admin: 127.0.0.1:0\n" + body
				} else if !strings.Contains(body, "  admin:") {
					body = strings.Replace(body, "listen:\n", "listen:\n  admin: 127.0.0.1:0\n", 1)
				} else if !strings.Contains(body, "  proxy:") {
					body = strings.Replace(body, "listen:\n", "listen:\n  proxy: 127.0.0.1:0\n", 1)
				}
				if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"serve"}
			if !c.noConfig {
				args = append(args, "--config", path)
			}
			args = append(args, c.args...)
			code, out := runProcess(t, env, args...)
			if code == 0 {
				t.Fatalf("exit 0, want a failure:\n%s", out)
			}
			lines := errorLines(out)
			if len(lines) != 1 {
				t.Fatalf("%d lines of error output, want 1:\n%s", len(lines), out)
			}
			t.Log(lines[0])
			if !strings.HasPrefix(lines[0], "veil: ") || !strings.Contains(lines[0], c.want) {
				t.Errorf("output does not name the cause (%q):\n%s", c.want, out)
			}
			for _, bad := range []string{"panic", "goroutine"} {
				if strings.Contains(out, bad) {
					t.Errorf("output shows %q:\n%s", bad, out)
				}
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("output shows the secret %q", s)
				}
			}
		})
	}
}

// errorLines returns the lines of out that are not informational log
// records: the progress veil logs while it starts (providers configured,
// keys loaded and their fingerprints for the audit trail) may precede the
// error, but a warning or an error logged besides the one line may not.
func errorLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var rec struct {
			Level string `json:"level"`
		}
		if json.Unmarshal([]byte(l), &rec) == nil && (rec.Level == "info" || rec.Level == "debug") {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// runProcess runs the command line as its own process (the test binary,
// through VEIL_TEST_RUN_MAIN) and returns its exit code and its stdout and
// stderr together.
func runProcess(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // failure guard only
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "VEIL_TEST_RUN_MAIN=1"), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("veil did not exit: %s", out)
	}
	if err != nil {
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestStartWithoutRedis: an unreachable Redis store does not stop veil
// from starting; quotas follow store.on_unavailable until it is back.
func TestStartWithoutRedis(t *testing.T) {
	up := startFake(t, fakeopenai.Options{})
	v := startVeil(t, up.URL(), "store:\n  type: redis\n  addr: "+freeAddr(t)+"\n  on_unavailable: fail_open\n")
	if resp := v.post(t, "rose-venue", "gpt-4o-mini"); resp.StatusCode != 200 {
		t.Errorf("status %d with the store down and fail_open", resp.StatusCode)
	}
}
