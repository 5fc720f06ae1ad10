package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/vaulttest"
	"github.com/wedsync/veil/keys"
)

// TestKeysCheck: `veil keys check` reads a supplier's key from a real
// Vault, validates it live against the provider, and prints only its
// fingerprint; a key the provider refuses fails the command, and although
// the provider's refusal quotes the key's first and last characters, no
// part of the key is printed.
func TestKeysCheck(t *testing.T) {
	v := vaulttest.Start(t)
	// Every run of 4 characters of the refused key holds a letter beyond
	// f, and none is an English word, so none can be printed by chance.
	good, refused := "sk-check-good-0123456789", "sk-Wq9xZ2vLp7TnJRbXYcKMdW"
	v.WriteKV(t, "wedsync/suppliers/bella-photography/openai", map[string]any{"api_key": good})
	v.WriteKV(t, "wedsync/suppliers/rose-venue/openai", map[string]any{"api_key": refused})
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{good, "sk-platform-check-0123456789"}})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	t.Setenv("CHECK_VAULT_TOKEN", v.RootToken)
	t.Setenv("CHECK_PLATFORM_KEY", "sk-platform-check-0123456789")
	cfg := filepath.Join(t.TempDir(), "veil.yaml")
	yaml := `providers:
  - name: openai
    type: openai
    base_url: ` + up.URL() + `
    api_key: env://CHECK_PLATFORM_KEY
callers:
  - name: app
    token_sha256: e0462a38da76cf9d76265131d0574db09d038e611e9af445c145672c2e26f9ba
    suppliers: ["*"]
vault:
  enabled: true
  address: ` + v.Addr + `
  auth:
    token: env://CHECK_VAULT_TOKEN
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCmd("keys", "check", "--config", cfg, "--supplier", "bella-photography")
	if code != 0 || !strings.Contains(out, "bella-photography") || !strings.Contains(out, "ok (") || !strings.Contains(out, "  1  ") {
		t.Errorf("good key: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCmd("keys", "check", "--config", cfg, "--supplier", "rose-venue", "--provider", "openai")
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "401 Unauthorized") ||
		strings.Count(out, keys.Fingerprint(refused)) != 2 {
		t.Errorf("refused key: exit %d, want the status and the refused key's fingerprint in its column and its result\n%s%s", code, out, errOut)
	}
	for i := 0; i+4 <= len(refused); i++ {
		if f := refused[i : i+4]; strings.Contains(out+errOut, f) {
			t.Errorf("refused key: the output holds %q, part of the key\n%s%s", f, out, errOut)
		}
	}
	code, out, errOut = runCmd("keys", "check", "--config", cfg)
	if code != 0 || !strings.Contains(out, "platform") {
		t.Errorf("platform keys: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCmd("keys", "check", "--config", cfg, "--supplier", "nobody-here")
	if code != 1 || !strings.Contains(errOut, "failed the check") {
		t.Errorf("missing key: exit %d %s", code, errOut)
	}
	for _, s := range []string{out, errOut} {
		if strings.Contains(s, good) || strings.Contains(s, refused) || strings.Contains(s, v.RootToken) {
			t.Error("a secret was printed")
		}
	}
}
