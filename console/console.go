package console

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/keys"
)

// Roles a console user may have. Viewers read every page; operators and
// admins may also roll migrations back.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// Defaults of Options.
const (
	// DefaultSessionTTL is how long a console session lasts after login.
	DefaultSessionTTL = 8 * time.Hour
	// DefaultMaxSessions bounds the sessions held at once.
	DefaultMaxSessions = 1000
	// DefaultTimeout bounds the work of one page.
	DefaultTimeout = 30 * time.Second
)

// Headers every console answer carries: no script at all, nothing from
// another origin, never framed, never stored.
const (
	contentSecurityPolicy = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; " +
		"form-action 'self'; frame-ancestors 'none'"
	// Prefix is where the console is served.
	Prefix = "/console/"
)

// StatusReader reports the document behind /admin/status: the process,
// the providers and their health.
type StatusReader interface {
	Status() admin.Status
}

// StatusFunc is a StatusReader made of a function.
type StatusFunc func() admin.Status

// Status returns f().
func (f StatusFunc) Status() admin.Status { return f() }

// SupplierReader reports what the suppliers pages show: the data behind
// /admin/suppliers/{id}, /admin/keys and /admin/explain.
type SupplierReader interface {
	// Suppliers lists the suppliers with settings of their own, an
	// override or keys held, sorted.
	Suppliers() []string
	// Supplier returns a supplier's settings in force.
	Supplier(id string) admin.SupplierSettings
	// Keys lists the suppliers' keys held, as fingerprints.
	Keys() []keys.Status
	// Explain plans a request of the supplier as the proxy would.
	Explain(ctx context.Context, supplier, workflow, model string) (admin.Explanation, error)
}

// ComparisonReader lists comparisons and reports them;
// *compare.Comparisons is one.
type ComparisonReader interface {
	admin.ComparisonLister
	admin.ComparisonReporter
}

// Options configure the console. A nil source leaves its page saying
// that it has nothing to show.
type Options struct {
	// Authenticate checks an admin token given at login and returns its
	// holder's name and role (RoleViewer, RoleOperator or RoleAdmin); nil
	// refuses every login.
	Authenticate func(token string) (name, role string, ok bool)
	// Status is the providers page's source.
	Status StatusReader
	// Suppliers is the suppliers pages' source.
	Suppliers SupplierReader
	// Migrations are read for the migrations pages; Rollback rolls one
	// back (the same call as POST /admin/migrations/{id}/rollback).
	Migrations admin.MigrationReader
	Rollback   admin.MigrationRollbacker
	// Comparisons are read for the comparisons pages.
	Comparisons ComparisonReader
	// Usage is the usage page's source: the daily aggregates.
	Usage admin.UsageQuerier
	// Audit receives logins, logouts and every action, with the
	// operator's name; nil discards them.
	Audit *zap.Logger
	// SessionTTL is how long a session lasts; zero means
	// DefaultSessionTTL. MaxSessions bounds those held; zero means
	// DefaultMaxSessions.
	SessionTTL  time.Duration
	MaxSessions int
	// SecureCookie marks the cookies Secure even when the request did not
	// come over TLS, for a console behind a proxy that terminates TLS.
	SecureCookie bool
	// Timeout bounds the work of one page; zero means DefaultTimeout.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Server serves the console; it is an http.Handler for the paths under
// Prefix. Create it with New.
type Server struct {
	o        Options
	audit    *zap.Logger
	now      func() time.Time
	sessions *sessions
	pages    map[string]*template.Template
	static   http.Handler
	mux      *http.ServeMux
}

var _ http.Handler = (*Server)(nil)

// New creates the console.
func New(o Options) (*Server, error) {
	s := &Server{o: o, audit: o.Audit, now: o.Now}
	if s.audit == nil {
		s.audit = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.o.SessionTTL <= 0 {
		s.o.SessionTTL = DefaultSessionTTL
	}
	if s.o.MaxSessions <= 0 {
		s.o.MaxSessions = DefaultMaxSessions
	}
	if s.o.Timeout <= 0 {
		s.o.Timeout = DefaultTimeout
	}
	s.sessions = newSessions(s.o.SessionTTL, s.o.MaxSessions, s.now)
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	s.static = http.StripPrefix(Prefix+"static/", http.FileServerFS(sub))
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, Prefix, http.StatusSeeOther) })
	m.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"providers", http.StatusSeeOther)
	})
	m.Handle("GET /console/static/", s.static)
	m.HandleFunc("GET /console/login", s.loginPage)
	m.HandleFunc("POST /console/login", s.login)
	m.HandleFunc("POST /console/logout", s.signedIn(s.logout))
	m.HandleFunc("GET /console/providers", s.signedIn(s.providersPage))
	m.HandleFunc("GET /console/suppliers", s.signedIn(s.suppliersPage))
	m.HandleFunc("GET /console/suppliers/{id}", s.signedIn(s.supplierPage))
	m.HandleFunc("GET /console/migrations", s.signedIn(s.migrationsPage))
	m.HandleFunc("GET /console/migrations/{id}", s.signedIn(s.migrationPage))
	m.HandleFunc("POST /console/migrations/{id}/rollback", s.signedIn(s.rollback))
	m.HandleFunc("GET /console/comparisons", s.signedIn(s.comparisonsPage))
	m.HandleFunc("GET /console/comparisons/{id}", s.signedIn(s.comparisonPage))
	m.HandleFunc("GET /console/usage", s.signedIn(s.usagePage))
	s.mux = m
}

