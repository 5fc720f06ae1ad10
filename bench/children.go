//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/veil/bench/load"
)

// stack is a fake upstream and a veil proxy in front of it, both child
// processes of the bench.
type stack struct {
	// LogPath is the file both children write their output to.
	LogPath string
	// FakeAddr, ProxyAddr and AdminAddr are the listen addresses.
	FakeAddr, ProxyAddr, AdminAddr string
	// Token is the caller token veil accepts.
	Token string

	log        *os.File
	fake, veil *load.Child
}

// stackOptions shape the fake upstream and veil's configuration.
type stackOptions struct {
	// LogLevel is veil's log level.
	LogLevel string
	// VeilCPUs, when not empty, restricts veil to these CPUs.
	VeilCPUs []int
	// Latency, ChunkDelay and ReplyWords are the fake upstream's delay
	// before each answer, between streamed chunks and its answers' length
	// in words (0: its default, a few sentences).
	Latency, ChunkDelay time.Duration
	ReplyWords          int
	// Limits and Provider are YAML lines added under veil's limits: and
	// under its one provider's entry, indented to fit; empty: defaults.
	Limits, Provider string
}

// fakeArgs are the fake upstream's command-line arguments.
func (o stackOptions) fakeArgs(addr string) []string {
	return []string{"fake-upstream", "--listen", addr, "--latency", o.Latency.String(), "--ttft", "0",
		"--chunk-delay", o.ChunkDelay.String(), "--reply-words", strconv.Itoa(o.ReplyWords)}
}

// startStack starts the fake upstream and veil from bin, with config and
// log in dir, and waits until both are ready. On error everything already
// started is stopped again.
func startStack(ctx context.Context, dir, bin string, o stackOptions) (s *stack, err error) {
	s = &stack{LogPath: filepath.Join(dir, "veil.log")}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
			s = nil
		}
	}()
	if s.log, err = os.Create(s.LogPath); err != nil {
		return s, fmt.Errorf("create log: %w", err)
	}
	for _, p := range []*string{&s.FakeAddr, &s.ProxyAddr, &s.AdminAddr} {
		if *p, err = load.FreeAddr(); err != nil {
			return s, err
		}
	}
	if s.Token, err = load.RandomToken(); err != nil {
		return s, err
	}
	platformKey, err := load.RandomToken()
	if err != nil {
		return s, err
	}
	cfgPath := filepath.Join(dir, "veil.yaml")
	if err := os.WriteFile(cfgPath, []byte(veilConfig(s.ProxyAddr, s.AdminAddr, s.FakeAddr, o)), 0o600); err != nil {
		return s, fmt.Errorf("write config: %w", err)
	}

	s.fake, err = load.StartChild("fake-upstream", bin, o.fakeArgs(s.FakeAddr), nil, s.log)
	if err != nil {
		return s, err
	}
	if err := s.fake.WaitReady(ctx, "http://"+s.FakeAddr+"/v1/models", false, s.LogPath); err != nil {
		return s, err
	}
	s.veil, err = load.StartPinned(o.VeilCPUs, "veil", bin, []string{"serve", "--config", cfgPath},
		[]string{"BENCH_PLATFORM_KEY=sk-bench-" + platformKey, "BENCH_CALLER_TOKEN=" + s.Token}, s.log)
	if err != nil {
		return s, err
	}
	if err := s.veil.WaitReady(ctx, "http://"+s.AdminAddr+"/readyz", true, s.LogPath); err != nil {
		return s, err
	}
	return s, nil
}

// veilConfig renders the proxy's YAML configuration.
func veilConfig(proxy, admin, fake string, o stackOptions) string {
	c := load.VeilConfigHead("bench", proxy, admin, o.LogLevel)
	if o.Limits != "" {
		c += "limits:\n" + indent(o.Limits, "  ")
	}
	return c + fmt.Sprintf(`providers:
  - name: openai
    type: openai
    base_url: http://%s/v1
    api_key: env://BENCH_PLATFORM_KEY
%scallers:
  - name: bench
    token: env://BENCH_CALLER_TOKEN
    suppliers: ["*"]
`, fake, indent(o.Provider, "    "))
}

// indent puts prefix before each line of the YAML lines in s, and ends
// them with a newline.
func indent(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(prefix + strings.TrimRight(line, "\n") + "\n")
	}
	return b.String()
}

// VeilPID and FakePID return the children's process IDs.
func (s *stack) VeilPID() string { return s.veil.PID() }

// FakePID returns the fake upstream's process ID.
func (s *stack) FakePID() string { return s.fake.PID() }

// Close stops veil, then the fake upstream, and closes the log. It is
// safe on a partly started stack and more than once.
func (s *stack) Close() error {
	var errs []error
	for _, c := range []*load.Child{s.veil, s.fake} {
		if c != nil {
			errs = append(errs, c.Stop(load.StopGrace))
		}
	}
	if s.log != nil {
		errs = append(errs, s.log.Close())
		s.log = nil
	}
	return errors.Join(errs...)
}

// Alive returns an error when a child has exited unexpectedly.
func (s *stack) Alive() error {
	for _, c := range []*load.Child{s.fake, s.veil} {
		if err := c.Alive(s.LogPath); err != nil {
			return err
		}
	}
	return nil
}
