package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/proctest"
	"github.com/wedsync/veil/internal/vaulttest"
)

// tryItBlock returns the shell block of the README's "Try it" section:
// the sh fence between the try-it markers.
func tryItBlock(t *testing.T, readme string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- try-it:")
	if !ok {
		t.Fatal("README has no try-it block")
	}
	rest, _, ok = strings.Cut(rest, "<!-- try-it: end -->")
	if !ok {
		t.Fatal("README's try-it block has no end marker")
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatal("README's try-it block has no sh fence")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README's try-it fence is not closed")
	}
	return block
}

// TestReadmeTryIt runs the README's "Try it in five minutes" commands as
// written, with two changes a shared machine needs: free ports in place of
// the fixed ones (in the commands and in a copy of the example config),
// and the binary built into a temporary directory. Vault is the one make
// setup builds, put first on PATH.
func TestReadmeTryIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds veil and runs the README's commands")
	}
	vaultBin := vaulttest.Binary(t)
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := tryItBlock(t, string(readme))
	cfg, err := os.ReadFile(filepath.Join(root, "deploy", "examples", "try-it.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	conf := string(cfg)
	for _, port := range []string{"9000", "8200", "8080", "9090"} {
		free, err := proctest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		from, to := "127.0.0.1:"+port, "127.0.0.1:"+strconv.Itoa(free)
		if !strings.Contains(block, from) && !strings.Contains(conf, from) {
			t.Fatalf("neither the README block nor try-it.yaml uses %s", from)
		}
		block = strings.ReplaceAll(block, from, to)
		conf = strings.ReplaceAll(conf, from, to)
	}
	confPath := filepath.Join(tmp, "try-it.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	block = strings.ReplaceAll(block, "deploy/examples/try-it.yaml", confPath)
	block = strings.ReplaceAll(block, "bin/veil", filepath.Join(tmp, "bin", "veil"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", block)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(vaultBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The block ends by killing what it started; whatever is left goes
	// with the process group.
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err = cmd.Wait()
	got := out.String()
	t.Logf("the README's commands printed:\n%s", got)
	if err != nil {
		t.Fatalf("the README's commands failed: %v\n%s", err, got)
	}
	for _, want := range []string{
		"HTTP/1.1 200 OK",
		"X-Veil-Key-Source: client", // bella-photography's own key, from Vault
		"key platform",              // rose-venue, not listed: the platform key
		`"object":"chat.completion"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the output lacks %q:\n%s", want, got)
		}
	}
	for _, secret := range []string{"sk-bella-own-key", "sk-wedsync-platform-key"} {
		if strings.Contains(got, secret) {
			t.Errorf("a key appeared in the output: %s", secret)
		}
	}
}

// TestExampleHeaderCommands: every example config whose header gives a
// "Run:" command names a command veil has, with this very file, and the
// file validates.
func TestExampleHeaderCommands(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "deploy", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				cmdline, ok := strings.CutPrefix(line, "# Run:")
				if !ok {
					continue
				}
				fields := strings.Fields(cmdline)
				for len(fields) > 0 && strings.Contains(fields[0], "=") {
					fields = fields[1:] // VAR=value settings
				}
				if len(fields) < 4 || fields[0] != "veil" || fields[1] != "serve" || fields[2] != "--config" {
					t.Fatalf("header command %q is not `veil serve --config FILE`", cmdline)
				}
				if filepath.Base(fields[3]) != filepath.Base(f) {
					t.Errorf("header command names %s, not this file", fields[3])
				}
			}
			var out, errOut bytes.Buffer
			if code := run([]string{"config", "validate", f}, &out, &errOut); code != 0 {
				t.Errorf("config validate exited %d: %s%s", code, out.String(), errOut.String())
			}
		})
	}
}
