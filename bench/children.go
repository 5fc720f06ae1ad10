//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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

// startStack starts the fake upstream and veil from bin, with config and
// log in dir, and waits until both are ready; veil is restricted to
// veilCPUs when that is not empty. On error everything already started is
// stopped again.
func startStack(ctx context.Context, dir, bin, logLevel string, veilCPUs []int) (s *stack, err error) {
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
	if err := os.WriteFile(cfgPath, []byte(veilConfig(s.ProxyAddr, s.AdminAddr, s.FakeAddr, logLevel)), 0o600); err != nil {
		return s, fmt.Errorf("write config: %w", err)
	}

	s.fake, err = load.StartChild("fake-upstream", bin,
		[]string{"fake-upstream", "--listen", s.FakeAddr, "--latency", "0", "--ttft", "0", "--chunk-delay", "0"},
		nil, s.log)
	if err != nil {
		return s, err
	}
	if err := s.fake.WaitReady(ctx, "http://"+s.FakeAddr+"/v1/models", false, s.LogPath); err != nil {
		return s, err
	}
	s.veil, err = load.StartPinned(veilCPUs, "veil", bin, []string{"serve", "--config", cfgPath},
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
func veilConfig(proxy, admin, fake, logLevel string) string {
	return load.VeilConfigHead("bench", proxy, admin, logLevel) + fmt.Sprintf(`providers:
  - name: openai
    type: openai
    base_url: http://%s/v1
    api_key: env://BENCH_PLATFORM_KEY
callers:
  - name: bench
    token: env://BENCH_CALLER_TOKEN
    suppliers: ["*"]
`, fake)
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
