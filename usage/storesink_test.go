package usage

import (
	"context"
	"testing"
	"time"

	"github.com/wedsync/veil/store"
)

func TestStoreSinkAggregates(t *testing.T) {
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	day := time.Date(2026, 6, 20, 15, 0, 0, 0, time.UTC)
	cost := 0.25
	rec := func(supplier, model string, prompt int64) *Record {
		return &Record{TS: day, Supplier: supplier, Provider: "openai", Model: model, KeySource: "platform",
			PromptTokens: prompt, CompletionTokens: 10, TotalTokens: prompt + 10, CostUSD: &cost}
	}
	s := NewStoreSink(st)
	if err := s.Write([]*Record{rec("bella", "gpt-4o-mini", 5), rec("bella", "gpt-4o-mini", 7), rec("rose", "gpt-4o", 1)}); err != nil {
		t.Fatal(err)
	}
	rows, err := st.QueryUsage(context.Background(), store.UsageQuery{Supplier: "bella", From: day, To: day})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 2 || rows[0].PromptTokens != 12 || rows[0].CompletionTokens != 20 || rows[0].CostMicros != 500000 {
		t.Errorf("rows %+v", rows)
	}
}
