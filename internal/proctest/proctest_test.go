package proctest

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestStartWaitStop(t *testing.T) {
	p, err := Start("sleeper", exec.Command("sh", "-c", "echo hello; trap 'echo bye; exit 0' TERM; while true; do sleep 0.05; done"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(10*time.Second, 10*time.Millisecond, func() error {
		if strings.Contains(p.Output(), "hello") {
			return nil
		}
		return errors.New("not yet")
	}); err != nil {
		t.Fatal(err)
	}
	if killed := p.Stop(10 * time.Second); killed {
		t.Error("a process that handles SIGTERM was killed")
	}
	p.Stop(time.Second) // idempotent
}

func TestWaitReadyNoticesExit(t *testing.T) {
	p, err := Start("quitter", exec.Command("sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(10*time.Second, 10*time.Millisecond, func() error { return errors.New("never") })
	if err == nil || !strings.Contains(err.Error(), "quitter exited") {
		t.Errorf("err %v", err)
	}
}

func TestFreePort(t *testing.T) {
	if p, err := FreePort(); err != nil || p == 0 {
		t.Errorf("%d %v", p, err)
	}
}
