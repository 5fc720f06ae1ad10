package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/keys"
)

// consoleSession is a browser's view of veil's console: a cookie jar, no
// redirects followed.
type consoleSession struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (h *harness) console() *consoleSession {
	h.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return &consoleSession{t: h.t, base: "http://" + h.app.AdminAddr(), c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (s *consoleSession) do(method, path string, form url.Values) (*http.Response, string) {
	s.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", s.base)
	}
	resp, err := s.c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var consoleCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (s *consoleSession) csrf(page string) string {
	s.t.Helper()
	m := consoleCSRF.FindStringSubmatch(page)
	if m == nil {
		s.t.Fatalf("no csrf field in:\n%s", page)
	}
	return m[1]
}

// TestConsole: the console on a running veil's admin listener signs in
// with the admin token, shows the providers, the supplier and its key by
// fingerprint, the migration and the usage, and rolls the migration back
// through the same manager as the admin API, audited with the operator's
// name.
func TestConsole(t *testing.T) {
	tp := &tap{}
	s, bellaKey := withBella(tp, bellaPlatform)
	h := start(t, s)
	if _, err := h.client().CreateChatCompletion(ctxT(t), weddingChat); err != nil {
		t.Fatal(err)
	}
	plan := h.planMigration(t, rampPlan(`[{"share":0.5,"dwell":"1h"},{"share":1,"dwell":"1h"}]`, 5))
	h.startMigration(t, plan.ID)

	c := h.console()
	_, login := c.do("GET", "/console/login", nil)
	if resp, _ := c.do("POST", "/console/login", url.Values{"csrf": {c.csrf(login)}, "token": {"not-" + h.adminToken}}); resp.StatusCode != 401 {
		t.Fatalf("a wrong token: status %d, want 401", resp.StatusCode)
	}
	_, login = c.do("GET", "/console/login", nil)
	resp, _ := c.do("POST", "/console/login", url.Values{"csrf": {c.csrf(login)}, "token": {h.adminToken}})
	if resp.StatusCode != 303 {
		t.Fatalf("login: status %d", resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if strings.Contains(ck.Value, h.adminToken) {
			t.Fatal("a cookie carries the admin token")
		}
	}

	pages := []struct {
		path string
		want []string
	}{
		{"/console/providers", []string{"openai", "closed", "<svg"}},
		{"/console/suppliers", []string{testSupplier, keys.Fingerprint(bellaKey)}},
		{"/console/suppliers/" + testSupplier + "?model=gpt-4o-mini", []string{"platform", "gpt-4o-mini"}},
		{"/console/migrations", []string{plan.ID, "ramping"}},
		{"/console/migrations/" + plan.ID, []string{"supplier request", ">Roll back</button>"}},
		{"/console/comparisons", []string{"No comparisons."}},
		{"/console/usage", []string{"Group by"}},
	}
	var migrationPage string
	for _, p := range pages {
		resp, body := c.do("GET", p.path, nil)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: status %d:\n%s", p.path, resp.StatusCode, body)
			continue
		}
		for _, w := range p.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q", p.path, w)
			}
		}
		if strings.Contains(body, bellaKey) || strings.Contains(body, h.platformKey) || strings.Contains(body, h.adminToken) {
			t.Errorf("GET %s shows a secret", p.path)
		}
		if p.path == "/console/migrations/"+plan.ID {
			migrationPage = body
		}
	}

	resp, body := c.do("POST", "/console/migrations/"+plan.ID+"/rollback",
		url.Values{"csrf": {c.csrf(migrationPage)}, "confirm": {"yes"}, "reason": {"latency spike"}})
	if resp.StatusCode != 303 {
		t.Fatalf("rollback: status %d:\n%s", resp.StatusCode, body)
	}
	m := h.getMigration(t, plan.ID)
	if m.Status != "rolled_back" || m.events("rolled_back") != 1 ||
		!strings.Contains(m.Events[len(m.Events)-1].Message, "latency spike (by admin, console)") {
		t.Errorf("after the console's rollback: %+v", m)
	}
	lines := waitLines(t, h.audit, "console action")
	if len(lines) != 1 || lines[0]["operator"] != "admin" || lines[0]["migration"] != plan.ID {
		t.Errorf("console action audit lines: %v", lines)
	}
	if len(waitLines(t, h.audit, "console login")) != 1 || len(waitLines(t, h.audit, "console login refused")) != 1 {
		t.Errorf("login audit lines missing:\n%s", h.audit.String())
	}
}
