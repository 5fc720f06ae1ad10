package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const maxNameLen = 64

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "console"}
)

// Validate checks the whole configuration and reports every problem at
// once: nil, a single *FieldError or several joined with errors.Join. Each
// error names the field path and, for a parsed Config, the source line.
//
// Validate does not apply defaults, so zero sizes and timeouts (other than
// limits.write_timeout) are errors; call ApplyDefaults first on a Config
// built in code. Secret references are checked for syntax only.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.listen()
	v.admin()
	v.limits()
	v.log()
	v.providers()
	v.routing()
	v.callers()
	v.keys()
	v.usage()
	v.tiers()
	v.routes()
	v.seasons()
	v.alerts()
	v.cache()
	v.similarity()
	v.tracing()
	v.loadAware()
	return errors.Join(v.errs...)
}

type validator struct {
	c    *Config
	errs []error
}

func (v *validator) fail(path, format string, args ...any) {
	fe := &FieldError{Source: v.c.source, Field: path, Msg: fmt.Sprintf(format, args...)}
	if env, ok := v.c.envs[path]; ok {
		fe.Env = env
	} else {
		fe.Line = v.c.lineOf(path)
	}
	v.errs = append(v.errs, fe)
}

// lineOf returns the line of path or of its nearest recorded ancestor.
func (c *Config) lineOf(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (v *validator) listen() {
	l := v.c.Listen
	proxyOK := v.addr("listen.proxy", l.Proxy)
	adminOK := v.addr("listen.admin", l.Admin)
	if proxyOK && adminOK && l.Proxy == l.Admin && !strings.HasSuffix(l.Admin, ":0") {
		v.fail("listen.admin", "must differ from listen.proxy (both are %q)", l.Admin)
	}
}

// addr checks a host:port listen address and reports whether it is valid.
func (v *validator) addr(path, addr string) bool {
	const want = "must be host:port, such as 127.0.0.1:8080"
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.fail(path, "%s: got %q", want, addr)
		return false
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.fail(path, "%s: port %q is not a number between 0 and 65535", want, port)
		return false
	}
	if strings.ContainsFunc(host, isSpaceOrControl) || strings.Contains(host, ":") && net.ParseIP(host) == nil {
		v.fail(path, "%s: invalid host %q", want, host)
		return false
	}
	return true
}

func (v *validator) admin() {
	a := v.c.Admin
	names := map[string]int{}
	tokens := map[SecretRef]string{}
	if !a.Token.IsZero() {
		if err := a.Token.Validate(); err != nil {
			v.fail("admin.token", "%v", err)
		}
		tokens[a.Token] = "admin.token"
	}
	for i, t := range a.Tokens {
		path := fmt.Sprintf("admin.tokens[%d]", i)
		if t.Name == LegacyAdminName && !a.Token.IsZero() {
			v.fail(path+".name", "%q is the name of admin.token; name this operator otherwise or drop admin.token", t.Name)
		} else {
			v.uniqueName(path+".name", t.Name, i, callerNames, names, "duplicate operator name %q, also used by admin.tokens[%d]")
		}
		if !slices.Contains(adminRoles, t.Role) {
			v.fail(path+".role", "must be one of %s, got %q", strings.Join(adminRoles, ", "), t.Role)
		}
		switch err := t.Token.Validate(); {
		case t.Token.IsZero():
			v.fail(path+".token", "is required")
		case err != nil:
			v.fail(path+".token", "%v", err)
		default:
			if first, dup := tokens[t.Token]; dup {
				v.fail(path+".token", "same token as %s; every operator needs its own token", first)
			} else {
				tokens[t.Token] = path
			}
		}
	}
	if len(a.Operators()) > 0 {
		return
	}
	host, _, err := net.SplitHostPort(v.c.Listen.Admin)
	if err == nil && !isLoopback(host) {
		v.fail("admin.token", "is required because listen.admin %q is not a loopback address (or name operators in admin.tokens)", v.c.Listen.Admin)
	}
}

// adminRoles are the roles an admin token may have.
var adminRoles = []string{AdminRoleViewer, AdminRoleOperator, AdminRoleAdmin}

