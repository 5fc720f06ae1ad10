// Package admin serves veil's admin listener: liveness, readiness,
// Prometheus metrics and token-protected /admin endpoints, each handler
// built from the narrow interfaces it needs.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
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
	// Token guards /admin/*; when zero those endpoints are refused.
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
}

// Endpoint is one /admin route, served after the admin token is checked.
type Endpoint struct {
	// Method is the HTTP method, such as GET or POST.
	Method string
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
	tokenHash [32]byte
	hasToken  bool
	ready     func() error
	status    func() any
	metrics   fasthttp.RequestHandler
	log       *zap.Logger
	endpoints []Endpoint
}

// New creates the admin handler.
func New(o Options) *Server {
	s := &Server{ready: o.Ready, status: o.Status, log: o.Log, endpoints: o.Endpoints}
	if !o.Token.IsZero() {
		s.tokenHash = sha256.Sum256([]byte(o.Token.Reveal()))
		s.hasToken = true
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if o.Registry != nil {
		s.metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{}))
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
	case strings.HasPrefix(path, "/admin/"):
		if !s.authorized(ctx) {
			return
		}
		s.admin(ctx, path)
	default:
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such admin endpoint")
	}
}

func (s *Server) admin(ctx *fasthttp.RequestCtx, path string) {
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
		query, _ := url.ParseQuery(string(ctx.URI().QueryString()))
		// A context of its own, ended when the handler returns: fasthttp
		// reuses the RequestCtx afterwards, so a context derived from it
		// (its timers and watchers) must not outlive the call.
		hctx, cancel := context.WithCancel(context.Background())
		status, doc := e.Handle(hctx, Call{Param: param, Query: query, Body: ctx.PostBody()})
		cancel()
		if method != fasthttp.MethodGet {
			s.log.Info("admin action", zap.String("method", method), zap.String("path", path),
				zap.Int("status", status), zap.String("remote", ctx.RemoteIP().String()))
		}
		writeJSON(ctx, status, doc)
		return
	}
	writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such admin endpoint")
}

// authorized checks the admin bearer token in constant time and answers
// 401 or 403 itself when it fails.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	if !s.hasToken {
		writeError(ctx, fasthttp.StatusForbidden, "admin_disabled", "no admin token is configured; /admin endpoints are disabled")
		return false
	}
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(string(h[:len(prefix)]), prefix) {
		s.log.Warn("admin authentication failed", zap.String("reason", "missing token"), zap.String("remote", ctx.RemoteIP().String()))
		writeError(ctx, fasthttp.StatusUnauthorized, "invalid_admin_token", "send Authorization: Bearer <admin token>")
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(string(h[len(prefix):]))))
	if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) != 1 {
		s.log.Warn("admin authentication failed", zap.String("reason", "wrong token"), zap.String("remote", ctx.RemoteIP().String()))
		writeError(ctx, fasthttp.StatusUnauthorized, "invalid_admin_token", "the admin token is wrong")
		return false
	}
	return true
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
