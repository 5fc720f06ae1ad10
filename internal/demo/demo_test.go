package demo

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRun runs the whole demo and checks its report names every scenario,
// what served it, and tells each wedding story.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	if err := Run(ctx, Options{Out: &out}); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	report := out.String()
	stories := 0
	for _, sc := range scenarios {
		if !strings.Contains(report, sc.name) {
			t.Errorf("report lacks scenario %q", sc.name)
		}
		if sc.story != "" {
			stories++
			if !strings.Contains(report, sc.story) {
				t.Errorf("report lacks the story %q", sc.story)
			}
		}
	}
	if stories != 4 {
		t.Errorf("%d wedding stories, want 4", stories)
	}
	for _, want := range []string{
		"openai", "platform", "client", "401 (expected)",
		"The wedding stories", "What happened:", "What the supplier saw:", "Who paid:",
		// Scenario 1: out of June quota, onto the photographer's own key.
		"reason quota_exhausted, status completed", "no 429, no retry, no failed request",
		// Scenario 2: the venue's outage.
		"client -> platform -> platform -> client",
		// Scenario 3: the planner's comparison and its report, per
		// workflow, by who pays, with a projection and its sample.
		"guest-messages 30 pairs: migrate, timeline 30 pairs: migrate", "Answer similarity over 60 pairs (lexical)",
		"By workflow", "Cost, who pays", "paid by WedSync", "paid by everafter-planning", "Projection, next 12 months",
		"WedSync pays", "supplier pays", "Recommendation: migrate", "Sample: 60 pairs recorded, 60 compared",
		"by workflow: guest-messages 30, timeline 30",
		// The ramp.
		"planned -> started -> advanced -> completed", "stage 2 (100%)",
		"all 11 scenarios behaved as expected",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}
