package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestConfigValidate(t *testing.T) {
	examples, _ := filepath.Glob("../../deploy/examples/*.yaml")
	if len(examples) == 0 {
		t.Fatal("no example configs found")
	}
	for _, ex := range examples {
		t.Run(filepath.Base(ex), func(t *testing.T) {
			code, out, errOut := runCmd("config", "validate", ex)
			if code != 0 || !strings.Contains(out, ": ok (") {
				t.Errorf("exit %d, out %q, err %q", code, out, errOut)
			}
		})
	}

	t.Run("broken", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		body := "providers:\n  - name: openai\n    type: openai\n    base_url: ftp://example.com\n    api_key: sk-literal-key\ncallers: []\n"
		if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCmd("config", "validate", bad)
		if code != 1 {
			t.Errorf("exit %d", code)
		}
		for _, want := range []string{"bad.yaml:4: providers[0].base_url", "bad.yaml:5: providers[0].api_key"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("error output lacks %q:\n%s", want, errOut)
			}
		}
		if strings.Contains(errOut, "sk-literal-key") {
			t.Error("the error repeats a literal secret")
		}
	})
}

func TestUsage(t *testing.T) {
	if code, _, errOut := runCmd(); code != 2 || !strings.Contains(errOut, "Usage") {
		t.Errorf("no args: %d %q", code, errOut)
	}
	if code, _, errOut := runCmd("frobnicate"); code != 2 || !strings.Contains(errOut, `has no command "frobnicate"`) {
		t.Errorf("unknown: %d %q", code, errOut)
	}
	if code, _, errOut := runCmd("serve"); code != 2 || !strings.Contains(errOut, "--config") {
		t.Errorf("serve without config: %d %q", code, errOut)
	}
	if code, out, _ := runCmd("version"); code != 0 || !strings.HasPrefix(out, "veil ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// TestSubcommandHelp: -h and --help after a subcommand print its summary
// and usage to stdout and exit 0; they are never taken for a file name.
func TestSubcommandHelp(t *testing.T) {
	for _, args := range [][]string{
		{"config", "validate", "--help"},
		{"config", "validate", "-h"},
		{"serve", "--help"},
		{"keys", "check", "--help"},
		{"usage", "-h"},
		{"status", "--help"},
	} {
		code, out, errOut := runCmd(args...)
		want := "Usage: veil " + strings.Join(args[:len(args)-1], " ")
		if code != 0 || !strings.Contains(out, want) || errOut != "" {
			t.Errorf("%v: exit %d, out %q, err %q", args, code, out, errOut)
		}
	}
	code, _, errOut := runCmd("config", "validate", "--frobnicate", "veil.yaml")
	if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "flag provided but not defined") {
		t.Errorf("an unknown flag: exit %d, %q", code, errOut)
	}
}

// TestREADMEConfigs: every YAML block in the README is a config that
// validates, so the README cannot drift from the code.
func TestREADMEConfigs(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(readme), "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("the README has no yaml block")
	}
	for i, b := range blocks {
		body, _, _ := strings.Cut(b, "```")
		if !strings.Contains(body, "providers:") {
			// A fragment: check it inside a minimal config.
			body = "providers:\n  - {name: openai, type: openai, base_url: \"https://api.openai.com/v1\", api_key: env://K}\n" +
				"callers:\n  - {name: app, token: env://T, suppliers: [\"*\"]}\n" + body
		}
		path := filepath.Join(t.TempDir(), fmt.Sprintf("readme-%d.yaml", i))
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := runCmd("config", "validate", path); code != 0 {
			t.Errorf("README yaml block %d does not validate:\n%s\n%s", i, body, errOut)
		}
	}
}

// TestVersionLine: the version names the commit and the build date when
// the build stamped them.
func TestVersionLine(t *testing.T) {
	oldV, oldC, oldD := version, commit, date
	t.Cleanup(func() { version, commit, date = oldV, oldC, oldD })
	version, commit, date = "v1.2.3", "0123abc", "2026-12-06T10:00:00Z"
	if got, want := versionLine(), "veil v1.2.3 commit 0123abc built 2026-12-06T10:00:00Z"; got != want {
		t.Fatalf("versionLine() = %q, want %q", got, want)
	}
}
