package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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

// chunkID is what identifies a chunk of either kind, in the order a
// chunk's JSON starts with.
type chunkID struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	ServiceTier       json.RawMessage `json:"service_tier,omitempty"`
	SystemFingerprint json.RawMessage `json:"system_fingerprint,omitempty"`
}

// chunkHead is what a streamed chunk of either kind carries beside its
// choices.
type chunkHead struct {
	chunkID
	Usage json.RawMessage `json:"usage,omitempty"`
	Error json.RawMessage `json:"error,omitempty"`
}

// streamChunk is a streamed chunk as read: a chat completion chunk with
// chatChunkChoice choices, or a completion chunk with textChoice ones.
type streamChunk[C any] struct {
	chunkHead
	Choices []C `json:"choices"`
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

// extend appends the arrays of a further chunk's logprobs.
func (l *chatLogprobs) extend(more *chatLogprobs) {
	l.Content = append(l.Content, more.Content...)
	l.Refusal = append(l.Refusal, more.Refusal...)
}

// chatAcc accumulates one choice of a streamed chat completion.
type chatAcc struct {
	role         string
	content      strings.Builder
	sawContent   bool
	refusal      strings.Builder
	sawRefusal   bool
	tools        map[int]*toolAcc // by tool call index
	finishReason *string
	logprobs     *chatLogprobs
}

type toolAcc struct {
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
	head, choices, err := assemble[chatChunkChoice, chatChoice, chatAcc](events, objectChatCompletionChunk)
	if err != nil {
		return nil, err
	}
	return marshal(chatCompletion{
		ID: head.ID, Object: objectChatCompletion, Created: head.Created, Model: head.Model,
		Choices: choices, Usage: head.Usage,
		ServiceTier: head.ServiceTier, SystemFingerprint: head.SystemFingerprint,
	})
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
		if a.tools == nil {
			a.tools = make(map[int]*toolAcc)
		}
		t := accumulator(a.tools, td.Index)
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
	return addLogprobs(&a.logprobs, c.Logprobs)
}

// choice is the assembled choice of the given index.
func (a *chatAcc) choice(index int) (chatChoice, error) {
	c := chatChoice{Index: index, FinishReason: a.finishReason}
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
	for _, i := range slices.Sorted(maps.Keys(a.tools)) {
		t := a.tools[i]
		c.Message.ToolCalls = append(c.Message.ToolCalls, toolCall{
			ID: t.id, Type: t.typ,
			Function: toolFunction{Name: t.name.String(), Arguments: t.arguments.String()},
		})
	}
	var err error
	c.Logprobs, err = marshal(a.logprobs) // null when there were none
	return c, err
}

// chunkOut is a synthesised chunk of either kind of completion.
type chunkOut struct {
	chunkID
	Choices any             `json:"choices"`
	Usage   json.RawMessage `json:"usage,omitempty"`
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
	if err := decodeAnswer(body, &cc, &cc.Object, objectChatCompletion); err != nil {
		return nil, err
	}
	s := synth{
		head: chunkOut{chunkID: chunkID{
			ID: cc.ID, Object: objectChatCompletionChunk, Created: cc.Created, Model: cc.Model,
			ServiceTier: cc.ServiceTier, SystemFingerprint: cc.SystemFingerprint,
		}},
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
		s.emit([]chatChoiceOut{{
			Index: c.Index, Delta: struct{}{}, Logprobs: orNull(c.Logprobs), FinishReason: c.FinishReason,
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

// textCompletion is a plain completion, read and written; its chunks have
// the same object, text_completion.
type textCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []textChoice    `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
	SystemFingerprint json.RawMessage `json:"system_fingerprint,omitempty"`
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

// extend appends the arrays of a further chunk's logprobs.
func (l *textLogprobs) extend(more *textLogprobs) {
	l.Tokens = append(l.Tokens, more.Tokens...)
	l.TokenLogprobs = append(l.TokenLogprobs, more.TokenLogprobs...)
	l.TopLogprobs = append(l.TopLogprobs, more.TopLogprobs...)
	l.TextOffset = append(l.TextOffset, more.TextOffset...)
}

type textAcc struct {
	text         strings.Builder
	finishReason *string
	logprobs     *textLogprobs
}

// AssembleCompletion turns the data payloads of a streamed completion
// (text_completion chunks, without [DONE]) into the equivalent plain
// text_completion JSON: the text is joined per choice, logprobs are
// concatenated, and usage is taken from the chunk that carries it.
func AssembleCompletion(events [][]byte) ([]byte, error) {
	head, choices, err := assemble[textChoice, textChoice, textAcc](events, objectTextCompletion)
	if err != nil {
		return nil, err
	}
	return marshal(textCompletion{
		ID: head.ID, Object: objectTextCompletion, Created: head.Created, Model: head.Model,
		Choices: choices, Usage: head.Usage, SystemFingerprint: head.SystemFingerprint,
	})
}

func (a *textAcc) add(c textChoice) error {
	a.text.WriteString(c.Text)
	if c.FinishReason != nil {
		a.finishReason = c.FinishReason
	}
	return addLogprobs(&a.logprobs, c.Logprobs)
}

// choice is the assembled choice of the given index.
func (a *textAcc) choice(index int) (textChoice, error) {
	lp, err := marshal(a.logprobs) // null when there were none
	return textChoice{Text: a.text.String(), Index: index, Logprobs: lp, FinishReason: a.finishReason}, err
}

// SynthesizeCompletionStream turns a plain completion into the data payloads
// of an equivalent stream of text_completion chunks, without [DONE]: per
// choice the text in chunks of a few words and a last chunk with an empty
// text, the finish reason and the logprobs. includeUsage works as for
// SynthesizeChatStream.
func SynthesizeCompletionStream(body []byte, includeUsage bool) ([][]byte, error) {
	var tc textCompletion
	if err := decodeAnswer(body, &tc, &tc.Object, objectTextCompletion); err != nil {
		return nil, err
	}
	s := synth{
		head: chunkOut{chunkID: chunkID{
			ID: tc.ID, Object: objectTextCompletion, Created: tc.Created, Model: tc.Model,
			SystemFingerprint: tc.SystemFingerprint,
		}},
		includeUsage: includeUsage,
	}
	for _, c := range tc.Choices {
		for _, part := range splitWords(c.Text, wordsPerChunk) {
			s.emit([]textChoice{{Text: part, Index: c.Index, Logprobs: jsonNull}}, nil)
		}
		s.emit([]textChoice{{Index: c.Index, Logprobs: orNull(c.Logprobs), FinishReason: c.FinishReason}}, nil)
	}
	s.finish(tc.Usage)
	return s.events, s.err
}

// decodeAnswer decodes body, a plain answer, into v, whose object field
// is at object; an object other than want is ErrInvalidAnswer.
func decodeAnswer(body []byte, v any, object *string, want string) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidAnswer, err)
	}
	if *object != "" && *object != want {
		return fmt.Errorf("%w: body is a %q", ErrInvalidAnswer, *object)
	}
	return nil
}

// orNull returns raw, or null when it is absent.
func orNull(raw json.RawMessage) json.RawMessage {
	if isNull(raw) {
		return jsonNull
	}
	return raw
}

// skipEvent reports whether an event payload carries no chunk: empty, or
// the [DONE] sentinel.
func skipEvent(ev []byte) bool {
	ev = bytes.TrimSpace(ev)
	return len(ev) == 0 || string(ev) == "[DONE]"
}

// streamChoice is a choice of a streamed chunk.
type streamChoice interface {
	// choiceIndex is the index of the choice the chunk adds to.
	choiceIndex() int
}

func (c chatChunkChoice) choiceIndex() int { return c.Index }
func (c textChoice) choiceIndex() int      { return c.Index }

// choiceAcc is a pointer to an accumulator A of one choice: it takes the
// streamed choices C of its index and makes the assembled choice O.
type choiceAcc[A any, C streamChoice, O any] interface {
	*A
	add(c C) error
	choice(index int) (O, error)
}

// assemble reads the events of a stream as chunks with choices of type C,
// skipping empty events and [DONE], and accumulates the choices per index
// in an A each. It returns the chunks' merged head (see merge) and the
// assembled choices in the order of their index. It fails with
// ErrInvalidAnswer on invalid JSON, an error event, a chunk of another
// object than the given one, a choice that cannot be added, and a stream
// without chunks.
func assemble[C streamChoice, O, A any, PA choiceAcc[A, C, O]](events [][]byte, object string) (chunkHead, []O, error) {
	var (
		head chunkHead
		accs = make(map[int]PA)
		seen bool
	)
	for i, ev := range events {
		if skipEvent(ev) {
			continue
		}
		var ch streamChunk[C]
		if err := json.Unmarshal(ev, &ch); err != nil {
			return head, nil, fmt.Errorf("%w: event %d: %w", ErrInvalidAnswer, i, err)
		}
		if !isNull(ch.Error) {
			return head, nil, fmt.Errorf("%w: event %d carries an error", ErrInvalidAnswer, i)
		}
		if ch.Object != "" && ch.Object != object {
			return head, nil, fmt.Errorf("%w: event %d is a %q", ErrInvalidAnswer, i, ch.Object)
		}
		seen = true
		head.merge(&ch.chunkHead)
		for _, c := range ch.Choices {
			if err := accumulator(accs, c.choiceIndex()).add(c); err != nil {
				return head, nil, fmt.Errorf("%w: event %d: %w", ErrInvalidAnswer, i, err)
			}
		}
	}
	if !seen {
		return head, nil, fmt.Errorf("%w: no events", ErrInvalidAnswer)
	}
	choices := make([]O, 0, len(accs))
	for _, i := range slices.Sorted(maps.Keys(accs)) {
		c, err := accs[i].choice(i)
		if err != nil {
			return head, nil, err
		}
		choices = append(choices, c)
	}
	return head, choices, nil
}

// merge takes into h what a further chunk ch says: the id, created and
// model of the first chunk that has them, the first non-null service tier
// and system fingerprint, and the usage of the last chunk that carries it.
func (h *chunkHead) merge(ch *chunkHead) {
	if h.ID == "" {
		h.ID = ch.ID
	}
	if h.Created == 0 {
		h.Created = ch.Created
	}
	if h.Model == "" {
		h.Model = ch.Model
	}
	mergeRaw(&h.ServiceTier, ch.ServiceTier)
	mergeRaw(&h.SystemFingerprint, ch.SystemFingerprint)
	if !isNull(ch.Usage) {
		h.Usage = ch.Usage
	}
}

// mergeRaw keeps the first non-null value of a field seen in the chunks.
func mergeRaw(dst *json.RawMessage, v json.RawMessage) {
	if isNull(*dst) && len(v) > 0 {
		*dst = v
	}
}

// addLogprobs appends the logprobs of a streamed choice, raw, to those
// of its accumulator, *dst, which it creates on the first ones; absent or
// null logprobs add nothing.
func addLogprobs[L any, PL interface {
	*L
	extend(more *L)
}](dst *PL, raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var lp L
	if err := json.Unmarshal(raw, &lp); err != nil {
		return fmt.Errorf("logprobs: %w", err)
	}
	if *dst == nil {
		*dst = new(L)
	}
	(*dst).extend(&lp)
	return nil
}

// accumulator returns the accumulator of index in accs, adding a new one
// when there is none.
func accumulator[P interface{ *A }, A any](accs map[int]P, index int) P {
	a, ok := accs[index]
	if !ok {
		a = new(A)
		accs[index] = a
	}
	return a
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
