package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/internal/vaulttest"
)

// Secret values the online validation tests hand to veil; none may ever be
// printed.
const (
	onlineVaultKey    = "sk-online-vault-key-0123456789"
	onlineFileKey     = "sk-online-file-key-0123456789"
	onlineCallerToken = "veil-online-caller-token-0123456789"
	onlineSupplierKey = "sk-online-supplier-key-0123456789"
	onlineBadToken    = "hvs-online-rejected-token-0123456789"
)

// TestConfigValidateOnline: `veil config validate --online` resolves every
// secret reference of a config against a real Vault and reaches a real
// Redis, reporting each item and only fingerprints; each kind of failure is
// named on its item's line and fails the command.
func TestConfigValidateOnline(t *testing.T) {
	v := vaulttest.Start(t)
	r := redistest.Start(t)
	v.WriteKV(t, "wedsync/platform/openai", map[string]any{"api_key": onlineVaultKey})
	v.WriteKV(t, "wedsync/suppliers/rose-venue/openai", map[string]any{"api_key": onlineSupplierKey})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "openai-key")
	if err := os.WriteFile(keyFile, []byte(onlineFileKey), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ONLINE_CALLER_TOKEN", onlineCallerToken)
	t.Setenv("ONLINE_VAULT_TOKEN", v.RootToken)
	t.Setenv("ONLINE_BAD_TOKEN", onlineBadToken)
	closed := freeAddr(t) // nothing listens there

	const vaultRef = "vault://secret/wedsync/platform/openai#api_key"
	good := `providers:
  - name: openai
    type: openai
    base_url: https://api.openai.com/v1
    api_keys:
      - ` + vaultRef + `
      - file://` + keyFile + `
callers:
  - name: app
    token: env://ONLINE_CALLER_TOKEN
    suppliers: ["*"]
suppliers:
  entries:
    - id: rose-venue
      keys:
        openai: vault://secret/wedsync/suppliers/rose-venue/openai#api_key
vault:
  enabled: true
  address: ` + v.Addr + `
  timeout: 2s
  auth:
    token: env://ONLINE_VAULT_TOKEN
store:
  type: redis
  addr: ` + r.Addr + `
`
	embedded := strings.Split(good, "store:\n")[0] + "store:\n  data_dir: "
	noVault := strings.Replace(strings.Split(good, "suppliers:\n  entries")[0], "      - "+vaultRef+"\n", "", 1)
	notDir := keyFile + "/state" // below a regular file: cannot be created, even by root

	cases := []struct {
		name   string
		config string
		// rows are lines the report must have: each holds all its parts.
		rows [][]string
		fail bool
	}{
		{name: "good", config: good, rows: [][]string{
			{"vault", v.Addr, "ok, logged in with token"},
			{"providers[0].api_keys[0]", vaultRef, "ok, fingerprint "},
			{"providers[0].api_keys[1]", "file://" + keyFile, "ok, fingerprint "},
			{"callers[0].token", "env://ONLINE_CALLER_TOKEN", "ok, fingerprint "},
			{"suppliers.entries[0].keys.openai", "ok, fingerprint "},
			{"vault.auth.token", "ok, fingerprint "},
			{"store", "redis " + r.Addr, "ok, answers PING"},
		}},
		{name: "no vault, store in memory", config: noVault, rows: [][]string{
			{"vault", "not checked: vault is disabled"},
			{"store", "embedded", "not checked: kept in memory"},
		}},
		{name: "embedded store", config: embedded + dir + "/state\n", rows: [][]string{
			{"store", "embedded " + dir + "/state", "ok, veil will create it"},
		}},
		{name: "env unset", config: strings.Replace(good, "ONLINE_CALLER_TOKEN", "ONLINE_UNSET", 1), fail: true, rows: [][]string{
			{"callers[0].token", "FAILED:", `environment variable "ONLINE_UNSET" is not set`},
		}},
		{name: "file unreadable", config: strings.Replace(good, "file://"+keyFile, "file://"+dir, 1), fail: true, rows: [][]string{
			{"providers[0].api_keys[1]", "FAILED:", "is a directory"},
		}},
		{name: "vault path missing", config: strings.Replace(good, "platform/openai", "platform/nothing", 1), fail: true, rows: [][]string{
			{"providers[0].api_keys[0]", "FAILED:", "secret not found"},
			{"suppliers.entries[0].keys.openai", "ok, fingerprint "},
		}},
		{name: "vault token rejected", config: strings.Replace(good, "env://ONLINE_VAULT_TOKEN", "env://ONLINE_BAD_TOKEN", 1), fail: true, rows: [][]string{
			{"vault", "FAILED: login:", "permission denied"},
			{"providers[0].api_keys[0]", "not checked: no vault login"},
		}},
		{name: "vault unreachable", config: strings.Replace(good, v.Addr, "http://"+closed, 1), fail: true, rows: [][]string{
			{"vault", "FAILED: login:", "connection refused"},
		}},
		{name: "vault token env unset", config: strings.Replace(good, "env://ONLINE_VAULT_TOKEN", "env://ONLINE_UNSET_VAULT", 1), fail: true, rows: [][]string{
			{"vault", "FAILED: vault auth:", "ONLINE_UNSET_VAULT"},
			{"vault.auth.token", "FAILED:", "ONLINE_UNSET_VAULT"},
		}},
		{name: "redis unreachable", config: strings.Replace(good, r.Addr, closed, 1), fail: true, rows: [][]string{
			{"store", "redis " + closed, "FAILED:"},
		}},
		{name: "embedded store not creatable", config: embedded + notDir + "\n", fail: true, rows: [][]string{
			{"store", "FAILED: cannot use " + notDir, "not a directory"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "veil.yaml")
			if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCmd("config", "validate", "--online", path)
			switch {
			case c.fail && (code != 1 || !strings.HasSuffix(errOut, "online checks failed\n") || strings.Count(errOut, "\n") != 1):
				t.Errorf("exit %d, want 1 and one line naming the failed checks:\n%s%s", code, out, errOut)
			case !c.fail && (code != 0 || errOut != ""):
				t.Errorf("exit %d, want 0:\n%s%s", code, out, errOut)
			}
			if !strings.Contains(out, path+": ok (") {
				t.Errorf("no offline verdict:\n%s", out)
			}
			for _, row := range c.rows {
				if !hasRow(out, row) {
					t.Errorf("no line with %q:\n%s", row, out)
				}
			}
			for _, s := range []string{onlineVaultKey, onlineFileKey, onlineCallerToken, onlineSupplierKey, onlineBadToken, v.RootToken} {
				if strings.Contains(out+errOut, s) {
					t.Errorf("a secret was printed: %q", s)
				}
			}
		})
	}
}

// hasRow reports whether a line of out begins with parts[0] and holds the
// other parts in order.
func hasRow(out string, parts []string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, parts[0]+" ")
		for _, p := range parts[1:] {
			if !ok {
				break
			}
			_, rest, ok = strings.Cut(rest, p)
		}
		if ok {
			return true
		}
	}
	return false
}
