// Package billing is the vocabulary of who pays for a supplier's calls:
// where a call's key comes from, who is billed for it, the mode a supplier
// is configured with, and the outcome of one answered request. It imports
// nothing of veil's, so that every package can share it.
//
// Every value is a string type whose values are the ones written to
// configuration, usage records, headers and JSON documents.
package billing

import "time"

// MaxTokens bounds one token count a provider reports: a hostile or broken
// upstream's absurd numbers must not turn into absurd bills.
const MaxTokens = 1_000_000_000

// KeySource is where the key of a call comes from.
type KeySource string

// Key sources.
const (
	// PlatformKey is one of WedSync's platform keys.
	PlatformKey KeySource = "platform"
	// ClientKey is the supplier's own key.
	ClientKey KeySource = "client"
)

// Payer returns who pays for a call made with a key of source s: the
// client for its own key, the platform otherwise.
func (s KeySource) Payer() Payer {
	if s == ClientKey {
		return PaidByClient
	}
	return PaidByPlatform
}

// Valid reports whether s is PlatformKey or ClientKey.
func (s KeySource) Valid() bool { return s == PlatformKey || s == ClientKey }

// Payer is who pays for a call.
type Payer string

// Payers.
const (
	// PaidByPlatform bills WedSync.
	PaidByPlatform Payer = "platform"
	// PaidByClient bills the supplier.
	PaidByClient Payer = "client"
	// PaidByNone is a call nobody pays for, such as a cache hit.
	PaidByNone Payer = "none"
)

// Valid reports whether p is PaidByPlatform or PaidByClient.
func (p Payer) Valid() bool { return p == PaidByPlatform || p == PaidByClient }

// Mode is the system a supplier's calls use by its configuration.
type Mode string

// Modes.
const (
	// ModePlatform uses WedSync's platform keys.
	ModePlatform Mode = "platform"
	// ModeClient uses the supplier's own key.
	ModeClient Mode = "client"
	// ModeHybrid uses the supplier's own key first and platform keys as
	// the fallback.
	ModeHybrid Mode = "hybrid"
)

// Modes lists every mode, in the order configuration documents them.
func Modes() []Mode { return []Mode{ModePlatform, ModeClient, ModeHybrid} }

// First returns the key source a supplier of mode m tries first: its own
// key in client and hybrid mode, platform keys otherwise.
func (m Mode) First() KeySource {
	if m == ModeClient || m == ModeHybrid {
		return ClientKey
	}
	return PlatformKey
}

// Payer returns who pays for the calls of a supplier on system m (platform
// or client).
func (m Mode) Payer() Payer { return m.First().Payer() }

// Outcome is how one side of a request was answered: the client's own call
// or its shadow on the other system.
type Outcome struct {
	// Status is the HTTP status of the answer; anything but 2xx, or a
	// non-empty Err, is an error.
	Status int
	// Latency is the time to the complete answer and TTFT the time to its
	// first token (zero when the answer was not streamed).
	Latency, TTFT time.Duration
	// PromptTokens and CompletionTokens are the tokens of the answer.
	PromptTokens, CompletionTokens int64
	// CostUSD is the answer's cost, for display.
	CostUSD float64
	// CostMicros is the answer's cost in millionths of a US dollar, the
	// unit sums are kept in; zero takes CostUSD.
	CostMicros int64
	// Text is the answer's text, for the similarity of two answers; it is
	// compared, never stored.
	Text string
	// Err is the error, if the request failed.
	Err string
}

// Failed reports whether the outcome is an error: a status outside 2xx or
// an error of its own.
func (o Outcome) Failed() bool {
	return o.Err != "" || o.Status < 200 || o.Status > 299
}
