package proxy

import (
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/connpeek"
	"github.com/wedsync/veil/provider"
)

// departed reports whether the client of ctx has closed its connection
// (see connpeek.Closed): a pipelined request waiting counts as the client
// still being there.
func departed(ctx *fasthttp.RequestCtx) bool { return connpeek.Closed(ctx.Conn()) }

// headerWaits are the attempts waiting for an upstream's response headers.
// One goroutine, running while any wait, looks every clientCheckInterval
// whether their clients are still there, and cuts the upstream call of an
// attempt whose client left: the provider stops, and no further attempt
// is made for nobody.
type headerWaits struct {
	mu      sync.Mutex
	head    *headerWait
	running bool
}

// headerWait is one attempt's wait for headers; each exchange has one.
type headerWait struct {
	ctx        *fasthttp.RequestCtx
	p          *provider.Provider
	mark       provider.Mark
	since      time.Time
	cut        bool
	prev, next *headerWait
}

// begin registers w, the wait of ctx's attempt for the answer to the call
// marked m on p, from since.
func (ws *headerWaits) begin(w *headerWait, ctx *fasthttp.RequestCtx, p *provider.Provider, m provider.Mark, since time.Time) {
	w.ctx, w.p, w.mark, w.since, w.cut = ctx, p, m, since, false
	ws.mu.Lock()
	w.prev, w.next = nil, ws.head
	if ws.head != nil {
		ws.head.prev = w
	}
	ws.head = w
	if !ws.running {
		ws.running = true
		go ws.watch()
	}
	ws.mu.Unlock()
}

// end takes w off the watch; it reports whether its call was cut because
// its client left.
func (ws *headerWaits) end(w *headerWait) bool {
	ws.mu.Lock()
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		ws.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	}
	cut := w.cut
	*w = headerWait{}
	ws.mu.Unlock()
	return cut
}

// watch looks at the clients of the waits older than one interval, until
// none is left. A cut happens under the lock, so never after its wait
// ended.
func (ws *headerWaits) watch() {
	t := time.NewTicker(clientCheckInterval)
	defer t.Stop()
	for now := range t.C {
		ws.mu.Lock()
		if ws.head == nil {
			ws.running = false
			ws.mu.Unlock()
			return
		}
		for w := ws.head; w != nil; w = w.next {
			if !w.cut && now.Sub(w.since) >= clientCheckInterval && departed(w.ctx) {
				w.cut = true
				w.p.Cut(w.mark)
			}
		}
		ws.mu.Unlock()
	}
}