// isLoopback reports whether host is localhost or a loopback IP address.
// An empty host means all interfaces and is not loopback.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) limits() {
	l := v.c.Limits
	v.size("limits.max_body_bytes", l.MaxBodyBytes)
	v.size("limits.max_header_bytes", l.MaxHeaderBytes)
	v.timeout("limits.read_timeout", l.ReadTimeout, false)
	v.timeout("limits.write_timeout", l.WriteTimeout, true)
	v.timeout("limits.idle_timeout", l.IdleTimeout, false)
	v.timeout("limits.request_timeout", l.RequestTimeout, false)
	v.timeout("limits.stream_idle_timeout", l.StreamIdleTimeout, false)
	v.timeout("limits.keepalive_interval", l.KeepAliveInterval, false)
	v.size("limits.max_event_bytes", l.MaxEventBytes)
	v.size("limits.max_response_bytes", l.MaxResponseBytes)
	v.size("limits.breaker_failures", l.BreakerFailures)
	v.size("limits.supplier_in_flight", l.SupplierInFlight)
	if l.MaxInFlight < 0 {
		v.fail("limits.max_in_flight", "must not be negative (0 means no cap), got %d", l.MaxInFlight)
	}
	v.timeout("limits.ttft_timeout", l.TTFTTimeout, false)
	v.timeout("limits.attempt_timeout", l.AttemptTimeout, false)
	v.timeout("limits.retry_backoff", l.RetryBackoff, false)
	v.timeout("limits.max_retry_wait", l.MaxRetryWait, false)
	if l.Retries() < 0 {
		v.fail("limits.max_retries", "must not be negative, got %d", l.Retries())
	}
	v.timeout("limits.breaker_cooldown", l.BreakerCooldown, false)
	v.timeout("limits.breaker_window", l.BreakerWindow, false)
	if l.BreakerMinRequests <= 0 {
		v.fail("limits.breaker_min_requests", "must be positive, got %d", l.BreakerMinRequests)
	}
	if r := l.ErrorRate(); !(r >= 0 && r <= 1) {
		v.fail("limits.breaker_error_rate", "must be between 0 and 1 (0 turns the trigger off), got %v", r)
	}
	v.timeout("limits.probe_interval", l.ProbeInterval, false)
	v.size("limits.probe_failures", l.ProbeFailures)
}

func (v *validator) size(path string, n int) {
	if n <= 0 {
		v.fail(path, "must be a positive number of bytes, got %d", n)
	}
}

func (v *validator) timeout(path string, d time.Duration, zeroOK bool) {
	switch {
	case d < 0:
		v.fail(path, "must not be negative, got %s", d)
	case d == 0 && !zeroOK:
		v.fail(path, "must be positive, got 0s")
	}
}

func (v *validator) log() {
	if !slices.Contains(logLevels, v.c.Log.Level) {
		v.fail("log.level", "must be one of %s, got %q", strings.Join(logLevels, ", "), v.c.Log.Level)
	}
	if !slices.Contains(logFormats, v.c.Log.Format) {
		v.fail("log.format", "must be one of %s, got %q", strings.Join(logFormats, ", "), v.c.Log.Format)
	}
}

func (v *validator) providers() {
	if len(v.c.Providers) == 0 {
		v.fail("providers", "at least one provider is required")
		return
	}
	names := map[string]int{}
	for i, p := range v.c.Providers {
		path := fmt.Sprintf("providers[%d]", i)
		v.uniqueName(path+".name", p.Name, i, providerNames, names, "duplicate provider name %q, also used by providers[%d]")

		supported := strings.Join(providerTypes, ", ")
		switch {
		case p.Type == "":
			v.fail(path+".type", "is required; supported types: %s", supported)
		case !slices.Contains(providerTypes, p.Type):
			v.fail(path+".type", "unsupported provider type %q; supported types: %s", p.Type, supported)
		}

		if p.BaseURL == "" {
			v.fail(path+".base_url", "is required")
		} else if err := checkBaseURL(p.BaseURL); err != nil {
			v.fail(path+".base_url", "%v", err)
		}

		switch {
		case !p.APIKey.IsZero() && len(p.APIKeys) > 0:
			v.fail(path, "set only one of api_key and api_keys")
		case len(p.APIKeys) > 0:
			for j, r := range p.APIKeys {
				v.requiredRef(fmt.Sprintf("%s.api_keys[%d]", path, j), r)
			}
		case p.APIKey.IsZero() && !p.NeedsKey():
			// A server without authentication (compat.auth: none).
		default:
			v.requiredRef(path+".api_key", p.APIKey)
		}

		models := map[string]int{}
		for j, m := range p.Models {
			mp := fmt.Sprintf("%s.models[%d]", path, j)
			switch {
			case m == "":
				v.fail(mp, "must not be empty")
			case strings.ContainsFunc(m, isSpaceOrControl):
				v.fail(mp, "model %q must not contain whitespace or control characters", m)
			default:
				if first, dup := models[m]; dup {
					v.fail(mp, "duplicate model %q, also listed at %s.models[%d]", m, path, first)
				} else {
					models[m] = j
				}
			}
		}

		if p.MaxConns <= 0 {
			v.fail(path+".max_conns", "must be positive, got %d", p.MaxConns)
		}
		v.timeout(path+".dial_timeout", p.DialTimeout, false)
		v.timeout(path+".conn_wait", p.ConnWait, false)
		if p.ProxyURL != "" && p.ProxyURL != ProxyDirect {
			if u, err := url.Parse(p.ProxyURL); err != nil || u.Scheme != "http" || u.Host == "" || u.Path != "" && u.Path != "/" {
				v.fail(path+".proxy_url", "must be an http:// proxy URL such as http://proxy.internal:3128, or %q", ProxyDirect)
			}
		}
		v.providerSpecific(path, &v.c.Providers[i])
	}
}

