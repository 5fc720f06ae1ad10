package console_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wedsync/veil/console"
	"github.com/wedsync/veil/migrate"
)

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so that tests see each answer.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form as a console page would: same origin.
func (b *browser) post(path string, form url.Values, header ...string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of a page's first form.
func csrf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in the page:\n%s", body)
	}
	return m[1]
}

// login signs in with token through the form and returns the session's
// CSRF token.
func (b *browser) login(token string) string {
	b.t.Helper()
	_, body := b.get("/console/login")
	resp, _ := b.post("/console/login", url.Values{"csrf": {csrf(b.t, body)}, "token": {token}})
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login with %q: status %d", token, resp.StatusCode)
	}
	_, body = b.get("/console/providers")
	return csrf(b.t, body)
}

// newServer serves a console over o, with its audit lines observed.
func newServer(t *testing.T, o console.Options) (*httptest.Server, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	o.Audit = zap.New(core)
	s, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, logs
}

func TestSignInRequired(t *testing.T) {
	o, _ := fakeOptions()
	srv, _ := newServer(t, o)
	b := newBrowser(t, srv.URL)
	for _, path := range []string{"/console/providers", "/console/suppliers", "/console/migrations/mig-0a1b2c3d",
		"/console/comparisons", "/console/usage?from=2026-07-01"} {
		resp, _ := b.get(path)
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("GET %s without a session: status %d, want 303", path, resp.StatusCode)
			continue
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Path != "/console/login" || loc.Query().Get("next") != path {
			t.Errorf("GET %s redirects to %s", path, loc)
		}
	}
	resp, _ := b.post("/console/migrations/mig-0a1b2c3d/rollback", url.Values{"confirm": {"yes"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without a session: status %d, want 401", resp.StatusCode)
	}
}

func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		token      string
		csrf       string // "" takes the form's
		noCookie   bool
		wantStatus int
		wantAudit  string
	}{
		{name: "viewer", token: viewerToken, wantStatus: http.StatusSeeOther, wantAudit: "console login"},
		{name: "operator", token: operatorToken, wantStatus: http.StatusSeeOther, wantAudit: "console login"},
		{name: "wrong token", token: "guess", wantStatus: http.StatusUnauthorized, wantAudit: "console login refused"},
		{name: "empty token", token: "", wantStatus: http.StatusUnauthorized, wantAudit: "console login refused"},
		{name: "unknown role", token: "odd-role-token", wantStatus: http.StatusUnauthorized, wantAudit: "console login refused"},
		{name: "forged form", token: viewerToken, csrf: "forged", wantStatus: http.StatusForbidden, wantAudit: "console login refused"},
		{name: "no login cookie", token: viewerToken, noCookie: true, wantStatus: http.StatusForbidden, wantAudit: "console login refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _ := fakeOptions()
			srv, logs := newServer(t, o)
			b := newBrowser(t, srv.URL)
			_, body := b.get("/console/login")
			token := csrf(t, body)
			if tt.csrf != "" {
				token = tt.csrf
			}
			if tt.noCookie {
				b = newBrowser(t, srv.URL)
			}
			resp, body := b.post("/console/login", url.Values{"csrf": {token}, "token": {tt.token},
				"next": {"/console/usage"}})
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d:\n%s", resp.StatusCode, tt.wantStatus, body)
			}
			if got := logs.FilterMessage(tt.wantAudit).Len(); got != 1 {
				t.Errorf("%d %q audit lines, want 1: %v", got, tt.wantAudit, logs.All())
			}
			for _, e := range logs.All() {
				for _, f := range e.Context {
					if tt.token != "" && strings.Contains(f.String, tt.token) {
						t.Errorf("the token is in the audit line %q", e.Message)
					}
				}
			}
			var session *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == "veil_console" {
					session = c
				}
			}
			if tt.wantStatus != http.StatusSeeOther {
				if session != nil {
					t.Errorf("a refused login set a session cookie")
				}
				return
			}
			if loc := resp.Header.Get("Location"); loc != "/console/usage" {
				t.Errorf("login sent to %q, want the next page", loc)
			}
			switch {
			case session == nil:
				t.Fatal("no session cookie")
			case !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Secure:
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP", session)
			case strings.Contains(session.Value, tt.token) || len(session.Value) < 40:
				t.Errorf("session cookie value %q is not a random ID", session.Value)
			}
			if resp, _ := b.get("/console/providers"); resp.StatusCode != http.StatusOK {
				t.Errorf("after login: status %d", resp.StatusCode)
			}
		})
	}
}

