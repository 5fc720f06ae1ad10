package generation

import (
	"maps"
	"slices"

	"github.com/wedsync/veil/config"
)

// ModelNames lists, sorted and once each, every model name cfg names: the
// models providers serve and the names their model_map and Azure
// deployments take and give, aliases and the models they stand for, the
// models and allowed models of routes (seasons' routes too), and the
// models prices are given for. These are the only model names that become
// metric label values; a request cannot add one.
func ModelNames(cfg *config.Config) []string {
	set := map[string]bool{}
	add := func(names ...string) {
		for _, n := range names {
			if n != "" {
				set[n] = true
			}
		}
	}
	for _, p := range cfg.Providers {
		add(p.Models...)
		for from, to := range p.ModelMap {
			add(from, to)
		}
		if p.Azure != nil {
			add(slices.Collect(maps.Keys(p.Azure.Deployments))...)
		}
	}
	for alias, target := range cfg.Aliases {
		add(alias, target)
	}
	routes := func(rs []config.Route) {
		for _, r := range rs {
			add(r.Model)
			add(r.AllowedModels...)
		}
	}
	routes(cfg.Routes)
	for _, s := range cfg.Seasons {
		routes(s.Routes)
	}
	for _, p := range cfg.Prices {
		add(p.Model)
	}
	return slices.Sorted(maps.Keys(set))
}
