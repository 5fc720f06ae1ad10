package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/keys"
)

// runWithStdin runs the command line with stdin as its standard input.
func runWithStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(stdin); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = saved }()
	return runCmd(args...)
}

// TestKeysValidate: `veil keys validate` reads a key from stdin and tells a
// valid key from a wrong one and from one out of quota, printing the key's
// fingerprint and no part of the key.
func TestKeysValidate(t *testing.T) {
	// Every run of 4 characters of these keys holds a letter beyond f, so
	// none can be printed by chance in a fingerprint.
	const good, wrong, broke = "sk-good-Zq9xW2vLp7TnJRbXYcKMdW", "sk-wrong-Wq9xZ2vLp7TnJRbXYcKMnP", "sk-broke-Hq9xZ2vLp7TnJRbXYcKMzQ"
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{good}, NoQuotaKeys: []string{broke}})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	t.Setenv("VALIDATE_PLATFORM_KEY", "sk-platform-validate-0123456789")
	cfg := filepath.Join(t.TempDir(), "veil.yaml")
	yaml := `providers:
  - name: openai
    type: openai
    base_url: ` + up.URL() + `
    api_key: env://VALIDATE_PLATFORM_KEY
callers:
  - name: app
    token_sha256: e0462a38da76cf9d76265131d0574db09d038e611e9af445c145672c2e26f9ba
    suppliers: ["*"]
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, stdin, key string
		wantCode         int
		wantVerdict      string
	}{
		{"valid", good + "\n", good, 0, "valid"},
		{"valid without newline, padded", "  " + good + "  ", good, 0, "valid"},
		{"wrong", wrong + "\n", wrong, 1, "rejected"},
		{"no quota", broke + "\n", broke, 1, "no_quota"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(up.Requests())
			code, out, errOut := runWithStdin(t, tt.stdin, "keys", "validate", "--provider", "openai", "--config", cfg)
			if code != tt.wantCode || !strings.Contains(out, " "+tt.wantVerdict+" ") || !strings.Contains(out, keys.Fingerprint(tt.key)) {
				t.Errorf("exit %d, want %d with %s and the fingerprint\n%s%s", code, tt.wantCode, tt.wantVerdict, out, errOut)
			}
			reqs := up.Requests()[before:]
			if len(reqs) != 1 || reqs[0].Path != "/v1/models" || reqs[0].Header.Get("Authorization") != "Bearer "+tt.key {
				t.Errorf("upstream saw %d requests, want one GET /v1/models with the key", len(reqs))
			}
			checkNoFragment(t, "output", out+errOut, tt.key)
		})
	}
	refusals := []struct {
		name, stdin string
		args        []string
		wantCode    int
		wantErr     string
	}{
		{"empty key", "  \n" + good + "\n", []string{"--provider", "openai", "--config", cfg}, 2, "no key on standard input"},
		{"no stdin", "", []string{"--provider", "openai", "--config", cfg}, 2, "no key on standard input"},
		{"unknown provider", good, []string{"--provider", "mistral", "--config", cfg}, 1, "no such provider: mistral"},
		{"no provider", good, []string{"--config", cfg}, 2, "keys validate --provider P"},
		{"key as an argument", good, []string{"--provider", "openai", "--config", cfg, good}, 2, "no arguments"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			code, out, errOut := runWithStdin(t, r.stdin, append([]string{"keys", "validate"}, r.args...)...)
			if code != r.wantCode || !strings.Contains(errOut, r.wantErr) {
				t.Errorf("exit %d, err %q; want exit %d with %q", code, errOut, r.wantCode, r.wantErr)
			}
			checkNoFragment(t, "output", out+errOut, good)
		})
	}
}

// checkNoFragment fails t if text holds 4 characters in a row of secret.
func checkNoFragment(t *testing.T, what, text, secret string) {
	t.Helper()
	for i := 0; i+4 <= len(secret); i++ {
		if f := secret[i : i+4]; strings.Contains(text, f) {
			t.Errorf("%s %q holds %q, part of the key", what, text, f)
		}
	}
}
