// Package tracing sets up veil's OpenTelemetry tracing: a tracer provider
// whose spans are sampled by ratio (or by the app's own sampled flag),
// queued in a bounded queue and exported in batches over OTLP/HTTP
// (protobuf) off the request path, and flushed on shutdown. It also reads
// and writes the W3C trace context headers, and names the attributes of
// the GenAI semantic conventions veil's spans carry.
//
// The proxy holds a trace.Tracer that is nil when tracing is off, so that
// a request without tracing pays one nil check.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// ScopeName is the instrumentation scope of veil's spans.
const ScopeName = "github.com/wedsync/veil"

// TracesPath is where spans go on a collector URL given without a path.
const TracesPath = "/v1/traces"

// Options configure tracing.
type Options struct {
	// Endpoint is the collector's OTLP/HTTP URL: without a path, spans
	// go to its TracesPath; with one, to that path.
	Endpoint string
	// Headers are sent with every export; their values are never logged.
	Headers map[string]string
	// SampleRatio is the share of the traces veil starts that are
	// recorded; a trace the app started follows the app's sampled flag.
	SampleRatio float64
	// ServiceName and ServiceVersion describe veil in every span's
	// resource.
	ServiceName, ServiceVersion string
	// QueueSize bounds the spans waiting for export; BatchSize is the
	// most spans one export carries; BatchTimeout the longest an ended
	// span waits for its batch; Timeout bounds one export, retries
	// included.
	QueueSize, BatchSize  int
	BatchTimeout, Timeout time.Duration
	// Log receives export failures, rate-limited; nil discards them.
	Log *zap.Logger
	// Exporter, when set, replaces the OTLP exporter; Endpoint and Headers
	// are then ignored.
	Exporter sdktrace.SpanExporter
}

// Tracing is veil's tracer provider and its export.
type Tracing struct {
	provider *sdktrace.TracerProvider
	batch    *batcher
	tracer   trace.Tracer
	// client is the OTLP exporter's, whose idle connections Shutdown
	// closes; nil with Options.Exporter.
	client *http.Client
}

// New starts tracing: the exporter, the batch export loop and the tracer
// provider. It does not contact the collector.
func New(o Options) (*Tracing, error) {
	if o.QueueSize <= 0 || o.BatchSize <= 0 || o.BatchSize > o.QueueSize || o.BatchTimeout <= 0 || o.Timeout <= 0 {
		return nil, errors.New("tracing: queue size, batch size (at most the queue size), batch timeout and timeout must be positive")
	}
	if !(o.SampleRatio >= 0 && o.SampleRatio <= 1) {
		return nil, fmt.Errorf("tracing: sample ratio %v is not between 0 and 1", o.SampleRatio)
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	exp := o.Exporter
	var client *http.Client
	if exp == nil {
		var err error
		if exp, client, err = newExporter(o); err != nil {
			return nil, err
		}
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", o.ServiceName), attribute.String("service.version", o.ServiceVersion)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	b := newBatcher(exp, o.QueueSize, o.BatchSize, o.BatchTimeout, o.Timeout, o.Log)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(b),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.SampleRatio))),
	)
	return &Tracing{provider: tp, batch: b, tracer: tp.Tracer(ScopeName), client: client}, nil
}

// newExporter makes the OTLP/HTTP protobuf exporter to o.Endpoint, with
// an HTTP client of its own (proxies from the environment apply).
func newExporter(o Options) (sdktrace.SpanExporter, *http.Client, error) {
	endpoint, err := TracesURL(o.Endpoint)
	if err != nil {
		return nil, nil, err
	}
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: o.Timeout}
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(endpoint),
		otlptracehttp.WithHTTPClient(client),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: 500 * time.Millisecond,
			MaxInterval: 2 * time.Second, MaxElapsedTime: o.Timeout}),
	}
	if len(o.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	return exp, client, nil
}

// TracesURL is the URL spans are posted to for a collector URL: its
// TracesPath when it has no path, else the URL as given.
func TracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", errors.New("tracing: the collector URL must be an absolute http or https URL without user information")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = TracesPath
	}
	return u.String(), nil
}

// Tracer is the tracer veil's spans are made with.
func (t *Tracing) Tracer() trace.Tracer { return t.tracer }

// Stats are the counts of the spans handed to export.
type Stats struct {
	// Exported spans reached the collector; Failed spans were in exports
	// that failed, retries included; Dropped spans found the queue full.
	Exported, Failed, Dropped uint64
	// Queued spans wait for export.
	Queued int
}

// Stats reads the export counters.
func (t *Tracing) Stats() Stats { return t.batch.stats() }

// ForceFlush exports every span ended so far, waiting until ctx ends.
func (t *Tracing) ForceFlush(ctx context.Context) error { return t.provider.ForceFlush(ctx) }

// Shutdown ends tracing: the spans already ended are exported, waiting
// until ctx ends, and no later span is. It may be called more than once.
func (t *Tracing) Shutdown(ctx context.Context) error {
	err := t.provider.Shutdown(ctx)
	if t.client != nil {
		t.client.CloseIdleConnections()
	}
	if err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}
