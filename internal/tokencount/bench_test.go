package tokencount

import (
	"strings"
	"testing"
	"time"
)

// answer300 is an answer of about 300 o200k_base tokens, in the fake
// provider's wedding-planning register.
var answer300 = strings.Repeat("The ceremony begins at four o'clock in the rose garden. "+
	"Please RSVP by the first of June so we can finalize the seating chart. "+
	"Café au lait and macarons will be served during the cocktail hour 💐. ", 7)

// BenchmarkStream counts the text of a streamed answer of about 300
// tokens, what veil does once for a stream that ends without usage.
func BenchmarkStream(b *testing.B) {
	e := ForModel("gpt-4o")
	b.ReportMetric(float64(e.Count(answer300)), "tokens/op")
	text := []byte(answer300)
	b.ReportAllocs()
	for b.Loop() {
		e.CountBytes(text)
	}
}

// BenchmarkPrompt counts the prompt of a chat request of six messages.
func BenchmarkPrompt(b *testing.B) {
	e := ForModel("gpt-4o")
	body := []byte(`{"model":"gpt-4o","messages":` + cookbookMessages + `}`)
	b.ReportAllocs()
	for b.Loop() {
		e.Request(body)
	}
}

// TestLoadTime reports what the first count of each encoding costs.
func TestLoadTime(t *testing.T) {
	for _, model := range []string{"gpt-4o", "gpt-4"} {
		start := time.Now()
		ForModel(model).Count("hello")
		t.Logf("%s: first count %v", ForModel(model).Name(), time.Since(start))
	}
}
