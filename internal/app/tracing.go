package app

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/trace"

	"github.com/wedsync/veil/tracing"
)

// buildTracing starts tracing when the configuration names a collector,
// and exports its counters.
func (a *App) buildTracing() error {
	tc := a.cfg.Tracing
	if !tc.On() {
		return nil
	}
	headers, err := a.resolveHeaders(tc.Headers)
	if err != nil {
		return fmt.Errorf("tracing.headers: %w", err)
	}
	t, err := tracing.New(tracing.Options{Endpoint: tc.OTLPEndpoint, Headers: headers, SampleRatio: tc.Ratio(),
		ServiceName: tc.ServiceName, ServiceVersion: a.version, QueueSize: tc.QueueSize, BatchSize: tc.BatchSize,
		BatchTimeout: tc.BatchTimeout, Timeout: tc.Timeout, Log: a.log})
	if err != nil {
		return err
	}
	a.tracing = t
	a.metrics.WatchTracing(t.Stats)
	return nil
}

// tracer is the proxy's tracer: nil when tracing is off.
func (a *App) tracer() trace.Tracer {
	if a.tracing == nil {
		return nil
	}
	return a.tracing.Tracer()
}

// closeTracing exports the spans still queued, waiting until ctx ends.
func (a *App) closeTracing(ctx context.Context) error {
	if a.tracing == nil {
		return nil
	}
	return a.tracing.Shutdown(ctx)
}