// ServeHTTP serves one console request. Every answer carries the
// security headers, whatever its status.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin") // "no-referrer" would make forms send Origin: null
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	// A context of its own, bounded and ended with the call: behind the
	// admin listener the request's context is fasthttp's RequestCtx,
	// which is reused afterwards.
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	s.mux.ServeHTTP(w, r.WithContext(ctx))
}

// user is who a request comes from, from its session.
type user struct {
	Name string
	Role string
	// CSRF is the session's token, for the forms of the page.
	CSRF string
}

// CanAct reports whether the user may change things: operators and
// admins may, viewers may not.
func (u user) CanAct() bool { return u.Role == RoleOperator || u.Role == RoleAdmin }

// knownRole reports whether role is one the console knows.
func knownRole(role string) bool {
	return role == RoleViewer || role == RoleOperator || role == RoleAdmin
}

type userHandler func(w http.ResponseWriter, r *http.Request, u user)

// signedIn runs h for a request with a live session; without one a GET
// is sent to the login form and anything else refused with 401. A
// request that is not a GET must also come from a console page: same
// origin, and the session's CSRF token in its form.
func (s *Server) signedIn(h userHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := s.session(r)
		if sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.renderError(w, http.StatusUnauthorized, nil, "Your session has ended: sign in again.")
			return
		}
		u := user{Name: sess.name, Role: sess.role, CSRF: sess.csrf}
		if r.Method != http.MethodGet {
			if reason := s.checkForm(w, r, sess.csrf); reason != "" {
				s.audit.Warn("console request refused", zap.String("operator", u.Name), zap.String("role", u.Role),
					zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("reason", reason),
					zap.String("remote", remoteIP(r)))
				s.renderError(w, http.StatusForbidden, &u, "This form is out of date or did not come from the console ("+reason+"): reload the page and try again.")
				return
			}
		}
		h(w, r, u)
	}
}

// checkForm checks that a state-changing request came from a console
// page: not from another site, and with the session's CSRF token. It
// returns why not, or "".
func (s *Server) checkForm(w http.ResponseWriter, r *http.Request, csrf string) string {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return "sent from " + site
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		// Behind a proxy that rewrites Host the browser's host is in
		// X-Forwarded-Host; the CSRF token below is the check that counts.
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" || (u.Host != r.Host && u.Host != r.Header.Get("X-Forwarded-Host")) {
			return "foreign origin"
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return "unreadable form"
	}
	got := r.PostForm.Get("csrf")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(csrf)) != 1 {
		return "bad csrf token"
	}
	return ""
}

// Cookie names.
const (
	sessionCookie = "veil_console"
	loginCookie   = "veil_console_login"
	loginTTL      = 15 * time.Minute
)

// session returns the request's live session, or nil.
func (s *Server) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return s.sessions.get(c.Value)
}

