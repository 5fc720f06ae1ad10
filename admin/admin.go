// Package admin serves veil's admin listener: liveness, readiness,
// Prometheus metrics and token-protected /admin endpoints, each handler
// built from the narrow interfaces it needs.
package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"go.uber.org/zap"

	"github.com/wedsync/veil/keys"
)

// Options configure the admin handler.
type Options struct {
	// Operators are the named admin tokens that guard /admin/*; with none
	// (and no Token) those endpoints are refused.
	Operators *Operators
	// Token, used only when Operators is nil, is one admin token: the
	// operator LegacyOperator with RoleAdmin.
	Token keys.Secret
	// Ready reports nil when veil can serve traffic.
	Ready func() error
	// Status returns the document served on /admin/status.
	Status func() any
	// Registry is served on /metrics.
	Registry *prometheus.Registry
	// Log receives one audit line per admin action and refusal.
	Log *zap.Logger
	// Endpoints are the /admin routes besides /admin/status.
	Endpoints []Endpoint
	// Console, when set, serves /console and everything under /console/;
	// it does its own authentication (package console).
	Console http.Handler
}

// Endpoint is one /admin route, served after the admin token is checked
// and its operator's role allows the call.
type Endpoint struct {
	// Method is the HTTP method, such as GET or POST.
	Method string
	// Role is the least role that may call the endpoint. Zero means
	// RoleViewer for GET and RoleAdmin for any other method, so an
	// endpoint that changes something is an admin's unless it says
	// otherwise.
	Role Role
	// Path is exact ("/admin/keys") or has one "{}" segment that matches
	// any single path segment ("/admin/suppliers/{}/keys/refresh"); the
	// matched segment is passed to Handle.
	Path string
	// Handle answers with a status and a JSON document.
	Handle HandlerFunc
}

// HandlerFunc answers one /admin call with a status and a JSON document.
type HandlerFunc func(ctx context.Context, c Call) (int, any)

// Call is what an Endpoint's handler gets of the request.
type Call struct {
	// Param is the path segment matched by "{}".
	Param string
	// Query is the parsed query string.
	Query url.Values
	// Body is the request body.
	Body []byte
	// Operator is who made the call, for the handler's audit lines.
	Operator Operator
}

// LeastRole is the least role that may call e: Role, or its default for
// the method.
func (e Endpoint) LeastRole() Role {
	switch {
	case e.Role != 0:
		return e.Role
	case e.Method == fasthttp.MethodGet:
		return RoleViewer
	default:
		return RoleAdmin
	}
}

func (e Endpoint) match(method, path string) (string, bool) {
	if method != e.Method {
		return "", false
	}
	before, after, wild := strings.Cut(e.Path, "{}")
	if !wild {
		return "", path == e.Path
	}
	if !strings.HasPrefix(path, before) || !strings.HasSuffix(path, after) || len(path) <= len(before)+len(after) {
		return "", false
	}
	param := path[len(before) : len(path)-len(after)]
	if strings.Contains(param, "/") {
		return "", false
	}
	return param, true
}

// Server is the admin listener's handler.
type Server struct {
	operators *Operators
	ready     func() error
	status    func() any
	metrics   fasthttp.RequestHandler
	log       *zap.Logger
	endpoints []Endpoint
	console   fasthttp.RequestHandler
}

// New creates the admin handler.
func New(o Options) *Server {
	s := &Server{operators: o.Operators, ready: o.Ready, status: o.Status, log: o.Log, endpoints: o.Endpoints}
	if s.operators == nil && !o.Token.IsZero() {
		// One token cannot clash with itself, so this cannot fail.
		s.operators, _ = NewOperators([]OperatorToken{{Name: LegacyOperator, Role: RoleAdmin, Token: o.Token}})
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if o.Registry != nil {
		s.metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{}))
	}
	if o.Console != nil {
		s.console = fasthttpadaptor.NewFastHTTPHandler(o.Console)
	}
	return s
}

// Handle is the fasthttp handler of the admin listener.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch {
	case path == "/healthz":
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	case path == "/readyz":
		if s.ready != nil {
			if err := s.ready(); err != nil {
				writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
				return
			}
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ready"})
	case path == "/metrics" && s.metrics != nil:
		s.metrics(ctx)
	case (path == "/console" || strings.HasPrefix(path, "/console/")) && s.console != nil:
		s.console(ctx)
	case strings.HasPrefix(path, "/admin/"):
		op, ok := s.authenticate(ctx)
		if !ok {
			return
		}
		s.admin(ctx, path, op)
	default:
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such admin endpoint")
	}
}

func (s *Server) admin(ctx *fasthttp.RequestCtx, path string, op Operator) {
	method := string(ctx.Method())
	if path == "/admin/status" && method == fasthttp.MethodGet && s.status != nil {
		writeJSON(ctx, fasthttp.StatusOK, s.status())
		return
	}
	for _, e := range s.endpoints {
		param, ok := e.match(method, path)
		if !ok {
			continue
		}
		if least := e.LeastRole(); !op.Role.Allows(least) {
			s.log.Warn("admin call refused", append(op.Fields(), zap.String("method", method), zap.String("path", path),
				zap.Stringer("needs", least), zap.String("remote", ctx.RemoteIP().String()))...)
			writeError(ctx, fasthttp.StatusForbidden, "forbidden_role",
				fmt.Sprintf("%s %s needs the %s role; %s has the %s role", method, e.Path, least, op.Name, op.Role))
			return
		}
		query, _ := url.ParseQuery(string(ctx.URI().QueryString()))
		// A context of its own, ended when the handler returns: fasthttp
		// reuses the RequestCtx afterwards, so a context derived from it
		// (its timers and watchers) must not outlive the call.
		hctx, cancel := context.WithCancel(context.Background())
		status, doc := e.Handle(hctx, Call{Param: param, Query: query, Body: ctx.PostBody(), Operator: op})
		cancel()
		if method != fasthttp.MethodGet {
			s.log.Info("admin action", append(op.Fields(), zap.String("method", method), zap.String("path", path),
				zap.Int("status", status), zap.String("remote", ctx.RemoteIP().String()))...)
		}
		writeJSON(ctx, status, doc)
		return
	}
	writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such admin endpoint")
}

// authenticate finds the operator of the admin bearer token, comparing it
// with every configured token in constant time, and answers 401 or 403
// itself when there is none.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (Operator, bool) {
	if s.operators.Len() == 0 {
		writeError(ctx, fasthttp.StatusForbidden, "admin_disabled", "no admin token is configured; /admin endpoints are disabled")
		return Operator{}, false
	}
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(string(h[:len(prefix)]), prefix) {
		s.log.Warn("admin authentication failed", zap.String("reason", "missing token"), zap.String("method", string(ctx.Method())),
			zap.String("path", string(ctx.Path())), zap.String("remote", ctx.RemoteIP().String()))
		writeError(ctx, fasthttp.StatusUnauthorized, "invalid_admin_token", "send Authorization: Bearer <admin token>")
		return Operator{}, false
	}
	op, ok := s.operators.Lookup(strings.TrimSpace(string(h[len(prefix):])))
	if !ok {
		s.log.Warn("admin authentication failed", zap.String("reason", "wrong token"), zap.String("method", string(ctx.Method())),
			zap.String("path", string(ctx.Path())), zap.String("remote", ctx.RemoteIP().String()))
		writeError(ctx, fasthttp.StatusUnauthorized, "invalid_admin_token", "the admin token is wrong")
		return Operator{}, false
	}
	return op, true
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "internal", "could not encode the answer")
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

func writeError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"code": code, "message": msg}})
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
