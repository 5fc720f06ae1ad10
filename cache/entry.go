package cache

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/wedsync/veil/internal/jsonfield"
)

// Entry is a cached answer.
type Entry struct {
	// Status is the HTTP status of the answer.
	Status int
	// ContentType is the Content-Type of the plain answer.
	ContentType string
	// Body is the plain JSON answer to a plain request, or nil when only
	// Events were stored.
	Body []byte
	// Events are the data payloads of a streamed answer's SSE events, in
	// order, without the final [DONE].
	Events [][]byte
	// Model is the model that produced the answer.
	Model string
	// Provider is the upstream provider that produced the answer.
	Provider string
	// PromptTokens, CompletionTokens and TotalTokens are the usage the
	// upstream reported for the answer.
	PromptTokens, CompletionTokens, TotalTokens int
	// StoredAt is when the answer was stored.
	StoredAt time.Time

	// bare is Events without usage, made on the first replay that needs
	// it and kept, so that later hits do not strip every event again.
	bare atomic.Pointer[[][]byte]
	// synthesized are the streams made from Body, without and with usage,
	// made on the first streamed hit that needs each and kept.
	synthesized [2]atomic.Pointer[[][]byte]
	// memo is the memory bare and synthesized hold, in bytes; it is part
	// of Cost, so that Answers.Recost can charge the cache for it.
	memo atomic.Int64
}

// entryOverhead is the memory an Entry takes besides its byte slices.
const entryOverhead = int64(unsafe.Sizeof(Entry{}))

// sliceOverhead is the memory a slice header takes.
const sliceOverhead = int64(unsafe.Sizeof([]byte(nil)))

// Cost returns the approximate memory the entry takes, in bytes; Answers
// uses it as the entry's ristretto cost.
func (e *Entry) Cost() int64 {
	if e == nil {
		return 0
	}
	n := entryOverhead + int64(len(e.ContentType)+len(e.Body)+len(e.Model)+len(e.Provider))
	for _, ev := range e.Events {
		n += sliceOverhead + int64(len(ev))
	}
	return n + e.memo.Load()
}

// MemoBytes is the memory held by the streams kept for replays, in bytes;
// it grows when a hit makes one.
func (e *Entry) MemoBytes() int64 { return e.memo.Load() }

// keep stores events in p, unless another hit stored them first, and
// counts their memory; it returns the events kept.
func (e *Entry) keep(p *atomic.Pointer[[][]byte], events [][]byte) [][]byte {
	if !p.CompareAndSwap(nil, &events) {
		return *p.Load()
	}
	n := int64(0)
	for _, ev := range events {
		n += sliceOverhead + int64(len(ev))
	}
	e.memo.Add(n)
	return events
}

var (
	// ErrNoAnswer is returned by Entry.JSONBody and Entry.StreamEvents for
	// an entry with neither a body nor events.
	ErrNoAnswer = errors.New("cache: entry holds no answer")
	// ErrUnsupportedEndpoint is returned by Entry.JSONBody and
	// Entry.StreamEvents when the conversion the endpoint needs does not
	// exist, such as streaming embeddings.
	ErrUnsupportedEndpoint = errors.New("cache: conversion not supported for endpoint")
)

// JSONBody returns the plain JSON answer for endpoint: the stored Body, or
// the stored Events assembled into a plain answer. The result must not be
// modified.
func (e *Entry) JSONBody(endpoint string) ([]byte, error) {
	switch {
	case e == nil || (e.Body == nil && len(e.Events) == 0):
		return nil, ErrNoAnswer
	case e.Body != nil:
		return e.Body, nil
	}
	switch endpoint {
	case EndpointChatCompletions:
		return AssembleChat(e.Events)
	case EndpointCompletions:
		return AssembleCompletion(e.Events)
	default:
		return nil, fmt.Errorf("%w: assembling %s", ErrUnsupportedEndpoint, endpoint)
	}
}

// StreamEvents returns the SSE data payloads, without the final [DONE], that
// replay the answer to a streamed request for endpoint. A streamed answer is
// replayed as its own events; a plain one is turned into a stream of one
// word a chunk. Either way the events follow includeUsage (the request's
// stream_options.include_usage): with it, every chunk carries "usage" and a
// last chunk without choices the usage, when the answer reports it; without
// it, neither. The result must not be modified.
func (e *Entry) StreamEvents(endpoint string, includeUsage bool) ([][]byte, error) {
	if endpoint != EndpointChatCompletions && endpoint != EndpointCompletions {
		return nil, fmt.Errorf("%w: streaming %s", ErrUnsupportedEndpoint, endpoint)
	}
	if e != nil && e.Body == nil && len(e.Events) > 0 && (!includeUsage || streamedUsage(e.Events)) {
		if includeUsage {
			return e.Events, nil
		}
		if b := e.bare.Load(); b != nil {
			return *b, nil
		}
		events, err := replay(e.Events, false)
		if err != nil {
			return nil, err
		}
		return e.keep(&e.bare, events), nil
	}
	var memo *atomic.Pointer[[][]byte]
	if e != nil && e.Body != nil {
		memo = &e.synthesized[0]
		if includeUsage {
			memo = &e.synthesized[1]
		}
		if m := memo.Load(); m != nil {
			return *m, nil
		}
	}
	body, err := e.JSONBody(endpoint)
	if err != nil {
		return nil, err
	}
	var events [][]byte
	if endpoint == EndpointChatCompletions {
		events, err = SynthesizeChatStream(body, includeUsage)
	} else {
		events, err = SynthesizeCompletionStream(body, includeUsage)
	}
	if err != nil || memo == nil {
		return events, err
	}
	return e.keep(memo, events), nil
}

// streamedUsage reports whether stored events carry the usage chunk.
func streamedUsage(events [][]byte) bool {
	return usageOnly(events[len(events)-1])
}

// usageOnly reports whether ev is the usage chunk of a stream: no choices,
// a usage object.
func usageOnly(ev []byte) bool {
	choices, _, _ := jsonfield.Get(ev, "choices")
	u, ok, _ := jsonfield.Get(ev, "usage")
	return ok && len(u) > 0 && u[0] == '{' && string(bytes.TrimSpace(choices)) == "[]"
}

// replay returns stored events as includeUsage asks: as they are, or
// without the usage chunk and the "usage" member of the others.
func replay(events [][]byte, includeUsage bool) ([][]byte, error) {
	if includeUsage {
		return events, nil
	}
	out := make([][]byte, 0, len(events))
	for _, ev := range events {
		if usageOnly(ev) {
			continue
		}
		if bytes.Contains(ev, []byte(`"usage"`)) {
			trimmed, _, err := jsonfield.RemoveMember(nil, ev, "usage")
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidAnswer, err)
			}
			ev = trimmed
		}
		out = append(out, ev)
	}
	return out, nil
}
