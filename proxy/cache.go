package proxy

import (
	"bytes"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/cache"
	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/policy"
	"github.com/wedsync/veil/usage"
)

// HeaderCache says whether the cache answered: HIT, MISS or BYPASS.
const HeaderCache = "X-Veil-Cache"

// sharedScope is the cache scope of routes whose answers every supplier
// shares. Supplier IDs cannot contain a NUL byte, so it is no supplier's.
const sharedScope = "\x00shared"

// Cache is the response cache the proxy answers repeat deterministic
// calls from; see cache.Answers.
type Cache interface {
	Get(scope string, k cache.Key) (*cache.Entry, bool)
	Set(scope string, k cache.Key, e *cache.Entry) bool
	Begin(scope string, k cache.Key) (*cache.Flight, bool)
	// Recost charges the cache again for an entry that keeps more
	// memory after a hit.
	Recost(scope string, k cache.Key, e *cache.Entry) bool
	// Wait makes the sets so far visible to Get.
	Wait()
}

var _ Cache = (*cache.Answers)(nil)

// cacheState is what an exchange knows of its request's cache entry.
type cacheState struct {
	// outcome is usage.CacheHit, CacheMiss or CacheBypass ("" is bypass).
	outcome string
	key     cache.Key
	scope   string
	// store is set when a successful answer is to be stored.
	store bool
	// flight is the single flight the exchange leads, ended in finish.
	flight *cache.Flight
	// stored is the entry stored, handed to the flight's followers.
	stored *cache.Entry
	// hit is the entry that answered.
	hit *cache.Entry
	// events collects a streamed answer's data payloads to store them.
	events  [][]byte
	collect bool
	// done is set when the stream's [DONE] came.
	done bool
	// x is the exchange whose answer is collected.
	x *exchange
}

var _ tap = (*cacheState)(nil)

// event is the cache's tap: it keeps each event of a streamed answer on a
// miss, and stores the answer when its [DONE] comes, before the client
// has it, so that a client asking again at once finds it.
func (c *cacheState) event(ev sse.Event) (sse.Event, error) {
	switch {
	case !c.collect || len(ev.Data) == 0:
	case sse.IsDone(ev.Data):
		c.done = true
		c.x.s.storeStream(c.x)
	default:
		c.events = append(c.events, append([]byte(nil), ev.Data...))
	}
	return ev, nil
}

// stop ends the collection: a resumed answer is not stored.
func (c *cacheState) stop() { c.collect = false }

// reset keeps the event buffer for the next exchange.
func (c *cacheState) reset() cacheState {
	return cacheState{events: c.events[:0]}
}

// header is the X-Veil-Cache value.
func (c *cacheState) header() string {
	switch c.outcome {
	case usage.CacheHit:
		return "HIT"
	case usage.CacheMiss:
		return "MISS"
	}
	return "BYPASS"
}

// lookup is admission's cache step: it answers the request from the cache
// when it can, and then reports false, the client having its answer. On a miss it remembers the key so that
// the answer is stored, and with single flight it either leads the
// flight for the key or waits for the request that does.
func (s *Server) lookup(ctx *fasthttp.RequestCtx, x *exchange) bool {
	return !s.answerFromCache(ctx, x)
}

// answerFromCache is lookup's work; it reports true when the cache
// answered.
func (s *Server) answerFromCache(ctx *fasthttp.RequestCtx, x *exchange) bool {
	c := &x.cache
	if s.cache == nil || !x.ep.understood {
		return false
	}
	mode := x.rt.Policy.Cache(x.supplier, ctx.Request.Header.Peek("X-Workflow"), x.start)
	if mode == policy.CacheOff || !cache.Cacheable(cache.Request{Endpoint: x.ep.name, Temperature: x.fields.Temperature,
		Seed: x.fields.Seed, N: x.fields.N}) {
		return false
	}
	noCache, noStore := cacheControl(ctx.Request.Header.Peek(fasthttp.HeaderCacheControl))
	if noCache && bytes.HasPrefix(ctx.Request.Header.Peek(fasthttp.HeaderAccept), []byte("text/event-stream")) {
		// EventSource clients (go-openai's streams among them) send
		// no-cache with every stream, for the proxies on the way: it says
		// nothing about veil's cache of answers.
		noCache = false
	}
	c.scope = sharedScope
	if mode != policy.CacheShared {
		c.scope = s.interns.get(x.supplier)
	}
	// The key's scope names the endpoint too, so that one body sent to
	// two endpoints cannot share an answer.
	ks := append(append(append(x.scratch[:0], x.ep.name...), 0), c.scope...)
	x.scratch = ks[:0]
	// A string view of the scope bytes without a copy: NewKey only hashes
	// it and keeps nothing.
	k, err := cache.NewKey(unsafe.String(unsafe.SliceData(ks), len(ks)), x.body) //nolint:gosec // G103: see above
	if err != nil {
		return false
	}
	c.key, c.store = k, !noStore
	if noCache {
		return false // a fresh answer, stored for the next request
	}
	c.outcome = usage.CacheMiss
	if e, ok := s.cache.Get(c.scope, k); ok {
		return s.serveCached(ctx, x, e)
	}
	if !s.singleFlight || !c.store {
		return false
	}
	f, leader := s.cache.Begin(c.scope, k)
	if leader {
		c.flight = f
		return false
	}
	if x.wait(ctx.Done(), f.Done(), time.Until(x.deadline), nil) == waitReady {
		if e := f.Answer(); e != nil {
			return s.serveCached(ctx, x, e)
		}
	}
	return false // the leader had nothing to share: ask the provider
}

