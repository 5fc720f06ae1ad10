package proxy

import (
	"encoding/binary"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/valyala/bytebufferpool"

	"github.com/wedsync/veil/internal/tokencount"
)

// estimateDelivered bills a stream that ended early (the client gone, the
// upstream cut, idle or failed, veil draining) without the provider's
// usage for what it delivered: completion tokens counted from the text
// that reached the client, prompt tokens counted from the request, both
// in the served model's encoding and marked estimated. A stream that
// delivered nothing keeps zero tokens, so its quota reservation is
// refunded. It runs once, when the exchange is recorded, and only on this
// path: a stream that ends normally is not counted.
func (x *exchange) estimateDelivered() {
	u := &x.usage
	if !x.stream.streamed || x.stream.interrupted == "" || u.tokens.Prompt > 0 || u.tokens.Completion > 0 ||
		u.from >= len(u.delivered) {
		return
	}
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	buf.B = appendDeliveredText(buf.B[:0], u.delivered[u.from:])
	if len(buf.B) == 0 {
		return
	}
	enc := tokencount.ForModel(x.servedModel())
	u.tokens.Completion = int64(enc.CountBytes(buf.B))
	u.tokens.Prompt = int64(x.promptTokens(enc))
	u.tokens.Total = u.tokens.Prompt + u.tokens.Completion
	u.estimated = true
}

// servedModel is the model that answered: as the stream named it, else as
// the serving target was asked, else as the client asked.
func (x *exchange) servedModel() string {
	switch {
	case len(x.usage.tokens.Model) > 0:
		return string(x.usage.tokens.Model)
	case x.served != nil && len(x.served.Model) > 0:
		return string(x.served.Model)
	}
	return string(x.fields.Model)
}

// promptTokens counts the prompt of the serving attempt: the request, or
// for a resumed stream the continuation request, which adds the text sent
// before and the instruction to go on.
func (x *exchange) promptTokens(enc tokencount.Encoding) int {
	rs := x.resume
	if rs == nil || len(rs.parts) == 0 {
		return enc.Request(x.body)
	}
	last := rs.parts[len(rs.parts)-1]
	n := enc.Request(rs.req.Body())
	n += 2*3 + enc.Count("assistant") + enc.CountBytes(rs.text[:last.to]) + enc.Count("user") + enc.Count(resumeInstruction)
	return n
}

// appendDeliveredText appends the answer text of the events kept in
// delivered (each a uvarint length and the event's data): chat chunks'
// content, refusal, reasoning and call names and arguments, legacy
// completion text, and the deltas of Responses events.
func appendDeliveredText(b, delivered []byte) []byte {
	for len(delivered) > 0 {
		n, k := binary.Uvarint(delivered)
		if k <= 0 || uint64(len(delivered)-k) < n {
			break
		}
		data := delivered[k : k+int(n)]
		delivered = delivered[k+int(n):]
		if len(data) == 0 || data[0] != '{' {
			continue
		}
		b = appendEventText(b, data)
	}
	return b
}

// appendEventText appends the answer text of one event's data.
func appendEventText(b, data []byte) []byte {
	r := gjson.GetManyBytes(data, "choices", "type", "delta")
	if r[0].IsArray() {
		r[0].ForEach(func(_, c gjson.Result) bool {
			d := c.Get("delta")
			for _, v := range gjson.GetMany(d.Raw, "content", "refusal", "reasoning_content",
				"function_call.name", "function_call.arguments") {
				b = append(b, v.Str...)
			}
			d.Get("tool_calls").ForEach(func(_, call gjson.Result) bool {
				b = append(b, call.Get("function.name").Str...)
				b = append(b, call.Get("function.arguments").Str...)
				return true
			})
			b = append(b, c.Get("text").Str...)
			return true
		})
		return b
	}
	if r[2].Type == gjson.String && strings.HasSuffix(r[1].Str, ".delta") {
		b = append(b, r[2].Str...)
	}
	return b
}
