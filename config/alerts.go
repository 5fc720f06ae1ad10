package config

import (
	"net/url"
	"slices"
	"time"
)

// Defaults of the alerts section.
const (
	// DefaultAlertDebounce is how long a provider's state must hold before
	// a further change of it goes to the alert webhook.
	DefaultAlertDebounce = 30 * time.Second
	// DefaultAlertTimeout bounds one POST to the alert webhook.
	DefaultAlertTimeout = 5 * time.Second
)

// Alerts configures where health alerts go. Every alert (a provider's
// breaker opened or closed, active probes took it out or brought it back)
// is a log line; with a webhook URL it is also POSTed as JSON.
type Alerts struct {
	// Debounce applies to the webhook: the first change of a provider
	// that has been quiet goes at once, and changes within Debounce of
	// its last alert are held until it has been stable that long (at
	// most four periods), then only its latest state is sent. Log lines
	// are never held. Default 30s.
	Debounce time.Duration `yaml:"debounce"`
	// Webhook receives alerts; off without a URL.
	Webhook AlertWebhook `yaml:"webhook"`
}

// AlertWebhook is the HTTP endpoint alerts are POSTed to.
type AlertWebhook struct {
	// URL is the webhook's absolute http or https URL.
	URL string `yaml:"url"`
	// Headers are sent with each POST; values are secret references.
	Headers Headers `yaml:"headers"`
	// Timeout bounds one POST; a failed one is tried again with backoff a
	// few times. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
}

// Headers are HTTP headers sent to a webhook: names to secret references
// of their values, which are never logged.
type Headers map[string]SecretRef

func (c *Config) applyAlertDefaults() {
	a := &c.Alerts
	setDuration(&a.Debounce, DefaultAlertDebounce)
	setDuration(&a.Webhook.Timeout, DefaultAlertTimeout)
}

func (v *validator) alerts() {
	a := v.c.Alerts
	v.timeout("alerts.debounce", a.Debounce, false)
	w := a.Webhook
	v.timeout("alerts.webhook.timeout", w.Timeout, false)
	if w.URL == "" {
		if len(w.Headers) > 0 {
			v.fail("alerts.webhook.url", "is required when alerts.webhook.headers are set")
		}
		return
	}
	if u, err := url.Parse(w.URL); err == nil && u.User != nil {
		v.fail("alerts.webhook.url", "must not contain user information; put credentials in headers")
	} else if err := checkBaseURL(w.URL); err != nil {
		v.fail("alerts.webhook.url", "%v", err)
	}
	v.headers("alerts.webhook.headers", w.Headers)
}

// headers checks a webhook's header names and the references of their
// values, in name order.
func (v *validator) headers(path string, h Headers) {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !isHeaderName(name) {
			v.fail(path+"."+name, "%q is not a valid header name", name)
			continue
		}
		v.requiredRef(path+"."+name, h[name])
	}
}

// isHeaderName reports whether s is an HTTP header name (an RFC 9110
// token).
func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c < 0x7f && c > ' ' && isTokenPunct(c):
		default:
			return false
		}
	}
	return true
}

func isTokenPunct(c byte) bool {
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
