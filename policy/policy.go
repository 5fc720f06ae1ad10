// Package policy decides, for each request, which provider, model and key
// source serve it and in which order to try them. It is pure: every input
// arrives as an argument, and a Plan is explainable by its reasons.
package policy

import (
	"errors"
	"fmt"

	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/provider"
)

// Key sources an attempt can use.
const (
	SourcePlatform = keys.SourcePlatform
	SourceClient   = keys.SourceClient
)

// Reasons explain why an attempt is in a plan.
const (
	ReasonModelListed = "model_listed"
	ReasonDefault     = "default_provider"
	ReasonFallback    = "fallback_provider"
	ReasonPassThrough = "pass_through"
)

// ErrNoProvider means no configured provider can serve the request.
var ErrNoProvider = errors.New("no provider can serve the request")

// Attempt is one planned upstream try.
type Attempt struct {
	Provider *provider.Provider
	// Model is the model to ask the provider for; it aliases the request.
	Model []byte
	// Source is the key source the attempt uses: platform or client.
	Source string
	// Reason says why the attempt is in the plan.
	Reason string
}

// Request is what the policy knows about a call.
type Request struct {
	// Model is the requested model; empty for model-less endpoints.
	Model []byte
	// Understood is false for pass-through endpoints, which go to the
	// default provider.
	Understood bool
	// Supplier is the supplier the call is for.
	Supplier []byte
	// Source, when set, overrides the supplier's mode: a tier out of
	// platform quota switching the call to the supplier's own key.
	Source string
}

// Options are the inputs a Policy is compiled from.
type Options struct {
	// Providers in configuration order.
	Providers []*provider.Provider
	// DefaultProvider takes models no provider lists and pass-through
	// calls; empty means the first provider.
	DefaultProvider string
	// DefaultMode is the mode of suppliers not in Modes: SourcePlatform
	// (or empty) or SourceClient.
	DefaultMode string
	// Modes maps supplier IDs to their mode.
	Modes map[string]string
}

// Policy holds the compiled routing configuration.
type Policy struct {
	providers   []*provider.Provider
	fallback    *provider.Provider
	defaultMode string
	modes       map[string]string
}

// New compiles a policy.
func New(o Options) (*Policy, error) {
	providers, defaultProvider := o.Providers, o.DefaultProvider
	if len(providers) == 0 {
		return nil, ErrNoProvider
	}
	p := &Policy{providers: providers, defaultMode: SourcePlatform, modes: o.Modes}
	if o.DefaultMode == SourceClient {
		p.defaultMode = SourceClient
	}
	for _, pr := range providers {
		if pr.Name() == defaultProvider {
			p.fallback = pr
		}
	}
	if defaultProvider == "" {
		p.fallback = providers[0]
	}
	if p.fallback == nil {
		return nil, fmt.Errorf("default provider %q is not configured", defaultProvider)
	}
	return p, nil
}

// Plan appends the ordered attempts for req to dst: providers that list the
// model first, in configuration order, then the default provider when it
// serves the model. A platform-mode supplier's attempts use platform keys
// and skip providers without any; a client-mode supplier's use its own.
func (p *Policy) Plan(dst []Attempt, req *Request) ([]Attempt, error) {
	source := p.Mode(req.Supplier)
	if req.Source != "" {
		source = req.Source
	}
	usable := func(pr *provider.Provider) bool { return source == SourceClient || pr.Platform() != nil }
	if !req.Understood || len(req.Model) == 0 {
		if !usable(p.fallback) {
			return dst, ErrNoProvider
		}
		return append(dst, Attempt{Provider: p.fallback, Model: req.Model, Source: source, Reason: ReasonPassThrough}), nil
	}
	n := len(dst)
	for _, pr := range p.providers {
		if pr.Lists(req.Model) && usable(pr) {
			dst = append(dst, Attempt{Provider: pr, Model: req.Model, Source: source, Reason: ReasonModelListed})
		}
	}
	if !contains(dst[n:], p.fallback) && p.fallback.Serves(req.Model) && usable(p.fallback) {
		reason := ReasonDefault
		if len(dst) > n {
			reason = ReasonFallback
		}
		dst = append(dst, Attempt{Provider: p.fallback, Model: req.Model, Source: source, Reason: reason})
	}
	if len(dst) == n {
		return dst, fmt.Errorf("model %q: %w", req.Model, ErrNoProvider)
	}
	return dst, nil
}

// Mode is a supplier's mode: SourcePlatform or SourceClient.
func (p *Policy) Mode(supplier []byte) string {
	if m, ok := p.modes[string(supplier)]; ok && m == SourceClient {
		return SourceClient
	} else if ok {
		return SourcePlatform
	}
	return p.defaultMode
}

func contains(as []Attempt, pr *provider.Provider) bool {
	for i := range as {
		if as[i].Provider == pr {
			return true
		}
	}
	return false
}
