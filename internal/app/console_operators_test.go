package app

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var consoleCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestConsoleSignsOperatorsInByName: each named admin token signs in to
// the console as its operator, with its role; a wrong token does not.
func TestConsoleSignsOperatorsInByName(t *testing.T) {
	a, _, _, audit, tokens := operatorsApp(t)
	base := "http://" + a.AdminAddr()
	login := func(token string) (page string, status int) {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		resp, err := c.Get(base + "/console/login")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		m := consoleCSRF.FindSubmatch(body)
		if m == nil {
			t.Fatalf("no CSRF token on the login page:\n%s", body)
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/console/login",
			strings.NewReader(url.Values{"csrf": {string(m[1])}, "token": {token}, "next": {"/console/"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return string(body), resp.StatusCode
	}
	for name, role := range map[string]string{"alice": "viewer", "bob": "operator", "carol": "admin"} {
		page, status := login(tokens[name])
		if status != http.StatusOK || !strings.Contains(page, name+` <span class="role">`+role+`</span>`) {
			t.Errorf("%s signed in with status %d, page without %q (%s):\n%.400s", name, status, name, role, page)
		}
		if strings.Contains(page, tokens[name]) {
			t.Errorf("%s's token is on the page", name)
		}
	}
	if page, _ := login("veil-nobody-Hx7WqhLv9TnJRbpYc3Mz"); strings.Contains(page, `class="who"`) {
		t.Error("a wrong token signed in")
	}
	signedIn := map[string]string{}
	for _, e := range audit.FilterMessage("console login").All() {
		signedIn[e.ContextMap()["operator"].(string)] = e.ContextMap()["role"].(string)
	}
	if signedIn["alice"] != "viewer" || signedIn["bob"] != "operator" || signedIn["carol"] != "admin" {
		t.Errorf("audited sign-ins %v", signedIn)
	}
}
