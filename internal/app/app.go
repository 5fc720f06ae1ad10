// Package app runs a veil process from a Config: it opens the long-lived
// resources, installs the runtime that package generation builds, wires the
// proxy and the admin handlers, owns both listeners, reloads and drains.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/quota"
	"github.com/wedsync/veil/similarity"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/alert"
	"github.com/wedsync/veil/auth/jwks"
	"github.com/wedsync/veil/cache"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/internal/logging"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/keys/vault"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/proxy"
	"github.com/wedsync/veil/store"
	"github.com/wedsync/veil/tracing"
	"github.com/wedsync/veil/usage"
)

// Options are what an App needs besides its Config.
type Options struct {
	// Log receives access lines and operational logs.
	Log *zap.Logger
	// Audit receives the audit trail; nil means an audit logger built from
	// the config's audit section.
	Audit *zap.Logger
	// Version is reported on /admin/status; with Commit, it labels
	// veil_build_info.
	Version string
	// Commit is the source revision the binary was built from.
	Commit string
	// Secrets resolves secret references; nil means env://, file:/// and,
	// with Vault enabled, vault://.
	Secrets keys.Source
	// UsageTap, when set, sees every usage record as it is emitted (the demo
	// report and tests), besides the configured sinks.
	UsageTap func(*usage.Record)
	// Store, when set, is the shared state in place of the config's store
	// section (the demo's, seeded with a usage history); the App closes it.
	Store store.Store
}

// App is one veil process: a proxy listener and an admin listener, the
// long-lived resources they share, and the runtime that a reload swaps.
type App struct {
	// cfg is the config the process started with; its restart-only
	// sections (listeners, limits, keys, store, ...) stay in force.
	cfg      *config.Config
	log      *zap.Logger
	audit    *zap.Logger
	closeLog func()
	version  string
	started  time.Time
	metrics  *metrics.Metrics
	health   *health.Registry
	alerts   *alert.Notifier
	secrets  keys.Source
	vault    *vault.Client
	issuers  *jwks.Registry
	keys     *keys.SupplierKeys
	cache    *cache.Answers
	store    store.Store
	usage    *usage.Emitter
	spool    *usage.Spool
	// tracing exports spans; nil when off.
	tracing *tracing.Tracing
	// journal keeps the open quota reservations beside the spool; left
	// holds those a killed process left open, until they are reconciled.
	journal *quota.FileJournal
	left    []quota.OpenReservation
	// rt is the runtime in force, read by the proxy and the admin alike;
	// only install swaps it.
	rt atomic.Pointer[generation.Runtime]
	// reloadMu serialises reloads and override changes; reloads counts the
	// successful ones under it.
	reloadMu   sync.Mutex
	reloads    int
	lastReload atomic.Pointer[admin.ReloadStatus]
	// holder names this replica in leases; migrations and comparisons
	// are driven and followed through the store.
	holder         string
	migrations     *migrate.Manager
	compare        *compare.Comparisons
	stopMigrations context.CancelFunc
	migrating      sync.WaitGroup
	sharing        sync.WaitGroup // the loop of startSharing
	stopWatch      chan struct{}
	// settles counts quota settlements of every enforcer, old ones too.
	settles  *sync.WaitGroup
	proxy    *proxy.Server
	proxySrv *fasthttp.Server
	adminSrv *fasthttp.Server
	proxyLn  net.Listener
	adminLn  net.Listener
	serving  sync.WaitGroup
	draining atomic.Bool
	shutdown sync.Once
	// conns are the proxy listener's open connections, closed when the
	// drain timeout has passed and the requests on them have ended.
	conns sync.Map // net.Conn -> *atomic.Int32 holding its fasthttp.ConnState

	// similarity counts the comparisons' similarity scores and fallbacks
	// of every generation.
	similarity *similarity.Counters
}

