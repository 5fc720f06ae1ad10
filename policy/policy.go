// Package policy decides, for each request, which provider, model and key
// source serve it and in which order to try them. It is pure: every input
// arrives as an argument, and a Plan is explainable by its reasons.
package policy

import (
	"errors"
	"fmt"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/provider"
)

// Reasons explain why an attempt is in a plan.
const (
	ReasonModelListed = "model_listed"
	ReasonDefault     = "default_provider"
	ReasonFallback    = "fallback_provider"
	ReasonPassThrough = "pass_through"
	ReasonRoute       = "workflow_route"
	ReasonPreferred   = "preferred_provider"
	ReasonPlatform    = "platform_fallback"
	ReasonSpread      = "season_spread"
	ReasonRegion      = "region"
	ReasonMigration   = "migration_fallback"
	// ReasonMigrationProvider marks the provider a migration moves the
	// supplier to, tried first for the models it lists or maps.
	ReasonMigrationProvider = "migration_provider"
)

// ErrNoProvider means no configured provider can serve the request.
var ErrNoProvider = errors.New("no provider can serve the request")

// ErrModelNotAllowed means the workflow's route does not allow the model.
var ErrModelNotAllowed = errors.New("the workflow does not allow this model")

// Attempt is one planned upstream try.
type Attempt struct {
	Provider *provider.Provider
	// Model is the model to ask the provider for; it aliases the request.
	Model []byte
	// Source is the key source the attempt uses: platform or client.
	Source billing.KeySource
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
	// Source, when set, overrides the supplier's mode: every attempt uses
	// keys of this source, such as a tier out of platform quota switching
	// the call to the supplier's own key.
	Source billing.KeySource
	// Fallback, when set, adds attempts with that key source after the
	// others: a migration's target falling back to the system the supplier
	// moves from, so that a broken target costs no request.
	Fallback billing.KeySource
	// Provider, when set, names the provider a migration moves the
	// supplier to: for a model it lists or maps (model_map), it is tried
	// first with the request's key source, ahead of the supplier's
	// preferred provider. For other models, and within a workflow's
	// provider chain, it changes nothing.
	Provider string
	// Workflow is the X-Workflow hint; unknown workflows use the default
	// routing.
	Workflow []byte
	// Now is the time that decides the season; zero means no season.
	Now time.Time
	// Spread picks among weighted providers in a season that spreads the
	// supplier's tier (any well-mixed number, such as a request counter).
	Spread uint64
	// Health, when set, says which providers' breakers are open at Now;
	// their attempts are left out unless nothing else is left.
	Health Availability
}

// Availability is the health input of a plan.
type Availability interface {
	Available(provider string, now time.Time) bool
}

// Options are the inputs a Policy is compiled from.
type Options struct {
	// Providers in configuration order.
	Providers []*provider.Provider
	// DefaultProvider takes models no provider lists and pass-through
	// calls; empty means the first provider.
	DefaultProvider string
	// DefaultMode is the mode of suppliers not in Modes: platform (or
	// empty), client or hybrid.
	DefaultMode billing.Mode
	// Modes maps supplier IDs to their mode (platform, client, hybrid).
	Modes map[string]billing.Mode
	// Preferred maps supplier IDs to the provider tried first.
	Preferred map[string]string
	// PlatformFallback lists client-mode suppliers whose calls may fall
	// back to platform keys.
	PlatformFallback map[string]bool
	// Routes send workflows to their models and provider chains.
	Routes []config.Route
	// Aliases map model names apps use to real ones.
	Aliases map[string]string
	// Seasons change routes and spread tiers over providers in their
	// calendar windows.
	Seasons []config.Season
	// Tiers maps supplier IDs to their tier (for seasonal spreading);
	// DefaultTier covers the rest.
	Tiers       map[string]string
	DefaultTier string
	// Regions maps supplier IDs to their region's provider replacements.
	Regions map[string]map[string]string
	// CacheOffTiers lists the tiers whose suppliers are never answered
	// from the cache.
	CacheOffTiers map[string]bool
}

// season is a compiled config.Season.
type season struct {
	cfg         config.Season
	routes      map[string]*route
	spreadTiers map[string]bool
	weighted    []weighted
	total       int
}

type weighted struct {
	provider *provider.Provider
	weight   int
}

// route is a compiled config.Route.
type route struct {
	workflow  string
	model     []byte
	force     bool
	providers []*provider.Provider
	allowed   map[string]bool
	cache     CacheMode
}

