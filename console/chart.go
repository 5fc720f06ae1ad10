package console

import (
	"html/template"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bucket is one bar of a chart: what it counts and how much.
type Bucket struct {
	// Label names the bucket on the x axis, such as "250–500 ms".
	Label string
	// Value is the bar's height in the chart's unit.
	Value float64
}

// Series is a named set of bars drawn in one colour; the bars of several
// series stand side by side for each label.
type Series struct {
	Name    string
	Buckets []Bucket
}

// Chart is a bar chart with axes, gridlines and labels, rendered as an
// inline SVG element by SVG. The same Chart always renders to the same
// bytes.
type Chart struct {
	// Title is drawn above the plot and is the image's accessible name.
	Title string
	// XLabel and YLabel name the axes; empty draws none.
	XLabel string
	YLabel string
	// Series are the bars; the labels of the first series, then those the
	// others add, are the x axis's categories in that order.
	Series []Series
	// Format writes a value for the y axis and the bars' tooltips; nil
	// means FormatNumber.
	Format func(float64) string
	// Integer keeps the y axis's step at 1 or more, for counts.
	Integer bool
	// Width and Height are the image's size in pixels; zero means 640 by
	// 260.
	Width, Height int
}

// palette are the series' colours, in order; they repeat past the last.
var palette = []string{"#3b6ea5", "#d08c2f", "#5a9e6f", "#a5503b", "#7a5ea8"}

// Chart geometry, in pixels.
const (
	chartWidth    = 640
	chartHeight   = 260
	marginLeft    = 64
	marginRight   = 16
	marginTop     = 40
	marginBottom  = 52
	maxLabelRunes = 18
	// labelCharWidth is a generous estimate of one character's width in
	// the 11px labels, used to thin out x labels that would overlap.
	labelCharWidth = 6.5
)

// SVG renders the chart as an <svg> element. Every text taken from the
// chart is escaped, so the result is safe to place in a page as it is.
func (c Chart) SVG() template.HTML {
	w, h := c.Width, c.Height
	if w <= 0 {
		w = chartWidth
	}
	if h <= 0 {
		h = chartHeight
	}
	format := c.Format
	if format == nil {
		format = FormatNumber
	}
	var b strings.Builder
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="` + strconv.Itoa(w) + `" height="` +
		strconv.Itoa(h) + `" viewBox="0 0 ` + strconv.Itoa(w) + " " + strconv.Itoa(h) + `" role="img" aria-label="` +
		esc(c.Title) + `" font-family="system-ui, sans-serif" font-size="11">`)
	b.WriteString("<title>" + esc(c.Title) + "</title>")
	b.WriteString(`<rect x="0" y="0" width="` + strconv.Itoa(w) + `" height="` + strconv.Itoa(h) + `" fill="#ffffff"/>`)
	b.WriteString(`<text x="` + num(float64(w)/2) + `" y="18" text-anchor="middle" font-size="13" font-weight="600" fill="#222">` +
		esc(c.Title) + "</text>")

	cats := c.categories()
	if len(cats) == 0 {
		b.WriteString(`<text x="` + num(float64(w)/2) + `" y="` + num(float64(h)/2) +
			`" text-anchor="middle" fill="#777">no data</text></svg>`)
		return template.HTML(b.String()) //nolint:gosec // G203: every text in it went through esc
	}
	left, right := float64(marginLeft), float64(w-marginRight)
	top, bottom := float64(marginTop), float64(h-marginBottom)
	maxV := 0.0
	for _, s := range c.Series {
		for _, bk := range s.Buckets {
			if bk.Value > maxV && !math.IsInf(bk.Value, 1) {
				maxV = bk.Value
			}
		}
	}
	step, axisMax := ticks(maxV, c.Integer)
	y := func(v float64) float64 {
		if v <= 0 || math.IsNaN(v) {
			return bottom
		}
		return bottom - math.Min(v, axisMax)/axisMax*(bottom-top)
	}

	// Gridlines and the y axis's values.
	for v := 0.0; v <= axisMax+step/2; v += step {
		yy := num(y(v))
		b.WriteString(`<line x1="` + num(left) + `" y1="` + yy + `" x2="` + num(right) + `" y2="` + yy +
			`" stroke="#e3e3e3" stroke-width="1"/>`)
		b.WriteString(`<text x="` + num(left-6) + `" y="` + num(y(v)+4) + `" text-anchor="end" fill="#555">` +
			esc(format(v)) + "</text>")
	}

	// Bars, grouped by category.
	slot := (right - left) / float64(len(cats))
	group := slot * 0.8
	barW := group / float64(len(c.Series))
	for si, s := range c.Series {
		colour := palette[si%len(palette)]
		values := make(map[string]float64, len(s.Buckets))
		for _, bk := range s.Buckets {
			values[bk.Label] += bk.Value
		}
		for ci, cat := range cats {
			v, ok := values[cat]
			if !ok {
				continue
			}
			x := left + float64(ci)*slot + (slot-group)/2 + float64(si)*barW
			yt := y(v)
			tip := cat + ": " + format(v)
			if s.Name != "" {
				tip = s.Name + ", " + tip
			}
			b.WriteString(`<rect x="` + num(x+0.5) + `" y="` + num(yt) + `" width="` + num(math.Max(barW-1, 1)) +
				`" height="` + num(bottom-yt) + `" fill="` + colour + `"><title>` + esc(tip) + "</title></rect>")
			if barW >= 34 && v > 0 {
				b.WriteString(`<text x="` + num(x+barW/2) + `" y="` + num(yt-4) + `" text-anchor="middle" fill="#333">` +
					esc(format(v)) + "</text>")
			}
		}
	}

	// Axes.
	b.WriteString(`<line x1="` + num(left) + `" y1="` + num(bottom) + `" x2="` + num(right) + `" y2="` + num(bottom) +
		`" stroke="#444" stroke-width="1"/>`)
	b.WriteString(`<line x1="` + num(left) + `" y1="` + num(top) + `" x2="` + num(left) + `" y2="` + num(bottom) +
		`" stroke="#444" stroke-width="1"/>`)

	// The x axis's labels, every nth when they would overlap.
	longest := 0
	for _, cat := range cats {
		longest = max(longest, utf8.RuneCountInString(clip(cat)))
	}
	every := max(1, int(math.Ceil(float64(longest)*labelCharWidth/slot)))
	for ci, cat := range cats {
		if ci%every != 0 {
			continue
		}
		b.WriteString(`<text x="` + num(left+(float64(ci)+0.5)*slot) + `" y="` + num(bottom+16) +
			`" text-anchor="middle" fill="#333">` + esc(clip(cat)) + "</text>")
	}
	if c.XLabel != "" {
		b.WriteString(`<text x="` + num((left+right)/2) + `" y="` + num(float64(h)-10) + `" text-anchor="middle" fill="#555">` +
			esc(c.XLabel) + "</text>")
	}
	if c.YLabel != "" {
		b.WriteString(`<text x="14" y="` + num((top+bottom)/2) + `" text-anchor="middle" fill="#555" transform="rotate(-90 14 ` +
			num((top+bottom)/2) + `)">` + esc(c.YLabel) + "</text>")
	}

	// A legend when there is more than one named series.
	if len(c.Series) > 1 {
		x := right
		for si := len(c.Series) - 1; si >= 0; si-- {
			name := clip(c.Series[si].Name)
			tw := float64(utf8.RuneCountInString(name)) * labelCharWidth
			x -= tw
			b.WriteString(`<text x="` + num(x) + `" y="34" fill="#333">` + esc(name) + "</text>")
			x -= 14
			b.WriteString(`<rect x="` + num(x) + `" y="25" width="10" height="10" fill="` + palette[si%len(palette)] + `"/>`)
			x -= 12
		}
	}
	b.WriteString("</svg>")
	return template.HTML(b.String()) //nolint:gosec // G203: every text in it went through esc
}

