// Package policy decides, for each request, which provider, model and key
// source serve it and in which order to try them. It is pure: every input
// arrives as an argument, and a Plan is explainable by its reasons.
package policy

import (
	"errors"
	"fmt"

	"github.com/wedsync/veil/provider"
)

// Key sources an attempt can use.
const (
	SourcePlatform = "platform"
	SourceClient   = "client"
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
	// Key is the credential the attempt uses.
	Key *provider.Credential
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
}

// Policy holds the compiled routing configuration.
type Policy struct {
	providers []*provider.Provider
	fallback  *provider.Provider
}

// New compiles a policy over providers in configuration order. The default
// provider takes models no provider lists and pass-through calls.
func New(providers []*provider.Provider, defaultProvider string) (*Policy, error) {
	if len(providers) == 0 {
		return nil, ErrNoProvider
	}
	p := &Policy{providers: providers}
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
// serves the model. Every attempt uses the provider's platform key.
func (p *Policy) Plan(dst []Attempt, req *Request) ([]Attempt, error) {
	if !req.Understood || len(req.Model) == 0 {
		if p.fallback.Platform() == nil {
			return dst, ErrNoProvider
		}
		return append(dst, Attempt{Provider: p.fallback, Model: req.Model, Key: p.fallback.Platform(), Reason: ReasonPassThrough}), nil
	}
	n := len(dst)
	for _, pr := range p.providers {
		if pr.Lists(req.Model) && pr.Platform() != nil {
			dst = append(dst, Attempt{Provider: pr, Model: req.Model, Key: pr.Platform(), Reason: ReasonModelListed})
		}
	}
	if !contains(dst[n:], p.fallback) && p.fallback.Serves(req.Model) && p.fallback.Platform() != nil {
		reason := ReasonDefault
		if len(dst) > n {
			reason = ReasonFallback
		}
		dst = append(dst, Attempt{Provider: p.fallback, Model: req.Model, Key: p.fallback.Platform(), Reason: reason})
	}
	if len(dst) == n {
		return dst, fmt.Errorf("model %q: %w", req.Model, ErrNoProvider)
	}
	return dst, nil
}

func contains(as []Attempt, pr *provider.Provider) bool {
	for i := range as {
		if as[i].Provider == pr {
			return true
		}
	}
	return false
}
