package forecast

import (
	"math"
	"testing"
	"time"
)

// series returns one Point a day from first to last, valued by f.
func series(first, last time.Time, f func(time.Time) float64) []Point {
	var out []Point
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		out = append(out, Point{Day: d.Add(13 * time.Hour), Value: f(d)})
	}
	return out
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestProject(t *testing.T) {
	season := func(off, peak float64) func(time.Time) float64 {
		return func(d time.Time) float64 {
			if PeakMarchToOctober(d) {
				return peak
			}
			return off
		}
	}
	tests := []struct {
		name     string
		history  []Point
		opts     Options
		measured bool
		factor   float64
		months   map[string]float64
		total    float64
	}{{
		name:     "both kinds measured",
		history:  series(date(2026, 1, 1), date(2026, 6, 30), season(10, 25)),
		opts:     Options{To: date(2026, 6, 30), Now: date(2026, 7, 15)},
		measured: true, factor: 2.5,
		months: map[string]float64{"2026-08": 775, "2026-11": 300, "2027-02": 280, "2027-03": 775, "2027-07": 775},
		total:  775 + 750 + 775 + 300 + 310 + 310 + 280 + 775 + 750 + 775 + 750 + 775,
	}, {
		name:    "a week off-peak, peak from the default factor",
		history: series(date(2026, 12, 1), date(2026, 12, 7), season(4, 0)),
		opts:    Options{Now: date(2026, 12, 8)},
		factor:  DefaultPeakFactor,
		months:  map[string]float64{"2027-01": 124, "2027-02": 112, "2027-03": 248, "2027-06": 240, "2027-11": 120, "2027-12": 124},
		total:   124 + 112 + 8*(31+30+31+30+31+31+30+31) + 120 + 124,
	}, {
		name:    "a week of peak, off-peak from a configured factor",
		history: series(date(2026, 6, 1), date(2026, 6, 7), season(0, 30)),
		opts:    Options{Now: date(2026, 6, 8), PeakFactor: 3},
		factor:  3,
		months:  map[string]float64{"2026-07": 930, "2026-11": 300, "2027-06": 900},
	}, {
		name: "days without points in the window count as zero",
		history: []Point{
			{Day: date(2026, 12, 2), Value: 70},
		},
		opts:   Options{From: date(2026, 12, 1), To: date(2026, 12, 7), Now: date(2026, 12, 8)},
		factor: DefaultPeakFactor,
		months: map[string]float64{"2027-01": 310, "2027-03": 620},
	}, {
		name:   "no history",
		opts:   Options{Now: date(2026, 12, 8)},
		factor: DefaultPeakFactor,
		months: map[string]float64{"2027-01": 0, "2027-06": 0},
	}, {
		name:     "a configured season",
		history:  series(date(2026, 1, 1), date(2026, 2, 28), func(d time.Time) float64 { return float64(1 + int(d.Month())%2) }),
		opts:     Options{Now: date(2026, 3, 1), Peak: func(d time.Time) bool { return d.Month() == time.January }},
		measured: true, factor: 2,
		months: map[string]float64{"2026-04": 30, "2027-01": 62, "2027-02": 28},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Project(tt.history, tt.opts)
			if len(p.Months) != Months {
				t.Fatalf("got %d months, want %d", len(p.Months), Months)
			}
			if p.Measured != tt.measured || !near(p.PeakFactor, tt.factor) {
				t.Errorf("peak factor %v measured %v, want %v measured %v (%s)", p.PeakFactor, p.Measured, tt.factor, tt.measured, p.Basis)
			}
			got := map[string]float64{}
			for _, m := range p.Months {
				got[m.Label] = m.Value
			}
			for label, want := range tt.months {
				if v, ok := got[label]; !ok || !near(v, want) {
					t.Errorf("%s: got %v (present %v), want %v", label, v, ok, want)
				}
			}
			if tt.total != 0 && !near(p.Total, tt.total) {
				t.Errorf("total %v, want %v", p.Total, tt.total)
			}
			if p.Basis == "" {
				t.Error("no basis")
			}
		})
	}
}

func TestProjectionPeaksAndBusiest(t *testing.T) {
	p := Project(series(date(2026, 1, 1), date(2026, 6, 30), func(d time.Time) float64 {
		if d.Month() == time.June {
			return 50
		}
		if PeakMarchToOctober(d) {
			return 20
		}
		return 10
	}), Options{Now: date(2026, 12, 8)})
	peaks := p.Peaks()
	if len(peaks) != 8 || peaks[0] != "2027-03" || peaks[7] != "2027-10" {
		t.Errorf("peaks %v, want 2027-03 to 2027-10", peaks)
	}
	if b := p.Busiest(); b.Label != "2027-03" && b.Label != "2027-05" {
		t.Errorf("busiest %s (%v), want a 31-day peak month", b.Label, b.Value)
	}
}

func TestProjectIgnoresBadValues(t *testing.T) {
	p := Project([]Point{{Day: date(2026, 12, 1), Value: math.NaN()}, {Day: date(2026, 12, 2), Value: math.Inf(1)},
		{Day: date(2026, 12, 3), Value: 7}}, Options{Now: date(2026, 12, 4)})
	if math.IsNaN(p.Total) || math.IsInf(p.Total, 0) || !near(p.Months[0].Value, 31*7.0/3) {
		t.Errorf("total %v, January %v", p.Total, p.Months[0].Value)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