// cacheControl reads the request's no-cache and no-store directives.
func cacheControl(v []byte) (noCache, noStore bool) {
	for len(v) > 0 {
		var d []byte
		d, v, _ = bytes.Cut(v, []byte{','})
		d = bytes.TrimSpace(d)
		switch {
		case bytes.EqualFold(d, []byte("no-cache")):
			noCache = true
		case bytes.EqualFold(d, []byte("no-store")):
			noStore = true
		}
	}
	return noCache, noStore
}

// serveCached answers from a cached entry in the form the request asked
// for: the plain JSON answer, or its events replayed as a stream. It
// reports false, leaving the request to the provider, when the entry
// cannot be given in that form.
func (s *Server) serveCached(ctx *fasthttp.RequestCtx, x *exchange, e *cache.Entry) bool {
	stream := x.ep.streams && x.fields.Stream
	if stream {
		kept := e.MemoBytes()
		events, err := e.StreamEvents(x.ep.name, x.fields.IncludeUsage)
		if err != nil {
			return false
		}
		if e.MemoBytes() != kept {
			// The entry now keeps the stream for later hits: the cache
			// is charged for that memory.
			s.cache.Recost(x.cache.scope, x.cache.key, e)
		}
		body := ctx.Response.BodyWriter()
		buf := x.stream.out[:0]
		for _, ev := range events {
			buf = sse.AppendEvent(buf, ev)
		}
		buf = sse.AppendEvent(buf, []byte("[DONE]"))
		_, _ = body.Write(buf)
		x.stream.out = buf[:0]
		ctx.Response.Header.SetContentType("text/event-stream; charset=utf-8")
		ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-cache")
	} else {
		body, err := e.JSONBody(x.ep.name)
		if err != nil {
			return false
		}
		ctx.Response.SetBodyRaw(body) // the entry is immutable and outlives the response
		ctx.Response.Header.SetContentType(e.ContentType)
	}
	ctx.SetStatusCode(e.Status)
	c := &x.cache
	c.outcome, c.hit, c.store = usage.CacheHit, e, false
	x.status = e.Status
	h := &ctx.Response.Header
	x.setRequestIDHeader(ctx)
	h.Set(HeaderProvider, e.Provider)
	h.Set(HeaderModel, e.Model)
	h.Set(HeaderAttempts, "0")
	h.Set(HeaderCache, "HIT")
	return true
}

// storePlain stores a successful plain answer on a miss.
func (s *Server) storePlain(x *exchange, resp *fasthttp.Response) {
	c := &x.cache
	body := resp.Body()
	if !c.store || resp.StatusCode() != fasthttp.StatusOK || filtered(body) {
		return
	}
	e := x.entry()
	e.ContentType = string(resp.Header.ContentType())
	e.Body = append([]byte(nil), body...)
	s.storeEntry(x, e)
}

// storeStream stores a streamed answer that ended cleanly with [DONE] and
// was neither cut, resumed nor filtered.
func (s *Server) storeStream(x *exchange) {
	c := &x.cache
	if !c.collect || c.stored != nil || !c.done || x.stream.interrupted != "" || len(c.events) == 0 {
		return
	}
	for _, ev := range c.events {
		if filtered(ev) || isErrorEvent(sse.Event{Data: ev}) {
			return
		}
	}
	e := x.entry()
	e.ContentType = "application/json"
	e.Events = append([][]byte(nil), c.events...)
	s.storeEntry(x, e)
}

// entry starts the cache entry of the exchange's answer.
func (x *exchange) entry() *cache.Entry {
	tokens := &x.usage.tokens
	model := x.s.interns.get(tokens.Model)
	if model == "" && x.served != nil {
		model = x.s.interns.get(x.served.Model)
	}
	return &cache.Entry{Status: fasthttp.StatusOK, Model: model, Provider: x.served.Provider.Name(),
		PromptTokens: int(tokens.Prompt), CompletionTokens: int(tokens.Completion), TotalTokens: int(tokens.Total),
		StoredAt: time.Now()}
}

// storeEntry stores e for the exchange's key and makes it visible at once,
// so that the next identical request is a hit, and hands it to the
// requests waiting in its flight. A dropped set only costs the next
// request a call to the provider.
func (s *Server) storeEntry(x *exchange, e *cache.Entry) {
	c := &x.cache
	if s.cache.Set(c.scope, c.key, e) {
		s.cache.Wait()
	}
	c.stored = e
	x.endFlight()
}

// endFlight releases the requests waiting for this exchange's answer.
func (x *exchange) endFlight() {
	if c := &x.cache; c.flight != nil {
		c.flight.End(c.stored)
		c.flight = nil
	}
}

// filtered reports whether an answer was cut by the provider's content
// filter; such answers are never cached.
func filtered(b []byte) bool {
	return bytes.Contains(b, []byte(`"finish_reason":"content_filter"`))
}
