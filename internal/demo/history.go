package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/wedsync/veil/store"
)

// EverAfter Planning's workflows in scenario 3.
const (
	// timelineWorkflow is its planning timelines: long prompts, long
	// answers.
	timelineWorkflow = "timeline"
	// guestsWorkflow is its replies to guests: short ones.
	guestsWorkflow = "guest-messages"
)

// plannerDay is EverAfter Planning's usage of a day of one workflow, on
// WedSync's keys, in the wedding season and out of it.
type plannerDay struct {
	workflow           string
	peak, offPeak      int64 // requests a day
	prompt, completion int64 // tokens a request
}

// plannerUsage is what the demo's store holds of EverAfter's last year:
// a timeline takes about 400 prompt and 600 completion tokens of
// gpt-4o-mini, a guest reply 200 and 150; both run about 2.4 times
// busier from March to October.
var plannerUsage = []plannerDay{
	{workflow: timelineWorkflow, peak: 600, offPeak: 250, prompt: 400, completion: 600},
	{workflow: guestsWorkflow, peak: 300, offPeak: 125, prompt: 200, completion: 150},
}

// gpt-4o-mini's prices in the demo's config, in micro-dollars per token.
const (
	promptMicros     = 0.15
	completionMicros = 0.60
)

// plannerHistory returns an in-memory store holding EverAfter Planning's
// usage of the last year, the 365 days up to yesterday, one aggregate a
// day and workflow; veil is started on it. It returns the number of
// requests it holds.
func plannerHistory(ctx context.Context, now time.Time) (*store.Embedded, int64, error) {
	st, err := store.NewEmbedded("")
	if err != nil {
		return nil, 0, fmt.Errorf("the demo's store: %w", err)
	}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	var requests int64
	for day := today.AddDate(0, 0, -365); day.Before(today); day = day.AddDate(0, 0, 1) {
		peak := day.Month() >= time.March && day.Month() <= time.October
		for _, u := range plannerUsage {
			n := u.offPeak
			if peak {
				n = u.peak
			}
			cost := int64(float64(n*u.prompt)*promptMicros + float64(n*u.completion)*completionMicros)
			d := store.Usage{Day: day, Supplier: plannerID, Provider: "openai", Model: "gpt-4o-mini", KeySource: "platform",
				Billed: "platform", Workflow: u.workflow, Requests: n, PromptTokens: n * u.prompt,
				CompletionTokens: n * u.completion, CostMicros: cost}
			if err := st.AddUsage(ctx, "demo-history-"+day.Format(time.DateOnly)+"-"+u.workflow, d); err != nil {
				_ = st.Close()
				return nil, 0, fmt.Errorf("the demo's usage history: %w", err)
			}
			requests += n
		}
	}
	return st, requests, nil
}
