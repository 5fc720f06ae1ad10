package demo

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRun runs the whole demo and checks its report names every scenario
// and what served it.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	if err := Run(ctx, Options{Out: &out}); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	report := out.String()
	for _, sc := range scenarios {
		if !strings.Contains(report, sc.name) {
			t.Errorf("report lacks scenario %q", sc.name)
		}
	}
	for _, want := range []string{"openai", "platform", "client", "401 (expected)", "all 8 scenarios behaved as expected"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}
