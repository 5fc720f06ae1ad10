package config

import (
	"strings"
	"testing"
	"time"
)

func TestSeasonActive(t *testing.T) {
	peak := Season{From: "03-01", To: "10-31", TimeZone: "Europe/London"}
	winter := Season{From: "11-01", To: "02-28"}
	cases := []struct {
		s    Season
		at   time.Time
		want bool
	}{
		{peak, time.Date(2026, 3, 1, 0, 30, 0, 0, time.UTC), true},
		{peak, time.Date(2026, 2, 28, 23, 30, 0, 0, time.UTC), false},
		{peak, time.Date(2026, 10, 31, 22, 30, 0, 0, time.UTC), true}, // still the 31st in London (GMT)
		{winter, time.Date(2026, 12, 25, 12, 0, 0, 0, time.UTC), true},
		{winter, time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), true},
		{winter, time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC), false},
	}
	for _, tc := range cases {
		if got := tc.s.Active(tc.at); got != tc.want {
			t.Errorf("%s..%s at %v: %v", tc.s.From, tc.s.To, tc.at, got)
		}
	}
}

func TestSeasonsValidation(t *testing.T) {
	doc := okProviders + okCallers + `tiers:
  - name: starter
seasons:
  - name: peak
    from: "13-01"
    to: "10-31"
    time_zone: Mars/Olympus
    spread:
      tiers: [gold]
      weights: {azure: 1}
regions:
  - name: eu
    providers: {openai: openai-eu}
suppliers:
  entries:
    - id: rose
      region: us
`
	_, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"seasons[0].from", "seasons[0].time_zone", "seasons[0].spread.tiers[0]", "seasons[0].spread.weights.azure",
		"regions[0].providers.openai", "suppliers.entries[0].region"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no error on %s in:\n%v", want, err)
		}
	}
}

func TestPeakSeasonDefaults(t *testing.T) {
	c, err := ParseWithEnv([]byte(okProviders+okCallers+"seasons:\n  - name: peak\n    time_zone: Europe/London\n"), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Seasons[0]; s.From != "03-01" || s.To != "10-31" {
		t.Errorf("peak %s..%s", s.From, s.To)
	}
}
