// Package app assembles a running veil from a Config: it resolves secrets,
// builds providers, policy, proxy and admin handlers, owns both listeners
// and drains them on shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/proxy"
)

// Options are what an App needs besides its Config.
type Options struct {
	// Log receives access lines and operational logs.
	Log *zap.Logger
	// Version is reported on /admin/status.
	Version string
	// Resolve reads secret references; nil means keys.Resolve.
	Resolve func(ref string) (keys.Secret, error)
}

// App is one veil process: a proxy listener and an admin listener.
type App struct {
	cfg       *config.Config
	log       *zap.Logger
	version   string
	started   time.Time
	metrics   *metrics.Metrics
	health    *health.Registry
	proxy     *proxy.Server
	providers []*provider.Provider
	proxySrv  *fasthttp.Server
	adminSrv  *fasthttp.Server
	proxyLn   net.Listener
	adminLn   net.Listener
	serving   sync.WaitGroup
	draining  atomic.Bool
	shutdown  sync.Once
}

// New builds an App from a validated config.
func New(cfg *config.Config, o Options) (*App, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	resolve := o.Resolve
	if resolve == nil {
		resolve = keys.Resolve
	}
	a := &App{cfg: cfg, log: o.Log, version: o.Version, metrics: metrics.New()}

	for _, pc := range cfg.Providers {
		key, err := resolve(string(pc.APIKey))
		if err != nil {
			return nil, fmt.Errorf("provider %s: api_key: %w", pc.Name, err)
		}
		p, err := provider.New(pc, key, provider.Options{
			MaxResponseBytes: cfg.Limits.MaxResponseBytes,
			ReadBufferSize:   cfg.Limits.MaxHeaderBytes,
		})
		if err != nil {
			return nil, err
		}
		a.log.Info("provider configured", zap.String("provider", pc.Name), zap.String("type", pc.Type),
			zap.String("base_url", pc.BaseURL), zap.Object("platform_key", key))
		a.providers = append(a.providers, p)
	}
	pol, err := policy.New(a.providers, cfg.Routing.DefaultProvider)
	if err != nil {
		return nil, fmt.Errorf("routing: %w", err)
	}
	creds := make([]keys.Credential, 0, len(cfg.Callers))
	for _, c := range cfg.Callers {
		var hash [32]byte
		if c.TokenSHA256 != "" {
			if hash, err = keys.ParseTokenHash(c.TokenSHA256); err != nil {
				return nil, fmt.Errorf("caller %s: token_sha256: %w", c.Name, err)
			}
		} else {
			tok, err := resolve(string(c.Token))
			if err != nil {
				return nil, fmt.Errorf("caller %s: token: %w", c.Name, err)
			}
			hash = keys.HashToken(tok.Reveal())
		}
		creds = append(creds, keys.Credential{Name: c.Name, Hash: hash})
	}
	auth, err := keys.NewAuthenticator(creds)
	if err != nil {
		return nil, fmt.Errorf("callers: %w", err)
	}
	names := make([]string, len(a.providers))
	for i, p := range a.providers {
		names[i] = p.Name()
	}
	a.health = health.NewRegistry(names...)
	a.proxy, err = proxy.New(proxy.Options{Limits: cfg.Limits, Auth: auth, Policy: pol, Metrics: a.metrics, Log: a.log, Health: a.health})
	if err != nil {
		return nil, err
	}
	var adminToken keys.Secret
	if !cfg.Admin.Token.IsZero() {
		if adminToken, err = resolve(string(cfg.Admin.Token)); err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
	}
	adm := admin.New(admin.Options{
		Token:    adminToken,
		Ready:    a.ready,
		Status:   a.status,
		Registry: a.metrics.Registry,
		Log:      a.log,
	})

	lim := cfg.Limits
	a.proxySrv = &fasthttp.Server{
		Handler:                       a.proxy.Handle,
		ErrorHandler:                  proxy.HandleServerError,
		Name:                          "veil",
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		ReadBufferSize:                lim.MaxHeaderBytes,
		WriteBufferSize:               16 << 10,
		ReadTimeout:                   lim.ReadTimeout,
		WriteTimeout:                  lim.WriteTimeout,
		IdleTimeout:                   lim.IdleTimeout,
		MaxRequestBodySize:            lim.MaxBodyBytes,
		DisablePreParseMultipartForm:  true,
		CloseOnShutdown:               true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        fasthttpLogger{a.log},
	}
	a.adminSrv = &fasthttp.Server{
		Handler:               adm.Handle,
		Name:                  "veil-admin",
		NoDefaultServerHeader: true,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           time.Minute,
		MaxRequestBodySize:    1 << 20,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{a.log},
	}
	return a, nil
}

