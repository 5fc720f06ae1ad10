package config

import (
	"strings"
	"testing"
	"time"
)

func TestAlerts(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		want     Alerts
		wantErrs []wantErr
	}{
		{name: "defaults: log lines only", want: Alerts{Debounce: 30 * time.Second, Webhook: AlertWebhook{Timeout: 5 * time.Second}}},
		{name: "webhook", doc: `alerts:
  debounce: 1m
  webhook:
    url: https://alerts.wedsync.internal/veil
    headers: {Authorization: env://ALERT_TOKEN}
    timeout: 2s
`, want: Alerts{Debounce: time.Minute, Webhook: AlertWebhook{URL: "https://alerts.wedsync.internal/veil",
			Headers: Headers{"Authorization": "env://ALERT_TOKEN"}, Timeout: 2 * time.Second}}},
		{name: "url not http", doc: "alerts:\n  webhook:\n    url: ftp://alerts.example/x\n", wantErrs: []wantErr{
			{field: "alerts.webhook.url", at: "url: ftp", msg: "must be an absolute http or https URL"}}},
		{name: "url relative", doc: "alerts:\n  webhook:\n    url: /alerts\n", wantErrs: []wantErr{
			{field: "alerts.webhook.url", at: "url: /alerts", msg: "must be an absolute http or https URL"}}},
		{name: "credentials in the url", doc: "alerts:\n  webhook:\n    url: https://user:hunter2@alerts.example/x\n", wantErrs: []wantErr{
			{field: "alerts.webhook.url", at: "url: https://user", msg: "must not contain user information; put credentials in headers"}}},
		{name: "headers without a url", doc: "alerts:\n  webhook:\n    headers: {Authorization: env://T}\n", wantErrs: []wantErr{
			{field: "alerts.webhook.url", at: "webhook:", msg: "is required when alerts.webhook.headers are set"}}},
		{name: "header value is a literal", doc: "alerts:\n  webhook:\n    url: https://a.example/x\n    headers:\n      Authorization: Bearer abc123\n", wantErrs: []wantErr{
			{field: "alerts.webhook.headers.Authorization", at: "Authorization:", msg: "not a literal value"}}},
		{name: "header name invalid", doc: "alerts:\n  webhook:\n    url: https://a.example/x\n    headers:\n      \"X Token\": env://T\n", wantErrs: []wantErr{
			{field: "alerts.webhook.headers.X Token", at: "X Token", msg: `"X Token" is not a valid header name`}}},
		{name: "negative durations", doc: "alerts:\n  debounce: -1s\n  webhook:\n    timeout: -2s\n", wantErrs: []wantErr{
			{field: "alerts.debounce", at: "debounce:", msg: "must not be negative, got -1s"},
			{field: "alerts.webhook.timeout", at: "timeout:", msg: "must not be negative, got -2s"}}},
		{name: "unknown field", doc: "alerts:\n  webhook:\n    uri: https://a.example/x\n", wantErrs: []wantErr{
			{field: "alerts.webhook.uri", at: "uri:", msg: "unknown field; valid fields of alerts.webhook are: headers, timeout, url"}}},
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
			if c.Alerts.Debounce != tc.want.Debounce || c.Alerts.Webhook.URL != tc.want.Webhook.URL ||
				c.Alerts.Webhook.Timeout != tc.want.Webhook.Timeout || len(c.Alerts.Webhook.Headers) != len(tc.want.Webhook.Headers) {
				t.Errorf("alerts %+v, want %+v", c.Alerts, tc.want)
			}
			for k, v := range tc.want.Webhook.Headers {
				if c.Alerts.Webhook.Headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, c.Alerts.Webhook.Headers[k], v)
				}
			}
		})
	}
}
