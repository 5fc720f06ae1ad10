package provider

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"

	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/internal/sse"
)

// Stream turns Messages API events into chat completion chunks:
// message_start gives the role chunk, text and tool-input deltas give
// content and tool_calls chunks, message_delta gives the finish_reason
// chunk, message_stop the usage chunk (choices [], as OpenAI sends it with
// include_usage) and data: [DONE]. ping and block boundaries send nothing;
// an error event becomes OpenAI's in-band error.
func (a *anthropic) Stream(src sse.Source, _ *Call) sse.Source {
	return &anthropicEvents{src: src, created: now().Unix(), toolIndex: map[int]int{}}
}

type anthropicEvents struct {
	src     sse.Source
	created int64
	id      []byte
	model   string
	usage   anthropicUsage
	// toolIndex maps a content block's index to its OpenAI tool call index.
	toolIndex map[int]int
	// pending are events made but not yet returned (the usage chunk and
	// [DONE] after message_stop).
	pending [][]byte
	done    bool
	out     []byte
	data    []byte
}

// streamEvent is the union of the Messages API's stream events.
type streamEvent struct {
	Type    string `json:"type"`
	Index   int    `json:"index"`
	Message *struct {
		ID    string         `json:"id"`
		Model string         `json:"model"`
		Usage anthropicUsage `json:"usage"`
	} `json:"message"`
	ContentBlock *responseBlock `json:"content_block"`
	Delta        *struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage *struct {
		OutputTokens int64 `json:"output_tokens"`
	} `json:"usage"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// Buffered reports whether the next chunk is ready without reading: a
// Messages API event may translate to nothing, so only chunks already
// translated count.
func (s *anthropicEvents) Buffered() bool { return len(s.pending) > 0 || s.done }

// Next returns the next chat completion chunk.
func (s *anthropicEvents) Next() (sse.Event, error) {
	for {
		if len(s.pending) > 0 {
			d := s.pending[0]
			s.pending = s.pending[1:]
			return s.event(d), nil
		}
		if s.done {
			return sse.Event{}, io.EOF
		}
		ev, err := s.src.Next()
		if err != nil {
			return ev, err
		}
		if ev.Comment || len(ev.Data) == 0 {
			continue
		}
		var e streamEvent
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return sse.Event{}, errors.New("anthropic stream: " + err.Error())
		}
		if d := s.translate(&e); d != nil {
			return s.event(d), nil
		}
	}
}

// translate returns the chunk for one Messages API event, or nil.
func (s *anthropicEvents) translate(e *streamEvent) []byte {
	switch e.Type {
	case "message_start":
		if e.Message != nil {
			s.id = appendCompletionID(s.id[:0], e.Message.ID)
			s.model = e.Message.Model
			s.usage = e.Message.Usage
		}
		return s.chunk(`{"role":"assistant","content":""}`, "")
	case "content_block_start":
		if b := e.ContentBlock; b != nil && b.Type == "tool_use" {
			n := len(s.toolIndex)
			s.toolIndex[e.Index] = n
			d := appendToolCall([]byte(`{"tool_calls":[`), n, b.ID, b.Name, "")
			return s.chunk(string(append(d, "]}"...)), "")
		} else if b != nil && b.Type == "text" && b.Text != "" {
			return s.chunk(string(jsonfield.AppendString([]byte(`{"content":`), b.Text))+"}", "")
		}
	case "content_block_delta":
		if e.Delta == nil {
			return nil
		}
		switch e.Delta.Type {
		case "text_delta":
			return s.chunk(string(jsonfield.AppendString([]byte(`{"content":`), e.Delta.Text))+"}", "")
		case "input_json_delta":
			n, ok := s.toolIndex[e.Index]
			if !ok || e.Delta.PartialJSON == "" {
				return nil
			}
			d := append([]byte(`{"tool_calls":[{"index":`), strconv.Itoa(n)...)
			d = append(d, `,"function":{"arguments":`...)
			d = jsonfield.AppendString(d, e.Delta.PartialJSON)
			return s.chunk(string(append(d, "}}]}"...)), "")
		}
	case "message_delta":
		if e.Usage != nil {
			s.usage.OutputTokens = e.Usage.OutputTokens
		}
		if e.Delta != nil && e.Delta.StopReason != "" {
			return s.chunk(`{}`, finishReason(e.Delta.StopReason))
		}
	case "message_stop":
		u := s.head(nil)
		u = append(u, `"choices":[],"usage":`...)
		u = s.usage.appendUsage(u)
		u = append(u, '}')
		s.pending = append(s.pending, []byte("[DONE]"))
		s.done = true
		return u
	case "error":
		var typ, msg string
		if e.Error != nil {
			typ, msg = e.Error.Type, e.Error.Message
		}
		s.done = true
		return fromAnthropic(typ, msg, 500).appendEnvelope(nil)
	}
	return nil
}

// head appends the fields every chunk starts with, up to choices.
func (s *anthropicEvents) head(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonfield.AppendString(dst, string(s.id))
	dst = append(dst, `,"object":"chat.completion.chunk","created":`...)
	dst = strconv.AppendInt(dst, s.created, 10)
	dst = append(dst, `,"model":`...)
	dst = jsonfield.AppendString(dst, s.model)
	return append(dst, ',')
}

// chunk makes a one-choice chunk with delta and finish_reason ("" null).
func (s *anthropicEvents) chunk(delta, finish string) []byte {
	d := s.head(s.data[:0])
	d = append(d, `"choices":[{"index":0,"delta":`...)
	d = append(d, delta...)
	d = append(d, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		d = append(d, "null"...)
	} else {
		d = jsonfield.AppendString(d, finish)
	}
	d = append(d, "}]}"...)
	s.data = d
	return d
}

// event frames data as the Event handed on; it is valid until the next
// call.
func (s *anthropicEvents) event(data []byte) sse.Event {
	s.out = sse.AppendEvent(s.out[:0], data)
	raw := s.out
	return sse.Event{Raw: raw, Data: raw[len("data: ") : len(raw)-2]}
}
