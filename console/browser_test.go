package console_test

import (
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/console"
	"github.com/wedsync/veil/internal/browsertest"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "save a screenshot of each console page to docs/console")

// startAdmin serves the admin listener, with the console over o, on a
// loopback port, as veil's app does, and returns its base URL.
func startAdmin(t *testing.T, o console.Options) string {
	t.Helper()
	c, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	adm := admin.New(admin.Options{Console: c})
	srv := &fasthttp.Server{Handler: adm.Handle, Name: "veil-admin", NoDefaultServerHeader: true,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, MaxRequestBodySize: 1 << 20, SecureErrorLogMessage: true}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// chartSize is what the browser laid out of one chart.
type chartSize struct {
	Width, Height float64
	Bars          int
}

// TestBrowser drives a headless Chromium through the console on the real
// admin listener: it signs in through the form as an operator, opens every
// page, rolls a migration back through its form and signs out, and checks
// that no page logs an error, throws, fails a load or violates its
// Content-Security-Policy, and that the charts are laid out with bars.
// -update-screenshots saves each page to docs/console.
func TestBrowser(t *testing.T) {
	chromium := browsertest.Require(t)
	o, migrations := fakeOptions()
	base := startAdmin(t, o)
	b := browsertest.Start(t, chromium)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := b.NewPage(ctx, 1280, 900)
	if err != nil {
		t.Fatal(err)
	}

	// clean fails the test on whatever the page reported.
	clean := func(what string) {
		t.Helper()
		var ok bool
		if err := p.Eval(ctx, "true", &ok); err != nil { // events before this answer have arrived
			t.Fatal(err)
		}
		for _, pr := range p.Problems() {
			t.Errorf("%s: %s", what, pr)
		}
	}
	location := func() string {
		t.Helper()
		var loc string
		if err := p.Eval(ctx, "location.pathname + location.search", &loc); err != nil {
			t.Fatal(err)
		}
		return loc
	}
	shot := func(name string) {
		t.Helper()
		if !*updateScreenshots {
			return
		}
		png, err := p.Screenshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "docs", "console", name+".png")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s (%d bytes)", path, len(png))
	}

	// Signing in: the form leads back to the page first asked for.
	if err := p.Navigate(ctx, base+"/console/comparisons"); err != nil {
		t.Fatal(err)
	}
	if loc := location(); !strings.HasPrefix(loc, "/console/login?next=") {
		t.Fatalf("without a session the console sent the browser to %s", loc)
	}
	clean("login page")
	shot("login")
	if err := p.Submit(ctx, `document.getElementById("token").value = `+strconv.Quote(operatorToken)+
		`; document.querySelector("form.login").requestSubmit()`); err != nil {
		t.Fatal(err)
	}
	if loc := location(); loc != "/console/comparisons" {
		t.Fatalf("after signing in the browser is on %s", loc)
	}
	clean("sign in")
	var cookie string
	if err := p.Eval(ctx, "document.cookie", &cookie); err != nil || cookie != "" {
		t.Errorf("the page's script can read cookies %q (%v): the session cookie must be HttpOnly", cookie, err)
	}

	pages := []struct {
		name, path string
		charts     int
	}{
		{"providers", "/console/providers", 1},
		{"suppliers", "/console/suppliers", 0},
		{"supplier", "/console/suppliers/bella-photography?workflow=photography", 0},
		{"migrations", "/console/migrations", 0},
		{"migration", "/console/migrations/mig-0a1b2c3d", 0},
		{"comparisons", "/console/comparisons", 0},
		{"comparison", "/console/comparisons/cmp-5a6b7c8d", 4},
		{"usage", "/console/usage", 1},
	}
	for _, pg := range pages {
		if err := p.Navigate(ctx, base+pg.path); err != nil {
			t.Fatal(err)
		}
		if loc := location(); loc != pg.path {
			t.Errorf("%s: the browser is on %s", pg.name, loc)
		}
		clean(pg.name)
		var charts []chartSize
		if err := p.Eval(ctx, `Array.from(document.querySelectorAll("svg.chart")).map(s => {
			const r = s.getBoundingClientRect();
			return {Width: r.width, Height: r.height, Bars: s.querySelectorAll("rect > title").length};
		})`, &charts); err != nil {
			t.Fatal(err)
		}
		if len(charts) != pg.charts {
			t.Errorf("%s: %d charts, want %d", pg.name, len(charts), pg.charts)
		}
		for i, c := range charts {
			if c.Width < 100 || c.Height < 50 || c.Bars == 0 {
				t.Errorf("%s: chart %d laid out %vx%v with %d bars", pg.name, i, c.Width, c.Height, c.Bars)
			}
		}
		shot(pg.name)
	}

	// The supplier whose ID is markup shows it as text, and runs nothing.
	if err := p.Navigate(ctx, base+"/console/suppliers"); err != nil {
		t.Fatal(err)
	}
	var shown bool
	if err := p.Eval(ctx, `Array.from(document.querySelectorAll("td a")).some(a => a.textContent === `+
		strconv.Quote(hostileSupplier)+`) && document.querySelectorAll("main script").length === 0`, &shown); err != nil || !shown {
		t.Errorf("the supplier %s is not shown as text (%v)", hostileSupplier, err)
	}
	clean("hostile supplier")

	// Rolling a migration back through its form, as an operator.
	if err := p.Navigate(ctx, base+"/console/migrations/mig-0a1b2c3d"); err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(ctx, `document.getElementById("reason").value = "error spike";
		document.querySelector("form.danger input[name=confirm]").checked = true;
		document.querySelector("form.danger").requestSubmit()`); err != nil {
		t.Fatal(err)
	}
	if loc := location(); loc != "/console/migrations/mig-0a1b2c3d?rolled_back=1" {
		t.Errorf("after the rollback the browser is on %s", loc)
	}
	if got := migrations.rollbacks(); len(got) != 1 || got[0] != "error spike (by otto, console)" {
		t.Errorf("rollbacks %q", got)
	}
	clean("rollback")
	shot("migration-rolled-back")

	// The checks see a violation when there is one: an image from another
	// origin is refused by the CSP and reported.
	if err := p.Eval(ctx, `document.body.insertAdjacentHTML("beforeend", '<img src="http://192.0.2.1/x.png">'); true`, nil); err != nil {
		t.Fatal(err)
	}
	var settled bool
	if err := p.Eval(ctx, `new Promise(r => setTimeout(() => r(true), 200))`, &settled); err != nil {
		t.Fatal(err)
	}
	if pr := p.Problems(); !containsAny(pr, "Content Security Policy", "csp violation") {
		t.Errorf("an image from another origin was not reported as a CSP violation: %q", pr)
	}

	// Signing out ends the session.
	if err := p.Submit(ctx, `document.querySelector("form.logout").requestSubmit()`); err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, base+"/console/providers"); err != nil {
		t.Fatal(err)
	}
	if loc := location(); !strings.HasPrefix(loc, "/console/login") {
		t.Errorf("after signing out the browser is on %s", loc)
	}
	clean("sign out")
}

func containsAny(lines []string, subs ...string) bool {
	for _, l := range lines {
		for _, s := range subs {
			if strings.Contains(l, s) {
				return true
			}
		}
	}
	return false
}