// Policy holds the compiled routing configuration.
type Policy struct {
	providers   []*provider.Provider
	fallback    *provider.Provider
	defaultMode billing.Mode
	modes       map[string]billing.Mode
	preferred   map[string]*provider.Provider
	fallbackOK  map[string]bool
	routes      map[string]*route
	aliases     map[string][]byte
	seasons     []*season
	tiers       map[string]string
	defaultTier string
	regions     map[string]map[*provider.Provider]*provider.Provider
	cacheOff    map[string]bool
}

// New compiles a policy.
func New(o Options) (*Policy, error) {
	providers, defaultProvider := o.Providers, o.DefaultProvider
	if len(providers) == 0 {
		return nil, ErrNoProvider
	}
	p := &Policy{providers: providers, defaultMode: billing.ModePlatform, modes: o.Modes}
	if o.DefaultMode == billing.ModeClient || o.DefaultMode == billing.ModeHybrid {
		p.defaultMode = o.DefaultMode
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
	p.fallbackOK = o.PlatformFallback
	p.preferred = make(map[string]*provider.Provider, len(o.Preferred))
	for sup, name := range o.Preferred {
		pr := p.byName(name)
		if pr == nil {
			return nil, fmt.Errorf("supplier %s: preferred provider %q is not configured", sup, name)
		}
		p.preferred[sup] = pr
	}
	p.aliases = make(map[string][]byte, len(o.Aliases))
	for a, m := range o.Aliases {
		p.aliases[a] = []byte(m)
	}
	var err error
	if p.routes, err = p.compileRoutes(o.Routes); err != nil {
		return nil, err
	}
	p.tiers, p.defaultTier, p.cacheOff = o.Tiers, o.DefaultTier, o.CacheOffTiers
	for _, sc := range o.Seasons {
		se := &season{cfg: sc, spreadTiers: map[string]bool{}}
		if se.routes, err = p.compileRoutes(sc.Routes); err != nil {
			return nil, fmt.Errorf("season %s: %w", sc.Name, err)
		}
		for _, t := range sc.Spread.Tiers {
			se.spreadTiers[t] = true
		}
		for _, pr := range p.providers { // configuration order, so spreading is deterministic
			if w := sc.Spread.Weights[pr.Name()]; w > 0 {
				se.weighted = append(se.weighted, weighted{pr, w})
				se.total += w
			}
		}
		p.seasons = append(p.seasons, se)
	}
	p.regions = map[string]map[*provider.Provider]*provider.Provider{}
	for sup, m := range o.Regions {
		rm := map[*provider.Provider]*provider.Provider{}
		for from, to := range m {
			f, t := p.byName(from), p.byName(to)
			if f == nil || t == nil {
				return nil, fmt.Errorf("supplier %s: region maps unknown providers %s -> %s", sup, from, to)
			}
			rm[f] = t
		}
		p.regions[sup] = rm
	}
	return p, nil
}

func (p *Policy) compileRoutes(rcs []config.Route) (map[string]*route, error) {
	routes := make(map[string]*route, len(rcs))
	for _, rc := range rcs {
		r := &route{workflow: rc.Workflow, model: p.resolve([]byte(rc.Model)), force: rc.Force, cache: CacheSupplier}
		switch rc.Cache {
		case config.CacheShared:
			r.cache = CacheShared
		case config.CacheOff:
			r.cache = CacheOff
		}
		for _, name := range rc.Providers {
			pr := p.byName(name)
			if pr == nil {
				return nil, fmt.Errorf("route %s: provider %q is not configured", rc.Workflow, name)
			}
			r.providers = append(r.providers, pr)
		}
		if len(rc.AllowedModels) > 0 {
			r.allowed = make(map[string]bool, len(rc.AllowedModels))
			for _, m := range rc.AllowedModels {
				r.allowed[string(p.resolve([]byte(m)))] = true
			}
		}
		routes[rc.Workflow] = r
	}
	return routes, nil
}

// activeSeason returns the first season covering now, or nil.
func (p *Policy) activeSeason(now time.Time) *season {
	if now.IsZero() {
		return nil
	}
	for _, se := range p.seasons {
		if se.cfg.Active(now) {
			return se
		}
	}
	return nil
}

// Season names the season in force at now, or "".
func (p *Policy) Season(now time.Time) string {
	if se := p.activeSeason(now); se != nil {
		return se.cfg.Name
	}
	return ""
}

func (p *Policy) byName(name string) *provider.Provider {
	for _, pr := range p.providers {
		if pr.Name() == name {
			return pr
		}
	}
	return nil
}

// resolve maps an alias to its model.
func (p *Policy) resolve(model []byte) []byte {
	if m, ok := p.aliases[string(model)]; ok {
		return m
	}
	return model
}

// Plan appends the ordered attempts for req to dst: providers that list the
// model first, in configuration order, then the default provider when it
// serves the model. A platform-mode supplier's attempts use platform keys
// and skip providers without any; a client-mode supplier's use its own.
func (p *Policy) Plan(dst []Attempt, req *Request) ([]Attempt, error) {
	first, then := p.sources(req)
	if !req.Understood {
		for _, src := range [...]billing.KeySource{first, then} {
			if src != "" && usable(p.fallback, src) {
				return append(dst, Attempt{Provider: p.fallback, Model: req.Model, Source: src, Reason: ReasonPassThrough}), nil
			}
		}
		return dst, ErrNoProvider
	}
	se := p.activeSeason(req.Now)
	r := p.route(se, req.Workflow)
	model := p.model(req.Model, r)
	if len(model) == 0 {
		if !usable(p.fallback, first) {
			return dst, ErrNoProvider
		}
		return append(dst, Attempt{Provider: p.fallback, Source: first, Reason: ReasonDefault}), nil
	}
	if r != nil && r.allowed != nil && !r.allowed[string(model)] {
		return dst, fmt.Errorf("model %q, workflow %s: %w", model, r.workflow, ErrModelNotAllowed)
	}
	n := len(dst)
	dst = p.candidates(dst, req, model, r, se, first, "", p.migrationProvider(req.Provider, model))
	if then != "" {
		dst = p.candidates(dst, req, model, r, se, then, ReasonPlatform, nil)
	}
	if fb := req.Fallback; fb.Valid() && fb != first && fb != then {
		dst = p.candidates(dst, req, model, r, se, fb, ReasonMigration, nil)
	}
	if len(dst) == n {
		return dst, fmt.Errorf("model %q: %w", model, ErrNoProvider)
	}
	p.inRegion(dst[n:], req.Supplier)
	return withoutOpenBreakers(dst, n, req), nil
}

// sources returns the key source a request's attempts use first and the
// one its plan falls back to after them, if any: the request's own source
// alone when it sets one, else the supplier's mode's, with platform keys
// after the supplier's own for a hybrid supplier or a client one allowed
// to fall back.
func (p *Policy) sources(req *Request) (first, then billing.KeySource) {
	if req.Source != "" {
		return req.Source, ""
	}
	switch mode := p.Mode(req.Supplier); {
	case mode == billing.ModeHybrid, mode == billing.ModeClient && p.fallbackOK[string(req.Supplier)]:
		return billing.ClientKey, billing.PlatformKey
	default:
		return mode.First(), ""
	}
}

// model is the model a request asks for once its workflow's route and the
// aliases had their say: the route's model when it forces one or the
// request names none.
func (p *Policy) model(requested []byte, r *route) []byte {
	if r != nil && len(r.model) > 0 && (r.force || len(requested) == 0) {
		requested = r.model
	}
	return p.resolve(requested)
}

// inRegion replaces the providers of the attempts with the supplier's
// regional ones, where the replacement can serve with the attempt's keys.
func (p *Policy) inRegion(as []Attempt, supplier []byte) {
	rm := p.regions[string(supplier)]
	if rm == nil {
		return
	}
	for i := range as {
		if to := rm[as[i].Provider]; to != nil && usable(to, as[i].Source) {
			as[i].Provider, as[i].Reason = to, ReasonRegion
		}
	}
}

// DefaultProvider is the provider that takes calls no other rule places.
func (p *Policy) DefaultProvider() *provider.Provider { return p.fallback }

// route is the workflow's route in season se (nil: none), or nil.
func (p *Policy) route(se *season, workflow []byte) *route {
	r := p.routes[string(workflow)]
	if se != nil {
		if sr := se.routes[string(workflow)]; sr != nil {
			r = sr
		}
	}
	return r
}

// CacheMode says whether and how widely a request's answer may be cached.
type CacheMode uint8

// Cache modes.
const (
	// CacheOff: the answer is neither looked up nor stored.
	CacheOff CacheMode = iota
	// CacheSupplier: the answer is cached for the supplier alone.
	CacheSupplier
	// CacheShared: the answer is cached once for every supplier, where a
	// route allows it.
	CacheShared
)

// Cache returns the cache mode of a supplier's request in workflow at now:
// off when the supplier's tier or the workflow's route turns caching off,
// shared where the route shares answers, else per supplier.
func (p *Policy) Cache(supplier, workflow []byte, now time.Time) CacheMode {
	if len(p.cacheOff) > 0 && p.cacheOff[p.tierOf(supplier)] {
		return CacheOff
	}
	if r := p.route(p.activeSeason(now), workflow); r != nil {
		return r.cache
	}
	return CacheSupplier
}

// withoutOpenBreakers drops attempts on providers whose breaker is open,
// in place, unless every attempt would go.
func withoutOpenBreakers(dst []Attempt, n int, req *Request) []Attempt {
	if req.Health == nil {
		return dst
	}
	kept := n
	for i := n; i < len(dst); i++ {
		if req.Health.Available(dst[i].Provider.Name(), req.Now) {
			dst[kept] = dst[i]
			kept++
		}
	}
	if kept == n {
		return dst // all open: trying beats failing without a try
	}
	return dst[:kept]
}

// tierOf is a supplier's tier name.
func (p *Policy) tierOf(supplier []byte) string {
	if t, ok := p.tiers[string(supplier)]; ok && t != "" {
		return t
	}
	return p.defaultTier
}

// usable reports whether a provider can serve with keys of source.
func usable(pr *provider.Provider, source billing.KeySource) bool {
	return source == billing.ClientKey || pr.Platform() != nil
}

// migrationProvider is the provider named, when it lists or maps model;
// else nil.
func (p *Policy) migrationProvider(name string, model []byte) *provider.Provider {
	if name == "" {
		return nil
	}
	if pr := p.byName(name); pr != nil && pr.Lists(model) {
		return pr
	}
	return nil
}

// candidates appends the providers that can serve model with keys of
// source: the workflow's chain, or the migration's provider (moved, when
// set), the supplier's preferred provider, the providers listing the
// model, then the default provider. A non-empty reason replaces each
// attempt's own.
func (p *Policy) candidates(dst []Attempt, req *Request, model []byte, r *route, se *season, source billing.KeySource, reason string, moved *provider.Provider) []Attempt {
	supplier := req.Supplier
	add := func(pr *provider.Provider, why string) {
		if reason != "" {
			why = reason
		}
		dst = append(dst, Attempt{Provider: pr, Model: pr.ModelFor(model), Source: source, Reason: why})
	}
	n := len(dst)
	if r != nil && len(r.providers) > 0 {
		for _, pr := range r.providers {
			if pr.Serves(model) && usable(pr, source) {
				add(pr, ReasonRoute)
			}
		}
		return dst
	}
	if moved != nil && usable(moved, source) {
		add(moved, ReasonMigrationProvider)
	} else if pr := p.preferred[string(supplier)]; pr != nil && pr.Serves(model) && usable(pr, source) {
		add(pr, ReasonPreferred)
	} else if pr := p.spread(se, supplier, req.Spread); pr != nil && pr.Serves(model) && usable(pr, source) {
		add(pr, ReasonSpread)
	}
	for _, pr := range p.providers {
		if pr.Lists(model) && usable(pr, source) && !contains(dst[n:], pr) {
			add(pr, ReasonModelListed)
		}
	}
	if !contains(dst[n:], p.fallback) && p.fallback.Serves(model) && usable(p.fallback, source) {
		why := ReasonDefault
		if len(dst) > n {
			why = ReasonFallback
		}
		add(p.fallback, why)
	}
	return dst
}

// spread is the provider that season se's weights pick for a supplier whose
// tier it spreads, by the request's spread number; nil when se spreads
// nothing of the supplier's.
func (p *Policy) spread(se *season, supplier []byte, spread uint64) *provider.Provider {
	if se == nil || se.total == 0 || !se.spreadTiers[p.tierOf(supplier)] {
		return nil
	}
	pick := int(spread % uint64(se.total))
	for _, w := range se.weighted {
		if pick < w.weight {
			return w.provider
		}
		pick -= w.weight
	}
	return nil
}

// Mode is a supplier's mode: platform, client or hybrid.
func (p *Policy) Mode(supplier []byte) billing.Mode {
	switch m, ok := p.modes[string(supplier)]; {
	case !ok:
		return p.defaultMode
	case m == billing.ModeClient || m == billing.ModeHybrid:
		return m
	default:
		return billing.ModePlatform
	}
}

func contains(as []Attempt, pr *provider.Provider) bool {
	for i := range as {
		if as[i].Provider == pr {
			return true
		}
	}
	return false
}
