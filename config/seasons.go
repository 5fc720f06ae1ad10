package config

import (
	"fmt"
	"strings"
	"time"
)

// Season is a calendar window, every year, that changes routing and tier
// limits, such as the wedding peak from March to October.
type Season struct {
	Name string `yaml:"name"`
	// From and To are the first and last day, MM-DD, inclusive; a window
	// may wrap the new year (11-01 to 02-28).
	From string `yaml:"from"`
	To   string `yaml:"to"`
	// TimeZone decides when a day starts; default UTC.
	TimeZone string `yaml:"time_zone"`
	// Routes replace the routes of the same workflows during the season.
	Routes []Route `yaml:"routes"`
	// Tiers replace the limits of the tiers of the same names.
	Tiers []Tier `yaml:"tiers"`
	// Spread sends suppliers of the listed tiers to providers by weight,
	// to spread load in the season.
	Spread Spread `yaml:"spread"`
}

// Spread weights providers for the suppliers of some tiers.
type Spread struct {
	Tiers   []string       `yaml:"tiers"`
	Weights map[string]int `yaml:"weights"`
}

// Region maps providers to their regional deployments for the suppliers of
// that region (a supplier's region setting).
//
// A region's providers are the deployments its map names (the values); a
// provider that is in the region already maps to itself (mistral:
// mistral).
type Region struct {
	Name      string            `yaml:"name"`
	Providers map[string]string `yaml:"providers"`
	// Strict keeps the calls of every supplier of the region on the
	// region's providers: a call none of them can serve is refused with 503
	// no_provider_in_region rather than sent elsewhere.
	Strict bool `yaml:"strict"`
}

// PeakSeason returns the season that projections treat as the wedding
// peak: the first whose name says peak, in any case ("peak",
// "Wedding-Peak"); ok is false when no season does, and callers fall back
// to March to October (DefaultPeakFrom, DefaultPeakTo).
func (c *Config) PeakSeason() (s Season, ok bool) {
	if c == nil {
		return Season{}, false
	}
	for _, s := range c.Seasons {
		if strings.Contains(strings.ToLower(s.Name), "peak") {
			return s, true
		}
	}
	return Season{}, false
}

// Active reports whether the season covers t.
func (s Season) Active(t time.Time) bool {
	loc := time.UTC
	if s.TimeZone != "" {
		if l, err := time.LoadLocation(s.TimeZone); err == nil {
			loc = l
		}
	}
	day := t.In(loc).Format("01-02")
	if s.From <= s.To {
		return day >= s.From && day <= s.To
	}
	return day >= s.From || day <= s.To
}

func validMonthDay(s string) bool {
	_, err := time.Parse("01-02", s)
	return err == nil
}

func (v *validator) seasons() {
	for i, s := range v.c.Seasons {
		path := fmt.Sprintf("seasons[%d]", i)
		if s.Name == "" {
			v.fail(path+".name", "is required")
		}
		if !validMonthDay(s.From) {
			v.fail(path+".from", "must be a day as MM-DD, such as 03-01, got %q", s.From)
		}
		if !validMonthDay(s.To) {
			v.fail(path+".to", "must be a day as MM-DD, such as 10-31, got %q", s.To)
		}
		if s.TimeZone != "" {
			if _, err := time.LoadLocation(s.TimeZone); err != nil {
				v.fail(path+".time_zone", "unknown time zone %q", s.TimeZone)
			}
		}
		for j, r := range s.Routes {
			for k, p := range r.Providers {
				if _, ok := v.c.Provider(p); !ok {
					v.fail(fmt.Sprintf("%s.routes[%d].providers[%d]", path, j, k), "%q does not name a provider", p)
				}
			}
		}
		for j, t := range s.Tiers {
			if _, ok := v.c.Tier(t.Name); !ok {
				v.fail(fmt.Sprintf("%s.tiers[%d].name", path, j), "%q does not name a tier", t.Name)
			}
		}
		for j, t := range s.Spread.Tiers {
			if _, ok := v.c.Tier(t); !ok {
				v.fail(fmt.Sprintf("%s.spread.tiers[%d]", path, j), "%q does not name a tier", t)
			}
		}
		for p, w := range s.Spread.Weights {
			if _, ok := v.c.Provider(p); !ok {
				v.fail(path+".spread.weights."+p, "%q does not name a provider", p)
			}
			if w < 0 {
				v.fail(path+".spread.weights."+p, "must not be negative")
			}
		}
	}
	regions := map[string]bool{}
	for i, r := range v.c.Regions {
		path := fmt.Sprintf("regions[%d]", i)
		if r.Name == "" || regions[r.Name] {
			v.fail(path+".name", "must be set and unique, got %q", r.Name)
		}
		regions[r.Name] = true
		for from, to := range r.Providers {
			if _, ok := v.c.Provider(from); !ok {
				v.fail(path+".providers."+from, "%q does not name a provider", from)
			}
			if _, ok := v.c.Provider(to); !ok {
				v.fail(path+".providers."+from, "%q does not name a provider", to)
			}
		}
	}
	for i, e := range v.c.Suppliers.Entries {
		if e.Region != "" && !regions[e.Region] {
			v.fail(fmt.Sprintf("suppliers.entries[%d].region", i), "%q does not name a region", e.Region)
		}
	}
}