// TestSecureCookieOverTLS: over TLS the cookies are Secure.
func TestSecureCookieOverTLS(t *testing.T) {
	o, _ := fakeOptions()
	s, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(s)
	defer srv.Close()
	b := newBrowser(t, srv.URL)
	b.c.Transport = srv.Client().Transport
	_, body := b.get("/console/login")
	resp, _ := b.post("/console/login", url.Values{"csrf": {csrf(t, body)}, "token": {viewerToken}})
	found := false
	for _, c := range resp.Cookies() {
		if c.Name == "veil_console" {
			found = true
			if !c.Secure {
				t.Errorf("session cookie over TLS is not Secure")
			}
		}
	}
	if !found {
		t.Fatalf("no session cookie (status %d)", resp.StatusCode)
	}
}

// TestPages: every page answers 200 with the security headers, for a
// viewer.
func TestPages(t *testing.T) {
	o, _ := fakeOptions()
	srv, _ := newServer(t, o)
	b := newBrowser(t, srv.URL)
	b.login(viewerToken)
	pages := []struct {
		path string
		want []string
	}{
		{"/console/providers", []string{"openai", "sha256:1a2b3c4d", "half_open", "4120", "<svg"}},
		{"/console/suppliers", []string{"bella-photography", "sha256:77aa88bb", "missing"}},
		{"/console/suppliers/bella-photography?workflow=photography", []string{"supplier&#39;s own key", "platform fallback", "requests_per_minute"}},
		{"/console/migrations", []string{"mig-0a1b2c3d", "mig-9f8e7d6c", "ramping"}},
		{"/console/migrations/mig-0a1b2c3d", []string{"advanced to 50%", "2 of 3", "Only operators and admins"}},
		{"/console/comparisons", []string{"cmp-5a6b7c8d"}},
		{"/console/comparisons/cmp-5a6b7c8d", []string{"migrate", "Latency, platform (primary)", "Answer similarity",
			"Projected cost by month", "2027-06 ★", "planning", "judge gpt-4o-mini", "Based on 500 pairs recorded", "Would pay after a move"}},
		{"/console/usage", []string{"photography", "Cost by day, by who pays", "Total"}},
		{"/console/static/console.css", []string{"--ink"}},
	}
	for _, p := range pages {
		t.Run(p.path, func(t *testing.T) {
			resp, body := b.get(p.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d:\n%s", resp.StatusCode, body)
			}
			for h, want := range map[string]string{
				"Content-Security-Policy": "default-src 'self'; script-src 'none'",
				"X-Frame-Options":         "DENY",
				"Cache-Control":           "no-store",
				"X-Content-Type-Options":  "nosniff",
			} {
				if got := resp.Header.Get(h); !strings.HasPrefix(got, want) {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			for _, w := range p.want {
				if !strings.Contains(body, w) {
					t.Errorf("the page lacks %q", w)
				}
			}
			if strings.Contains(body, "<script") {
				t.Errorf("the page has a script")
			}
			if strings.Contains(body, "rollback\"") || strings.Contains(body, ">Roll back</button>") {
				t.Errorf("a viewer's page has a rollback form")
			}
		})
	}
}

// TestEscaping: a supplier ID with markup renders as text.
func TestEscaping(t *testing.T) {
	o, _ := fakeOptions()
	srv, _ := newServer(t, o)
	b := newBrowser(t, srv.URL)
	b.login(viewerToken)
	for _, path := range []string{"/console/suppliers", "/console/suppliers/" + url.PathEscape(hostileSupplier)} {
		resp, body := b.get(path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, resp.StatusCode)
		}
		if strings.Contains(body, hostileSupplier) || strings.Contains(body, "<script") {
			t.Errorf("GET %s: the supplier ID is not escaped:\n%s", path, body)
		}
		if !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("GET %s: the escaped supplier ID is missing", path)
		}
	}
}

