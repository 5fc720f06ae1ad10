package e2e

import (
	"bufio"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/tokencount"
	"github.com/wedsync/veil/quota"
	"github.com/wedsync/veil/usage"
)

// billingTier gives the test supplier a monthly token quota, so that what a
// call settles on shows in its use.
const billingTier = `tiers:
  - name: metered
    monthly_tokens: 1000000
suppliers:
  default_tier: metered
`

// readDelivered reads a chat stream's data events until it ends or n
// content chunks came (n < 0: until it ends) and returns the text they
// carried and the last data line.
func readDelivered(t *testing.T, r *bufio.Reader, n int) (text, last string) {
	t.Helper()
	var b strings.Builder
	for chunks := 0; n < 0 || chunks < n; {
		d, err := nextData(t, r)
		if err != nil {
			break
		}
		last = d
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(d), &c) == nil && len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			b.WriteString(c.Choices[0].Delta.Content)
			chunks++
		}
	}
	return b.String(), last
}

// monthTokensUsed is the supplier's monthly tokens used, as the admin API
// explains its quota.
func (h *harness) monthTokensUsed(t *testing.T) int64 {
	t.Helper()
	code, body := h.admin("/admin/explain?supplier="+testSupplier+"&model=gpt-4o-mini", h.adminToken)
	var ex struct {
		Tier struct {
			Used map[string]int64 `json:"used"`
		} `json:"tier"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &ex) != nil {
		t.Fatalf("explain %d: %s", code, body)
	}
	return ex.Tier.Used[quota.LimitMonthTokens]
}

// checkBilledDelivered checks that a stream cut short is billed for what
// reached the client: its record is partial and estimated, its completion
// tokens are the delivered text's, its prompt the request's, it has a cost,
// and the quota settled on its tokens.
func checkBilledDelivered(t *testing.T, h *harness, r *usage.Record, delivered string) {
	t.Helper()
	enc := tokencount.ForModel("gpt-4o-mini")
	want := int64(enc.Count(delivered))
	if !r.Partial || !r.TokensEstimated || !r.Stream || r.Status != 200 {
		t.Errorf("record partial %v estimated %v stream %v status %d, want a partial, estimated stream", r.Partial,
			r.TokensEstimated, r.Stream, r.Status)
	}
	if want == 0 || r.CompletionTokens != want {
		t.Errorf("completion tokens %d, the delivered text %q has %d", r.CompletionTokens, delivered, want)
	}
	if p := int64(enc.Request([]byte(streamBody))); r.PromptTokens != p || r.TotalTokens != p+r.CompletionTokens {
		t.Errorf("prompt %d total %d tokens, want %d prompt", r.PromptTokens, r.TotalTokens, p)
	}
	if r.CostUSD == nil || *r.CostUSD <= 0 {
		t.Errorf("cost %v, want a price for the delivered tokens", r.CostUSD)
	}
	waitFor(t, func() bool { return h.monthTokensUsed(t) == r.TotalTokens })
	if used := h.monthTokensUsed(t); used != r.TotalTokens {
		t.Errorf("the quota settled on %d tokens, the record has %d", used, r.TotalTokens)
	}
}

// TestBilledWhenTheClientHangsUp: a client that hangs up mid-stream pays
// for the tokens it received; its quota is not refunded.
func TestBilledWhenTheClientHangsUp(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{tap: tp.add, extra: usagePrices + billingTier})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStallStream, After: 4, Stall: 5 * time.Second})
	conn, r := h.openStream(t)
	delivered, _ := readDelivered(t, r, 4)
	_ = conn.Close()
	rec := tp.wait(t, 1)[0]
	if rec.Error != "" {
		t.Errorf("error %q", rec.Error)
	}
	checkBilledDelivered(t, h, rec, delivered)
	if n := h.app.Metrics().InterruptedStreams("client_gone"); n != 1 {
		t.Errorf("veil_streams_interrupted_total{reason=\"client_gone\"} = %v, want 1", n)
	}
}

// TestBilledWhenTheUpstreamBreaks: a stream whose provider connection
// drops after content, or which sends an error event after content, ends
// partial, counted as interrupted, billed for the content the client got.
func TestBilledWhenTheUpstreamBreaks(t *testing.T) {
	for _, tc := range []struct {
		name, endedWith string
		fault           fakeopenai.Fault
	}{
		{"cut", "veil's in-band error", fakeopenai.Fault{Kind: fakeopenai.KindCut, After: 5}},
		{"error event", "the provider's error event", fakeopenai.Fault{Kind: fakeopenai.KindErrorEvent, After: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := &tap{}
			h := start(t, setup{tap: tp.add, extra: usagePrices + billingTier})
			h.up.Script(tc.fault)
			_, r := h.openStream(t)
			delivered, last := readDelivered(t, r, -1)
			if !strings.Contains(last, `"error"`) {
				t.Errorf("the stream ended with %q, want %s", last, tc.endedWith)
			}
			checkBilledDelivered(t, h, tp.wait(t, 1)[0], delivered)
			if n := h.app.Metrics().InterruptedStreams("upstream_error"); n != 1 {
				t.Errorf("veil_streams_interrupted_total{reason=\"upstream_error\"} = %v, want 1", n)
			}
		})
	}
}

// TestNothingDeliveredNothingBilled: a stream that fails before any content
// reached the client costs nothing, and its reservation is refunded.
func TestNothingDeliveredNothingBilled(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{tap: tp.add, extra: usagePrices + billingTier})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindErrorEvent, After: 0})
	_, r := h.openStream(t)
	if delivered, _ := readDelivered(t, r, -1); delivered != "" {
		t.Fatalf("content %q was delivered", delivered)
	}
	rec := tp.wait(t, 1)[0]
	if rec.TotalTokens != 0 || rec.TokensEstimated {
		t.Errorf("record %d tokens, estimated %v, want none", rec.TotalTokens, rec.TokensEstimated)
	}
	waitFor(t, func() bool { return h.monthTokensUsed(t) == 0 })
}

// TestOwnCountMatchesProvider: for complete answers, plain and streamed, on
// two model families, veil's own count of the text the client received and
// of the request is within 2% of the usage the provider reported, the
// accuracy a stream cut short is billed with.
func TestOwnCountMatchesProvider(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{tap: tp.add})
	c := h.client()
	prompts := [][]openai.ChatCompletionMessage{
		{{Role: openai.ChatMessageRoleUser, Content: "When does the ceremony start?"}},
		weddingChat.Messages,
		{{Role: openai.ChatMessageRoleSystem, Content: "You write wedding speeches for nervous best men."},
			{Role: openai.ChatMessageRoleUser, Name: "best_man", Content: "Write a toast about the couple's trip to Lisbon, " +
				"the lost luggage, the tram ride and the café where they got engaged. Keep it warm — and short!"}},
	}
	worst, calls := 0.0, 0
	for _, model := range []string{"gpt-4o-mini", "gpt-3.5-turbo"} {
		enc := tokencount.ForModel(model)
		for i, msgs := range prompts {
			req := openai.ChatCompletionRequest{Model: model, Messages: msgs}
			body, err := json.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			for _, stream := range []bool{false, true} {
				var text string
				if stream {
					req.Stream = true
					s, err := c.CreateChatCompletionStream(ctxT(t), req)
					if err != nil {
						t.Fatal(err)
					}
					var b strings.Builder
					for {
						chunk, err := s.Recv()
						if err != nil {
							break
						}
						if len(chunk.Choices) > 0 {
							b.WriteString(chunk.Choices[0].Delta.Content)
						}
					}
					s.Close()
					text = b.String()
				} else {
					resp, err := c.CreateChatCompletion(ctxT(t), req)
					if err != nil {
						t.Fatal(err)
					}
					text = resp.Choices[0].Message.Content
				}
				calls++
				r := tp.wait(t, calls)[calls-1]
				for _, p := range [...]struct {
					what      string
					own, said int64
				}{{"prompt", int64(enc.Request(body)), r.PromptTokens}, {"completion", int64(enc.Count(text)), r.CompletionTokens}} {
					off := math.Abs(float64(p.own-p.said)) / float64(p.said)
					worst = max(worst, off)
					if p.said == 0 || off > 0.02 {
						t.Errorf("%s prompt %d stream %v: own count %d %s tokens, the provider said %d", model, i, stream, p.own,
							p.what, p.said)
					}
				}
				if r.TokensEstimated || r.Partial {
					t.Errorf("a complete answer's record is estimated %v, partial %v", r.TokensEstimated, r.Partial)
				}
			}
		}
	}
	t.Logf("largest difference between veil's count and the provider's usage: %.2f%%", worst*100)
}
