// Package metrics owns veil's Prometheus collectors. Labels are bounded:
// there is never a supplier label, and a model label is one of the model
// names the config lists or "other", so no request can add a series.
package metrics

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/cache"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/migrate"
)

// OtherModel is the model label of every model the config does not name.
const OtherModel = "other"

// Metrics holds the collectors veil records into.
type Metrics struct {
	// Registry is what the admin listener serves on /metrics.
	Registry *prometheus.Registry

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	upstream        *prometheus.HistogramVec
	streamsCut      *prometheus.CounterVec
	inflight        prometheus.Gauge
	keyFetches      *prometheus.CounterVec
	keyRotations    prometheus.Counter
	keysStale       prometheus.Counter
	tokens          *prometheus.CounterVec
	cost            *prometheus.CounterVec
	sinkDepth       *prometheus.GaugeVec
	sinkEvents      *prometheus.CounterVec
	quotaStoreDown  prometheus.Counter
	reloads         *prometheus.CounterVec
	retriesDenied   *prometheus.CounterVec
	overloaded      *prometheus.CounterVec
	listenerShed    prometheus.Counter
	failovers       *prometheus.CounterVec
	alerts          *prometheus.CounterVec
	switchDeferrals *prometheus.CounterVec
	ttft            *prometheus.HistogramVec
	streamDuration  *prometheus.HistogramVec
	quotaRefusals   *prometheus.CounterVec
	buildInfo       *prometheus.GaugeVec

	// cacheStats reads the response cache's counters; nil until
	// WatchCache, and the cache's series read zero.
	cacheStats atomic.Pointer[func() cache.Stats]
	// seasons are the seasons of the config in force, for
	// veil_season_active; now is the clock that decides which is.
	seasons atomic.Pointer[[]config.Season]
	now     func() time.Time

	// models maps each model name the config lists to itself, so that a
	// label is a string the map already holds. The map is never changed
	// once stored; SetModels stores a new one.
	models   atomic.Pointer[map[string]string]
	series   sync.Map // seriesKey -> *series
	upSeries sync.Map // seriesKey without endpoint -> prometheus.Observer
	streams  sync.Map // streamKey -> *streamSeries
	sinks    sync.Map // sink name -> struct{}, once its series exist
}

type seriesKey struct {
	endpoint, provider, model string
	class                     int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// latencyBuckets span a cache hit (microseconds) to an upstream attempt's
// wait for its response headers (limits.attempt_timeout, 2m by default).
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// requestBuckets are latencyBuckets continued to limits.request_timeout's
// ten minutes: a long stream is a request too, and it must land in a
// bucket of its own rather than in +Inf.
var requestBuckets = append(slices.Clone(latencyBuckets), 180, 300, 450, 600)

// ttftBuckets span a stream's time to its first event, from a warm
// provider's tenths of a second to past limits.ttft_timeout (30s by
// default), where veil gives up on the attempt.
var ttftBuckets = []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60}

// streamBuckets span a stream's whole life, from a short answer to
// limits.request_timeout's ten minutes.
var streamBuckets = []float64{0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600}