// New builds an App from a validated config. With Vault enabled it logs in
// first (bounded by the key fetch timeout); a failed login is retried in
// the background and keeps /readyz failing, unless a secret in the config
// itself lives in Vault, in which case New fails.
func New(cfg *config.Config, o Options) (a *App, err error) {
	a = &App{cfg: cfg, log: o.Log, audit: o.Audit, version: o.Version, metrics: metrics.New(), closeLog: func() {},
		stopWatch: make(chan struct{}), settles: &sync.WaitGroup{}, store: o.Store}
	a.issuers = jwks.NewRegistry(a.log)
	a.metrics.SetBuildInfo(o.Version, o.Commit)
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if a.audit == nil {
		if a.audit, a.closeLog, err = logging.Audit(cfg.Audit.Output, cfg.Log.Format); err != nil {
			return nil, err
		}
	}
	// The returns below set a to nil: the deferred close keeps its own
	// reference.
	built := a
	defer func() {
		if err != nil {
			built.closeResources()
		}
	}()
	if err := a.buildSecrets(o.Secrets); err != nil {
		return nil, err
	}
	if err := a.buildAlerts(); err != nil {
		return nil, err
	}
	names := make([]string, len(cfg.Providers))
	for i, pc := range cfg.Providers {
		names[i] = pc.Name
	}
	lim := cfg.Limits
	a.health = health.NewRegistryWithBreakers(health.BreakerOptions{Failures: lim.BreakerFailures,
		Cooldown: lim.BreakerCooldown, Window: lim.BreakerWindow, MinRequests: lim.BreakerMinRequests,
		ErrorRate: lim.ErrorRate(), OnChange: a.alerts.Health}, names...)
	a.metrics.WatchHealth(a.health)
	if err := a.buildStore(); err != nil {
		return nil, err
	}
	if err := a.buildUsage(); err != nil {
		return nil, err
	}
	a.watchSimilarity()
	if err := a.buildTracing(); err != nil {
		return nil, err
	}
	rt, err := generation.Build(cfg, nil, a.deps())
	if err != nil {
		return nil, err
	}
	a.metrics.SetModels(rt.Models)
	a.metrics.Declare(rt.Config)
	a.rt.Store(rt)
	a.reconcileReservations(rt)
	var next keys.Fetcher
	if a.vault != nil {
		next = &vault.SupplierFetcher{Client: a.vault, Mount: cfg.Vault.KVMount, PathTemplate: cfg.Vault.SupplierPath}
	}
	if a.keys, err = a.buildKeyCache(next); err != nil {
		return nil, err
	}
	if err := a.buildCache(); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	a.holder = holderName()
	a.buildComparisons()
	if err := a.buildMigrations(); err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var emitter proxy.Emitter = a.usage
	if o.UsageTap != nil {
		emitter = tapEmitter{next: a.usage, tap: o.UsageTap}
	}
	a.proxy, err = proxy.New(proxy.Options{Limits: cfg.Limits, Runtime: &a.rt, Keys: a.keys,
		Metrics: a.metrics, Log: a.log, Audit: a.audit, Health: a.health, Usage: emitter,
		Alert: a.alerts.Health, Cache: a.proxyCache(), SingleFlight: cfg.Cache.Collapse(),
		Migrations: a.migrations, Shadows: a.compare, Tracer: a.tracer()})
	if err != nil {
		return nil, err
	}
	operators, err := a.buildOperators()
	if err != nil {
		return nil, err
	}
	cons, err := a.buildConsole(operators)
	if err != nil {
		return nil, err
	}
	adm := admin.New(admin.Options{
		Operators: operators,
		Ready:     a.ready,
		Status:    admin.StatusOf(a, &a.rt, a.health),
		Registry:  a.metrics.Registry,
		Log:       a.audit,
		Endpoints: a.adminEndpoints(),
		Console:   cons,
	})

	a.proxySrv = &fasthttp.Server{
		Handler:               a.proxy.Handle,
		ErrorHandler:          proxy.HandleServerError,
		Name:                  "veil",
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		ReadBufferSize:        lim.MaxHeaderBytes,
		// A held stream keeps its connection's write buffer for its
		// whole life, so it is small (events are far smaller; larger
		// bodies are written through it); the read buffer goes back to
		// its pool once a request is read (ReduceMemoryUsage). Together
		// they save 28 KiB per open stream (docs/benchmarks.md).
		WriteBufferSize:               4 << 10,
		ReduceMemoryUsage:             true,
		ReadTimeout:                   lim.ReadTimeout,
		WriteTimeout:                  lim.WriteTimeout,
		IdleTimeout:                   lim.IdleTimeout,
		MaxRequestBodySize:            lim.MaxBodyBytes,
		DisablePreParseMultipartForm:  true,
		CloseOnShutdown:               true,
		DisableHeaderNamesNormalizing: false,
		// Errors about malformed requests must not quote the request,
		// whose headers hold the caller's token.
		SecureErrorLogMessage: true,
		ConnState:             a.trackConn,
		Logger:                fasthttpLogger{a.log},
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
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{a.log},
	}
	// Supplier overrides made through the admin API (on any replica).
	octx, cancel := context.WithTimeout(context.Background(), cfg.Keys.FetchTimeout)
	defer cancel()
	if err := a.ApplyOverrides(octx); err != nil {
		a.log.Warn("supplier overrides not applied at start", zap.Error(err))
	}
	go a.watchOverrides(a.stopWatch, 5*time.Second)
	return a, nil
}

