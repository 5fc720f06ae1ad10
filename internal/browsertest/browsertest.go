// Package browsertest drives a headless Chromium from tests through the
// DevTools protocol over a pipe (--remote-debugging-pipe): no port, no
// websocket and no dependency beyond the browser itself. A Page records
// what a test must not see: console errors, uncaught exceptions, failed
// loads and Content-Security-Policy violations.
package browsertest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv names the environment variable that makes a missing browser
// a failure instead of a skip; CI sets it to 1.
const RequireEnv = "VEIL_REQUIRE_BROWSER"

// Find returns the Chromium to run: $VEIL_CHROMIUM, or the first of
// chromium, chromium-browser, google-chrome and google-chrome-stable on
// the PATH.
func Find() (string, bool) {
	if p := os.Getenv("VEIL_CHROMIUM"); p != "" {
		return p, true
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// Require returns the Chromium to run, or skips t when there is none,
// unless VEIL_REQUIRE_BROWSER=1, when it fails t.
func Require(t testing.TB) string {
	t.Helper()
	p, ok := Find()
	if ok {
		return p
	}
	msg := "no Chromium found (chromium on the PATH or VEIL_CHROMIUM); scripts/setup.sh installs Debian's chromium"
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s, and %s=1 requires it", msg, RequireEnv)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, RequireEnv)
	return ""
}

// Browser is a running headless Chromium.
type Browser struct {
	cmd *exec.Cmd
	w   *os.File // our end of the browser's fd 3: commands
	r   *os.File // our end of the browser's fd 4: answers and events

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan message
	pages   map[string]*Page // by session ID
	closed  chan struct{}
	readErr error
}

// message is one DevTools protocol message, command or answer or event.
type message struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    any             `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// incoming is a message as read, with its params raw.
type incoming struct {
	message
	RawParams json.RawMessage `json:"params,omitempty"`
}

// Start runs a headless Chromium for the test; it is stopped and its
// profile removed when the test ends.
func Start(t testing.TB, path string) *Browser {
	t.Helper()
	profile := t.TempDir()
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--no-default-browser-check", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
		"--hide-scrollbars", "--mute-audio", "--force-color-profile=srgb", "--font-render-hinting=none",
		"--remote-debugging-pipe", "--user-data-dir=" + profile, "about:blank",
	}
	// The context kills the browser if it does not close when asked.
	procCtx, kill := context.WithCancel(context.Background())
	cmd := exec.CommandContext(procCtx, path, args...) //nolint:gosec // G204: the test's own Chromium, from the PATH or VEIL_CHROMIUM
	cmd.WaitDelay = 5 * time.Second
	cmd.ExtraFiles = []*os.File{cmdR, outW} // fd 3 and fd 4
	stderr := &lockedTail{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		kill()
		t.Fatalf("start %s: %v", path, err)
	}
	_ = cmdR.Close()
	_ = outW.Close()
	b := &Browser{cmd: cmd, w: cmdW, r: outR, pending: map[int64]chan message{}, pages: map[string]*Page{},
		closed: make(chan struct{})}
	go b.read()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = b.call(ctx, "", "Browser.close", nil)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			kill()
			<-done
		}
		kill()
		_ = b.w.Close()
		_ = b.r.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := b.call(ctx, "", "Browser.getVersion", nil); err != nil {
		t.Fatalf("chromium did not answer: %v\n%s", err, stderr.String())
	}
	return b
}

// read dispatches the browser's messages until the pipe closes.
func (b *Browser) read() {
	br := bufio.NewReaderSize(b.r, 1<<20)
	var err error
	for {
		var raw []byte
		raw, err = br.ReadBytes(0)
		if err != nil {
			break
		}
		var m incoming
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				delete(b.pending, m.ID)
				ch <- m.message
			}
		} else if p := b.pages[m.SessionID]; p != nil {
			p.event(m.Method, m.RawParams)
		}
		b.mu.Unlock()
	}
	b.mu.Lock()
	b.readErr = err
	b.mu.Unlock()
	close(b.closed)
}

// call sends a command (to a page's session, or the browser's with "")
// and waits for its answer.
func (b *Browser) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	ch := make(chan message, 1)
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	raw, err := json.Marshal(message{ID: id, SessionID: session, Method: method, Params: params})
	if err != nil {
		return nil, fmt.Errorf("browsertest: %s: %w", method, err)
	}
	if _, err := b.w.Write(append(raw, 0)); err != nil {
		return nil, fmt.Errorf("browsertest: %s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return nil, fmt.Errorf("browsertest: %s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-b.closed:
		return nil, fmt.Errorf("browsertest: %s: the browser closed its pipe: %w", method, b.readErr)
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return nil, fmt.Errorf("browsertest: %s: %w", method, ctx.Err())
	}
}

// Page is one tab, attached with its own session.
type Page struct {
	b       *Browser
	session string

	// Guarded by b.mu, as events arrive under it.
	problems []string
	loads    int
	loaded   chan struct{}
}

// NewPage opens a tab of width by height CSS pixels and enables the
// domains that report problems.
func (b *Browser) NewPage(ctx context.Context, width, height int) (*Page, error) {
	res, err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"})
	if err != nil {
		return nil, err
	}
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := json.Unmarshal(res, &target); err != nil {
		return nil, fmt.Errorf("browsertest: create target: %w", err)
	}
	res, err = b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	if err != nil {
		return nil, err
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(res, &att); err != nil {
		return nil, fmt.Errorf("browsertest: attach: %w", err)
	}
	p := &Page{b: b, session: att.SessionID, loaded: make(chan struct{}, 16)}
	b.mu.Lock()
	b.pages[p.session] = p
	b.mu.Unlock()
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable", "Audits.enable"} {
		if _, err := p.call(ctx, m, nil); err != nil {
			return nil, err
		}
	}
	if _, err := p.call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height,
		"deviceScaleFactor": 1, "mobile": false}); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Page) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	return p.b.call(ctx, p.session, method, params)
}

// event records the events a test cares about; it runs under b.mu.
func (p *Page) event(method string, params json.RawMessage) {
	switch method {
	case "Page.loadEventFired":
		p.loads++
		select {
		case p.loaded <- struct{}{}:
		default:
		}
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(params, &e) == nil && (e.Type == "error" || e.Type == "assert" || e.Type == "warning") {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, fmt.Sprint(a.Value)+a.Description)
			}
			p.problems = append(p.problems, "console."+e.Type+": "+strings.Join(parts, " "))
		}
	case "Runtime.exceptionThrown":
		var e struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(params, &e)
		p.problems = append(p.problems, "exception: "+e.Details.Text+" "+e.Details.Exception.Description)
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Source string `json:"source"`
				Level  string `json:"level"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		if json.Unmarshal(params, &e) == nil && (e.Entry.Level == "error" || e.Entry.Level == "warning") {
			p.problems = append(p.problems, "log "+e.Entry.Source+" "+e.Entry.Level+": "+e.Entry.Text+" "+e.Entry.URL)
		}
	case "Audits.issueAdded":
		var e struct {
			Issue struct {
				Code    string          `json:"code"`
				Details json.RawMessage `json:"details"`
			} `json:"issue"`
		}
		if json.Unmarshal(params, &e) == nil && e.Issue.Code == "ContentSecurityPolicyIssue" {
			p.problems = append(p.problems, "csp violation: "+string(e.Issue.Details))
		}
	}
}