// New creates the collectors in a fresh registry, with Go and process
// collectors included. Every family whose label values veil knows without
// a config (reasons, results, outcomes) has its series from the start, at
// zero; Declare adds those the config names.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{Registry: r, now: time.Now}
	m.requests = counterVec(r, "veil_requests_total",
		"Client requests served, by endpoint, provider, model and status class.", "endpoint", "provider", "model", "status_class")
	m.requestDuration = histogramVec(r, "veil_request_duration_seconds",
		"Time from request start to the last byte sent to the client.", requestBuckets, "endpoint", "provider", "model", "status_class")
	m.upstream = histogramVec(r, "veil_upstream_duration_seconds",
		"Time from sending an upstream request to its response headers.", latencyBuckets, "provider", "model", "status_class")
	m.streamsCut = counterVec(r, "veil_streams_interrupted_total",
		"Streams that ended early, by reason (client_gone, upstream_error, idle_timeout, shutdown).", "reason")
	m.inflight = gauge(r, "veil_requests_in_flight", "Client requests being served.")
	m.keyFetches = counterVec(r, "veil_key_fetches_total",
		"Supplier key fetches from their source, by result (ok, error).", "result")
	m.keyRotations = counter(r, "veil_key_rotations_total", "New supplier key versions picked up.")
	m.keysStale = counter(r, "veil_keys_served_stale_total",
		"Requests served with a supplier key whose source has not answered for over two refresh intervals.")
	m.tokens = counterVec(r, "veil_tokens_total",
		"Tokens used, by provider, model, key source and kind (prompt, completion).", "provider", "model", "key_source", "kind")
	m.cost = counterVec(r, "veil_cost_usd_total",
		"Cost of calls in US dollars from the price table, by provider, model and key source.", "provider", "model", "key_source")
	m.sinkDepth = gaugeVec(r, "veil_usage_sink_queue_depth", "Usage records waiting in a sink's queue.", "sink")
	m.sinkEvents = counterVec(r, "veil_usage_sink_records_total",
		"Usage records by sink and outcome (delivered, spilled, dropped), and write retries (retried).", "sink", "outcome")
	m.quotaStoreDown = counter(r, "veil_quota_store_unavailable_total",
		"Quota checks that could not reach the store (served without a check when failing open).")
	m.reloads = counterVec(r, "veil_config_reloads_total", "Config reloads by result (applied, refused).", "result")
	m.retriesDenied = counterVec(r, "veil_retries_denied_total",
		"Retries the per-provider retry budget refused, by provider.", "provider")
	m.overloaded = counterVec(r, "veil_overloaded_total",
		"Calls veil shed, by provider and reason: listener (limits.max_in_flight requests already in flight, answered 503 overloaded; "+
			"provider empty), upstream_pool (no free upstream connection within providers[].conn_wait, answered 503 overloaded "+
			"unless another planned provider took the call), supplier_in_flight (the supplier at its cap of calls in flight to "+
			"the provider, answered 429).", "provider", "reason")
	m.listenerShed = m.overloaded.WithLabelValues("", OverloadListener)
	m.failovers = counterVec(r, "veil_failovers_total",
		"Answers served by another provider than the first planned, by the planned provider (from) and the one that answered (to).", "from", "to")
	m.alerts = counterVec(r, "veil_alerts_total",
		"Health alerts meant for the alert webhook, by outcome (sent, failed, dropped).", "outcome")
	m.switchDeferrals = counterVec(r, "veil_migration_switch_deferrals_total",
		"Quota switches (a tier's switch_to_client) that found a planned or ramping migration owning the supplier, by outcome: "+
			"deferred (waiting for the migration to end), then applied, fulfilled (the supplier was on its own key already), "+
			"moved (to a newer planned migration) or refused (the key failed its probe).", "outcome")
	m.ttft = histogramVec(r, "veil_ttft_seconds",
		"Time from a streamed request's start to its first event sent to the client, by serving provider and model.",
		ttftBuckets, "provider", "model")
	m.streamDuration = histogramVec(r, "veil_stream_duration_seconds",
		"Time from a streamed request's start to the end of its stream, by serving provider and model.",
		streamBuckets, "provider", "model")
	m.quotaRefusals = counterVec(r, "veil_quota_refusals_total",
		"Platform calls refused with 429 quota_exceeded because the supplier's tier was used up, by tier and "+
			"limit (rpm, tpm, concurrent, month_tokens, month_cost_micros).", "tier", "limit")
	m.buildInfo = gaugeVec(r, "veil_build_info",
		"Always 1; its labels are the running binary's version, commit and Go version.", "version", "commit", "go_version")
	m.SetBuildInfo("", "")
	r.MustRegister(m.newCacheCollector(), m.newSeasonCollector())
	for _, reason := range StreamReasons {
		m.streamsCut.WithLabelValues(reason)
	}
	for _, v := range [...]struct {
		vec    *prometheus.CounterVec
		values []string
	}{
		{m.keyFetches, []string{"ok", "error"}},
		{m.reloads, []string{"applied", "refused"}},
		{m.alerts, []string{"sent", "failed", "dropped"}},
		{m.switchDeferrals, []string{migrate.DeferralDeferred, migrate.DeferralApplied, migrate.DeferralFulfilled,
			migrate.DeferralMoved, migrate.DeferralRefused}},
	} {
		for _, value := range v.values {
			v.vec.WithLabelValues(value)
		}
	}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// StreamReasons are the reasons of veil_streams_interrupted_total: a
