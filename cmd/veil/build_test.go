package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// developerPackages are the packages only the demo and fake-upstream
// subcommands need.
var developerPackages = []string{
	"github.com/wedsync/veil/internal/fakeopenai",
	"github.com/wedsync/veil/internal/demo",
}

// TestSidecarDeps: the sidecar build (-tags sidecar, as the image and make
// build are built) links neither the fake upstream nor the demo; the default
// build, which go run ./cmd/veil demo uses, links both.
func TestSidecarDeps(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want bool
	}{
		{"sidecar", []string{"list", "-deps", "-tags", "sidecar", "."}, false},
		{"default", []string{"list", "-deps", "."}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command("go", tc.args...).Output()
			if err != nil {
				t.Fatalf("go %s: %v", strings.Join(tc.args, " "), stderrOf(err))
			}
			deps := map[string]bool{}
			for _, p := range strings.Fields(string(out)) {
				deps[p] = true
			}
			if !deps["github.com/wedsync/veil/internal/app"] {
				t.Fatalf("go list printed no veil packages:\n%s", out)
			}
			for _, p := range developerPackages {
				if deps[p] != tc.want {
					t.Errorf("%s linked: %v, want %v", p, deps[p], tc.want)
				}
			}
		})
	}
}

// TestSidecarBuildFiles: the Dockerfile and make build build the sidecar.
func TestSidecarBuildFiles(t *testing.T) {
	for _, name := range []string{"Dockerfile", "Makefile"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", name))
			if err != nil {
				t.Fatal(err)
			}
			builds := 0
			for _, line := range strings.Split(string(b), "\n") {
				if !strings.Contains(line, "build ") || !strings.Contains(line, "./cmd/veil") {
					continue
				}
				builds++
				if !strings.Contains(line, "-tags sidecar") {
					t.Errorf("%s builds veil without -tags sidecar: %s", name, strings.TrimSpace(line))
				}
			}
			if builds == 0 {
				t.Errorf("%s has no go build of ./cmd/veil", name)
			}
		})
	}
}

// TestSidecarSubcommands: in the sidecar build, demo and fake-upstream fail
// with a message that says where to find them; the rest still runs.
func TestSidecarSubcommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds veil")
	}
	bin := filepath.Join(t.TempDir(), "veil")
	if out, err := exec.Command("go", "build", "-tags", "sidecar", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags sidecar: %v\n%s", err, out)
	}
	cases := []struct {
		args     []string
		code     int
		output   string
		notUsage string
	}{
		{[]string{"demo"}, 1, "this build of veil has no demo; run `go run ./cmd/veil demo` from a checkout", ""},
		{[]string{"fake-upstream", "--listen", "127.0.0.1:0"}, 1, "this build of veil has no fake upstream", ""},
		{[]string{"version"}, 0, "veil ", ""},
		{[]string{"help"}, 0, "veil serve --config FILE", "veil demo"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := exec.Command(bin, tc.args...).CombinedOutput()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.output) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s", code, tc.code, tc.output, out)
			}
			if tc.notUsage != "" && strings.Contains(string(out), tc.notUsage) {
				t.Errorf("the usage offers %q, which this build lacks:\n%s", tc.notUsage, out)
			}
		})
	}
}

// TestDeveloperUsage: the default build offers demo and fake-upstream.
func TestDeveloperUsage(t *testing.T) {
	code, out, _ := runCmd("help")
	for _, want := range []string{"veil demo", "veil fake-upstream"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("help: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
}

// stderrOf adds a failed command's standard error to its error.
func stderrOf(err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) && len(exit.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(exit.Stderr)))
	}
	return err
}
