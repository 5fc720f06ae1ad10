package proxy

import (
	"slices"
	"testing"

	"github.com/wedsync/veil/metrics"
)

// TestMetricsLabelsMatch: the label values package metrics creates at
// start are the ones the proxy records with, so the series it declares
// are the ones that count.
func TestMetricsLabelsMatch(t *testing.T) {
	if epChat.name != metrics.DeclaredEndpoint {
		t.Errorf("the chat endpoint is %q, metrics declares %q", epChat.name, metrics.DeclaredEndpoint)
	}
	reasons := []string{cutClientGone, cutUpstreamError, cutIdleTimeout, cutShutdown}
	if !slices.Equal(slices.Sorted(slices.Values(reasons)), slices.Sorted(slices.Values(metrics.StreamReasons))) {
		t.Errorf("the proxy cuts streams for %q, metrics declares %q", reasons, metrics.StreamReasons)
	}
}
