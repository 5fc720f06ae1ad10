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
	// ReasonRouteWeights: a route's weights chose the provider first.
	ReasonRouteWeights = "route_weights"
	// ReasonLowHeadroom: load-aware routing moved the attempt to the end of
	// the plan, as little is left of the provider's rate limits.
	ReasonLowHeadroom = "low_headroom"
	// ReasonRateLimited: load-aware routing moved the attempt to the end
	// of the plan, as a 429 holds the provider out.
	ReasonRateLimited = "rate_limited"
)

// ErrNoProvider means no configured provider can serve the request.
var ErrNoProvider = errors.New("no provider can serve the request")

// ErrModelNotAllowed means the workflow's route does not allow the model.
var ErrModelNotAllowed = errors.New("the workflow does not allow this model")

// ErrNoProviderInRegion means a supplier whose calls must stay in its
// region has no provider there that can serve the request; see
// RegionError.
var ErrNoProviderInRegion = errors.New("no provider in the supplier's region can serve the request")

// RegionError is the error of a plan that found no provider in a strict
// region; it matches ErrNoProviderInRegion.
type RegionError struct {
	// Region names the supplier's region.
	Region string
}

func (e *RegionError) Error() string {
	return "region " + e.Region + ": " + ErrNoProviderInRegion.Error()
}

// Unwrap makes the error match ErrNoProviderInRegion.
func (e *RegionError) Unwrap() error { return ErrNoProviderInRegion }

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
	// Load, when set and load-aware routing is on, tells each provider's
	// rate-limit headroom, 429 cooldown and latency at Now.
	Load Load
	// Keys, when set, tells where veil holds a supplier's own keys, so
	// that calls on them go only where the supplier can be served.
	Keys KeyPresence
}

// Load is the load input of a plan (health.Registry is one).
type Load interface {
	// Load reports, for a provider at now, the fraction of its platform
	// keys' tightest rate limit that is left (1 when nothing tells),
	// whether a 429 holds it out, and its recent time to response
	// headers (0 when not known). It must not allocate.
	Load(provider string, now time.Time) (left float64, coolingDown bool, latency time.Duration)
}

// KeyPresence says, without asking a key store, where a supplier has its
// own key.
type KeyPresence interface {
	// ClientKey reports whether the supplier's own key for the provider
	// is held; known is false when veil has not learnt yet whether there
	// is one.
	ClientKey(supplier []byte, provider string) (has, known bool)
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
	// Regions maps supplier IDs to their region.
	Regions map[string]Region
	// CacheOffTiers lists the tiers whose suppliers are never answered
	// from the cache.
	CacheOffTiers map[string]bool
	// LoadAware weighs choices among providers by Request.Load.
	LoadAware config.LoadAware
	// ClientKeys maps supplier IDs to the providers that config names an
	// own key of theirs for.
	ClientKeys map[string]map[string]bool
	// ConfigKeysOnly is set when suppliers' own keys are only those that
	// config names (no Vault): a provider ClientKeys does not list has no
	// key of the supplier's. Otherwise Request.Keys tells where veil holds
	// them.
	ConfigKeysOnly bool
}

// Region is a supplier's region: the regional deployments that replace
// providers, and whether its calls must stay on them.
type Region struct {
	// Name names the region.
	Name string
	// Providers maps providers to their regional deployments; the
	// deployments are the region's providers.
	Providers map[string]string
	// Strict keeps calls on the region's providers.
	Strict bool
}

// season is a compiled config.Season.
type season struct {
	cfg         config.Season
	routes      map[string]*route
	spreadTiers map[string]bool
	weighted    []weighted
	// loc, from and to are the season's window, days as month*100+day,
	// read once so that a plan neither loads the time zone nor formats.
	loc      *time.Location
	from, to int
}

// monthDay is a day as month*100+day.
func monthDay(t time.Time) int {
	_, m, d := t.Date()
	return int(m)*100 + d
}

// active reports whether the season covers now, as config.Season.Active.
func (se *season) active(now time.Time) bool {
	day := monthDay(now.In(se.loc))
	if se.from <= se.to {
		return day >= se.from && day <= se.to
	}
	return day >= se.from || day <= se.to
}

// weighted is a provider and its weight in a choice.
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
	// weighted are the route's weights, in chain order; nil without any.
	weighted []weighted
	allowed  map[string]bool
	cache    CacheMode
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
	regions     map[string]*region
	cacheOff    map[string]bool
	loadAware   bool
	floor       float64
	exponent    float64
	clientKeys  map[string]map[string]bool
	keysOnly    bool
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
		se := &season{cfg: sc, spreadTiers: map[string]bool{}, loc: time.UTC}
		if sc.TimeZone != "" {
			if se.loc, err = time.LoadLocation(sc.TimeZone); err != nil {
				return nil, fmt.Errorf("season %s: %w", sc.Name, err)
			}
		}
		from, errFrom := time.Parse("01-02", sc.From)
		to, errTo := time.Parse("01-02", sc.To)
		if errFrom != nil || errTo != nil {
			return nil, fmt.Errorf("season %s: from %q and to %q must be days as MM-DD", sc.Name, sc.From, sc.To)
		}
		se.from, se.to = monthDay(from), monthDay(to)
		if se.routes, err = p.compileRoutes(sc.Routes); err != nil {
			return nil, fmt.Errorf("season %s: %w", sc.Name, err)
		}
		for _, t := range sc.Spread.Tiers {
			se.spreadTiers[t] = true
		}
		se.weighted = p.weighted(p.providers, sc.Spread.Weights) // configuration order, so spreading is deterministic
		p.seasons = append(p.seasons, se)
	}
	p.regions = make(map[string]*region, len(o.Regions))
	for sup, rc := range o.Regions {
		rg := &region{name: rc.Name, strict: rc.Strict, replace: map[*provider.Provider]*provider.Provider{},
			members: map[*provider.Provider]bool{}}
		for from, to := range rc.Providers {
			f, t := p.byName(from), p.byName(to)
			if f == nil || t == nil {
				return nil, fmt.Errorf("supplier %s: region maps unknown providers %s -> %s", sup, from, to)
			}
			rg.replace[f], rg.members[t] = t, true
		}
		p.regions[sup] = rg
	}
	p.loadAware, p.floor, p.exponent = o.LoadAware.Enabled, o.LoadAware.Floor(), o.LoadAware.Exponent()
	p.clientKeys, p.keysOnly = o.ClientKeys, o.ConfigKeysOnly
	return p, nil
}

