//go:build linux

package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/mix"
)

// Paths of the two endpoints the soak calls.
const (
	pathChat       = "/v1/chat/completions"
	pathEmbeddings = "/v1/embeddings"
)

// kind is one sort of request in the soak's mix.
type kind struct {
	name   string
	weight int // out of the weights' sum
	path   string
	stream bool
	// upstream says that veil sends the request to a provider: it is not
	// cacheable or skips the cache lookup. Faults go only with these, since
	// a cache hit never reaches the upstream that would take the fault.
	upstream bool
	// cacheControl is sent as Cache-Control when not empty.
	cacheControl string
	// body returns the request's JSON body for slot i.
	body func(i int64) []byte
}

// cachedPrompts is how many distinct prompts (and embedding inputs) the
// cached kinds rotate over: their cache entries are few and fixed, so the
// cache does not grow over the soak.
const cachedPrompts = 16

// chatBody returns a chat completion body with the user message msg, at
// the temperature given as JSON text, streamed or not.
func chatBody(msg, temperature string, stream bool) []byte {
	b := `{"model":"gpt-4o-mini","messages":[` +
		`{"role":"system","content":"You are a helpful wedding planning assistant for WedSync couples."},` +
		`{"role":"user","content":"` + msg + `"}],"max_tokens":96,"temperature":` + temperature
	if stream {
		b += `,"stream":true`
	}
	return []byte(b + `}`)
}

// embeddingBody returns an embeddings body for input.
func embeddingBody(input string) []byte {
	return []byte(`{"model":"text-embedding-3-small","dimensions":256,"input":"` + input + `"}`)
}

// uniqueMsg is a prompt of its own for slot i: never cached.
func uniqueMsg(i int64) string {
	return "Draft a thank-you note for wedding guest number " + strconv.FormatInt(i, 10) + ", who sent flowers."
}

// cachedMsg is one of cachedPrompts prompts, by slot; prefix keeps the
// prompts of different kinds apart, so that each kind has its own entries.
func cachedMsg(prefix string, i int64) string {
	return prefix + " Suggest a first-dance song for a wedding in month " + strconv.FormatInt(i%cachedPrompts+1, 10) + "."
}

// kinds is the request mix. About three quarters go upstream; the rest
// are answered from veil's cache once the first of each prompt is in.
var kinds = []kind{
	{name: "chat", weight: 30, path: pathChat, upstream: true,
		body: func(i int64) []byte { return chatBody(uniqueMsg(i), "0.7", false) }},
	{name: "chat-stream", weight: 30, path: pathChat, stream: true, upstream: true,
		body: func(i int64) []byte { return chatBody(uniqueMsg(i), "0.7", true) }},
	{name: "chat-cached", weight: 10, path: pathChat,
		body: func(i int64) []byte { return chatBody(cachedMsg("Plain.", i), "0", false) }},
	{name: "chat-stream-cached", weight: 5, path: pathChat, stream: true,
		body: func(i int64) []byte { return chatBody(cachedMsg("Streamed.", i), "0", true) }},
	// Deterministic, but Cache-Control: no-cache skips the lookup: the
	// call goes upstream and its answer replaces the stored one.
	{name: "chat-refresh", weight: 5, path: pathChat, upstream: true, cacheControl: "no-cache",
		body: func(i int64) []byte { return chatBody(cachedMsg("Refreshed.", i), "0", false) }},
	{name: "embed-cached", weight: 10, path: pathEmbeddings,
		body: func(i int64) []byte {
			return embeddingBody("Rustic barn venue with fairy lights, option " + strconv.FormatInt(i%cachedPrompts+1, 10))
		}},
	// A new input every time, kept out of the cache by no-store so the
	// cache stays small.
	{name: "embed-unique", weight: 10, path: pathEmbeddings, upstream: true, cacheControl: "no-store",
		body: func(i int64) []byte { return embeddingBody("Guest dietary note number " + strconv.FormatInt(i, 10)) }},
}

// faultKind is one sort of injected upstream fault.
type faultKind struct {
	name   string
	weight int
	// streamOnly faults apply to streamed calls only.
	streamOnly bool
	fault      func(stall time.Duration) fakeopenai.Fault
}

