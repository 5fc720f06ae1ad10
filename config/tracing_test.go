package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTracing(t *testing.T) {
	ratio := func(f float64) *float64 { return &f }
	defaults := Tracing{ServiceName: "veil", QueueSize: 2048, BatchSize: 512, BatchTimeout: 5 * time.Second, Timeout: 10 * time.Second}
	tests := []struct {
		name      string
		doc       string
		want      Tracing
		wantOn    bool
		wantRatio float64
		wantErrs  []wantErr
	}{
		{name: "off by default", want: defaults, wantRatio: 1},
		{name: "collector with a sample ratio and a credential", doc: `tracing:
  otlp_endpoint: http://collector:4318
  sample_ratio: 0.1
  service_name: veil-eu
  headers: {Authorization: env://OTLP_TOKEN}
  queue_size: 100
  timeout: 3s
`, wantOn: true, wantRatio: 0.1, want: Tracing{OTLPEndpoint: "http://collector:4318", SampleRatio: ratio(0.1), ServiceName: "veil-eu",
			Headers: Headers{"Authorization": "env://OTLP_TOKEN"}, QueueSize: 100, BatchSize: 100, BatchTimeout: 5 * time.Second,
			Timeout: 3 * time.Second}},
		{name: "sample ratio 0 records only what the app samples", doc: "tracing:\n  otlp_endpoint: https://otel.example/v1/traces\n  sample_ratio: 0\n",
			wantOn: true, wantRatio: 0, want: Tracing{OTLPEndpoint: "https://otel.example/v1/traces", SampleRatio: ratio(0), ServiceName: "veil",
				QueueSize: 2048, BatchSize: 512, BatchTimeout: 5 * time.Second, Timeout: 10 * time.Second}},
		{name: "sample ratio above 1", doc: "tracing:\n  otlp_endpoint: http://collector:4318\n  sample_ratio: 1.5\n", wantErrs: []wantErr{
			{field: "tracing.sample_ratio", at: "sample_ratio:", msg: "must be between 0 and 1, got 1.5"}}},
		{name: "endpoint not http", doc: "tracing:\n  otlp_endpoint: grpc://collector:4317\n", wantErrs: []wantErr{
			{field: "tracing.otlp_endpoint", at: "otlp_endpoint:", msg: "must be an absolute http or https URL, such as http://collector:4318"}}},
		{name: "endpoint without a scheme", doc: "tracing:\n  otlp_endpoint: collector:4318\n", wantErrs: []wantErr{
			{field: "tracing.otlp_endpoint", at: "otlp_endpoint:", msg: "must be an absolute http or https URL"}}},
		{name: "credentials in the endpoint", doc: "tracing:\n  otlp_endpoint: https://user:hunter2@collector:4318\n", wantErrs: []wantErr{
			{field: "tracing.otlp_endpoint", at: "otlp_endpoint:", msg: "must not contain user information; put credentials in tracing.headers"}}},
		{name: "query in the endpoint", doc: "tracing:\n  otlp_endpoint: https://collector:4318/?token=abc\n", wantErrs: []wantErr{
			{field: "tracing.otlp_endpoint", at: "otlp_endpoint:", msg: "must not contain a query"}}},
		{name: "headers without an endpoint", doc: "tracing:\n  headers: {Authorization: env://T}\n", wantErrs: []wantErr{
			{field: "tracing.otlp_endpoint", at: "tracing:", msg: "is required when tracing.headers are set"}}},
		{name: "header value is a literal", doc: "tracing:\n  otlp_endpoint: http://collector:4318\n  headers:\n    Authorization: Bearer abc123\n", wantErrs: []wantErr{
			{field: "tracing.headers.Authorization", at: "Authorization:", msg: "not a literal value"}}},
		{name: "vault header without vault", doc: "tracing:\n  otlp_endpoint: http://collector:4318\n  headers:\n    X-Token: vault://secret/otel#token\n", wantErrs: []wantErr{
			{field: "tracing.headers.X-Token", at: "X-Token:", msg: "is a vault:// reference but vault.enabled is false"}}},
		{name: "batch larger than the queue", doc: "tracing:\n  otlp_endpoint: http://collector:4318\n  queue_size: 10\n  batch_size: 20\n", wantErrs: []wantErr{
			{field: "tracing.batch_size", at: "batch_size:", msg: "must be between 1 and tracing.queue_size (10), got 20"}}},
		{name: "negative sizes and durations", doc: "tracing:\n  queue_size: -1\n  batch_timeout: -1s\n  timeout: -2s\n", wantErrs: []wantErr{
			{field: "tracing.queue_size", at: "queue_size:", msg: "must be positive, got -1"},
			{field: "tracing.batch_timeout", at: "batch_timeout:", msg: "must not be negative, got -1s"},
			{field: "tracing.timeout", at: "  timeout: -2s", msg: "must not be negative, got -2s"}}},
		{name: "service name with a control character", doc: "tracing:\n  service_name: \"veil\\n\"\n", wantErrs: []wantErr{
			{field: "tracing.service_name", at: "service_name:", msg: "must be 1 to 128 printable characters"}}},
		{name: "unknown field", doc: "tracing:\n  endpoint: http://collector:4318\n", wantErrs: []wantErr{
			{field: "tracing.endpoint", at: "endpoint:", msg: "unknown field; valid fields of tracing are: batch_size, batch_timeout, headers, otlp_endpoint, queue_size, sample_ratio, service_name, timeout"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := okProviders + okCallers + tc.doc
			c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
			if tc.wantErrs != nil {
				checkErrors(t, doc, err, tc.wantErrs)
				if err != nil && strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error repeats the URL's password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Tracing, tc.want) {
				t.Errorf("tracing %+v, want %+v", c.Tracing, tc.want)
			}
			if c.Tracing.On() != tc.wantOn || c.Tracing.Ratio() != tc.wantRatio {
				t.Errorf("on %v ratio %v, want %v and %v", c.Tracing.On(), c.Tracing.Ratio(), tc.wantOn, tc.wantRatio)
			}
		})
	}
}
