package policy

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/provider"
)

// providerLoad is what a fakeLoad says of one provider.
type providerLoad struct {
	left    float64
	cooling bool
	latency time.Duration
}

// fakeLoad is a Load with fixed answers; providers it does not list are
// unknown (whole headroom, no latency).
type fakeLoad map[string]providerLoad

func (f fakeLoad) Load(name string, _ time.Time) (float64, bool, time.Duration) {
	if l, ok := f[name]; ok {
		return l.left, l.cooling, l.latency
	}
	return 1, false, 0
}

// fakeKeys is a KeyPresence: true held, false known missing, absent unknown.
type fakeKeys map[string]bool

func (f fakeKeys) ClientKey(_ []byte, name string) (bool, bool) {
	has, known := f[name]
	return has, known
}

// june is in the year-round season the tests use.
var june = time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)

// allYear spreads every tier's suppliers over ws all year.
func allYear(ws map[string]int) []config.Season {
	return []config.Season{{Name: "peak", From: "01-01", To: "12-31", Spread: config.Spread{Tiers: []string{"starter"}, Weights: ws}}}
}

// firsts counts, over n requests with well-mixed spread numbers as the
// proxy makes them, which provider each plan tries first, and returns the
// last plan.
func firsts(t *testing.T, p *Policy, req Request, n int) (map[string]float64, []Attempt) {
	t.Helper()
	counts := map[string]float64{}
	var plan []Attempt
	for i := range n {
		req.Spread = uint64(i+1) * 0x9E3779B97F4A7C15
		var err error
		if plan, err = p.Plan(plan[:0], &req); err != nil {
			t.Fatal(err)
		}
		counts[plan[0].Provider.Name()]++
	}
	for k := range counts {
		counts[k] /= float64(n)
	}
	return counts, plan
}

func near(got, want float64) bool { return math.Abs(got-want) < 0.03 }