// weighted lists the providers of prs that ws gives a positive weight,
// in the order of prs.
func (p *Policy) weighted(prs []*provider.Provider, ws map[string]int) []weighted {
	var out []weighted
	for _, pr := range prs {
		if w := ws[pr.Name()]; w > 0 {
			out = append(out, weighted{pr, w})
		}
	}
	return out
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
		r.weighted = p.weighted(r.providers, rc.Weights)
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
		if se.active(now) {
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
// and skip providers without any; a client-mode supplier's use its own,
// where it has one. A supplier's region replaces providers with its
// regional deployments and, when strict, keeps every attempt there (or
// fails with a *RegionError). With load-aware routing on, providers low on
// headroom or held out by a 429 go last.
func (p *Policy) Plan(dst []Attempt, req *Request) ([]Attempt, error) {
	first, then := p.sources(req)
	rg := p.regions[string(req.Supplier)]
	if !req.Understood {
		for _, src := range [...]billing.KeySource{first, then} {
			if src == "" {
				continue
			}
			if pr, why := rg.place(p.fallback, src, ReasonPassThrough); rg.admits(pr) && usable(pr, src) {
				return append(dst, Attempt{Provider: pr, Model: req.Model, Source: src, Reason: why}), nil
			}
		}
		return dst, rg.refusal(ErrNoProvider)
	}
	se := p.activeSeason(req.Now)
	r := p.route(se, req.Workflow)
	model := p.model(req.Model, r)
	if len(model) == 0 {
		pr, why := rg.place(p.fallback, first, ReasonDefault)
		if !usable(pr, first) || !rg.admits(pr) {
			return dst, rg.refusal(ErrNoProvider)
		}
		return append(dst, Attempt{Provider: pr, Source: first, Reason: why}), nil
	}
	if r != nil && r.allowed != nil && !r.allowed[string(model)] {
		return dst, fmt.Errorf("model %q, workflow %s: %w", model, r.workflow, ErrModelNotAllowed)
	}
	n := len(dst)
	dst = p.candidates(dst, req, model, r, se, rg, first, "", p.migrationProvider(req.Provider, model))
	if then != "" {
		dst = p.candidates(dst, req, model, r, se, rg, then, ReasonPlatform, nil)
	}
	if fb := req.Fallback; fb.Valid() && fb != first && fb != then {
		dst = p.candidates(dst, req, model, r, se, rg, fb, ReasonMigration, nil)
	}
	if len(dst) == n {
		return dst, fmt.Errorf("model %q: %w", model, ErrNoProvider)
	}
	rg.apply(dst[n:], model)
	if dst = rg.keep(dst, n); len(dst) == n {
		return dst, fmt.Errorf("model %q: %w", model, rg.refusal(ErrNoProvider))
	}
	dst = withoutRepeats(dst, n)
	dst = p.withoutMissingKeys(dst, n, req)
	dst = p.demote(dst, n, req)
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

// usable reports whether a provider can serve with keys of source; a
// supplier's own keys are checked by clientKey.
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
// source: the workflow's chain (its weights choosing the first), or the
// migration's provider (moved, when set), the supplier's preferred
// provider or the season's spread, the providers listing the model, then
// the default provider. A non-empty reason replaces each attempt's own.
func (p *Policy) candidates(dst []Attempt, req *Request, model []byte, r *route, se *season, rg *region, source billing.KeySource,
	reason string, moved *provider.Provider) []Attempt {
	supplier := req.Supplier
	add := func(pr *provider.Provider, why string) {
		if reason != "" {
			why = reason
		}
		dst = append(dst, Attempt{Provider: pr, Model: pr.ModelFor(model), Source: source, Reason: why})
	}
	n := len(dst)
	if r != nil && len(r.providers) > 0 {
		if len(r.weighted) > 0 {
			if pr := p.choose(r.weighted, req, model, rg, source); pr != nil {
				add(pr, ReasonRouteWeights)
			}
		}
		for _, pr := range r.providers {
			if pr.Serves(model) && usable(pr, source) && !contains(dst[n:], pr) {
				add(pr, ReasonRoute)
			}
		}
		return dst
	}
	if moved != nil && usable(moved, source) {
		add(moved, ReasonMigrationProvider)
	} else if pr := p.preferred[string(supplier)]; preferred(pr, model, source) {
		add(pr, ReasonPreferred)
	} else if ws := p.spreading(se, supplier); ws != nil {
		if pr := p.choose(ws, req, model, rg, source); pr != nil {
			add(pr, ReasonSpread)
		}
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

// spreading is the weights of season se's spread for a supplier whose tier
// it spreads; nil when se spreads nothing of the supplier's.
func (p *Policy) spreading(se *season, supplier []byte) []weighted {
	if se == nil || len(se.weighted) == 0 || !se.spreadTiers[p.tierOf(supplier)] {
		return nil
	}
	return se.weighted
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
