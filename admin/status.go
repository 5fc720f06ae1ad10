package admin

import (
	"time"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
)

// ReloadStatus is the outcome of the last reload, shown on /admin/status.
type ReloadStatus struct {
	Generation int       `json:"generation"`
	At         time.Time `json:"at,omitempty"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
}

// Process is the state of the veil process itself.
type Process struct {
	Version  string
	Started  time.Time
	Draining bool
	Listen   config.Listen
	Reload   ReloadStatus
}

// ProcessReporter reports the state of the process for /admin/status.
type ProcessReporter interface {
	Process() Process
}

// HealthSnapshotter reports every provider's health; *health.Registry is
// one.
type HealthSnapshotter interface {
	Snapshot() []health.Snapshot
}

// Status is the document served on /admin/status.
type Status struct {
	Version   string            `json:"version"`
	Uptime    string            `json:"uptime"`
	Draining  bool              `json:"draining"`
	Listen    config.Listen     `json:"listen"`
	Providers []ProviderStatus  `json:"providers"`
	Callers   []string          `json:"callers"`
	Health    []health.Snapshot `json:"health"`
	Reload    ReloadStatus      `json:"reload"`
}

// ProviderStatus describes one configured provider, with its key shown only
// as a fingerprint.
type ProviderStatus struct {
	Name            string   `json:"name"`
	Type            string   `json:"type"`
	BaseURL         string   `json:"base_url"`
	Models          []string `json:"models,omitempty"`
	KeyFingerprints []string `json:"key_fingerprints,omitempty"`
	Default         bool     `json:"default"`
}

// StatusOf returns the /admin/status document's source: the process's
// state, the runtime in force and the providers' health.
func StatusOf(p ProcessReporter, rt RuntimeLoader, h HealthSnapshotter) func() any {
	return func() any {
		pr := p.Process()
		st := Status{
			Version:  pr.Version,
			Uptime:   time.Since(pr.Started).Round(time.Second).String(),
			Draining: pr.Draining,
			Listen:   pr.Listen,
			Reload:   pr.Reload,
		}
		r := rt.Load()
		def := r.Config.Routing.DefaultProvider
		for i, pc := range r.Config.Providers {
			ps := ProviderStatus{Name: pc.Name, Type: pc.Type, BaseURL: pc.BaseURL, Models: pc.Models,
				Default: pc.Name == def || (def == "" && i == 0)}
			if pool := r.Providers[i].Platform(); pool != nil {
				ps.KeyFingerprints = pool.Fingerprints()
			}
			st.Providers = append(st.Providers, ps)
		}
		for _, c := range r.Config.Callers {
			st.Callers = append(st.Callers, c.Name)
		}
		st.Health = h.Snapshot()
		return st
	}
}