// Start opens both listeners and serves them in the background. When a
// listener cannot be opened, Start releases what New opened (the store,
// Vault, the usage sinks...) and returns the error; a later Shutdown does
// nothing.
func (a *App) Start() error {
	var err error
	if a.proxyLn, err = net.Listen("tcp", a.cfg.Listen.Proxy); err != nil {
		a.shutdown.Do(a.closeResources)
		return fmt.Errorf("proxy listener: %w", err)
	}
	if a.adminLn, err = net.Listen("tcp", a.cfg.Listen.Admin); err != nil {
		_ = a.proxyLn.Close()
		a.shutdown.Do(a.closeResources)
		return fmt.Errorf("admin listener: %w", err)
	}
	a.started = time.Now()
	if a.keys != nil && len(a.cfg.Keys.Prewarm) > 0 {
		providers := a.rt.Load().Providers
		names := make([]string, len(providers))
		for i, p := range providers {
			names[i] = p.Name()
		}
		go a.keys.Prewarm(context.Background(), a.cfg.Keys.Prewarm, names)
	}
	a.startProbes()
	a.startSharing()
	a.runMigrations()
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

// EndStreamsGrace is how long streams still open when the drain timeout
// passes get to write their in-band error event and their usage record.
const EndStreamsGrace = 2 * time.Second

// Shutdown drains veil: readiness fails at once, the proxy listener stops
// accepting, in-flight requests and streams finish until ctx ends; streams
// still open then end with an in-band error event. Usage records and
// alerts are flushed, then the admin listener closes.
func (a *App) Shutdown(ctx context.Context) error {
	var err error
	a.shutdown.Do(func() {
		a.draining.Store(true)
		a.log.Info("draining")
		// Closed here too, in case Shutdown comes before a listener's
		// Serve has begun: fasthttp would not know the listener yet, and
		// Serve would accept forever.
		closeListener(a.proxyLn)
		streamsDone := make(chan struct{})
		go func() {
			// Wait for the proxy listener first: a request still in the
			// handler may yet hand its stream to the body writer.
			_ = a.proxySrv.ShutdownWithContext(ctx)
			a.proxy.Wait()
			close(streamsDone)
		}()
		select {
		case <-streamsDone:
		case <-ctx.Done():
			a.proxy.EndStreams()
			if n := a.awaitRequests(streamsDone, EndStreamsGrace); n > 0 {
				err = fmt.Errorf("proxy drain: %d requests still open after the drain timeout and %s: %w", n, EndStreamsGrace, ctx.Err())
			} else {
				a.log.Warn("drain timeout passed; open streams were ended with an in-band error")
			}
			// fasthttp keeps serving the connections it could not close
			// in time; nothing more is served on them once their answers
			// are written.
			a.closeConns(EndStreamsGrace)
		}
		a.settles.Wait()
		// Records and alerts are flushed even when the drain used up ctx.
		fctx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			fctx, cancel = context.WithTimeout(context.Background(), FlushTimeout)
		}
		defer cancel()
		if a.usage != nil {
			if e := a.usage.Close(fctx); e != nil {
				err = errors.Join(err, fmt.Errorf("usage flush: %w", e))
			}
		}
		if a.alerts != nil {
			if e := a.alerts.Close(fctx); e != nil {
				err = errors.Join(err, fmt.Errorf("alerts flush: %w", e))
			}
		}
		if e := a.closeTracing(fctx); e != nil {
			err = errors.Join(err, fmt.Errorf("tracing flush: %w", e))
		}
		if e := a.adminSrv.Shutdown(); e != nil {
			err = errors.Join(err, fmt.Errorf("admin shutdown: %w", e))
		}
		closeListener(a.adminLn)
		a.serving.Wait()
		a.log.Info("stopped")
		a.closeResources()
	})
	return err
}

// trackConn keeps the proxy listener's open connections and their states
// in a.conns.
func (a *App) trackConn(c net.Conn, state fasthttp.ConnState) {
	switch state {
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		a.conns.Delete(c)
	default:
		v, _ := a.conns.LoadOrStore(c, new(atomic.Int32))
		v.(*atomic.Int32).Store(int32(state))
	}
}

