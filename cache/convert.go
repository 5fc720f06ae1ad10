package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// ErrInvalidAnswer is returned by the conversion functions for an answer
// they cannot convert: invalid JSON, an error event, an object of the wrong
// type or no events at all.
var ErrInvalidAnswer = errors.New("cache: invalid answer")

// wordsPerChunk is how many words a synthesised content chunk holds: one,
// as a provider streams about a token at a time.
const wordsPerChunk = 1

const (
	objectChatCompletion      = "chat.completion"
	objectChatCompletionChunk = "chat.completion.chunk"
	objectTextCompletion      = "text_completion"
)

// jsonNull is the JSON null literal.
var jsonNull = json.RawMessage("null")

// isNull reports whether raw is absent or null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(raw, jsonNull)
}

// chatCompletion is a plain chat completion, read and written.
type chatCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []chatChoice    `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
	ServiceTier       json.RawMessage `json:"service_tier,omitempty"`
	SystemFingerprint json.RawMessage `json:"system_fingerprint,omitempty"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      chatMessage     `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type chatMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type toolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// chatChunk is a chat completion chunk, read and written.
type chatChunk struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	Created           int64             `json:"created"`
	Model             string            `json:"model"`
	ServiceTier       json.RawMessage   `json:"service_tier,omitempty"`
	SystemFingerprint json.RawMessage   `json:"system_fingerprint,omitempty"`
	Choices           []chatChunkChoice `json:"choices"`
	Usage             json.RawMessage   `json:"usage,omitempty"`
	Error             json.RawMessage   `json:"error,omitempty"`
}

type chatChunkChoice struct {
	Index        int             `json:"index"`
	Delta        chatDelta       `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

// chatDelta is a chunk's delta. Fields are pointers so that a synthesised
// delta carries exactly the fields a live one would.
type chatDelta struct {
	Role      *string         `json:"role,omitempty"`
	Content   *string         `json:"content,omitempty"`
	Refusal   *string         `json:"refusal,omitempty"`
	ToolCalls []toolCallDelta `json:"tool_calls,omitempty"`
}

// roleDelta is the first delta of a synthesised choice, which, like a live
// one, spells out a null refusal (and a null content before tool calls).
type roleDelta struct {
	Role    string  `json:"role"`
	Content *string `json:"content"`
	Refusal *string `json:"refusal"`
}

type toolCallDelta struct {
	Index    int                `json:"index"`
	ID       string             `json:"id,omitempty"`
	Type     string             `json:"type,omitempty"`
	Function *toolFunctionDelta `json:"function,omitempty"`
}

type toolFunctionDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// chatLogprobs is the logprobs object of a chat choice.
type chatLogprobs struct {
	Content []json.RawMessage `json:"content"`
	Refusal []json.RawMessage `json:"refusal"`
}

// chatAcc accumulates one choice of a streamed chat completion.
type chatAcc struct {
	index        int
	role         string
	content      strings.Builder
	sawContent   bool
	refusal      strings.Builder
	sawRefusal   bool
	tools        []*toolAcc
	finishReason *string
	logprobs     *chatLogprobs
}

type toolAcc struct {
	index     int
	id, typ   string
	name      strings.Builder
	arguments strings.Builder
}

