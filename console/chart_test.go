package console

import (
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden SVG files in testdata")

// TestChartGolden renders each chart and compares it with its file in
// testdata; -update rewrites them.
func TestChartGolden(t *testing.T) {
	tests := []struct {
		name  string
		chart Chart
	}{
		{name: "histogram", chart: Chart{Title: "Latency, platform (primary)", XLabel: "latency", YLabel: "answers", Integer: true,
			Series: []Series{{Name: "platform", Buckets: []Bucket{
				{"< 250 ms", 12}, {"250–500 ms", 40}, {"500 ms–1 s", 31}, {"1–2 s", 9}, {"> 2 s", 2}}}}}},
		{name: "grouped", chart: Chart{Title: "Cost by month", YLabel: "USD", Format: FormatUSD,
			Series: []Series{
				{Name: "platform", Buckets: []Bucket{{"2026-07", 120.5}, {"2026-08", 131}, {"2026-09", 140.25}}},
				{Name: "client", Buckets: []Bucket{{"2026-07", 80}, {"2026-08", 82.5}, {"2026-09", 90}}},
			}}},
		{name: "empty", chart: Chart{Title: "Similarity", Series: []Series{{Name: "pairs"}}}},
		{name: "zeros", chart: Chart{Title: "Nothing yet", Integer: true, Series: []Series{{Buckets: []Bucket{{"a", 0}, {"b", 0}}}}}},
		{name: "escaped", chart: Chart{Title: `<script>alert("t")</script>`, XLabel: "a & b",
			Series: []Series{{Name: `"quoted"`, Buckets: []Bucket{{`<img src=x onerror=alert(1)>`, 3}, {"fine", 1}}}}}},
		{name: "many-labels", chart: Chart{Title: "By day", Integer: true, Series: []Series{{Buckets: manyDays(31)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.chart.SVG())
			if err := wellFormed(got); err != nil {
				t.Fatalf("not well-formed XML: %v\n%s", err, got)
			}
			if again := string(tt.chart.SVG()); again != got {
				t.Fatal("two renders of the same chart differ")
			}
			path := filepath.Join("testdata", tt.name+".svg")
			if *updateGolden {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestChartGolden -update to create it)", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("%s differs from the rendered chart (go test -run TestChartGolden -update rewrites it):\n%s", path, got)
			}
		})
	}
}

// TestChartEscapes: text from the data never opens an element.
func TestChartEscapes(t *testing.T) {
	svg := string(Chart{Title: "<script>x</script>", Series: []Series{{Name: "<b>", Buckets: []Bucket{{"<script>", 1}, {"b", 2}}}}}.SVG())
	for _, bad := range []string{"<script", "<b>"} {
		if strings.Contains(svg, bad) {
			t.Errorf("%q unescaped in %s", bad, svg)
		}
	}
	if !strings.Contains(svg, "&lt;script&gt;") {
		t.Errorf("escaped label missing: %s", svg)
	}
}

// TestChartBars: each bucket is one bar, its height in proportion.
func TestChartBars(t *testing.T) {
	svg := string(Chart{Title: "t", Series: []Series{{Buckets: []Bucket{{"a", 1}, {"b", 2}, {"c", 4}}}}}.SVG())
	heights := barHeights(t, svg)
	if len(heights) != 3 {
		t.Fatalf("%d bars, want 3: %v", len(heights), heights)
	}
	if heights[0] <= 0 || heights[1] != 2*heights[0] || heights[2] != 4*heights[0] {
		t.Errorf("bar heights %v are not in proportion 1:2:4", heights)
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		max       float64
		integer   bool
		step, top float64
	}{
		{0, false, 1, 1},
		{4, true, 1, 4},
		{1, true, 1, 1},
		{1, false, 0.5, 1},
		{94, false, 50, 100},
		{40, false, 10, 40},
		{131, false, 50, 150},
		{0.003, false, 0.001, 0.003},
	}
	for _, tt := range tests {
		step, top := ticks(tt.max, tt.integer)
		if step != tt.step || top != tt.top {
			t.Errorf("ticks(%v, %v) = %v, %v; want %v, %v", tt.max, tt.integer, step, top, tt.step, tt.top)
		}
	}
}

func TestFormats(t *testing.T) {
	tests := []struct {
		f    func(float64) string
		v    float64
		want string
	}{
		{FormatNumber, 0, "0"}, {FormatNumber, 950, "950"}, {FormatNumber, 12500, "12.5k"}, {FormatNumber, 3400000, "3.4M"},
		{FormatNumber, 0.25, "0.25"}, {FormatNumber, 2.5, "2.5"},
		{FormatUSD, 0, "$0"}, {FormatUSD, 0.0042, "$0.0042"}, {FormatUSD, 12.5, "$12.50"}, {FormatUSD, 12000, "$12k"}, {FormatUSD, -182.4, "-$182.40"},
	}
	for _, tt := range tests {
		if got := tt.f(tt.v); got != tt.want {
			t.Errorf("format(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func manyDays(n int) []Bucket {
	out := make([]Bucket, n)
	for i := range out {
		out[i] = Bucket{Label: "2026-07-" + twoDigits(i+1), Value: float64((i * 7) % 11)}
	}
	return out
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + string(rune('0'+n))
	}
	return string(rune('0'+n/10)) + string(rune('0'+n%10))
}

// wellFormed reports whether s parses as XML to its end.
func wellFormed(s string) error {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// barHeights returns the heights of the bars (the rects with a tooltip).
func barHeights(t *testing.T, svg string) []float64 {
	t.Helper()
	type rect struct {
		Height float64 `xml:"height,attr"`
		Title  string  `xml:"title"`
	}
	var doc struct {
		Rects []rect `xml:"rect"`
	}
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, r := range doc.Rects {
		if r.Title != "" {
			out = append(out, r.Height)
		}
	}
	return out
}
