package config

import (
	"fmt"
	"strings"
)

// Route sends one workflow (the X-Workflow header: photography, venue,
// catering, planning, or any configured name) to its model and providers.
type Route struct {
	// Workflow is the X-Workflow value the route applies to.
	Workflow string `yaml:"workflow"`
	// Model is used when the request names none, or always when Force is
	// set. It may be an alias.
	Model string `yaml:"model"`
	// Force makes Model win over the request's own model.
	Force bool `yaml:"force"`
	// Providers is the chain to try, in order; empty means the default
	// routing (providers listing the model, then the default provider).
	Providers []string `yaml:"providers"`
	// Weights, when set, spread the route's first attempt over its
	// providers by weight (a provider left out weighs nothing and is a
	// fallback only); with routing.load_aware the weights are multiplied by
	// each provider's headroom and latency. The others follow in the
	// chain's order.
	Weights map[string]int `yaml:"weights"`
	// AllowedModels, when set, are the only models the workflow may use;
	// others are refused with 400.
	AllowedModels []string `yaml:"allowed_models"`
	// Cache is the route's cache scope: supplier (the default: suppliers
	// never share an answer), shared (one answer for every supplier, for
	// prompts that carry nothing of a supplier's own) or off.
	Cache string `yaml:"cache"`
}

// Route returns the route of a workflow.
func (c *Config) Route(workflow string) (*Route, bool) {
	return find(c.Routes, func(r *Route) string { return r.Workflow }, workflow)
}

func (v *validator) routes() {
	seen := map[string]int{}
	for i, r := range v.c.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		v.uniqueName(path+".workflow", r.Workflow, i, callerNames, seen, "duplicate workflow %q, also routes[%d]")
		if r.Force && r.Model == "" {
			v.fail(path+".model", "is required when force is set")
		}
		for j, p := range r.Providers {
			if _, ok := v.c.Provider(p); !ok {
				v.fail(fmt.Sprintf("%s.providers[%d]", path, j), "%q does not name a provider", p)
			}
		}
		if r.Model != "" && len(r.AllowedModels) > 0 {
			m := v.c.Resolve(r.Model)
			ok := false
			for _, a := range r.AllowedModels {
				if v.c.Resolve(a) == m {
					ok = true
				}
			}
			if !ok {
				v.fail(path+".model", "%q is not among the route's allowed_models", r.Model)
			}
		}
	}
	for alias, target := range v.c.Aliases {
		path := "aliases." + alias
		switch {
		case target == "" || strings.ContainsFunc(target, isSpaceOrControl):
			v.fail(path, "must name a model")
		case v.c.Aliases[target] != "":
			v.fail(path, "points at another alias %q; aliases are resolved once", target)
		}
	}
}

// Resolve returns the model an alias stands for, or model itself.
func (c *Config) Resolve(model string) string {
	if m, ok := c.Aliases[model]; ok {
		return m
	}
	return model
}
