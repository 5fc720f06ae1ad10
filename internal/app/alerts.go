package app

import (
	"fmt"
	"os"

	"github.com/wedsync/veil/alert"
	"github.com/wedsync/veil/config"
)

// buildAlerts makes the notifier that probes and breakers report to: a
// log line per alert and, when configured, the alert webhook.
func (a *App) buildAlerts() error {
	ac := a.cfg.Alerts
	o := alert.Options{URL: ac.Webhook.URL, Timeout: ac.Webhook.Timeout, Debounce: ac.Debounce,
		Log: a.log, Observer: a.metrics}
	if host, err := os.Hostname(); err == nil {
		o.Instance = host
	}
	if o.URL != "" {
		headers, err := a.resolveHeaders(ac.Webhook.Headers)
		if err != nil {
			return fmt.Errorf("alerts.webhook: %w", err)
		}
		o.Headers = headers
	}
	n, err := alert.New(o)
	if err != nil {
		return fmt.Errorf("alerts.webhook: %w", err)
	}
	a.alerts = n
	return nil
}

// resolveHeaders resolves a webhook's header references to their values.
func (a *App) resolveHeaders(h config.Headers) (map[string]string, error) {
	out := make(map[string]string, len(h))
	for name, ref := range h {
		v, err := a.resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		out[name] = v.Reveal()
	}
	return out, nil
}
