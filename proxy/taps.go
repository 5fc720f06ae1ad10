package proxy

import (
	"bytes"

	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/usage"
)

// A tap is one feature's view of a streamed answer: the usage count, the
// cache's copy, the resume's record of the text sent, the shadow
// comparison's text and the trace's finish reasons each see every upstream
// event, in order, on its way to the client. A tap may change the event, drop it (an event with no
// Raw bytes is not sent), or say that the stream is broken here, so that
// it is ended or resumed as if the upstream had failed.
type tap interface {
	event(ev sse.Event) (sse.Event, error)
}

// tapChain is the taps of one stream, called in order for each event.
type tapChain struct {
	taps [5]tap
	n    int
}

// add appends t to the chain.
func (c *tapChain) add(t tap) {
	c.taps[c.n] = t
	c.n++
}

// remove takes t out of the chain, so that it sees no more events.
func (c *tapChain) remove(t tap) {
	for i := 0; i < c.n; i++ {
		if c.taps[i] == t {
			copy(c.taps[i:c.n], c.taps[i+1:c.n])
			c.n--
			c.taps[c.n] = nil
			return
		}
	}
}

// event passes ev through every tap; the event it returns is what goes to
// the client.
func (c *tapChain) event(ev sse.Event) (sse.Event, error) {
	for i := 0; i < c.n && ev.Raw != nil; i++ {
		var err error
		if ev, err = c.taps[i].event(ev); err != nil {
			return ev, err
		}
	}
	return ev, nil
}

// usageTap reads the usage and model of an answer, and takes out of a
// stream the usage veil asked for and the client did not: the usage-only
// chunk, and the "usage":null of every other chunk.
type usageTap struct {
	tokens usage.Tokens
	// model holds the bytes tokens.Model points at.
	model []byte
	// done is set once the stream's [DONE] passed.
	done bool
	// injected is set when veil asked for stream usage for itself.
	injected bool
	// failed is set once an in-band error event passed.
	failed bool
	// delivered keeps the answer text of the events passed on (not their
	// JSON), so that a stream that ends without the provider's usage is
	// billed for what reached the client (see estimateDelivered); it is
	// counted only then.
	delivered []byte
	// from is where in delivered the serving attempt's events start: a
	// resumed stream's earlier attempts are accounted for apart.
	from int
	// estimated is set when the tokens were counted by veil, the
	// provider having reported none.
	estimated bool
	data      []byte
	frame     []byte
}

// maxKeptDelivered bounds the delivered buffer an exchange keeps for the
// next one; a longer stream's buffer is left to the collector.
const maxKeptDelivered = 64 << 10

var _ tap = (*usageTap)(nil)

// reset keeps the tap's buffers for the next exchange.
func (u *usageTap) reset() usageTap {
	delivered := u.delivered[:0]
	if cap(delivered) > maxKeptDelivered {
		delivered = nil
	}
	return usageTap{model: u.model[:0], delivered: delivered, data: u.data[:0], frame: u.frame[:0]}
}

// fromBody reads the usage of a plain answer.
func (u *usageTap) fromBody(body []byte) {
	usage.FromBody(body, &u.tokens)
}

// event reads what veil needs from one upstream event (usage, model,
// [DONE]) and returns it as the client is to see it.
func (u *usageTap) event(ev sse.Event) (sse.Event, error) {
	if len(ev.Data) == 0 {
		return ev, nil
	}
	if sse.IsDone(ev.Data) {
		u.done = true
		return ev, nil
	}
	if ev.Data[0] == '{' {
		u.delivered = appendEventText(u.delivered, ev.Data)
	}
	if bytes.Contains(ev.Data, []byte(`"error"`)) && isErrorEvent(ev) {
		u.failed = true
	}
	usageAt := bytes.Index(ev.Data, []byte(`"usage"`))
	nullTail := usageAt >= 0 && usageAt == len(ev.Data)-len(nullUsageTail)+1 && bytes.HasSuffix(ev.Data, []byte(nullUsageTail))
	usageOnly := false
	if len(u.model) == 0 || (usageAt >= 0 && !nullTail) {
		// The first chunk names the model; later ones are read only when
		// they may carry usage.
		var t usage.Tokens
		var hasUsage bool
		hasUsage, usageOnly = usage.FromChunk(ev.Data, &t)
		if len(t.Model) > 0 {
			u.model = append(u.model[:0], t.Model...)
			u.tokens.Model = u.model
		}
		if hasUsage {
			model := u.tokens.Model
			u.tokens = t
			u.tokens.Model = model
		}
	}
	switch {
	case !u.injected || usageAt < 0:
		return ev, nil
	case usageOnly:
		return sse.Event{}, nil
	case nullTail:
		// The "usage":null OpenAI ends every other chunk with: cut off
		// without reading the chunk again.
		data := append(append(u.data[:0], ev.Data[:len(ev.Data)-len(nullUsageTail)]...), '}')
		return u.reframe(ev, data), nil
	}
	return u.stripUsage(ev), nil
}

// nullUsageTail is how OpenAI ends every chunk but the usage chunk of a
// stream asked for usage.
const nullUsageTail = `,"usage":null}`

// stripUsage returns ev without its "usage" member.
func (u *usageTap) stripUsage(ev sse.Event) sse.Event {
	data, removed, err := jsonfield.RemoveMember(u.data[:0], ev.Data, "usage")
	if err != nil || !removed {
		u.data = data[:0]
		return ev
	}
	return u.reframe(ev, data)
}

// reframe returns ev carrying data instead of its own, data living in the
// tap's buffer.
func (u *usageTap) reframe(ev sse.Event, data []byte) sse.Event {
	u.data = data[:0]
	// Re-frame the event: its name and id lines, if any, then the data.
	out := u.frame[:0]
	if len(ev.Name) > 0 {
		out = append(append(append(out, "event: "...), ev.Name...), '\n')
	}
	if len(ev.ID) > 0 {
		out = append(append(append(out, "id: "...), ev.ID...), '\n')
	}
	out = sse.AppendEvent(out, data)
	u.frame = out[:0]
	ev.Raw, ev.Data = out, data
	return ev
}