// AssembleChat turns the data payloads of a streamed chat completion
// (chat.completion.chunk objects, without [DONE]) into the equivalent plain
// chat.completion JSON: the deltas' content, refusal and tool calls are
// joined per choice, with the role and finish reason, logprobs are
// concatenated, and usage is taken from the chunk that carries it.
func AssembleChat(events [][]byte) ([]byte, error) {
	var (
		out  chatCompletion
		accs []*chatAcc
		seen bool
	)
	for i, ev := range events {
		if skipEvent(ev) {
			continue
		}
		var ch chatChunk
		if err := json.Unmarshal(ev, &ch); err != nil {
			return nil, fmt.Errorf("%w: event %d: %w", ErrInvalidAnswer, i, err)
		}
		if !isNull(ch.Error) {
			return nil, fmt.Errorf("%w: event %d carries an error", ErrInvalidAnswer, i)
		}
		if ch.Object != "" && ch.Object != objectChatCompletionChunk {
			return nil, fmt.Errorf("%w: event %d is a %q", ErrInvalidAnswer, i, ch.Object)
		}
		seen = true
		mergeHeader(&out.ID, &out.Created, &out.Model, ch.ID, ch.Created, ch.Model)
		mergeRaw(&out.ServiceTier, ch.ServiceTier)
		mergeRaw(&out.SystemFingerprint, ch.SystemFingerprint)
		if !isNull(ch.Usage) {
			out.Usage = ch.Usage
		}
		for _, c := range ch.Choices {
			acc := chatChoiceAcc(&accs, c.Index)
			if err := acc.add(c); err != nil {
				return nil, fmt.Errorf("%w: event %d: %w", ErrInvalidAnswer, i, err)
			}
		}
	}
	if !seen {
		return nil, fmt.Errorf("%w: no events", ErrInvalidAnswer)
	}
	out.Object = objectChatCompletion
	slices.SortFunc(accs, func(a, b *chatAcc) int { return a.index - b.index })
	out.Choices = make([]chatChoice, 0, len(accs))
	for _, acc := range accs {
		c, err := acc.choice()
		if err != nil {
			return nil, err
		}
		out.Choices = append(out.Choices, c)
	}
	return marshal(out)
}

func chatChoiceAcc(accs *[]*chatAcc, index int) *chatAcc {
	for _, a := range *accs {
		if a.index == index {
			return a
		}
	}
	a := &chatAcc{index: index}
	*accs = append(*accs, a)
	return a
}

func (a *chatAcc) add(c chatChunkChoice) error {
	d := c.Delta
	if d.Role != nil && *d.Role != "" {
		a.role = *d.Role
	}
	if d.Content != nil {
		a.content.WriteString(*d.Content)
		a.sawContent = a.sawContent || *d.Content != ""
	}
	if d.Refusal != nil {
		a.refusal.WriteString(*d.Refusal)
		a.sawRefusal = true
	}
	for _, td := range d.ToolCalls {
		t := a.tool(td.Index)
		if td.ID != "" {
			t.id = td.ID
		}
		if td.Type != "" {
			t.typ = td.Type
		}
		if td.Function != nil {
			t.name.WriteString(td.Function.Name)
			t.arguments.WriteString(td.Function.Arguments)
		}
	}
	if c.FinishReason != nil {
		a.finishReason = c.FinishReason
	}
	if !isNull(c.Logprobs) {
		var lp chatLogprobs
		if err := json.Unmarshal(c.Logprobs, &lp); err != nil {
			return fmt.Errorf("logprobs: %w", err)
		}
		if a.logprobs == nil {
			a.logprobs = &chatLogprobs{}
		}
		a.logprobs.Content = append(a.logprobs.Content, lp.Content...)
		a.logprobs.Refusal = append(a.logprobs.Refusal, lp.Refusal...)
	}
	return nil
}

func (a *chatAcc) tool(index int) *toolAcc {
	for _, t := range a.tools {
		if t.index == index {
			return t
		}
	}
	t := &toolAcc{index: index}
	a.tools = append(a.tools, t)
	return t
}

func (a *chatAcc) choice() (chatChoice, error) {
	c := chatChoice{Index: a.index, FinishReason: a.finishReason}
	c.Message.Role = a.role
	if c.Message.Role == "" {
		c.Message.Role = "assistant"
	}
	// A live answer that only calls tools has a null content.
	if a.sawContent || len(a.tools) == 0 {
		c.Message.Content = ptr(a.content.String())
	}
	if a.sawRefusal {
		c.Message.Refusal = ptr(a.refusal.String())
	}
	slices.SortFunc(a.tools, func(x, y *toolAcc) int { return x.index - y.index })
	for _, t := range a.tools {
		c.Message.ToolCalls = append(c.Message.ToolCalls, toolCall{
			ID: t.id, Type: t.typ,
			Function: toolFunction{Name: t.name.String(), Arguments: t.arguments.String()},
		})
	}
	if a.logprobs != nil {
		raw, err := marshal(a.logprobs)
		if err != nil {
			return c, err
		}
		c.Logprobs = raw
	}
	return c, nil
}

