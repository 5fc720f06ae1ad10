package proxy

import (
	"bytes"

	"github.com/wedsync/veil/internal/jsonfield"
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
	text := u.delivered[u.from:]
	enc := tokencount.ForModel(x.servedModel())
	u.tokens.Completion = int64(enc.CountBytes(text))
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

// appendEventText appends the answer text of one event's data: chat
// chunks' content, refusal, reasoning and call names and arguments, legacy
// completion text, and the deltas of Responses events. It runs on every
// event of a stream, so it only looks for the members' keys and takes the
// string that follows (unescaped only when it has escapes), without
// parsing the event or allocating. An event naming several choices has
// only each key's first string taken.
func appendEventText(b, data []byte) []byte {
	if bytes.HasPrefix(data, []byte(`{"type":"response.`)) || bytes.Contains(data, []byte(`"type":"response.`)) {
		// Responses events: only the deltas carry new text.
		if typ := memberString(data, []byte(`"type":"`)); !bytes.HasSuffix(typ, []byte(".delta")) {
			return b
		}
		return append(b, memberString(data, []byte(`"delta":"`))...)
	}
	for _, k := range textKeys {
		b = append(b, memberString(data, k)...)
	}
	if bytes.Contains(data, []byte(`"tool_calls"`)) || bytes.Contains(data, []byte(`"function_call"`)) {
		b = append(b, memberString(data, []byte(`"name":"`))...)
		b = append(b, memberString(data, []byte(`"arguments":"`))...)
	}
	return b
}

// textKeys are the members whose strings are answer text in chat and
// legacy completion chunks.
var textKeys = [][]byte{[]byte(`"content":"`), []byte(`"refusal":"`), []byte(`"reasoning_content":"`), []byte(`"text":"`)}

// memberString returns the string value that follows the first key in
// data (key ending with the opening quote), unescaped; nil when there is
// none or it is cut short.
func memberString(data, key []byte) []byte {
	i := bytes.Index(data, key)
	if i < 0 {
		return nil
	}
	start := i + len(key) - 1 // the opening quote
	end := start + 1
	for end < len(data) {
		switch data[end] {
		case '\\':
			end += 2
			continue
		case '"':
			s, err := jsonfield.String(data[start : end+1])
			if err != nil {
				return nil
			}
			return s
		}
		end++
	}
	return nil
}
