package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"net/http"

	oaigo "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/redis/go-redis/v9"
	openai "github.com/sashabaranov/go-openai"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/usage"
)

// tap collects the usage records veil emits.
type tap struct {
	mu   sync.Mutex
	recs []*usage.Record
}

func (t *tap) add(r *usage.Record) {
	t.mu.Lock()
	t.recs = append(t.recs, r)
	t.mu.Unlock()
}

func (t *tap) all() []*usage.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*usage.Record(nil), t.recs...)
}

// wait waits for n records (stream records are emitted once the stream
// has ended) and returns them; fewer or more fail the test.
func (t *tap) wait(tb testing.TB, n int) []*usage.Record {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second) // failure guard only
	for len(t.all()) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := t.all()
	if len(got) != n {
		tb.Fatalf("%d usage records, want %d", len(got), n)
	}
	return got
}

// byID returns the records of one request ID.
func (t *tap) byID(id string) []*usage.Record {
	var out []*usage.Record
	for _, r := range t.all() {
		if r.RequestID == id {
			out = append(out, r)
		}
	}
	return out
}

// one waits for exactly one record of request id and returns it.
func (t *tap) one(tb testing.TB, id string) *usage.Record {
	tb.Helper()
	var got []*usage.Record
	deadline := time.Now().Add(10 * time.Second) // stream records are emitted after the stream ends
	for {
		got = t.byID(id)
		if len(got) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(got) != 1 {
		tb.Fatalf("request %s has %d usage records, want 1", id, len(got))
	}
	return got[0]
}

const usagePrices = `prices:
  - provider: openai
    model: gpt-4o-mini
    input_per_mtok: 0.15
    cached_input_per_mtok: 0.075
    output_per_mtok: 0.60
  - provider: openai
    model: text-embedding-3-small
    input_per_mtok: 0.02
`

func checkTokens(t *testing.T, r *usage.Record, prompt, completion int) {
	t.Helper()
	if r.PromptTokens != int64(prompt) || r.CompletionTokens != int64(completion) || r.TotalTokens != int64(prompt+completion) {
		t.Errorf("record tokens %d/%d/%d, provider said %d/%d", r.PromptTokens, r.CompletionTokens, r.TotalTokens, prompt, completion)
	}
}

// TestUsageRecordsMatchProvider: for every understood endpoint, plain and
// streamed, the record carries exactly the usage the provider reported,
// priced, and attributed to supplier, caller and key source.
func TestUsageRecordsMatchProvider(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{extra: usagePrices, tap: tp.add})
	ctx := ctxT(t)
	c := h.client()

	t.Run("chat", func(t *testing.T) {
		resp, err := c.CreateChatCompletion(ctx, weddingChat)
		if err != nil {
			t.Fatal(err)
		}
		r := tp.one(t, resp.Header().Get("X-Request-Id"))
		checkTokens(t, r, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
		// Money is integer micro-dollars, rounded once per call.
		want := int64(math.Round(float64(resp.Usage.PromptTokens)*0.15 + float64(resp.Usage.CompletionTokens)*0.60))
		if r.CostMicros == nil || *r.CostMicros != want || r.CostUSD == nil || *r.CostUSD != float64(want)/1e6 {
			t.Errorf("cost %v µ$ (%v $), want %d µ$", r.CostMicros, r.CostUSD, want)
		}
		if r.Supplier != testSupplier || r.Caller != "wedsync-app" || r.KeySource != "platform" || r.Billed != "platform" ||
			r.Endpoint != "chat_completions" || r.Provider != "openai" || r.Status != 200 || r.Stream || r.Partial {
			t.Errorf("record %+v", r)
		}
		if len(r.Attempts) != 1 || r.Attempts[0].Status != 200 {
			t.Errorf("attempts %+v", r.Attempts)
		}
	})

	t.Run("stream without include_usage", func(t *testing.T) {
		req := weddingChat
		req.Stream = true
		s, err := c.CreateChatCompletionStream(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for {
			chunk, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if chunk.Usage != nil {
				t.Error("the client got a usage chunk it did not ask for")
			}
		}
		id := s.Header().Get("X-Request-Id")
		s.Close()
		// The provider's usage for the same request, asked directly.
		req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
		direct := collectStream(t, h.direct(), req)
		r := tp.one(t, id)
		checkTokens(t, r, direct.usage.PromptTokens, direct.usage.CompletionTokens)
		if !r.Stream || r.TTFTMS <= 0 || r.CostUSD == nil {
			t.Errorf("stream record %+v", r)
		}
	})

	t.Run("stream with include_usage", func(t *testing.T) {
		req := weddingChat
		req.Stream = true
		req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
		via := collectStream(t, h.client(), req)
		rs := tp.all()
		r := rs[len(rs)-1]
		checkTokens(t, r, via.usage.PromptTokens, via.usage.CompletionTokens)
	})

	t.Run("completions", func(t *testing.T) {
		resp, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: "gpt-3.5-turbo-instruct", Prompt: "A toast:", MaxTokens: 12})
		if err != nil {
			t.Fatal(err)
		}
		r := tp.one(t, resp.Header().Get("X-Request-Id"))
		checkTokens(t, r, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
		if r.CostUSD != nil {
			t.Errorf("an unpriced model has cost %v, want null", *r.CostUSD)
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		resp, err := c.CreateEmbeddings(ctx, openai.EmbeddingRequestStrings{Model: openai.SmallEmbedding3, Input: []string{"peonies"}})
		if err != nil {
			t.Fatal(err)
		}
		r := tp.one(t, resp.Header().Get("X-Request-Id"))
		checkTokens(t, r, resp.Usage.PromptTokens, 0)
		if r.CostUSD == nil {
			t.Error("embeddings cost is null")
		}
	})

	t.Run("responses", func(t *testing.T) {
		client := oaigo.NewClient(option.WithBaseURL(h.baseURL()+"/"), option.WithAPIKey(h.token), option.WithMaxRetries(0),
			option.WithHeader("X-Supplier-ID", testSupplier))
		var raw *http.Response
		resp, err := client.Responses.New(ctx, responsesParams(), option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		r := tp.one(t, raw.Header.Get("X-Request-Id"))
		checkTokens(t, r, int(resp.Usage.InputTokens), int(resp.Usage.OutputTokens))

		stream := client.Responses.NewStreaming(ctx, responsesParams())
		var completed responses.Response
		for stream.Next() {
			if ev := stream.Current(); ev.Type == "response.completed" {
				completed = ev.Response
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		rs := tp.all()
		last := rs[len(rs)-1]
		checkTokens(t, last, int(completed.Usage.InputTokens), int(completed.Usage.OutputTokens))
		if !last.Stream || last.Endpoint != "responses" {
			t.Errorf("responses stream record %+v", last)
		}
	})

	if logs := h.logs.String(); !strings.Contains(logs, "no price for model") {
		t.Error("an unpriced model was not warned about")
	}
}

// TestUsageClientGoneIsPartial: a client that leaves mid-stream still gets
// a record, marked partial.
func TestUsageClientGoneIsPartial(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{tap: tp.add})
	h.up.Script(fakeopenai.Fault{Kind: fakeopenai.KindStallStream, After: 2, Stall: 2 * time.Second})
	conn, r := h.openStream(t)
	if _, err := nextData(t, r); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	waitFor(t, func() bool {
		for _, rec := range tp.all() {
			if rec.Partial && rec.Stream {
				return true
			}
		}
		return false
	})
}

// TestUsageRejectedCallerHasNoRecord: a request veil refuses before knowing
// the caller is audited, not billed; a known caller's refused request has a
// record with veil's error code.
func TestUsageRejectedCallerHasNoRecord(t *testing.T) {
	tp := &tap{}
	h := start(t, setup{tap: tp.add})
	resp := h.do("POST", "/v1/chat/completions", chatBody, map[string]string{"Authorization": "Bearer nope"})
	_, _ = io.Copy(io.Discard, resp.Body)
	resp = h.do("POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":"yes"}`, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	rs := tp.all()
	if len(rs) != 1 || rs[0].Status != 400 || rs[0].Error != "invalid_type" || rs[0].TotalTokens != 0 {
		t.Errorf("records %+v", rs)
	}
}

func responsesParams() responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model:        "gpt-4o-mini",
		Instructions: oaigo.String("You plan wedding receptions."),
		Input:        responses.ResponseNewParamsInputUnion{OfString: oaigo.String("Plan a reception for 80 guests.")},
	}
}

// TestUsageToRedisStream: with a Redis sink configured, each record lands
// in the stream (XADD), readable by the billing side.
func TestUsageToRedisStream(t *testing.T) {
	rs := redistest.Start(t)
	h := start(t, setup{extra: `usage:
  flush_interval: 20ms
  sinks:
    - type: redis
      addr: ` + rs.Addr + `
      stream: wedsync:usage
`})
	resp, err := h.client().CreateChatCompletion(ctxT(t), weddingChat)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header().Get("X-Request-Id")
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	waitFor(t, func() bool {
		msgs, err := rdb.XRange(context.Background(), "wedsync:usage", "-", "+").Result()
		if err != nil {
			return false
		}
		for _, m := range msgs {
			if m.Values["request_id"] == id {
				var rec usage.Record
				if err := json.Unmarshal([]byte(m.Values["record"].(string)), &rec); err != nil {
					t.Fatal(err)
				}
				return rec.Supplier == testSupplier && rec.TotalTokens == int64(resp.Usage.TotalTokens)
			}
		}
		return false
	})
}