// chunkOut is a synthesised chunk of either kind of completion.
type chunkOut struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	ServiceTier       json.RawMessage `json:"service_tier,omitempty"`
	SystemFingerprint json.RawMessage `json:"system_fingerprint,omitempty"`
	Choices           any             `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

type chatChoiceOut struct {
	Index        int             `json:"index"`
	Delta        any             `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

// SynthesizeChatStream turns a plain chat completion into the data payloads
// of an equivalent stream of chat.completion.chunk events, without [DONE],
// as a live stream would deliver it: per choice a role chunk, the content
// and refusal in chunks of a few words, per tool call a chunk with its id and
// name followed by its arguments, and a chunk with the finish reason and
// logprobs. When includeUsage is true every chunk carries "usage":null and,
// if the completion reports usage, a last chunk with no choices carries it,
// as OpenAI does for stream_options.include_usage.
func SynthesizeChatStream(body []byte, includeUsage bool) ([][]byte, error) {
	var cc chatCompletion
	if err := json.Unmarshal(body, &cc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAnswer, err)
	}
	if cc.Object != "" && cc.Object != objectChatCompletion {
		return nil, fmt.Errorf("%w: body is a %q", ErrInvalidAnswer, cc.Object)
	}
	s := synth{
		head: chunkOut{
			ID: cc.ID, Object: objectChatCompletionChunk, Created: cc.Created, Model: cc.Model,
			ServiceTier: cc.ServiceTier, SystemFingerprint: cc.SystemFingerprint,
		},
		includeUsage: includeUsage,
	}
	for _, c := range cc.Choices {
		one := func(delta any) {
			s.emit([]chatChoiceOut{{Index: c.Index, Delta: delta, Logprobs: jsonNull}}, nil)
		}
		m := c.Message
		role := m.Role
		if role == "" {
			role = "assistant"
		}
		first := roleDelta{Role: role, Content: m.Content}
		if m.Content != nil {
			first.Content = ptr("")
		}
		one(first)
		if m.Content != nil {
			for _, part := range splitWords(*m.Content, wordsPerChunk) {
				one(chatDelta{Content: ptr(part)})
			}
		}
		if m.Refusal != nil {
			for _, part := range splitWords(*m.Refusal, wordsPerChunk) {
				one(chatDelta{Refusal: ptr(part)})
			}
		}
		for j, tc := range m.ToolCalls {
			one(chatDelta{ToolCalls: []toolCallDelta{{
				Index: j, ID: tc.ID, Type: tc.Type,
				Function: &toolFunctionDelta{Name: tc.Function.Name},
			}}})
			for _, part := range splitWords(tc.Function.Arguments, wordsPerChunk) {
				one(chatDelta{ToolCalls: []toolCallDelta{{
					Index: j, Function: &toolFunctionDelta{Arguments: part},
				}}})
			}
		}
		logprobs := c.Logprobs
		if isNull(logprobs) {
			logprobs = jsonNull
		}
		s.emit([]chatChoiceOut{{
			Index: c.Index, Delta: struct{}{}, Logprobs: logprobs, FinishReason: c.FinishReason,
		}}, nil)
	}
	s.finish(cc.Usage)
	return s.events, s.err
}

// synth collects synthesised chunks.
type synth struct {
	head         chunkOut
	includeUsage bool
	events       [][]byte
	err          error
}