// setCookie sets an HttpOnly, SameSite=Strict cookie for path, for ttl
// (negative: removes it). It is Secure when the request came over TLS or
// Options.SecureCookie says so.
func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, ttl time.Duration) {
	maxAge := -1
	if ttl > 0 {
		maxAge = int(ttl / time.Second)
	}
	//nolint:gosec // G124: Secure follows the connection: the admin listener is plain HTTP on loopback by default, where a browser would never send a Secure cookie back.
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true,
		Secure: s.o.SecureCookie || r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// loginPage shows the login form, with a fresh login CSRF cookie.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.session(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther) //nolint:gosec // G710: safeNext allows console paths only
		return
	}
	s.renderLogin(w, r, http.StatusOK, "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	token, err := randomToken()
	if err != nil {
		s.renderError(w, http.StatusInternalServerError, nil, "No randomness for the login form.")
		return
	}
	s.setCookie(w, r, loginCookie, token, Prefix+"login", loginTTL)
	s.render(w, status, "login", page{Title: "Sign in", Error: msg, Data: loginData{
		CSRF: token, Next: safeNext(r.FormValue("next")), Enabled: s.o.Authenticate != nil}})
}

type loginData struct {
	CSRF    string
	Next    string
	Enabled bool
}

// login checks the token of the login form and starts a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.renderLogin(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	remote := remoteIP(r)
	c, err := r.Cookie(loginCookie)
	if err != nil || r.PostForm.Get("csrf") == "" ||
		subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf"))) != 1 {
		s.audit.Warn("console login refused", zap.String("reason", "bad csrf token"), zap.String("remote", remote))
		s.renderLogin(w, r, http.StatusForbidden, "The form expired or did not come from this console: try again.")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if s.o.Authenticate == nil || token == "" {
		s.audit.Warn("console login refused", zap.String("reason", "no token"), zap.String("remote", remote))
		s.renderLogin(w, r, http.StatusUnauthorized, "That token is not accepted.")
		return
	}
	name, role, ok := s.o.Authenticate(token)
	if !ok || !knownRole(role) {
		reason := "wrong token"
		if ok {
			reason = "unknown role " + role
		}
		s.audit.Warn("console login refused", zap.String("reason", reason), zap.String("remote", remote))
		s.renderLogin(w, r, http.StatusUnauthorized, "That token is not accepted.")
		return
	}
	sess, err := s.sessions.create(strings.Clone(name), strings.Clone(role))
	if err != nil {
		s.renderError(w, http.StatusInternalServerError, nil, "The session could not be started.")
		return
	}
	s.setCookie(w, r, sessionCookie, sess.id, Prefix, s.o.SessionTTL)
	s.setCookie(w, r, loginCookie, "", Prefix+"login", -1)
	s.audit.Info("console login", zap.String("operator", sess.name), zap.String("role", sess.role), zap.String("remote", remote))
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther) //nolint:gosec // G710: safeNext allows console paths only
}

// logout ends the session.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, u user) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.drop(c.Value)
	}
	s.setCookie(w, r, sessionCookie, "", Prefix, -1)
	s.audit.Info("console logout", zap.String("operator", u.Name), zap.String("role", u.Role), zap.String("remote", remoteIP(r)))
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// safeNext is where to go after login: a console path, never another
// site.
func safeNext(next string) string {
	const home = Prefix + "providers"
	if !strings.HasPrefix(next, Prefix) || strings.ContainsAny(next, "\\\r\n") || strings.Contains(next, "//") {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || strings.Contains(u.Path, "/..") {
		return home
	}
	return next
}

// remoteIP is the request's peer address without its port.
func remoteIP(r *http.Request) string {
	addr := r.RemoteAddr
	if i := strings.LastIndexByte(addr, ':'); i > 0 && !strings.HasSuffix(addr, "]") {
		addr = addr[:i]
	}
	return strings.Trim(addr, "[]")
}

// page is what every template gets.
type page struct {
	Title string
	// Nav names the section of the navigation to mark.
	Nav   string
	User  *user
	Error string
	// Notice is a line of good news, such as a rollback done.
	Notice string
	Data   any
}

// render writes a page with its status, or a plain 500 when the
// template fails (before anything was written).
func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	t, ok := s.pages[name]
	var buf bytes.Buffer
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.audit.Error("console page failed", zap.String("page", name), zap.Error(err))
		http.Error(w, "the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError writes the error page.
func (s *Server) renderError(w http.ResponseWriter, status int, u *user, msg string) {
	s.render(w, status, "error", page{Title: http.StatusText(status), User: u, Error: msg})
}

// parsePages parses each page's template with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", base, err)
		}
		pages[base] = t
	}
	if len(pages) == 0 {
		return nil, errors.New("console: no page templates")
	}
	return pages, nil
}