// Start opens both listeners and serves them in the background.
func (a *App) Start() error {
	var err error
	if a.proxyLn, err = net.Listen("tcp", a.cfg.Listen.Proxy); err != nil {
		return fmt.Errorf("proxy listener: %w", err)
	}
	if a.adminLn, err = net.Listen("tcp", a.cfg.Listen.Admin); err != nil {
		_ = a.proxyLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	a.started = time.Now()
	a.serve(a.proxySrv, a.proxyLn, "proxy")
	a.serve(a.adminSrv, a.adminLn, "admin")
	a.log.Info("veil listening", zap.String("proxy", a.ProxyAddr()), zap.String("admin", a.AdminAddr()),
		zap.String("version", a.version))
	return nil
}

func (a *App) serve(srv *fasthttp.Server, ln net.Listener, name string) {
	a.serving.Add(1)
	go func() {
		defer a.serving.Done()
		if err := srv.Serve(ln); err != nil {
			a.log.Error("listener stopped", zap.String("listener", name), zap.Error(err))
		}
	}()
}

// ProxyAddr is the proxy listener's address once started.
func (a *App) ProxyAddr() string { return a.proxyLn.Addr().String() }

// AdminAddr is the admin listener's address once started.
func (a *App) AdminAddr() string { return a.adminLn.Addr().String() }

// Metrics exposes the collectors, for tests and the demo report.
func (a *App) Metrics() *metrics.Metrics { return a.metrics }

// Shutdown drains veil: readiness fails at once, the proxy listener stops
// accepting, in-flight requests and streams finish until ctx ends, then
// the admin listener closes.
func (a *App) Shutdown(ctx context.Context) error {
	var err error
	a.shutdown.Do(func() {
		a.draining.Store(true)
		a.log.Info("draining")
		if e := a.proxySrv.ShutdownWithContext(ctx); e != nil {
			err = fmt.Errorf("proxy drain: %w", e)
		}
		streamsDone := make(chan struct{})
		go func() { a.proxy.Wait(); close(streamsDone) }()
		select {
		case <-streamsDone:
		case <-ctx.Done():
			err = errors.Join(err, fmt.Errorf("streams still open: %w", ctx.Err()))
		}
		if e := a.adminSrv.Shutdown(); e != nil {
			err = errors.Join(err, fmt.Errorf("admin shutdown: %w", e))
		}
		a.serving.Wait()
		for _, p := range a.providers {
			p.Close()
		}
		a.log.Info("stopped")
	})
	return err
}

// ready is the readiness predicate: serving and not draining.
func (a *App) ready() error {
	if a.draining.Load() {
		return errors.New("draining")
	}
	if a.started.IsZero() {
		return errors.New("starting")
	}
	return nil
}

// Status is the document served on /admin/status.
type Status struct {
	Version   string            `json:"version"`
	Uptime    string            `json:"uptime"`
	Draining  bool              `json:"draining"`
	Listen    config.Listen     `json:"listen"`
	Providers []ProviderStatus  `json:"providers"`
	Callers   []string          `json:"callers"`
	Health    []health.Snapshot `json:"health"`
}

// ProviderStatus describes one configured provider, with its key shown only
// as a fingerprint.
type ProviderStatus struct {
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	BaseURL        string   `json:"base_url"`
	Models         []string `json:"models,omitempty"`
	KeyFingerprint string   `json:"key_fingerprint,omitempty"`
	Default        bool     `json:"default"`
}

func (a *App) status() any {
	st := Status{
		Version:  a.version,
		Uptime:   time.Since(a.started).Round(time.Second).String(),
		Draining: a.draining.Load(),
		Listen:   config.Listen{Proxy: a.ProxyAddr(), Admin: a.AdminAddr()},
	}
	def := a.cfg.Routing.DefaultProvider
	for i, pc := range a.cfg.Providers {
		ps := ProviderStatus{Name: pc.Name, Type: pc.Type, BaseURL: pc.BaseURL, Models: pc.Models,
			Default: pc.Name == def || (def == "" && i == 0)}
		if c := a.providers[i].Platform(); c != nil {
			ps.KeyFingerprint = c.Fingerprint()
		}
		st.Providers = append(st.Providers, ps)
	}
	for _, c := range a.cfg.Callers {
		st.Callers = append(st.Callers, c.Name)
	}
	st.Health = a.health.Snapshot()
	return st
}

// fasthttpLogger sends fasthttp's own messages to zap at debug level: they
// are connection-level noise (resets, timeouts) in normal operation.
type fasthttpLogger struct{ log *zap.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	if ce := l.log.Check(zap.DebugLevel, "fasthttp"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, args...)))
	}
}
