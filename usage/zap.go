package usage

import (
	"time"

	"go.uber.org/zap/zapcore"
)

var (
	_ zapcore.ObjectMarshaler = (*Record)(nil)
	_ zapcore.ObjectMarshaler = Attempt{}
	_ zapcore.ArrayMarshaler  = attempts(nil)
)

// MarshalLogObject encodes r for zap with the names and omissions of its
// JSON form, so that a log line carries the same fields as an NDJSON line:
// ts is RFC 3339 with nanoseconds (not the logger's time format), cost_usd
// and a nil attempts are null.
func (r *Record) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if r == nil {
		return nil
	}
	enc.AddString("ts", r.TS.Format(time.RFC3339Nano))
	enc.AddString("request_id", r.RequestID)
	enc.AddString("supplier", r.Supplier)
	enc.AddString("caller", r.Caller)
	if r.Workflow != "" {
		enc.AddString("workflow", r.Workflow)
	}
	enc.AddString("endpoint", r.Endpoint)
	enc.AddString("requested_model", r.RequestedModel)
	enc.AddString("model", r.Model)
	enc.AddString("provider", r.Provider)
	enc.AddString("key_source", string(r.KeySource))
	enc.AddString("billed", string(r.Billed))
	enc.AddBool("stream", r.Stream)
	enc.AddInt("status", r.Status)
	enc.AddInt64("prompt_tokens", r.PromptTokens)
	enc.AddInt64("completion_tokens", r.CompletionTokens)
	enc.AddInt64("cached_tokens", r.CachedTokens)
	enc.AddInt64("total_tokens", r.TotalTokens)
	if r.CostUSD != nil {
		enc.AddFloat64("cost_usd", *r.CostUSD)
	} else if err := enc.AddReflected("cost_usd", nil); err != nil {
		return err
	}
	if r.CostMicros != nil {
		enc.AddInt64("cost_micros", *r.CostMicros)
	} else if err := enc.AddReflected("cost_micros", nil); err != nil {
		return err
	}
	enc.AddFloat64("latency_ms", r.LatencyMS)
	if r.TTFTMS != 0 {
		enc.AddFloat64("ttft_ms", r.TTFTMS)
	}
	enc.AddString("cache", r.Cache)
	if r.SavedTokens != 0 {
		enc.AddInt64("saved_tokens", r.SavedTokens)
	}
	if r.Attempts != nil {
		if err := enc.AddArray("attempts", attempts(r.Attempts)); err != nil {
			return err
		}
	} else if err := enc.AddReflected("attempts", nil); err != nil {
		return err
	}
	enc.AddBool("failover", r.Failover)
	if r.MigrationID != "" {
		enc.AddString("migration_id", r.MigrationID)
	}
	enc.AddBool("shadow", r.Shadow)
	if r.TokensEstimated {
		enc.AddBool("tokens_estimated", true)
	}
	enc.AddBool("partial", r.Partial)
	if r.Error != "" {
		enc.AddString("error", r.Error)
	}
	if r.Reason != "" {
		enc.AddString("reason", r.Reason)
	}
	if r.UpstreamRequestID != "" {
		enc.AddString("upstream_request_id", r.UpstreamRequestID)
	}
	if r.SpoolSeq != 0 {
		enc.AddUint64("spool_seq", r.SpoolSeq)
	}
	return nil
}

// MarshalLogObject encodes a for zap with the names of its JSON form.
func (a Attempt) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("provider", a.Provider)
	if a.Model != "" {
		enc.AddString("model", a.Model)
	}
	enc.AddString("key_source", string(a.KeySource))
	enc.AddInt("status", a.Status)
	if a.Error != "" {
		enc.AddString("error", a.Error)
	}
	enc.AddFloat64("latency_ms", a.LatencyMS)
	if a.PromptTokens != 0 {
		enc.AddInt64("prompt_tokens", a.PromptTokens)
	}
	if a.CompletionTokens != 0 {
		enc.AddInt64("completion_tokens", a.CompletionTokens)
	}
	if a.TokensEstimated {
		enc.AddBool("tokens_estimated", true)
	}
	if a.CostMicros != 0 {
		enc.AddInt64("cost_micros", a.CostMicros)
	}
	return nil
}

type attempts []Attempt

func (as attempts) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for i := range as {
		if err := enc.AppendObject(&as[i]); err != nil {
			return err
		}
	}
	return nil
}
