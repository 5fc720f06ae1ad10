package metrics

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/quota"
)

// DeclaredEndpoint is the endpoint label that Declare creates the request
// series of: the one nearly every call of the WedSync app goes to.
const DeclaredEndpoint = "chat_completions"

// declaredClasses are the status classes Declare creates the request and
// upstream attempt counts of: those that are ever seen.
var declaredClasses = [...]string{"none", "2xx", "4xx", "5xx"}

// quotaLimits are the limit label values of veil_quota_refusals_total.
var quotaLimits = [...]string{quota.LimitRequests, quota.LimitTokens, quota.LimitConcurrent, quota.LimitMonthTokens, quota.LimitMonthCost}

// keySources are the key_source label values of the token and cost series.
var keySources = [...]string{string(billing.PlatformKey), string(billing.ClientKey)}

// Declare creates, at zero, the series whose label values cfg names, so
// that every family is on /metrics from the start rather than from its
// first event, and a query or an alert rule sees 0, not nothing:
//
//   - per provider: retries denied, calls shed (upstream_pool,
//     supplier_in_flight), failovers to every provider, itself too (a
//     hybrid supplier's call moves from its own key to the platform's on
//     the same provider);
//   - per pair of a provider and a model it is configured with (its
//     models and model_map names, and the prices given for it; OtherModel
//     for a provider with none): requests and upstream attempts by
//     status class (none, 2xx, 4xx, 5xx), request duration (2xx), time to
//     first token, stream duration, tokens and cost by key source, all of
//     requests on DeclaredEndpoint;
//   - per tier: quota refusals by limit;
//   - the seasons, for veil_season_active.
//
// It is called with the config in force at start and after each reload.
// The series of names a reload drops stay, unchanged, until the process
// restarts.
func (m *Metrics) Declare(cfg *config.Config) {
	var providers []string
	for _, p := range cfg.Providers {
		if utf8.ValidString(p.Name) {
			providers = append(providers, p.Name)
		}
	}
	for _, from := range providers {
		m.retriesDenied.WithLabelValues(from)
		m.overloaded.WithLabelValues(from, OverloadUpstreamPool)
		m.overloaded.WithLabelValues(from, OverloadSupplierInFlight)
		for _, to := range providers {
			m.failovers.WithLabelValues(from, to)
		}
	}
	for _, pm := range providerModels(cfg) {
		p, model := pm[0], pm[1]
		for _, cls := range declaredClasses {
			m.requests.WithLabelValues(DeclaredEndpoint, p, model, cls)
			m.upstream.WithLabelValues(p, model, cls)
		}
		m.requestDuration.WithLabelValues(DeclaredEndpoint, p, model, "2xx")
		m.ttft.WithLabelValues(p, model)
		m.streamDuration.WithLabelValues(p, model)
		for _, src := range keySources {
			m.tokens.WithLabelValues(p, model, src, "prompt")
			m.tokens.WithLabelValues(p, model, src, "completion")
			m.cost.WithLabelValues(p, model, src)
		}
	}
	for _, t := range cfg.Tiers {
		if !utf8.ValidString(t.Name) {
			continue
		}
		for _, l := range quotaLimits {
			m.quotaRefusals.WithLabelValues(t.Name, l)
		}
	}
	seasons := slices.DeleteFunc(slices.Clone(cfg.Seasons), func(s config.Season) bool { return !utf8.ValidString(s.Name) })
	m.seasons.Store(&seasons)
}

// providerModels lists, sorted and once each, the pairs of a provider and
// a model name cfg configures for it: its models, the names its model_map
// takes, and the models of its prices. A provider with none has one pair
// with OtherModel.
func providerModels(cfg *config.Config) [][2]string {
	var pairs [][2]string
	add := func(provider, model string) {
		if model != "" && utf8.ValidString(provider) && utf8.ValidString(model) {
			pairs = append(pairs, [2]string{provider, model})
		}
	}
	for _, p := range cfg.Providers {
		for _, model := range p.Models {
			add(p.Name, model)
		}
		for from := range p.ModelMap {
			add(p.Name, from)
		}
	}
	for _, pr := range cfg.Prices {
		if _, ok := cfg.Provider(pr.Provider); ok {
			add(pr.Provider, pr.Model)
		}
	}
	for _, p := range cfg.Providers {
		if !slices.ContainsFunc(pairs, func(pm [2]string) bool { return pm[0] == p.Name }) {
			add(p.Name, OtherModel)
		}
	}
	slices.SortFunc(pairs, func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	return slices.Compact(pairs)
}

// SetBuildInfo sets veil_build_info to the running binary's version and
// commit (as cmd/veil's ldflags or the build's version control stamp give
// them) and the Go version it was built with.
func (m *Metrics) SetBuildInfo(version, commit string) {
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(strings.ToValidUTF8(version, ""), strings.ToValidUTF8(commit, ""), runtime.Version()).Set(1)
}
