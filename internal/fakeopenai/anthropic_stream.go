package fakeopenai

// appendAnthropicEvent appends the head of an Anthropic SSE event of type
// typ, up to and including the type member of its data:
// event: typ\ndata: {"type":"typ".
func appendAnthropicEvent(b []byte, typ string) []byte {
	b = append(b, "event: "...)
	b = append(b, typ...)
	b = append(b, "\ndata: {\"type\":\""...)
	b = append(b, typ...)
	return append(b, '"')
}

// endEvent closes an event opened by appendAnthropicEvent.
func endEvent(b []byte) []byte {
	return append(b, "}\n\n"...)
}

// appendAnthropicStreamError appends the error event a KindErrorEvent fault
// sends to a Messages API stream: an overloaded_error unless f says
// otherwise.
func appendAnthropicStreamError(b []byte, _ int, f Fault) []byte {
	e := apiError{status: statusOverloaded, typ: "overloaded_error", message: "Overloaded"}.override(f)
	b = append(b, "event: error\ndata: "...)
	b = appendAnthropicErrorObject(b, anthropicType(e), e.message)
	return append(b, "\n\n"...)
}

// run streams m through e: message_start at once, then, after TTFT, each
// block as content_block_start, content_block_delta events of ChunkWords
// pieces and content_block_stop, with a ping after the first block start;
// then message_delta and message_stop. Faults count the deltas.
func (m *anthMsg) run(e *emitter) {
	e.buf = appendAnthropicEvent(e.buf, "message_start")
	e.buf = append(e.buf, `,"message":`...)
	e.buf = m.appendHead(e.buf)
	e.buf = append(e.buf, "],"...)
	e.buf = appendStop(e.buf, "", "")
	e.buf = append(e.buf, `,"usage":`...)
	e.buf = m.appendUsage(e.buf, 1)
	e.buf = endEvent(append(e.buf, '}'))
	if !e.flush() || !e.s.sleep(e.s.opts.TTFT) {
		return
	}
	for i, blk := range m.blocks {
		if !m.runBlock(e, i, blk) {
			return
		}
	}
	if len(m.blocks) == 0 {
		e.buf = endEvent(appendAnthropicEvent(e.buf, "ping"))
		if !e.flush() {
			return
		}
	}
	if !e.afterContent() {
		return
	}
	e.buf = appendAnthropicEvent(e.buf, "message_delta")
	e.buf = append(e.buf, `,"delta":{`...)
	e.buf = appendStop(e.buf, m.stopReason, m.stopSequence)
	e.buf = append(e.buf, `},"usage":{"output_tokens":`...)
	e.buf = appendInt(e.buf, int64(m.outputTokens))
	e.buf = endEvent(append(e.buf, '}'))
	e.buf = endEvent(appendAnthropicEvent(e.buf, "message_stop"))
	e.flush()
}

// runBlock streams block i and reports whether the stream may go on.
func (m *anthMsg) runBlock(e *emitter, i int, blk anthBlock) bool {
	e.buf = appendAnthropicEvent(e.buf, "content_block_start")
	e.buf = append(e.buf, `,"index":`...)
	e.buf = appendInt(e.buf, int64(i))
	e.buf = append(e.buf, `,"content_block":`...)
	pieces := blk.pieces
	delta := `"text_delta","text":`
	if blk.call != nil {
		e.buf = appendToolUse(e.buf, blk.call, "{}")
		pieces = blk.call.pieces
		delta = `"input_json_delta","partial_json":`
	} else {
		e.buf = append(e.buf, `{"type":"text","text":""}`...)
	}
	e.buf = endEvent(e.buf)
	if i == 0 {
		e.buf = endEvent(appendAnthropicEvent(e.buf, "ping"))
	}
	if !e.flush() {
		return false
	}
	cw := e.s.chunkWords
	for lo := 0; lo < len(pieces); lo += cw {
		if !e.beforeContent() {
			return false
		}
		e.buf = appendAnthropicEvent(e.buf, "content_block_delta")
		e.buf = append(e.buf, `,"index":`...)
		e.buf = appendInt(e.buf, int64(i))
		e.buf = append(e.buf, `,"delta":{"type":`...)
		e.buf = append(e.buf, delta...)
		e.buf = appendJSONPieces(e.buf, pieces[lo:min(lo+cw, len(pieces))])
		e.buf = endEvent(append(e.buf, '}'))
		if !e.flush() {
			return false
		}
		e.sent++
	}
	e.buf = appendAnthropicEvent(e.buf, "content_block_stop")
	e.buf = append(e.buf, `,"index":`...)
	e.buf = appendInt(e.buf, int64(i))
	e.buf = endEvent(e.buf)
	return e.flush()
}
