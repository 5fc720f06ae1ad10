package config

import (
	"testing"
	"time"
)

const twoProviders = `providers:
  - name: openai
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://OPENAI_API_KEY
  - name: openai-eu
    type: openai
    base_url: https://eu.api.openai.com/v1
    api_key: env://OPENAI_API_KEY
`

func TestLoadAwareDefaults(t *testing.T) {
	c, err := ParseWithEnv([]byte(twoProviders+okCallers+`routing:
  load_aware:
    enabled: true
`), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	la := c.Routing.LoadAware
	if !la.Enabled || la.Floor() != DefaultMinHeadroom || la.Exponent() != DefaultLatencyWeight {
		t.Errorf("load_aware %+v: floor %v, exponent %v", la, la.Floor(), la.Exponent())
	}
	if c.Store.HeadroomInterval != time.Second {
		t.Errorf("store.headroom_interval %v", c.Store.HeadroomInterval)
	}
	c, err = ParseWithEnv([]byte(twoProviders+okCallers+`routing:
  load_aware: {enabled: true, min_headroom: 0, latency_weight: 0}
`), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if la := c.Routing.LoadAware; la.Floor() != 0 || la.Exponent() != 0 {
		t.Errorf("explicit zeros: floor %v, exponent %v", la.Floor(), la.Exponent())
	}
}

func TestLoadAwareValidation(t *testing.T) {
	tests := []struct {
		name, doc string
		paths     []string
	}{
		{"bounds", `routing:
  load_aware: {enabled: true, min_headroom: 1.5, latency_weight: -1}
store:
  headroom_interval: 10ms
`, []string{"routing.load_aware.min_headroom", "routing.load_aware.latency_weight", "store.headroom_interval"}},
		{"route weights", `routes:
  - workflow: venue
    providers: [openai]
    weights: {openai-eu: 2, openai: -1}
  - workflow: catering
    weights: {openai: 1}
seasons:
  - name: peak
    routes:
      - workflow: venue
        providers: [openai, openai-eu]
        weights: {openai: 0, openai-eu: 0}
`, []string{"routes[0].weights.openai-eu", "routes[0].weights.openai", "routes[1].weights", "seasons[0].routes[0].weights"}},
		{"strict regions", `regions:
  - name: eu
    strict: true
suppliers:
  entries:
    - id: rose
      region_strict: true
`, []string{"regions[0].strict", "suppliers.entries[0].region_strict"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(twoProviders+okCallers+tc.doc), "veil.yaml", noEnv)
			got := map[string]bool{}
			for _, fe := range fieldErrors(t, err) {
				got[fe.Field] = true
				if fe.Line == 0 {
					t.Errorf("%s: no line", fe.Field)
				}
			}
			for _, p := range tc.paths {
				if !got[p] {
					t.Errorf("no error on %s in:\n%v", p, err)
				}
			}
			if len(got) != len(tc.paths) {
				t.Errorf("errors on %v, want %v", got, tc.paths)
			}
		})
	}
}

func TestRegionStrict(t *testing.T) {
	c, err := ParseWithEnv([]byte(twoProviders+okCallers+`regions:
  - name: eu
    providers: {openai: openai-eu}
    strict: true
  - name: uk
    providers: {openai: openai-eu}
suppliers:
  entries:
    - id: rose
      region: eu
    - id: lily
      region: uk
      region_strict: true
    - id: ivy
      region: uk
    - id: bella
`), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"rose": true, "lily": true, "ivy": false, "bella": false} {
		e, _ := c.Supplier(id)
		if got := c.RegionStrict(e); got != want {
			t.Errorf("%s: strict %v, want %v", id, got, want)
		}
	}
}
