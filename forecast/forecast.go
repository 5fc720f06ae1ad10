// Package forecast projects a daily usage series a year forward, month by
// month, with the wedding season: the days of a peak window (March to
// October unless told otherwise) run at a higher rate than the rest, by
// a factor measured from the history when it covers enough days of both
// kinds and a documented default otherwise.
package forecast

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Defaults of a projection.
const (
	// DefaultPeakFactor is how many times the off-peak daily rate a
	// peak day runs at when the history cannot tell: about four weddings
	// in five fall between March and October, which over eight peak and
	// four off-peak months is twice the rate.
	DefaultPeakFactor = 2.0
	// MinDays is the number of days of each kind (peak and off-peak) a
	// history needs before its own peak factor is used.
	MinDays = 14
	// Months is the number of months projected.
	Months = 12
)

// Point is one day's value of a series, such as requests or cost.
type Point struct {
	// Day is any time of the UTC day the value belongs to.
	Day time.Time
	// Value is the day's total; days without a Point count as zero
	// when they lie in the history's window.
	Value float64
}

// Options tune a projection.
type Options struct {
	// From and To are the first and last UTC days of the history's
	// window, both included: days in it without a Point had no usage.
	// When zero, the window runs from the first Point's day to the day
	// before Now.
	From, To time.Time
	// Now is when the projection is made; it starts with the month after
	// Now's. Zero means time.Now().
	Now time.Time
	// Peak reports whether a day is in the peak season. Nil means March
	// 1 to October 31 (PeakMarchToOctober).
	Peak func(day time.Time) bool
	// PeakFactor replaces DefaultPeakFactor when the history cannot
	// measure one; zero keeps the default.
	PeakFactor float64
}

// PeakMarchToOctober is the default season: March 1 to October 31, UTC.
func PeakMarchToOctober(day time.Time) bool {
	m := day.UTC().Month()
	return m >= time.March && m <= time.October
}

// Month is one projected month.
type Month struct {
	// Start is midnight UTC of the month's first day.
	Start time.Time `json:"start"`
	// Label is the month as YYYY-MM.
	Label string `json:"month"`
	// PeakDays is the number of the month's days in the peak season.
	PeakDays int `json:"peak_days"`
	// Value is the projected total of the month.
	Value float64 `json:"value"`
}

// Projection is a series projected a year forward.
type Projection struct {
	// Months are the Months months after the one the projection was made
	// in.
	Months []Month `json:"months"`
	// Total is the sum of the months.
	Total float64 `json:"total"`
	// HistoryDays is the number of days in the history's window, and
	// PeakDays and OffPeakDays how many of them were of each kind.
	HistoryDays int `json:"history_days"`
	PeakDays    int `json:"history_peak_days"`
	OffPeakDays int `json:"history_off_peak_days"`
	// PeakRate and OffPeakRate are the daily rates projected.
	PeakRate    float64 `json:"peak_rate_per_day"`
	OffPeakRate float64 `json:"off_peak_rate_per_day"`
	// PeakFactor is PeakRate over OffPeakRate, and Measured whether it
	// came from the history (at least MinDays days of each kind) rather
	// than the default.
	PeakFactor float64 `json:"peak_factor"`
	Measured   bool    `json:"peak_factor_measured"`
	// Basis says in one sentence how the rates were found.
	Basis string `json:"basis"`
}

// Project projects the series of history Months months forward from the
// month after opts.Now. A day's rate is the history's mean daily value of
// days of the same kind (peak or off-peak); a kind the history has fewer
// than MinDays days of is derived from the other by the peak factor. An
// empty history projects zeros.
func Project(history []Point, opts Options) Projection {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	peak := opts.Peak
	if peak == nil {
		peak = PeakMarchToOctober
	}
	factor := opts.PeakFactor
	if !(factor > 0) || math.IsInf(factor, 0) {
		factor = DefaultPeakFactor
	}
	from, to := day(opts.From), day(opts.To)
	if to.IsZero() {
		to = day(now).AddDate(0, 0, -1)
	}
	if from.IsZero() && len(history) > 0 {
		from = day(history[0].Day)
		for _, p := range history[1:] {
			if d := day(p.Day); d.Before(from) {
				from = d
			}
		}
	}
	var p Projection
	var peakSum, offSum float64
	if !from.IsZero() && !to.Before(from) {
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			if peak(d) {
				p.PeakDays++
			} else {
				p.OffPeakDays++
			}
		}
		for _, pt := range history {
			d := day(pt.Day)
			if d.Before(from) || d.After(to) || math.IsNaN(pt.Value) || math.IsInf(pt.Value, 0) {
				continue
			}
			if peak(d) {
				peakSum += pt.Value
			} else {
				offSum += pt.Value
			}
		}
	}
	p.HistoryDays = p.PeakDays + p.OffPeakDays
	switch {
	case p.PeakDays >= MinDays && p.OffPeakDays >= MinDays:
		p.PeakRate, p.OffPeakRate = peakSum/float64(p.PeakDays), offSum/float64(p.OffPeakDays)
		p.Measured = p.OffPeakRate > 0
		p.Basis = fmt.Sprintf("daily rates of %d peak and %d off-peak days of history", p.PeakDays, p.OffPeakDays)
	case p.PeakDays >= p.OffPeakDays && p.PeakDays > 0:
		p.PeakRate = peakSum / float64(p.PeakDays)
		p.OffPeakRate = p.PeakRate / factor
		p.Basis = fmt.Sprintf("daily rate of %d peak days of history; off-peak at 1/%s of it", p.PeakDays, num(factor))
	case p.OffPeakDays > 0:
		p.OffPeakRate = offSum / float64(p.OffPeakDays)
		p.PeakRate = p.OffPeakRate * factor
		p.Basis = fmt.Sprintf("daily rate of %d off-peak days of history; peak at %s times it", p.OffPeakDays, num(factor))
	default:
		p.Basis = "no history"
	}
	switch {
	case p.Measured:
		p.PeakFactor = p.PeakRate / p.OffPeakRate
	case p.OffPeakRate > 0 || p.HistoryDays == 0:
		p.PeakFactor = factor
	}
	y, m, _ := now.UTC().Date()
	start := time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
	p.Months = make([]Month, Months)
	for i := range p.Months {
		ms := start.AddDate(0, i, 0)
		mo := Month{Start: ms, Label: ms.Format("2006-01")}
		for d := ms; d.Month() == ms.Month(); d = d.AddDate(0, 0, 1) {
			if peak(d) {
				mo.PeakDays++
				mo.Value += p.PeakRate
			} else {
				mo.Value += p.OffPeakRate
			}
		}
		p.Months[i] = mo
		p.Total += mo.Value
	}
	return p
}

// Peaks returns the labels of the projection's months that lie wholly
// in the peak season, in order.
func (p Projection) Peaks() []string {
	var out []string
	for _, m := range p.Months {
		if m.PeakDays == daysIn(m.Start) {
			out = append(out, m.Label)
		}
	}
	return out
}

// Busiest returns the projected month with the highest value (the
// earliest of equals); the zero Month for an empty projection.
func (p Projection) Busiest() Month {
	ms := append([]Month(nil), p.Months...)
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Value > ms[j].Value })
	if len(ms) == 0 {
		return Month{}
	}
	return ms[0]
}

// day returns midnight UTC of t's UTC day; zero for zero.
func day(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// daysIn returns the number of days of the month starting at ms.
func daysIn(ms time.Time) int { return ms.AddDate(0, 1, -1).Day() }

// num formats a factor without needless decimals.
func num(f float64) string { return fmt.Sprintf("%.3g", f) }
