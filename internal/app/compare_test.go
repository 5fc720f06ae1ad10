package app

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/config"
)

func TestPeakSeason(t *testing.T) {
	june := time.Date(2027, 6, 15, 12, 0, 0, 0, time.UTC)
	december := time.Date(2027, 12, 15, 12, 0, 0, 0, time.UTC)
	april := time.Date(2027, 4, 15, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		cfg     *config.Config
		want    string
		inPeak  []time.Time
		offPeak []time.Time
	}{
		{"no config", nil, "March to October", []time.Time{june, april}, []time.Time{december}},
		{"no peak season", &config.Config{Seasons: []config.Season{{Name: "winter", From: "11-01", To: "02-28"}}},
			"no season in the config is named peak", []time.Time{june}, []time.Time{december}},
		{"a peak season", &config.Config{Seasons: []config.Season{{Name: "winter", From: "11-01", To: "02-28"},
			{Name: "Wedding-Peak", From: "05-01", To: "09-30"}}},
			`"Wedding-Peak", 05-01 to 09-30`, []time.Time{june}, []time.Time{april, december}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, peak := peakSeason(tc.cfg)
			if !strings.Contains(name, tc.want) || peak == nil {
				t.Fatalf("season %q, want it to say %q", name, tc.want)
			}
			for _, d := range tc.inPeak {
				if !peak(d) {
					t.Errorf("%s is not in the peak", d.Format(time.DateOnly))
				}
			}
			for _, d := range tc.offPeak {
				if peak(d) {
					t.Errorf("%s is in the peak", d.Format(time.DateOnly))
				}
			}
		})
	}
}