// emit appends a chunk with the given choices; usage is used only when
// includeUsage is true, and null stands in for a nil usage.
func (s *synth) emit(choices any, usage json.RawMessage) {
	if s.err != nil {
		return
	}
	ch := s.head
	ch.Choices = choices
	if s.includeUsage {
		ch.Usage = usage
		if ch.Usage == nil {
			ch.Usage = jsonNull
		}
	}
	raw, err := marshal(ch)
	if err != nil {
		s.err = err
		return
	}
	s.events = append(s.events, raw)
}

// finish appends the usage chunk, if one is due.
func (s *synth) finish(usage json.RawMessage) {
	if s.includeUsage && !isNull(usage) {
		s.emit([]struct{}{}, usage)
	}
}

// textCompletion is a plain completion or a completion chunk, read and
// written; both have the object text_completion.
type textCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []textChoice    `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
	SystemFingerprint json.RawMessage `json:"system_fingerprint,omitempty"`
	Error             json.RawMessage `json:"error,omitempty"`
}

type textChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

// textLogprobs is the logprobs object of a completion choice.
type textLogprobs struct {
	Tokens        []json.RawMessage `json:"tokens"`
	TokenLogprobs []json.RawMessage `json:"token_logprobs"`
	TopLogprobs   []json.RawMessage `json:"top_logprobs"`
	TextOffset    []json.RawMessage `json:"text_offset"`
}

type textAcc struct {
	index        int
	text         strings.Builder
	finishReason *string
	logprobs     *textLogprobs
}

// AssembleCompletion turns the data payloads of a streamed completion
// (text_completion chunks, without [DONE]) into the equivalent plain
// text_completion JSON: the text is joined per choice, logprobs are
// concatenated, and usage is taken from the chunk that carries it.
func AssembleCompletion(events [][]byte) ([]byte, error) {
	var (
		out  textCompletion
		accs []*textAcc
		seen bool
	)
	for i, ev := range events {
		if skipEvent(ev) {
			continue
		}
		var ch textCompletion
		if err := json.Unmarshal(ev, &ch); err != nil {
			return nil, fmt.Errorf("%w: event %d: %w", ErrInvalidAnswer, i, err)
		}
		if !isNull(ch.Error) {
			return nil, fmt.Errorf("%w: event %d carries an error", ErrInvalidAnswer, i)
		}
		if ch.Object != "" && ch.Object != objectTextCompletion {
			return nil, fmt.Errorf("%w: event %d is a %q", ErrInvalidAnswer, i, ch.Object)
		}
		seen = true
		mergeHeader(&out.ID, &out.Created, &out.Model, ch.ID, ch.Created, ch.Model)
		mergeRaw(&out.SystemFingerprint, ch.SystemFingerprint)
		if !isNull(ch.Usage) {
			out.Usage = ch.Usage
		}
		for _, c := range ch.Choices {
			acc := textChoiceAcc(&accs, c.Index)
			acc.text.WriteString(c.Text)
			if c.FinishReason != nil {
				acc.finishReason = c.FinishReason
			}
			if isNull(c.Logprobs) {
				continue
			}
			var lp textLogprobs
			if err := json.Unmarshal(c.Logprobs, &lp); err != nil {
				return nil, fmt.Errorf("%w: event %d: logprobs: %w", ErrInvalidAnswer, i, err)
			}
			if acc.logprobs == nil {
				acc.logprobs = &textLogprobs{}
			}
			acc.logprobs.Tokens = append(acc.logprobs.Tokens, lp.Tokens...)
			acc.logprobs.TokenLogprobs = append(acc.logprobs.TokenLogprobs, lp.TokenLogprobs...)
			acc.logprobs.TopLogprobs = append(acc.logprobs.TopLogprobs, lp.TopLogprobs...)
			acc.logprobs.TextOffset = append(acc.logprobs.TextOffset, lp.TextOffset...)
		}
	}
	if !seen {
		return nil, fmt.Errorf("%w: no events", ErrInvalidAnswer)
	}
	out.Object = objectTextCompletion
	slices.SortFunc(accs, func(a, b *textAcc) int { return a.index - b.index })
	out.Choices = make([]textChoice, 0, len(accs))
	for _, acc := range accs {
		c := textChoice{Text: acc.text.String(), Index: acc.index, Logprobs: jsonNull, FinishReason: acc.finishReason}
		if acc.logprobs != nil {
			raw, err := marshal(acc.logprobs)
			if err != nil {
				return nil, err
			}
			c.Logprobs = raw
		}
		out.Choices = append(out.Choices, c)
	}
	return marshal(out)
}

func textChoiceAcc(accs *[]*textAcc, index int) *textAcc {
	for _, a := range *accs {
		if a.index == index {
			return a
		}
	}
	a := &textAcc{index: index}
	*accs = append(*accs, a)
	return a
}

// SynthesizeCompletionStream turns a plain completion into the data payloads
// of an equivalent stream of text_completion chunks, without [DONE]: per
// choice the text in chunks of a few words and a last chunk with an empty
// text, the finish reason and the logprobs. includeUsage works as for
// SynthesizeChatStream.
func SynthesizeCompletionStream(body []byte, includeUsage bool) ([][]byte, error) {
	var tc textCompletion
	if err := json.Unmarshal(body, &tc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAnswer, err)
	}
	if tc.Object != "" && tc.Object != objectTextCompletion {
		return nil, fmt.Errorf("%w: body is a %q", ErrInvalidAnswer, tc.Object)
	}
	s := synth{
		head: chunkOut{
			ID: tc.ID, Object: objectTextCompletion, Created: tc.Created, Model: tc.Model,
			SystemFingerprint: tc.SystemFingerprint,
		},
		includeUsage: includeUsage,
	}
	for _, c := range tc.Choices {
		for _, part := range splitWords(c.Text, wordsPerChunk) {
			s.emit([]textChoice{{Text: part, Index: c.Index, Logprobs: jsonNull}}, nil)
		}
		logprobs := c.Logprobs
		if isNull(logprobs) {
			logprobs = jsonNull
		}
		s.emit([]textChoice{{Index: c.Index, Logprobs: logprobs, FinishReason: c.FinishReason}}, nil)
	}
	s.finish(tc.Usage)
	return s.events, s.err
}

// skipEvent reports whether an event payload carries no chunk: empty, or
// the [DONE] sentinel.
func skipEvent(ev []byte) bool {
	ev = bytes.TrimSpace(ev)
	return len(ev) == 0 || string(ev) == "[DONE]"
}

// mergeHeader fills the id, created and model of an assembled answer from
// the first chunk that has them.
func mergeHeader(id *string, created *int64, model *string, chID string, chCreated int64, chModel string) {
	if *id == "" {
		*id = chID
	}
	if *created == 0 {
		*created = chCreated
	}
	if *model == "" {
		*model = chModel
	}
}

// mergeRaw keeps the first non-null value of a field seen in the chunks.
func mergeRaw(dst *json.RawMessage, v json.RawMessage) {
	if isNull(*dst) && len(v) > 0 {
		*dst = v
	}
}

// splitWords splits s into parts of at most n words each, keeping all the
// characters, so that joining the parts gives s back. Whitespace belongs
// to the word after it, as in a provider's tokens (" are", " invited"),
// except at the start of s.
func splitWords(s string, n int) []string {
	var parts []string
	start, words, inWord, space := 0, 0, false, -1
	for i, r := range s {
		isSpace := unicode.IsSpace(r)
		switch {
		case isSpace && inWord:
			space = i // a run of whitespace starts: the next part may begin here
		case !isSpace && !inWord:
			if words == n {
				cut := i
				if space > start {
					cut = space
				}
				parts = append(parts, s[start:cut])
				start, words = cut, 0
			}
			words++
		}
		inWord = !isSpace
	}
	if start < len(s) {
		parts = append(parts, s[start:])
	}
	return parts
}

// marshal encodes v as JSON without escaping HTML characters, as the OpenAI
// API does.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("cache: encoding json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func ptr[T any](v T) *T { return &v }