func TestRollback(t *testing.T) {
	const path = "/console/migrations/mig-0a1b2c3d/rollback"
	tests := []struct {
		name       string
		token      string
		form       func(csrf string) url.Values
		header     []string
		failWith   error
		wantStatus int
		wantAudit  string
		wantRolled bool
	}{
		{name: "operator", token: operatorToken, form: func(c string) url.Values {
			return url.Values{"csrf": {c}, "confirm": {"yes"}, "reason": {"error spike"}}
		}, wantStatus: http.StatusSeeOther, wantAudit: "console action", wantRolled: true},
		{name: "admin", token: adminToken, form: func(c string) url.Values {
			return url.Values{"csrf": {c}, "confirm": {"yes"}}
		}, wantStatus: http.StatusSeeOther, wantAudit: "console action", wantRolled: true},
		{name: "viewer", token: viewerToken, form: func(c string) url.Values {
			return url.Values{"csrf": {c}, "confirm": {"yes"}}
		}, wantStatus: http.StatusForbidden, wantAudit: "console action refused"},
		{name: "no csrf", token: operatorToken, form: func(string) url.Values {
			return url.Values{"confirm": {"yes"}}
		}, wantStatus: http.StatusForbidden, wantAudit: "console request refused"},
		{name: "wrong csrf", token: operatorToken, form: func(c string) url.Values {
			return url.Values{"csrf": {c + "x"}, "confirm": {"yes"}}
		}, wantStatus: http.StatusForbidden, wantAudit: "console request refused"},
		{name: "cross site", token: operatorToken, form: func(c string) url.Values {
			return url.Values{"csrf": {c}, "confirm": {"yes"}}
		}, header: []string{"Sec-Fetch-Site", "cross-site"}, wantStatus: http.StatusForbidden, wantAudit: "console request refused"},
		{name: "foreign origin", token: operatorToken, form: func(c string) url.Values {
			return url.Values{"csrf": {c}, "confirm": {"yes"}}
		}, header: []string{"Origin", "https://evil.example"}, wantStatus: http.StatusForbidden, wantAudit: "console request refused"},
		{name: "opaque origin", token: operatorToken, form: func(c string) url.Values {
			return url.Values{"csrf": {c}, "confirm": {"yes"}}
		}, header: []string{"Origin", "null"}, wantStatus: http.StatusForbidden, wantAudit: "console request refused"},
		{name: "not confirmed", token: operatorToken, form: func(c string) url.Values {
			return url.Values{"csrf": {c}}
		}, wantStatus: http.StatusBadRequest},
		{name: "already final", token: operatorToken, form: func(c string) url.Values {
			return url.Values{"csrf": {c}, "confirm": {"yes"}}
		}, failWith: fmt.Errorf("migrate: rollback: %w", migrate.ErrState), wantStatus: http.StatusConflict, wantAudit: "console action failed"},
		{name: "store down", token: operatorToken, form: func(c string) url.Values {
			return url.Values{"csrf": {c}, "confirm": {"yes"}}
		}, failWith: errors.New("connection refused"), wantStatus: http.StatusBadGateway, wantAudit: "console action failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, m := fakeOptions()
			m.failWith = tt.failWith
			srv, logs := newServer(t, o)
			b := newBrowser(t, srv.URL)
			token := b.login(tt.token)
			resp, body := b.post(path, tt.form(token), tt.header...)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d:\n%s", resp.StatusCode, tt.wantStatus, body)
			}
			rolled := m.rollbacks()
			if tt.wantRolled != (len(rolled) == 1) {
				t.Fatalf("rollbacks %q, want one: %v", rolled, tt.wantRolled)
			}
			name, _, _ := authenticate(tt.token)
			if tt.wantRolled {
				if !strings.Contains(rolled[0], "by "+name) {
					t.Errorf("rollback reason %q does not name the operator %s", rolled[0], name)
				}
				if loc := resp.Header.Get("Location"); loc != "/console/migrations/mig-0a1b2c3d?rolled_back=1" {
					t.Errorf("sent to %q", loc)
				}
				if _, page := b.get(resp.Header.Get("Location")); !strings.Contains(page, "was rolled back") ||
					strings.Contains(page, ">Roll back</button>") {
					t.Errorf("the page after the rollback does not say so, or still offers it")
				}
			}
			if tt.wantAudit == "" {
				return
			}
			lines := logs.FilterMessage(tt.wantAudit).All()
			if len(lines) != 1 {
				t.Fatalf("%d %q audit lines, want 1: %v", len(lines), tt.wantAudit, logs.All())
			}
			if got := lines[0].ContextMap()["operator"]; got != name {
				t.Errorf("audit line names operator %v, want %s", got, name)
			}
		})
	}
}