// faultKinds are the faults the primary upstream is scripted with. Stalls
// are rare: each one costs an attempt timeout of latency.
var faultKinds = []faultKind{
	{name: "500", weight: 3, fault: func(time.Duration) fakeopenai.Fault { return fakeopenai.Status(500, 1) }},
	{name: "503", weight: 3, fault: func(time.Duration) fakeopenai.Fault { return fakeopenai.Status(503, 1) }},
	{name: "429", weight: 3, fault: func(time.Duration) fakeopenai.Fault { return fakeopenai.RateLimit(0) }},
	{name: "reset", weight: 2, fault: func(time.Duration) fakeopenai.Fault { return fakeopenai.ConnReset() }},
	{name: "slow-first-byte", weight: 1, fault: fakeopenai.Stall},
	{name: "cut-before-content", weight: 2, streamOnly: true, fault: func(time.Duration) fakeopenai.Fault { return fakeopenai.Cut(0) }},
	{name: "cut-mid-stream", weight: 2, streamOnly: true, fault: func(time.Duration) fakeopenai.Fault { return fakeopenai.Cut(3) }},
	{name: "error-event", weight: 2, streamOnly: true, fault: func(time.Duration) fakeopenai.Fault { return fakeopenai.ErrorEvent(2) }},
	{name: "stall-before-content", weight: 1, streamOnly: true,
		fault: func(stall time.Duration) fakeopenai.Fault { return fakeopenai.StallStream(0, stall) }},
}

// plan decides, deterministically from a seed, what each request of the
// soak is (by its slot number) and which calls to the primary upstream
// bring a fault (by the call's number).
type plan struct {
	seed uint64
	// faultP is the probability that a call to the primary upstream
	// brings a fault, so that faults make up the asked share of all
	// requests.
	faultP float64
	// stall is the sleep of the stall faults.
	stall time.Duration
}

// upstreamShare is the share of the mix that goes upstream.
func upstreamShare() float64 {
	up, all := 0, 0
	for _, k := range kinds {
		all += k.weight
		if k.upstream {
			up += k.weight
		}
	}
	return float64(up) / float64(all)
}

// newPlan returns the plan for a share of faulted requests (0 to the
// upstream share of the mix).
func newPlan(seed uint64, faultShare float64, stall time.Duration) (plan, error) {
	up := upstreamShare()
	if faultShare < 0 || faultShare > up {
		return plan{}, fmt.Errorf("fault share %v must be between 0 and %.2f, the share of requests that go upstream", faultShare, up)
	}
	return plan{seed: seed, faultP: faultShare / up, stall: stall}, nil
}

// unit maps 64 random bits to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// pickWeighted returns the index whose weight range holds h, over the
// entries that ok admits.
func pickWeighted(h uint64, n int, weight func(int) int, ok func(int) bool) int {
	total := 0
	for i := range n {
		if ok(i) {
			total += weight(i)
		}
	}
	r := int(h % uint64(total))
	for i := range n {
		if !ok(i) {
			continue
		}
		if r < weight(i) {
			return i
		}
		r -= weight(i)
	}
	panic("unreachable: weights changed")
}

// kindAt returns the kind of slot i's request.
func (p plan) kindAt(i int64) *kind {
	h := mix.Mix64(p.seed + uint64(i+1)*mix.Gamma)
	return &kinds[pickWeighted(h, len(kinds), func(j int) int { return kinds[j].weight }, func(int) bool { return true })]
}

// faultAt returns the index in faultKinds of the fault that the n-th
// call to the primary upstream brings, streamed or not, or -1 for none.
func (p plan) faultAt(n uint64, stream bool) int {
	h := mix.Mix64(^p.seed + n*mix.Gamma)
	if unit(h) >= p.faultP {
		return -1
	}
	return pickWeighted(mix.Mix64(h+mix.Gamma), len(faultKinds),
		func(j int) int { return faultKinds[j].weight },
		func(j int) bool { return stream || !faultKinds[j].streamOnly })
}
