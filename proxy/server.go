package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/internal/generation"
	"github.com/wedsync/veil/internal/logging"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/metrics"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/quota"
	"github.com/wedsync/veil/usage"
)

// Options are the proxy's dependencies and limits.
type Options struct {
	Limits config.Limits
	// Runtime, when set, is the runtime in force, shared with whoever
	// swaps it on reload: every request loads it once. Auth, Policy,
	// Prices and Quota are then ignored. When nil, the proxy keeps a
	// runtime of its own made of those four.
	Runtime *atomic.Pointer[Runtime]
	Auth    *auth.Authenticator
	// Keys holds suppliers' own keys; nil when no supplier uses its own.
	Keys    *keys.SupplierKeys
	Policy  *policy.Policy
	Metrics *metrics.Metrics
	Log     *zap.Logger
	// Audit receives one line per supplier key refusal and per fallback
	// from a supplier's own key to platform keys; nil discards them.
	Audit *zap.Logger
	// Alert is told when a supplier's own key is held out after a refusal
	// (its calls fall back to platform keys) and when it is accepted
	// again; nil drops those alerts.
	Alert func(health.Alert)
	// Health receives every attempt's outcome; nil records nothing.
	Health *health.Registry
	// Usage receives one record per authenticated request; nil drops them.
	Usage Emitter
	// Prices turns tokens into cost; nil leaves cost_usd null.
	Prices Pricer
	// Quota enforces suppliers' tiers on platform calls; nil: no limits.
	Quota *quota.Enforcer
	// Cache answers repeat deterministic calls; nil: no cache.
	Cache Cache
	// SingleFlight makes identical requests that miss the cache at once
	// wait for the first one's answer.
	SingleFlight bool
	// Migrations splits migrating suppliers' traffic; nil: none.
	Migrations Migrations
	// Shadows compare a supplier's two systems on a sample of its
	// requests; nil: none.
	Shadows Shadows
	// Tracer makes a span per request and per upstream attempt, and the
	// trace context sent upstream (see trace.go); nil: no tracing, and the
	// app's trace headers pass upstream as they came.
	Tracer trace.Tracer
}

// Emitter takes usage records without blocking.
type Emitter interface {
	Emit(r *usage.Record)
}

// Pricer prices calls; see usage.PriceTable.
type Pricer = generation.Pricer

// Runtime is the part of the proxy compiled from configuration that a
// reload replaces: who may call, how calls are planned, priced and
// limited. A request keeps the Runtime it started with.
type Runtime = generation.Runtime

// Server handles client requests on the proxy listener.
type Server struct {
	limits config.Limits
	// rt is the runtime in force, possibly shared with the app.
	rt      *atomic.Pointer[Runtime]
	keys    *keys.SupplierKeys
	metrics *metrics.Metrics
	log     *zap.Logger
	auditor *zap.Logger
	health  *health.Registry
	// keyHealth holds out suppliers' own keys that a provider refused, for
	// the breaker cooldown, when the plan can fall back.
	keyHealth *health.KeyBreakers
	usage     Emitter
	interns   interner
	cache     Cache
	// singleFlight collapses identical concurrent cache misses.
	singleFlight bool
	migrations   Migrations
	shadows      Shadows
	// tracer is nil when tracing is off.
	tracer trace.Tracer
	// background counts shadow calls still running.
	background sync.WaitGroup

	// keyPresence tells plans where suppliers' own keys are held; nil
	// without suppliers' keys.
	keyPresence policy.KeyPresence

	idPrefix [8]byte
	idSeq    atomic.Uint64
	spread   atomic.Uint64
	// inflight counts each supplier's calls in flight per provider.
	inflight inflight
	// waits are the attempts waiting for response headers, watched for
	// their clients leaving.
	waits headerWaits
	// quiet writes repeated warnings (a key store down, a provider
	// failing) once, then once a minute with a count, not once a request.
	quiet   *logging.Limiter
	streams sync.WaitGroup
	open    atomic.Int64 // requests between Handle and finish
	// stop is closed by EndStreams: open streams end with an in-band
	// error.
	stop     chan struct{}
	stopOnce sync.Once
}

// New creates a proxy server.
func New(o Options) (*Server, error) {
	rt := o.Runtime
	if rt == nil {
		rt = new(atomic.Pointer[Runtime])
		rt.Store(&Runtime{Auth: o.Auth, Policy: o.Policy, Prices: o.Prices, Quota: o.Quota})
	}
	if cur := rt.Load(); cur == nil || cur.Auth == nil || cur.Policy == nil || o.Metrics == nil || o.Log == nil {
		return nil, errors.New("proxy: auth, policy, metrics and log are required")
	}
	s := &Server{limits: o.Limits, rt: rt, keys: o.Keys, metrics: o.Metrics, log: o.Log, auditor: o.Audit, health: o.Health, usage: o.Usage,
		cache: o.Cache, singleFlight: o.SingleFlight, migrations: o.Migrations, shadows: o.Shadows, tracer: o.Tracer,
		stop: make(chan struct{})}
	if s.auditor == nil {
		s.auditor = zap.NewNop()
	}
	if s.limits.AttemptTimeout <= 0 {
		s.limits.AttemptTimeout = s.limits.RequestTimeout
	}
	s.quiet = logging.NewLimiter(s.log, logging.LimiterOptions{Every: time.Minute})
	s.keyHealth = &health.KeyBreakers{Cooldown: o.Limits.BreakerCooldown, Failures: o.Limits.BreakerFailures, OnChange: o.Alert}
	if s.health == nil {
		s.health = health.NewRegistry()
	}
	if o.Keys != nil {
		s.keyPresence = o.Keys
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("proxy: request id prefix: %w", err)
	}
	hex.Encode(s.idPrefix[:], b[:])
	return s, nil
}

// Swap installs a new runtime in the pointer the proxy reads, shared or
// its own; requests already running finish on theirs.
func (s *Server) Swap(rt *Runtime) { s.rt.Store(rt) }

// EndStreams ends every open stream, and every stream that starts later,
// with an in-band error event saying veil is shutting down; each still gets
// its usage record. A drain calls it when its timeout passes.
func (s *Server) EndStreams() { s.stopOnce.Do(func() { close(s.stop) }) }

// Open is the number of requests in progress, streams included: received
// and not yet finished with their usage record.
func (s *Server) Open() int64 { return s.open.Load() }

// Wait blocks until every stream handed to fasthttp's body writer, and
// every shadow call, has finished, so that a drain can wait for them.
func (s *Server) Wait() {
	s.streams.Wait()
	s.background.Wait()
}
