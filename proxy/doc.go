// Package proxy is veil's OpenAI-compatible request handler. A request is
// first admitted (admission.go: its framing, caller, body, plan, the
// cache and the quota), which either answers it or leaves a ticket: the
// planned targets and the body to send them. The run (run.go) sends the
// ticket to its targets in order; after each attempt one decision
// (decide.go) says whether to deliver the answer, move to the next target,
// retry after a wait or swap the key. A streamed answer is copied by the
// pump (pump.go), which passes each event through the taps of the
// features that need it (usage, cache, resume, shadow comparison).
package proxy