// stream's client left, its provider failed it after content went out, it
// was idle too long, or veil shut down before it ended.
var StreamReasons = []string{"client_gone", "upstream_error", "idle_timeout", "shutdown"}

// register registers c with r and returns it.
func register[C prometheus.Collector](r *prometheus.Registry, c C) C {
	r.MustRegister(c)
	return c
}

// counterVec registers a new counter vector with r.
func counterVec(r *prometheus.Registry, name, help string, labels ...string) *prometheus.CounterVec {
	return register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

// counter registers a new counter with r.
func counter(r *prometheus.Registry, name, help string) prometheus.Counter {
	return register(r, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

// gaugeVec registers a new gauge vector with r.
func gaugeVec(r *prometheus.Registry, name, help string, labels ...string) *prometheus.GaugeVec {
	return register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

// gauge registers a new gauge with r.
func gauge(r *prometheus.Registry, name, help string) prometheus.Gauge {
	return register(r, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// histogramVec registers with r a new histogram vector of durations in
// seconds, over buckets.
func histogramVec(r *prometheus.Registry, name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels))
}

// StatusClass maps a status code to its class label index (2 for 2xx);
// 0 means no response.
func StatusClass(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

var classNames = [...]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

// SetModels replaces the model names that are their own model label: the
// names the config in force lists. Every other name is reported as
// OtherModel. Empty names and names that are not valid UTF-8 are left out.
// It is safe to call while requests are observed; until the first call
// every model is reported as OtherModel.
func (m *Metrics) SetModels(names []string) {
	set := make(map[string]string, len(names))
	for _, n := range names {
		if n != "" && utf8.ValidString(n) {
			set[n] = n
		}
	}
	m.models.Store(&set)
}

// model is the label of the model name: the name itself when the config
// lists it, OtherModel when it does not, and empty when the request named
// no model. It neither locks nor allocates.
func (m *Metrics) model(name []byte) string {
	if len(name) == 0 {
		return ""
	}
	if set := m.models.Load(); set != nil {
		if s, ok := (*set)[string(name)]; ok {
			return s
		}
	}
	return OtherModel
}

func (m *Metrics) requestSeries(endpoint, provider string, model []byte, status int) *series {
	k := seriesKey{endpoint: endpoint, provider: provider, model: m.model(model), class: StatusClass(status)}
	if s, ok := m.series.Load(k); ok {
		return s.(*series)
	}
	cls := classNames[k.class]
	s := &series{
		requests: m.requests.WithLabelValues(k.endpoint, k.provider, k.model, cls),
		duration: m.requestDuration.WithLabelValues(k.endpoint, k.provider, k.model, cls),
	}
	actual, _ := m.series.LoadOrStore(k, s)
	return actual.(*series)
}

// ObserveRequest records one finished client request.
func (m *Metrics) ObserveRequest(endpoint, provider string, model []byte, status int, seconds float64) {
	s := m.requestSeries(endpoint, provider, model, status)
	s.requests.Inc()
	s.duration.Observe(seconds)
}

// ObserveUpstream records one upstream attempt's time to response headers.
func (m *Metrics) ObserveUpstream(provider string, model []byte, status int, seconds float64) {
	k := seriesKey{provider: provider, model: m.model(model), class: StatusClass(status)}
	o, ok := m.upSeries.Load(k)
	if !ok {
		o, _ = m.upSeries.LoadOrStore(k, m.upstream.WithLabelValues(k.provider, k.model, classNames[k.class]))
	}
	o.(prometheus.Observer).Observe(seconds)
}

type streamKey struct{ provider, model string }

type streamSeries struct{ ttft, duration prometheus.Observer }

// ObserveStream records one finished stream that provider served: its
// time to the first event sent to the client (ttft, zero when none was
// sent) and its whole duration, both in seconds from the request's start.
func (m *Metrics) ObserveStream(provider string, model []byte, ttft, seconds float64) {
	k := streamKey{provider: provider, model: m.model(model)}
	s, ok := m.streams.Load(k)
	if !ok {
		s, _ = m.streams.LoadOrStore(k, &streamSeries{
			ttft:     m.ttft.WithLabelValues(k.provider, k.model),
			duration: m.streamDuration.WithLabelValues(k.provider, k.model),
		})
	}
	ss := s.(*streamSeries)
	if ttft > 0 {
		ss.ttft.Observe(ttft)
	}
	ss.duration.Observe(seconds)
}

// QuotaRefused counts a platform call refused because the supplier's tier
// had used up limit (a quota.Limit* value). Tier names are the config's,
// so the series are bounded; a name that is no valid label value is not
// counted.
func (m *Metrics) QuotaRefused(tier, limit string) {
	if c, err := m.quotaRefusals.GetMetricWithLabelValues(tier, limit); err == nil {
		c.Inc()
	}
}

// StreamInterrupted counts a stream that ended early.
func (m *Metrics) StreamInterrupted(reason string) { m.streamsCut.WithLabelValues(reason).Inc() }

// InterruptedStreams reads how many streams ended early for reason.
func (m *Metrics) InterruptedStreams(reason string) float64 {
	var pb dto.Metric
	if err := m.streamsCut.WithLabelValues(reason).Write(&pb); err != nil {
		return 0
	}
	return pb.GetCounter().GetValue()
}

// KeyFetches is how many supplier key fetches ended with result ("ok" or
// "error"): reads of the key store's secrets, for tests and reports.
func (m *Metrics) KeyFetches(result string) float64 {
	var pb dto.Metric
	if err := m.keyFetches.WithLabelValues(result).Write(&pb); err != nil {
		return 0
	}
	return pb.GetCounter().GetValue()
}

// KeyFetched counts a supplier key fetch.
func (m *Metrics) KeyFetched(ok bool) {
	if ok {
		m.keyFetches.WithLabelValues("ok").Inc()
	} else {
		m.keyFetches.WithLabelValues("error").Inc()
	}
}

// KeyRotated counts a new supplier key version picked up.
func (m *Metrics) KeyRotated() { m.keyRotations.Inc() }

// KeyServedStale counts a request served with a stale supplier key.
func (m *Metrics) KeyServedStale() { m.keysStale.Inc() }

// ObserveUsage counts a call's tokens and cost.
func (m *Metrics) ObserveUsage(provider string, model []byte, keySource billing.KeySource, prompt, completion int64, costUSD float64) {
	mod, source := m.model(model), string(keySource)
	if prompt > 0 {
		m.tokens.WithLabelValues(provider, mod, source, "prompt").Add(float64(prompt))
	}
	if completion > 0 {
		m.tokens.WithLabelValues(provider, mod, source, "completion").Add(float64(completion))
	}
	if costUSD > 0 {
		m.cost.WithLabelValues(provider, mod, source).Add(costUSD)
	}
}

// sinkOutcomes are the outcomes of veil_usage_sink_records_total.
var sinkOutcomes = [...]string{"delivered", "retried", "spilled", "dropped"}

// QueueDepth reports a usage sink's queue depth. The first report of a
// sink, which the emitter makes as it starts, creates every series of
// the sink at zero.
func (m *Metrics) QueueDepth(sink string, n int) {
	if _, seen := m.sinks.Load(sink); !seen {
		for _, o := range sinkOutcomes {
			m.sinkEvents.WithLabelValues(sink, o)
		}
		m.sinks.Store(sink, struct{}{})
	}
	m.sinkDepth.WithLabelValues(sink).Set(float64(n))
}

// Delivered counts usage records a sink wrote.
func (m *Metrics) Delivered(sink string, n int) {
	m.sinkEvents.WithLabelValues(sink, "delivered").Add(float64(n))
}

// Retried counts a usage sink's retried write.
func (m *Metrics) Retried(sink string) { m.sinkEvents.WithLabelValues(sink, "retried").Inc() }

// Spilled counts usage records spilled to disk for a later resend.
func (m *Metrics) Spilled(sink string, n int) {
	m.sinkEvents.WithLabelValues(sink, "spilled").Add(float64(n))
}

// Dropped counts usage records a sink lost.
func (m *Metrics) Dropped(sink string, n int) {
	m.sinkEvents.WithLabelValues(sink, "dropped").Add(float64(n))
}

// QuotaStoreUnavailable counts a quota check that could not reach the store.
func (m *Metrics) QuotaStoreUnavailable() { m.quotaStoreDown.Inc() }

// ConfigReloaded counts a config reload.
func (m *Metrics) ConfigReloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("applied").Inc()
	} else {
		m.reloads.WithLabelValues("refused").Inc()
	}
}

// RetryDenied counts a retry the provider's retry budget refused.
func (m *Metrics) RetryDenied(provider string) { m.retriesDenied.WithLabelValues(provider).Inc() }

// Reasons of veil_overloaded_total: where a call was shed.
const (
	// OverloadListener: limits.max_in_flight requests were in flight on
	// the proxy listener when it arrived.
	OverloadListener = "listener"
	// OverloadUpstreamPool: no connection to the provider freed within
	// its conn_wait.
	OverloadUpstreamPool = "upstream_pool"
	// OverloadSupplierInFlight: the supplier had its cap of calls in
	// flight to the provider.
	OverloadSupplierInFlight = "supplier_in_flight"
)

// Overloaded counts an attempt that found no free connection to provider
// in time.
func (m *Metrics) Overloaded(provider string) {
	m.overloaded.WithLabelValues(provider, OverloadUpstreamPool).Inc()
}

// SupplierOverloaded counts a call refused because its supplier had its
// cap of calls in flight to provider.
func (m *Metrics) SupplierOverloaded(provider string) {
	m.overloaded.WithLabelValues(provider, OverloadSupplierInFlight).Inc()
}

// ListenerOverloaded counts a request the proxy listener shed because
// limits.max_in_flight requests were in flight. Its series exists from
// the start, at zero, and counting it allocates nothing.
func (m *Metrics) ListenerOverloaded() { m.listenerShed.Inc() }

// Failover counts an answer that provider to served instead of from, the
// first planned. Both are configured provider names, so the series are
// bounded.
func (m *Metrics) Failover(from, to string) { m.failovers.WithLabelValues(from, to).Inc() }

// AlertSent counts a health alert the alert webhook accepted.
func (m *Metrics) AlertSent() { m.alerts.WithLabelValues("sent").Inc() }

// AlertFailed counts a health alert the alert webhook did not accept.
func (m *Metrics) AlertFailed() { m.alerts.WithLabelValues("failed").Inc() }

// AlertDropped counts a health alert dropped because its queue was full.
func (m *Metrics) AlertDropped() { m.alerts.WithLabelValues("dropped").Inc() }

// SwitchDeferral counts a deferred quota switch's outcome (see
// migrate.Options.Deferral).
func (m *Metrics) SwitchDeferral(outcome string) { m.switchDeferrals.WithLabelValues(outcome).Inc() }

// InFlight tracks requests being served: +1 at start, -1 at the end.
func (m *Metrics) InFlight(delta float64) { m.inflight.Add(delta) }
