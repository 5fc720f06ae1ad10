package config

import (
	"net/url"
	"strings"
	"time"
	"unicode"
)

// Defaults of the tracing section.
const (
	// DefaultTracingServiceName is the service.name of veil's spans.
	DefaultTracingServiceName = "veil"
	// DefaultTracingSampleRatio is the share of new traces recorded.
	DefaultTracingSampleRatio = 1.0
	// DefaultTracingQueueSize bounds the spans waiting for export.
	DefaultTracingQueueSize = 2048
	// DefaultTracingBatchSize is the most spans sent in one export.
	DefaultTracingBatchSize = 512
	// DefaultTracingBatchTimeout is the longest a span waits for its batch.
	DefaultTracingBatchTimeout = 5 * time.Second
	// DefaultTracingTimeout bounds one export, retries included.
	DefaultTracingTimeout = 10 * time.Second
)

// Tracing configures OpenTelemetry tracing: a span per request and per
// upstream attempt, exported over OTLP/HTTP (protobuf), and the W3C trace
// context sent upstream. Off unless OTLPEndpoint is set; a restart applies
// a change.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/HTTP URL, for example
	// http://collector:4318: without a path, spans are sent to its
	// /v1/traces; with one, to that path as given.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the share, from 0 to 1, of the traces veil starts
	// that are recorded. A request whose app sent a traceparent follows
	// the app's sampled flag instead. Absent means 1; use Ratio to read
	// it.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of veil's spans. Default veil.
	ServiceName string `yaml:"service_name"`
	// Headers are sent with each export (a collector's or a vendor's
	// credential); values are secret references.
	Headers Headers `yaml:"headers"`
	// QueueSize bounds the spans waiting for export; a span ended while
	// the queue is full is dropped and counted in
	// veil_tracing_spans_total{result="dropped"}. Default 2048.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most spans sent in one export. Default 512, at
	// most QueueSize.
	BatchSize int `yaml:"batch_size"`
	// BatchTimeout is the longest an ended span waits before its batch
	// is sent. Default 5s.
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// Timeout bounds one export, retries included. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// On reports whether tracing is configured.
func (t Tracing) On() bool { return t.OTLPEndpoint != "" }

// Ratio is SampleRatio, with absent read as the default.
func (t Tracing) Ratio() float64 {
	if t.SampleRatio == nil {
		return DefaultTracingSampleRatio
	}
	return *t.SampleRatio
}

func (c *Config) applyTracingDefaults() {
	t := &c.Tracing
	setDefault(&t.ServiceName, DefaultTracingServiceName)
	setInt(&t.QueueSize, DefaultTracingQueueSize)
	setInt(&t.BatchSize, min(DefaultTracingBatchSize, t.QueueSize))
	setDuration(&t.BatchTimeout, DefaultTracingBatchTimeout)
	setDuration(&t.Timeout, DefaultTracingTimeout)
}

func (v *validator) tracing() {
	t := v.c.Tracing
	if r := t.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) {
		v.fail("tracing.sample_ratio", "must be between 0 and 1, got %v", *r)
	}
	if t.ServiceName == "" || len(t.ServiceName) > 128 || strings.IndexFunc(t.ServiceName, notPrintable) >= 0 {
		v.fail("tracing.service_name", "must be 1 to 128 printable characters, got %q", t.ServiceName)
	}
	switch {
	case t.QueueSize <= 0:
		v.fail("tracing.queue_size", "must be positive, got %d", t.QueueSize)
	case t.BatchSize <= 0 || t.BatchSize > t.QueueSize:
		v.fail("tracing.batch_size", "must be between 1 and tracing.queue_size (%d), got %d", t.QueueSize, t.BatchSize)
	}
	v.timeout("tracing.batch_timeout", t.BatchTimeout, false)
	v.timeout("tracing.timeout", t.Timeout, false)
	if t.OTLPEndpoint == "" {
		if len(t.Headers) > 0 {
			v.fail("tracing.otlp_endpoint", "is required when tracing.headers are set")
		}
		return
	}
	if msg := checkCollectorURL(t.OTLPEndpoint); msg != "" {
		v.fail("tracing.otlp_endpoint", "%s", msg)
	}
	v.headers("tracing.headers", t.Headers)
}

// checkCollectorURL checks an OTLP/HTTP URL; it returns what is wrong
// with it, or "".
func checkCollectorURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || strings.ContainsFunc(s, isSpaceOrControl):
		return "must be an absolute http or https URL without whitespace, such as http://collector:4318"
	case u.Scheme != "http" && u.Scheme != "https" || u.Opaque != "" || u.Hostname() == "":
		return "must be an absolute http or https URL, such as http://collector:4318"
	case u.User != nil:
		return "must not contain user information; put credentials in tracing.headers"
	}
	if err := checkBaseURL(s); err != nil {
		return err.Error()
	}
	return ""
}

// notPrintable reports whether r is a control or non-printable character.
func notPrintable(r rune) bool { return !unicode.IsPrint(r) }
