package demo

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuilder is a strings.Builder safe for a writer and a reader.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	consoleLine = regexp.MustCompile(`open (http://[0-9.:]+)/console/ and sign in with the demo's admin token\n  (\S+)`)
	csrfField   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	comparison  = regexp.MustCompile(`/console/comparisons/(cmp_[a-z0-9]+)`)
)

// TestRun runs the whole demo, with veil kept running for its console,
// and checks its report names every scenario, what served it, and tells
// each wedding story; and that the console shows the planner's
// comparison.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out lockedBuilder
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Out: &out, Console: true}) }()
	var m []string
	for m == nil {
		select {
		case err := <-done:
			t.Fatalf("demo ended before its console was offered: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
			m = consoleLine.FindStringSubmatch(out.String())
		}
	}
	checkConsole(t, m[1], m[2])
	cancel()
	if err := <-done; err != nil {
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
		"guest-messages 30 pairs: migrate, timeline 30 pairs: migrate", "Answer similarity over 60 pairs (judge gpt-4o-mini+embeddings text-embedding-3-small)", "30 judge calls",
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

// checkConsole signs in to the demo's console and checks the planner's
// comparison page: its workflows, methods, projection and sample.
func checkConsole(t *testing.T, base, token string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(path string) string {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	csrf := csrfField.FindStringSubmatch(get("/console/login"))
	if csrf == nil {
		t.Fatal("no sign-in form")
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/console/login", strings.NewReader(url.Values{
		"csrf": {csrf[1]}, "token": {token}, "next": {"/console/comparisons"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	id := comparison.FindStringSubmatch(string(list))
	if id == nil {
		t.Fatalf("the console lists no comparison:\n%s", list)
	}
	page := get("/console/comparisons/" + id[1])
	for _, want := range []string{"everafter-planning", "timeline", "guest-messages", "judge gpt-4o-mini",
		"embeddings text-embedding-3-small", "Projected cost by month", "Based on 60 pairs recorded", "Would pay after a move"} {
		if !strings.Contains(page, want) {
			t.Errorf("the console's comparison page lacks %q", want)
		}
	}
}
