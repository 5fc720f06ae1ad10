// Package usage accounts for every call: one priced, attributed record per
// client request, handed to sinks (stdout, a rotated file, a webhook, a
// Redis stream) without ever blocking the request.
package usage

import (
	"time"

	"github.com/wedsync/veil/billing"
)

// Cache outcomes.
const (
	CacheHit    = "hit"
	CacheMiss   = "miss"
	CacheBypass = "bypass"
)

// Record is the usage of one client request, as one JSON line.
type Record struct {
	TS             time.Time         `json:"ts"`
	RequestID      string            `json:"request_id"`
	Supplier       string            `json:"supplier"`
	Caller         string            `json:"caller"`
	Workflow       string            `json:"workflow,omitempty"`
	Endpoint       string            `json:"endpoint"`
	RequestedModel string            `json:"requested_model"`
	Model          string            `json:"model"`
	Provider       string            `json:"provider"`
	KeySource      billing.KeySource `json:"key_source"`
	// Billed is the party that pays: platform, client, or none when no
	// provider was asked (a cache hit, or veil refused the call itself).
	Billed           billing.Payer `json:"billed"`
	Stream           bool          `json:"stream"`
	Status           int           `json:"status"`
	PromptTokens     int64         `json:"prompt_tokens"`
	CompletionTokens int64         `json:"completion_tokens"`
	CachedTokens     int64         `json:"cached_tokens"`
	TotalTokens      int64         `json:"total_tokens"`
	// CostMicros is the call's cost in micro-dollars, the unit every sum
	// of money is kept in; nil when the model has no price. SetCost sets
	// it with CostUSD.
	CostMicros *int64 `json:"cost_micros"`
	// CostUSD is CostMicros in dollars, for display only; nil with it.
	CostUSD *float64 `json:"cost_usd"`
	// cost holds what SetCost points CostMicros and CostUSD at, so that
	// pricing a record allocates nothing more.
	cost struct {
		micros int64
		usd    float64
	}
	LatencyMS float64 `json:"latency_ms"`
	TTFTMS    float64 `json:"ttft_ms,omitempty"`
	Cache     string  `json:"cache"`
	// SavedTokens are the tokens a cache hit did not spend: the total the
	// provider reported when the answer was stored.
	SavedTokens int64     `json:"saved_tokens,omitempty"`
	Attempts    []Attempt `json:"attempts"`
	Failover    bool      `json:"failover"`
	MigrationID string    `json:"migration_id,omitempty"`
	Shadow      bool      `json:"shadow"`
	// TokensEstimated is set when the provider reported no usage (a stream
	// that ended early) and veil counted the tokens itself: the completion
	// from the text that reached the client, the prompt from the request.
	TokensEstimated bool `json:"tokens_estimated,omitempty"`
	// Partial is set when the client went away or the stream was cut or
	// failed, so the tokens counted are what was delivered, not the whole
	// answer.
	Partial bool `json:"partial"`
	// Error is veil's error code when veil answered itself.
	Error string `json:"error,omitempty"`
	// Reason says why the call was served unlike planned, such as
	// "quota_exhausted:tpm" when a tier switched it to the client's key.
	Reason string `json:"reason,omitempty"`
	// UpstreamRequestID is the provider's own ID of its last answer (its
	// X-Request-Id, such as req_...), for a support case with it.
	UpstreamRequestID string `json:"upstream_request_id,omitempty"`
	// SpoolSeq is the record's place in its replica's usage spool (0
	// without one). A record replayed after a crash keeps it, so that a
	// consumer can tell a record it has seen.
	SpoolSeq uint64 `json:"spool_seq,omitempty"`
	// spoolSource is the identity of the spool's run that appended the
	// record (see Spool): with SpoolSeq, the record's place in one
	// sequence. Empty without one.
	spoolSource string
}

// SetCost sets the record's cost, micros micro-dollars, in CostMicros and
// (for display) CostUSD.
func (r *Record) SetCost(micros int64) {
	r.cost.micros, r.cost.usd = micros, MicrosToUSD(micros)
	r.CostMicros, r.CostUSD = &r.cost.micros, &r.cost.usd
}

// Attempt is one upstream try within a request.
type Attempt struct {
	Provider string `json:"provider"`
	// Model is the model the attempt asked the provider for.
	Model     string            `json:"model,omitempty"`
	KeySource billing.KeySource `json:"key_source"`
	Status    int               `json:"status"`
	Error     string            `json:"error,omitempty"`
	LatencyMS float64           `json:"latency_ms"`
	// PromptTokens and CompletionTokens are the attempt's own tokens,
	// given when several attempts streamed parts of one answer (a resumed
	// stream); TokensEstimated says they were estimated because the
	// attempt broke before it reported usage.
	PromptTokens     int64 `json:"prompt_tokens,omitempty"`
	CompletionTokens int64 `json:"completion_tokens,omitempty"`
	TokensEstimated  bool  `json:"tokens_estimated,omitempty"`
	// CostMicros is the attempt's own cost, given with its own tokens, at
	// its provider's price for its model.
	CostMicros int64 `json:"cost_micros,omitempty"`
}

// Sink receives batches of records. Write is called from one goroutine per
// sink, never concurrently with itself; it returns an error to have the
// batch retried or spilled, as the sink's policy says. Close flushes.
type Sink interface {
	Name() string
	Write(batch []*Record) error
	Close() error
}