// closeConns closes the proxy connections as they go idle (their last
// answer written), and after grace every one left.
func (a *App) closeConns(grace time.Duration) {
	deadline := time.Now().Add(grace)
	for {
		left := 0
		a.conns.Range(func(c, v any) bool {
			if fasthttp.ConnState(v.(*atomic.Int32).Load()) != fasthttp.StateActive || time.Now().After(deadline) {
				_ = c.(net.Conn).Close()
				a.conns.Delete(c)
			} else {
				left++
			}
			return true
		})
		if left == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closeListener closes ln if Start opened it; closing it twice is harmless.
func closeListener(ln net.Listener) {
	if ln != nil {
		_ = ln.Close()
	}
}

// FlushTimeout bounds the flush of usage records and alerts when the drain
// timeout has already passed.
const FlushTimeout = 5 * time.Second

// awaitRequests waits up to grace for the streams (done) and then every
// request still in a handler to finish; it returns how many are left.
func (a *App) awaitRequests(done <-chan struct{}, grace time.Duration) int64 {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	select {
	case <-done:
	case <-deadline.C:
		return max(a.proxy.Open(), 1)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for a.proxy.Open() > 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			return a.proxy.Open()
		}
	}
	return 0
}

// closeResources stops background work and releases connections.
func (a *App) closeResources() {
	select {
	case <-a.stopWatch:
	default:
		close(a.stopWatch)
	}
	if a.usage != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.usage.Close(ctx) // idempotent; Shutdown already flushed
		cancel()
	}
	if a.spool != nil {
		_ = a.spool.Close() // after the emitter: its last cursors are written
	}
	if a.journal != nil {
		_ = a.journal.Close()
	}
	if a.alerts != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.alerts.Close(ctx) // idempotent; Shutdown already flushed
		cancel()
	}
	if a.tracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.closeTracing(ctx) // idempotent; Shutdown already flushed
		cancel()
	}
	if a.keys != nil {
		a.keys.Close()
	}
	if a.cache != nil {
		a.cache.Close() // no request is left to use it
	}
	if a.stopMigrations != nil {
		a.stopMigrations() // a last flush of their counts, then the lease is released
	}
	a.migrating.Wait()
	a.settles.Wait()
	a.sharing.Wait()
	if a.store != nil {
		_ = a.store.Close()
	}
	if a.vault != nil {
		a.vault.Close()
	}
	a.issuers.Close()
	if rt := a.rt.Load(); rt != nil {
		for _, p := range rt.Providers {
			p.Close()
		}
	}
	_ = a.audit.Sync()
	a.closeLog()
}

// ready is the readiness predicate: serving and not draining.
func (a *App) ready() error {
	if a.draining.Load() {
		return errors.New("draining")
	}
	if a.started.IsZero() {
		return errors.New("starting")
	}
	if a.vault != nil {
		if err := a.vault.Ready(); err != nil {
			return fmt.Errorf("vault: %w", err)
		}
	}
	return nil
}

// Process reports the state of the process for /admin/status.
func (a *App) Process() admin.Process {
	p := admin.Process{Version: a.version, Started: a.started, Draining: a.draining.Load(),
		Listen: config.Listen{Proxy: a.ProxyAddr(), Admin: a.AdminAddr()}}
	if r := a.lastReload.Load(); r != nil {
		p.Reload = *r
	}
	return p
}

// fasthttpLogger sends fasthttp's own messages to zap at debug level: they
// are connection-level noise (resets, timeouts) in normal operation.
type fasthttpLogger struct{ log *zap.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	if ce := l.log.Check(zap.DebugLevel, "fasthttp"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, args...)))
	}
}

// startProbes runs active health checks on every provider with platform
// keys until veil stops; each change of a provider's probed state is an
// alert.
func (a *App) startProbes() {
	lim := a.cfg.Limits
	if lim.DisableProbes {
		return
	}
	checks := make(map[string]health.CheckFunc)
	for _, p := range a.rt.Load().Providers {
		if p.Platform() != nil {
			checks[p.Name()] = p.Probe
		}
	}
	if len(checks) == 0 {
		return
	}
	pr := &health.Prober{Registry: a.health, Checks: checks, Interval: lim.ProbeInterval,
		Timeout: min(lim.ProbeInterval, 5*time.Second), Fails: lim.ProbeFailures, Passes: 1, Alert: a.alerts.Health}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-a.stopWatch
		cancel()
	}()
	go pr.Run(ctx)
}