// checkBaseURL checks a provider base URL. Its messages do not repeat the
// URL, which could contain a password in its user information.
func checkBaseURL(s string) error {
	const want = "must be an absolute http or https URL, such as https://api.openai.com/v1"
	if strings.ContainsFunc(s, isSpaceOrControl) {
		return errors.New("must not contain whitespace or control characters")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" || u.Hostname() == "" {
		return errors.New(want)
	}
	if u.User != nil {
		return errors.New("must not contain user information; put credentials in api_key")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return errors.New("must not contain a query")
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return errors.New("must not contain a fragment")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("port %q is not a number between 1 and 65535", port)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("has an empty port")
	}
	return nil
}

func (v *validator) routing() {
	name := v.c.Routing.DefaultProvider
	if len(v.c.Providers) == 0 || name == "" && v.c.Providers[0].Name == "" {
		return // already reported
	}
	if _, ok := v.c.Provider(name); !ok {
		known := make([]string, len(v.c.Providers))
		for i, p := range v.c.Providers {
			known[i] = p.Name
		}
		v.fail("routing.default_provider", "%q does not name a provider; known providers: %s", name, strings.Join(known, ", "))
	}
}

func (v *validator) callers() {
	if len(v.c.Callers) == 0 {
		v.fail("callers", "at least one caller is required; veil never runs open")
		return
	}
	names := map[string]int{}
	tokens := map[string]int{}
	for i, cl := range v.c.Callers {
		path := fmt.Sprintf("callers[%d]", i)
		v.uniqueName(path+".name", cl.Name, i, callerNames, names, "duplicate caller name %q, also used by callers[%d]")

		var key, keyPath string
		switch hasHash, hasRef := cl.TokenSHA256 != "", !cl.Token.IsZero(); {
		case hasHash && hasRef:
			v.fail(path, "set only one of token_sha256 and token")
		case !hasHash && !hasRef:
			v.fail(path, "one of token_sha256 and token is required")
		case hasHash:
			if !isSHA256Hex(cl.TokenSHA256) {
				v.fail(path+".token_sha256", "must be 64 hexadecimal characters, the SHA-256 digest of the bearer token")
			} else {
				key, keyPath = "sha256:"+strings.ToLower(cl.TokenSHA256), path+".token_sha256"
			}
		default:
			if err := cl.Token.Validate(); err != nil {
				v.fail(path+".token", "%v", err)
			} else {
				key, keyPath = "ref:"+string(cl.Token), path+".token"
			}
		}
		if key != "" {
			if first, dup := tokens[key]; dup {
				v.fail(keyPath, "same token as callers[%d]; every caller needs its own token", first)
			} else {
				tokens[key] = i
			}
		}
	}
}

// nameRule is what the names of a list must be.
type nameRule struct {
	valid   func(string) bool
	charset string // the characters valid allows, for the message
}

// The names of providers and tiers, and of callers and workflows.
var (
	providerNames = nameRule{isProviderName, "a-z, 0-9, '_' and '-'"}
	callerNames   = nameRule{isCallerName, "A-Z, a-z, 0-9, '_', '.' and '-'"}
)

// uniqueName checks the name of item i of a list, at field: it is
// required, must follow rule and must not repeat a name in seen, where it
// is recorded. dup is the message of a repeat, formatted with the name and
// the first item's index.
func (v *validator) uniqueName(field, name string, i int, rule nameRule, seen map[string]int, dup string) {
	if name == "" {
		v.fail(field, "is required")
	} else if !rule.valid(name) {
		v.fail(field, "%q must be 1 to %d characters of %s", name, maxNameLen, rule.charset)
	} else if first, ok := seen[name]; ok {
		v.fail(field, dup, name, first)
	} else {
		seen[name] = i
	}
}

func isProviderName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func isCallerName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
