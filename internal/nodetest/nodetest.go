// Package nodetest drives the official openai npm SDK against an
// OpenAI-compatible endpoint, such as veil, from Go tests. It runs
// test/node/sdk_check.mjs with Node.js; the script prints on stdout, as
// JSON, what the SDK made of the answers.
//
// Node.js and the script's dependencies (test/node/node_modules) are
// installed by scripts/setup.sh (make setup); tests skip without them,
// except in CI, where they fail.
package nodetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/internal/proctest"
)

// The modes of sdk_check.mjs: which call it makes and what it prints.
const (
	// ModeChat makes a chat completion and prints the response.
	ModeChat = "chat"
	// ModeStream streams a chat completion and prints each chunk on its
	// own line.
	ModeStream = "stream"
	// ModeStreamUsage is ModeStream with stream_options.include_usage.
	ModeStreamUsage = "stream_usage"
	// ModeEmbeddings asks for embeddings in the SDK's default encoding
	// (base64) and prints the response with each vector replaced by
	// embedding_length and embedding_head (its first 3 values).
	ModeEmbeddings = "embeddings"
	// ModeModels lists the models and prints {"object":"list","data":[...]}.
	ModeModels = "models"
	// ModeError makes a chat completion that must fail with an API error
	// and prints {"status":...,"code":...,"type":...}.
	ModeError = "error"
)

// The installed SDKs (test/node/package.json), for the OPENAI_PACKAGE
// setting of Run's env.
const (
	// SDKLatest is the newest openai major that the machine's Node.js
	// (20) runs: 6.x (7.x needs Node.js 22). Run uses it by default.
	SDKLatest = "openai"
	// SDKPrevious is the previous major, pinned (5.23.2), installed under
	// the alias openai-v5.
	SDKPrevious = "openai-v5"
)

// SDKs are the installed SDKs, newest first.
var SDKs = []string{SDKLatest, SDKPrevious}

// Timeout bounds one run of the script. It guards against a hung run only:
// the SDK itself times out after 30s, and a run takes well under a second.
const Timeout = 90 * time.Second

// Script is the path of the script relative to the repository root.
const Script = "test/node/sdk_check.mjs"

// Run runs sdk_check.mjs in mode against baseURL (such as
// http://127.0.0.1:8080/v1) with apiKey and, when supplier is not empty,
// an X-Supplier-ID header, and returns its stdout. The test fails when the
// script fails or does not finish within Timeout. When Node.js or the
// openai package is missing the test fails if $CI is true and is skipped
// otherwise. env adds NAME=value settings, such as MODEL.
func Run(t testing.TB, mode, baseURL, apiKey, supplier string, env ...string) []byte {
	t.Helper()
	nodeBin, root := locate(t)

	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, filepath.FromSlash(Script)) //nolint:gosec // G204: the test fixture runs the node binary it found
	cmd.Dir = root
	cmd.Env = append(childEnv(),
		"MODE="+mode,
		"OPENAI_BASE_URL="+baseURL,
		"OPENAI_API_KEY="+apiKey,
		"SUPPLIER="+supplier,
	)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = proctest.SysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (timed out after %v)", err, Timeout)
		}
		t.Fatalf("nodetest: MODE=%s node %s: %v\nstderr:\n%s\nstdout:\n%s",
			mode, Script, err, stderr.String(), stdout.String())
	}
	if stderr.Len() > 0 {
		t.Logf("nodetest: MODE=%s stderr:\n%s", mode, stderr.String())
	}
	return stdout.Bytes()
}

// locate returns the node binary and the repository root, or ends the test
// when either Node.js or the openai package is missing.
func locate(t testing.TB) (nodeBin, root string) {
	t.Helper()
	root, err := repoRoot()
	if err == nil {
		nodeBin, err = exec.LookPath("node")
		if err != nil {
			err = fmt.Errorf("node not found: %w", err)
		}
	}
	for _, sdk := range SDKs {
		if err != nil {
			break
		}
		pkg := filepath.Join(root, "test", "node", "node_modules", sdk, "package.json")
		if _, statErr := os.Stat(pkg); statErr != nil {
			err = fmt.Errorf("npm package %s not installed: %w", sdk, statErr)
		}
	}
	if err != nil {
		msg := fmt.Sprintf("nodetest: %v: run `make setup` (or npm ci --prefix test/node)", err)
		proctest.Unavailable(t, msg)
	}
	return nodeBin, root
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error //nolint:errname // repoRoot's memoized result, not a sentinel
)

// repoRoot returns the directory holding go.mod, found by walking up from
// the working directory.
func repoRoot() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = fmt.Errorf("finding the repository root: %w", err)
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("finding the repository root: no go.mod above the working directory")
				return
			}
			dir = parent
		}
	})
	return rootDir, rootErr
}

// childEnv returns the environment of the node process: the test's
// without the variables the script reads or that would change the SDK's
// behaviour (OPENAI_*, MODE, SUPPLIER, NODE_OPTIONS).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "OPENAI_"), name == "MODE", name == "SUPPLIER", name == "NODE_OPTIONS":
			continue
		}
		env = append(env, kv)
	}
	return env
}