func TestLoadAwareSpread(t *testing.T) {
	a, b := mustProvider(t, "a", "m"), mustProvider(t, "b", "m")
	p, err := New(Options{Providers: []*provider.Provider{a, b}, DefaultTier: "starter", Seasons: allYear(map[string]int{"a": 1, "b": 1}),
		LoadAware: config.LoadAware{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		load   fakeLoad
		shareA float64
		last   string // the plan's last attempt, provider:reason
	}{
		{"nothing known", fakeLoad{}, 0.5, ""},
		{"a half used", fakeLoad{"a": {left: 0.5}}, 1.0 / 3, ""},
		{"a twice as slow", fakeLoad{"a": {left: 1, latency: 200 * time.Millisecond}, "b": {left: 1, latency: 100 * time.Millisecond}}, 1.0 / 3, ""},
		{"a below the minimum", fakeLoad{"a": {left: 0.05}}, 0, "a:low_headroom"},
		{"a held out by a 429", fakeLoad{"a": {left: 0.9, cooling: true}}, 0, "a:rate_limited"},
		{"both below the minimum: the priors decide", fakeLoad{"a": {left: 0.01}, "b": {left: 0.02}}, 0.5, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shares, plan := firsts(t, p, Request{Model: []byte("m"), Understood: true, Supplier: []byte("lily"), Now: june, Load: tc.load}, 4000)
			if !near(shares["a"], tc.shareA) {
				t.Errorf("a first in %.3f of plans, want %.3f", shares["a"], tc.shareA)
			}
			if len(plan) != 2 {
				t.Fatalf("plan %s", names(plan))
			}
			if last := plan[1].Provider.Name() + ":" + plan[1].Reason; tc.last != "" && last != tc.last {
				t.Errorf("plan %s, want %s last", names(plan), tc.last)
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		off, err := New(Options{Providers: []*provider.Provider{a, b}, DefaultTier: "starter", Seasons: allYear(map[string]int{"a": 1, "b": 1})})
		if err != nil {
			t.Fatal(err)
		}
		shares, _ := firsts(t, off, Request{Model: []byte("m"), Understood: true, Supplier: []byte("lily"), Now: june,
			Load: fakeLoad{"a": {cooling: true}}}, 4000)
		if !near(shares["a"], 0.5) {
			t.Errorf("with load-aware routing off the load counts: a first in %.3f", shares["a"])
		}
	})
}

// TestLoadAwareClientKeys: a supplier's own key says nothing of the
// platform's rate limits, so its choice ignores them; latency still counts.
func TestLoadAwareClientKeys(t *testing.T) {
	a, b := mustProvider(t, "a", "m"), mustProvider(t, "b", "m")
	p, err := New(Options{Providers: []*provider.Provider{a, b}, DefaultTier: "starter", Seasons: allYear(map[string]int{"a": 1, "b": 1}),
		Modes: map[string]billing.Mode{"bella": billing.ModeClient}, LoadAware: config.LoadAware{Enabled: true},
		ClientKeys: map[string]map[string]bool{"bella": {"a": true, "b": true}}, ConfigKeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	shares, plan := firsts(t, p, Request{Model: []byte("m"), Understood: true, Supplier: []byte("bella"), Now: june,
		Load: fakeLoad{"a": {left: 0, cooling: true}}}, 4000)
	if !near(shares["a"], 0.5) || plan[0].Source != billing.ClientKey {
		t.Errorf("a first in %.3f of the supplier's own-key plans, want 0.5 (%s)", shares["a"], names(plan))
	}
}

func TestRouteWeights(t *testing.T) {
	a, b, c := mustProvider(t, "a", "m"), mustProvider(t, "b", "m"), mustProvider(t, "c", "m")
	routes := []config.Route{{Workflow: "venue", Providers: []string{"a", "b", "c"}, Weights: map[string]int{"a": 3, "b": 1}}}
	for _, on := range []bool{false, true} {
		p, err := New(Options{Providers: []*provider.Provider{a, b, c}, Routes: routes, LoadAware: config.LoadAware{Enabled: on}})
		if err != nil {
			t.Fatal(err)
		}
		shares, plan := firsts(t, p, Request{Model: []byte("m"), Understood: true, Workflow: []byte("venue"), Load: fakeLoad{}}, 4000)
		if !near(shares["a"], 0.75) || !near(shares["b"], 0.25) || shares["c"] != 0 {
			t.Errorf("load-aware %v: first attempts %v, want a 0.75, b 0.25, c (weight 0) never", on, shares)
		}
		if len(plan) != 3 || plan[2].Provider != c {
			t.Errorf("load-aware %v: the chain does not follow: %s", on, names(plan))
		}
	}
}

// TestChoiceOnlyWhereTheSupplierHasAKey: a client-mode supplier's spread
// goes only to providers where it has its own key, so that its first
// healthy call is one attempt; attempts on a key known to be missing are
// dropped unless nothing else is left.
func TestChoiceOnlyWhereTheSupplierHasAKey(t *testing.T) {
	a, b := mustProvider(t, "a", "m"), mustProvider(t, "b", "m")
	seasons := allYear(map[string]int{"a": 1, "b": 1})
	tests := []struct {
		name string
		o    Options
		keys KeyPresence
		// first is the provider every plan tries first ("": either);
		// client its attempts with the supplier's own key; platform how
		// many attempts with platform keys follow.
		first    string
		client   string
		platform int
	}{
		{"config names the key", Options{ClientKeys: map[string]map[string]bool{"bella": {"b": true}}, ConfigKeysOnly: true},
			nil, "b", "b", 0},
		{"the key store has one", Options{}, fakeKeys{"a": false, "b": true}, "b", "b", 0},
		{"one held, one not known yet", Options{}, fakeKeys{"b": true}, "b", "b,a", 0},
		{"none known yet", Options{}, fakeKeys{}, "", "", 0},
		{"none anywhere: the call fails on a missing key", Options{ConfigKeysOnly: true}, nil, "", "", 0},
		{"platform keys after the own key spread over both", Options{ClientKeys: map[string]map[string]bool{"bella": {"b": true}},
			ConfigKeysOnly: true, PlatformFallback: map[string]bool{"bella": true}}, nil, "b", "b", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Providers, o.DefaultTier, o.Seasons = []*provider.Provider{a, b}, "starter", seasons
			o.Modes = map[string]billing.Mode{"bella": billing.ModeClient}
			p, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 64 {
				plan, err := p.Plan(nil, &Request{Model: []byte("m"), Understood: true, Supplier: []byte("bella"), Now: june,
					Spread: uint64(i), Keys: tc.keys})
				if err != nil {
					t.Fatal(err)
				}
				if tc.first != "" && plan[0].Provider.Name() != tc.first {
					t.Fatalf("spread %d: plan %s, want %s first", i, names(plan), tc.first)
				}
				client, platform := "", 0
				for _, at := range plan {
					if at.Source == billing.PlatformKey {
						platform++
						continue
					}
					if client != "" {
						client += ","
					}
					client += at.Provider.Name()
				}
				if tc.client == "" { // nothing known: both, in either order
					if len(plan) != 2 || platform != 0 {
						t.Fatalf("plan %s, want both providers with the own key", names(plan))
					}
					continue
				}
				if client != tc.client || platform != tc.platform {
					t.Fatalf("spread %d: own key on %s and %d platform attempts, want %s and %d", i, client, platform, tc.client, tc.platform)
				}
			}
		})
	}
}

func TestStrictRegion(t *testing.T) {
	us, eu := mustProvider(t, "openai"), mustProvider(t, "openai-eu", "m", "mistral-large")
	anthropic := mustProvider(t, "anthropic", "claude", "m")
	mistral := mustProvider(t, "mistral", "mistral-large")
	regions := func(strict bool) map[string]Region {
		return map[string]Region{"rose": {Name: "eu", Strict: strict, Providers: map[string]string{"openai": "openai-eu", "mistral": "mistral"}}}
	}
	tests := []struct {
		name    string
		strict  bool
		model   string
		under   bool
		want    string
		wantErr bool
	}{
		{"strict: the regional deployment alone", true, "m", true, "openai-eu:model_listed", false},
		{"not strict: the US provider listing the model stays", false, "m", true, "openai-eu:model_listed,anthropic:model_listed", false},
		{"strict: a provider in the region by itself", true, "mistral-large", true, "openai-eu:model_listed,mistral:model_listed", false},
		{"strict: pass-through", true, "", false, "openai-eu:region", false},
		{"strict: nothing in the region serves it", true, "claude", true, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Options{Providers: []*provider.Provider{us, eu, anthropic, mistral}, DefaultProvider: "openai",
				Regions: regions(tc.strict), Routes: []config.Route{{Workflow: "photo", Providers: []string{"anthropic", "openai"}}}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Plan(nil, &Request{Model: []byte(tc.model), Understood: tc.under, Supplier: []byte("rose")})
			if tc.wantErr {
				var re *RegionError
				if !errors.As(err, &re) || re.Region != "eu" || !errors.Is(err, ErrNoProviderInRegion) {
					t.Fatalf("plan %s, error %v; want a RegionError naming eu", names(got), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tc.want {
				t.Errorf("plan %s, want %s", names(got), tc.want)
			}
		})
	}
	t.Run("a route's chain stays in the region", func(t *testing.T) {
		p, err := New(Options{Providers: []*provider.Provider{us, eu, anthropic, mistral}, Regions: regions(true),
			Routes: []config.Route{{Workflow: "photo", Providers: []string{"anthropic", "openai"}}}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Plan(nil, &Request{Model: []byte("m"), Understood: true, Supplier: []byte("rose"), Workflow: []byte("photo")})
		if err != nil || names(got) != "openai-eu:region" {
			t.Errorf("plan %s, %v", names(got), err)
		}
		if name, strict := p.Region([]byte("rose")); name != "eu" || !strict {
			t.Errorf("Region = %s %v", name, strict)
		}
	})
	t.Run("two providers placed on one deployment are tried once", func(t *testing.T) {
		p, err := New(Options{Providers: []*provider.Provider{us, eu}, DefaultTier: "starter", Seasons: allYear(map[string]int{"openai": 2, "openai-eu": 1}),
			Regions: map[string]Region{"rose": {Name: "eu", Providers: map[string]string{"openai": "openai-eu"}}}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Plan(nil, &Request{Model: []byte("m"), Understood: true, Supplier: []byte("rose"), Now: june})
		if err != nil || len(got) != 1 || got[0].Provider != eu {
			t.Errorf("plan %s, %v", names(got), err)
		}
	})
}

func TestChoices(t *testing.T) {
	a, b := mustProvider(t, "a", "m"), mustProvider(t, "b", "m")
	p, err := New(Options{Providers: []*provider.Provider{a, b}, DefaultTier: "starter", Seasons: allYear(map[string]int{"a": 3, "b": 1}),
		LoadAware: config.LoadAware{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Choices(&Request{Model: []byte("m"), Understood: true, Supplier: []byte("lily"), Now: june,
		Load: fakeLoad{"a": {left: 0.5, latency: 120 * time.Millisecond}, "b": {cooling: true, left: 1}}})
	if len(got) != 2 || got[0].Provider != "a" || got[0].Prior != 3 || got[0].Headroom != 0.5 || got[0].Weight != 1.5 || got[0].Share != 1 ||
		got[0].LatencyMS != 120 || !got[1].RateLimited || got[1].Share != 0 {
		t.Errorf("Choices = %+v", got)
	}
	if got := p.Choices(&Request{Model: []byte("m"), Understood: true, Supplier: []byte("lily")}); got != nil {
		t.Errorf("out of season: %+v", got)
	}
}

// TestPlanLoadAwareAllocs: a plan with load-aware choice, a region and key
// presence allocates nothing.
func TestPlanLoadAwareAllocs(t *testing.T) {
	a, b, eu := mustProvider(t, "a", "m"), mustProvider(t, "b", "m"), mustProvider(t, "eu", "m")
	p, err := New(Options{Providers: []*provider.Provider{a, b, eu}, DefaultTier: "starter", Seasons: allYear(map[string]int{"a": 2, "b": 1}),
		Regions: map[string]Region{"rose": {Name: "eu", Providers: map[string]string{"b": "eu"}}}, LoadAware: config.LoadAware{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]Attempt, 0, 8)
	req := &Request{Model: []byte("m"), Understood: true, Supplier: []byte("rose"), Now: june,
		Load: fakeLoad{"a": {left: 0.05}, "eu": {left: 0.5, latency: time.Millisecond}}, Keys: fakeKeys{}}
	if n := testing.AllocsPerRun(200, func() {
		req.Spread++
		_, _ = p.Plan(buf[:0], req)
	}); n != 0 {
		t.Errorf("%.1f allocations per plan", n)
	}
}