// categories are the x axis's labels: those of the first series, then
// those the others add, in order.
func (c Chart) categories() []string {
	var cats []string
	seen := map[string]bool{}
	for _, s := range c.Series {
		for _, bk := range s.Buckets {
			if !seen[bk.Label] {
				seen[bk.Label] = true
				cats = append(cats, bk.Label)
			}
		}
	}
	return cats
}

// ticks returns the y axis's step and top for values up to maxV: about
// four steps of 1, 2 or 5 times a power of ten.
func ticks(maxV float64, integer bool) (step, top float64) {
	if !(maxV > 0) || math.IsNaN(maxV) {
		return 1, 1
	}
	raw := maxV / 4
	exp := math.Floor(math.Log10(raw))
	pow := math.Pow(10, exp)
	switch f := raw / pow; {
	case f <= 1:
		step = pow
	case f <= 2:
		step = 2 * pow
	case f <= 5:
		step = 5 * pow
	default:
		step = 10 * pow
	}
	if integer && step < 1 {
		step = 1
	}
	return step, math.Ceil(maxV/step-1e-9) * step
}

// num writes a coordinate with at most one decimal.
func num(v float64) string {
	r := math.Round(v*10) / 10
	if r == 0 {
		r = 0 // no "-0"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// clip shortens a label to maxLabelRunes, with an ellipsis.
func clip(s string) string {
	if utf8.RuneCountInString(s) <= maxLabelRunes {
		return s
	}
	r := []rune(s)
	return string(r[:maxLabelRunes-1]) + "…"
}

// esc escapes text for an SVG element's content or a quoted attribute.
func esc(s string) string {
	return template.HTMLEscapeString(s)
}

// FormatNumber writes a value compactly: 950, 1.2k, 3.4M, or with up to
// two decimals below 10.
func FormatNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZeros(strconv.FormatFloat(v/1e6, 'f', 1, 64)) + "M"
	case a >= 1e4:
		return trimZeros(strconv.FormatFloat(v/1e3, 'f', 1, 64)) + "k"
	case a >= 10 || a == math.Trunc(a):
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	return trimZeros(strconv.FormatFloat(v, 'f', 2, 64))
}

// FormatUSD writes an amount of dollars compactly: $0.0042, $12.50, $1.2k,
// -$3.10.
func FormatUSD(v float64) string {
	if v < 0 {
		return "-" + FormatUSD(-v)
	}
	a := v
	switch {
	case a == 0:
		return "$0"
	case a >= 1e4:
		return "$" + FormatNumber(v)
	case a >= 1:
		return "$" + strconv.FormatFloat(v, 'f', 2, 64)
	}
	return "$" + trimZeros(strconv.FormatFloat(v, 'f', 4, 64))
}

// trimZeros drops a decimal part's trailing zeros, and the point when
// nothing is left after it.
func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