// Problems returns what the page reported so far and forgets it.
func (p *Page) Problems() []string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	out := p.problems
	p.problems = nil
	return out
}

// Navigate loads url and waits for its load event.
func (p *Page) Navigate(ctx context.Context, url string) error {
	return p.waitLoad(ctx, func() error {
		res, err := p.call(ctx, "Page.navigate", map[string]any{"url": url})
		if err != nil {
			return err
		}
		var nav struct {
			ErrorText string `json:"errorText"`
		}
		if json.Unmarshal(res, &nav) == nil && nav.ErrorText != "" {
			return fmt.Errorf("browsertest: navigate %s: %s", url, nav.ErrorText)
		}
		return nil
	})
}

// Submit runs expr, which submits a form, and waits for the page it
// leads to.
func (p *Page) Submit(ctx context.Context, expr string) error {
	return p.waitLoad(ctx, func() error { return p.Eval(ctx, expr, nil) })
}

// waitLoad runs act and waits for the load event it causes.
func (p *Page) waitLoad(ctx context.Context, act func() error) error {
	p.b.mu.Lock()
	for len(p.loaded) > 0 {
		<-p.loaded
	}
	p.b.mu.Unlock()
	if err := act(); err != nil {
		return err
	}
	select {
	case <-p.loaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("browsertest: waiting for the page to load: %w", ctx.Err())
	}
}

// Eval evaluates a JavaScript expression in the page (DevTools'
// evaluation, which the page's CSP does not govern) and decodes its value
// into out, unless out is nil.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	res, err := p.call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		return err
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return fmt.Errorf("browsertest: evaluate: %w", err)
	}
	if r.Exception != nil {
		return fmt.Errorf("browsertest: evaluate %q: %s %s", expr, r.Exception.Text, r.Exception.Exception.Description)
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Result.Value, out); err != nil {
		return fmt.Errorf("browsertest: evaluate %q: %w", expr, err)
	}
	return nil
}

// Screenshot captures the whole page, beyond the viewport, as PNG.
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	res, err := p.call(ctx, "Page.getLayoutMetrics", nil)
	if err != nil {
		return nil, err
	}
	var lm struct {
		Content struct {
			Width  float64 `json:"width"`
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	if err := json.Unmarshal(res, &lm); err != nil {
		return nil, fmt.Errorf("browsertest: layout metrics: %w", err)
	}
	res, err = p.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": lm.Content.Width, "height": lm.Content.Height, "scale": 1}})
	if err != nil {
		return nil, err
	}
	var shot struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(res, &shot); err != nil {
		return nil, fmt.Errorf("browsertest: screenshot: %w", err)
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		return nil, fmt.Errorf("browsertest: screenshot: %w", err)
	}
	if len(png) == 0 {
		return nil, errors.New("browsertest: empty screenshot")
	}
	return png, nil
}

// lockedTail keeps the last 8 KiB the browser wrote to stdout and stderr,
// for the message when it does not start.
type lockedTail struct {
	mu  sync.Mutex
	buf []byte
}

func (l *lockedTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 8<<10 {
		l.buf = l.buf[len(l.buf)-8<<10:]
	}
	return len(p), nil
}

func (l *lockedTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}