// TestRollbackForm: operators see the rollback form, viewers do not, and
// no one sees it on a migration that already failed.
func TestRollbackForm(t *testing.T) {
	tests := []struct {
		token, migration string
		want             bool
	}{
		{operatorToken, "mig-0a1b2c3d", true},
		{adminToken, "mig-0a1b2c3d", true},
		{viewerToken, "mig-0a1b2c3d", false},
		{operatorToken, "mig-9f8e7d6c", false},
	}
	for _, tt := range tests {
		t.Run(tt.token+"/"+tt.migration, func(t *testing.T) {
			o, _ := fakeOptions()
			srv, _ := newServer(t, o)
			b := newBrowser(t, srv.URL)
			b.login(tt.token)
			_, body := b.get("/console/migrations/" + tt.migration)
			if got := strings.Contains(body, ">Roll back</button>"); got != tt.want {
				t.Errorf("rollback form shown %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	o, _ := fakeOptions()
	srv, logs := newServer(t, o)
	b := newBrowser(t, srv.URL)
	token := b.login(viewerToken)
	if resp, _ := b.post("/console/logout", url.Values{"csrf": {"wrong"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout with a wrong csrf token: status %d, want 403", resp.StatusCode)
	}
	resp, _ := b.post("/console/logout", url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: status %d", resp.StatusCode)
	}
	if resp, _ := b.get("/console/providers"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout: status %d, want a redirect to the login", resp.StatusCode)
	}
	if logs.FilterMessage("console logout").Len() != 1 {
		t.Errorf("no logout audit line: %v", logs.All())
	}
}

// TestSessionExpires: a session ends after its TTL.
func TestSessionExpires(t *testing.T) {
	now := t0
	o, _ := fakeOptions()
	o.Now = func() time.Time { return now }
	o.SessionTTL = time.Hour
	srv, _ := newServer(t, o)
	b := newBrowser(t, srv.URL)
	b.login(viewerToken)
	now = now.Add(59 * time.Minute)
	if resp, _ := b.get("/console/providers"); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the TTL: status %d", resp.StatusCode)
	}
	now = now.Add(time.Minute)
	if resp, _ := b.get("/console/providers"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after the TTL: status %d, want a redirect to the login", resp.StatusCode)
	}
}

func TestNotFound(t *testing.T) {
	o, _ := fakeOptions()
	srv, _ := newServer(t, o)
	b := newBrowser(t, srv.URL)
	b.login(viewerToken)
	for _, path := range []string{"/console/migrations/mig-00000000", "/console/comparisons/cmp-00000000", "/console/nothing"} {
		resp, _ := b.get(path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no CSP on the error", path)
		}
	}
}

func TestUsagePage(t *testing.T) {
	o, _ := fakeOptions()
	u := o.Usage.(*fakeUsage)
	srv, _ := newServer(t, o)
	b := newBrowser(t, srv.URL)
	b.login(viewerToken)
	resp, body := b.get("/console/usage?from=2026-07-08&to=2026-07-14&group_by=billed")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if u.calls != 1 {
		t.Errorf("the store was asked %d times for one page, want once", u.calls)
	}
	for _, want := range []string{">platform<", ">client<", "2026-07-14"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, ">photography<") {
		t.Errorf("grouped by billed alone, the page shows workflows")
	}
	if resp, _ := b.get("/console/usage?from=July"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad date: status %d, want 400", resp.StatusCode)
	}
}

// TestClosedWithoutAuthenticator: without an authenticator no one signs
// in.
func TestClosedWithoutAuthenticator(t *testing.T) {
	o, _ := fakeOptions()
	o.Authenticate = nil
	srv, _ := newServer(t, o)
	b := newBrowser(t, srv.URL)
	_, body := b.get("/console/login")
	if !strings.Contains(body, "console is closed") {
		t.Errorf("the login page does not say the console is closed:\n%s", body)
	}
}
