// Package tokencount counts tokens the way OpenAI's models do, with the
// byte-pair encodings of tiktoken (github.com/tiktoken-go/tokenizer, whose
// vocabularies are compiled into the binary: nothing is fetched at run
// time). veil uses it where a provider did not report usage: a stream that
// ended before its usage chunk is billed for the text that reached the
// client and for the request.
//
// The encoding is chosen by model family: o200k_base for gpt-4o, gpt-4.1,
// gpt-4.5, gpt-5 and the o-series (o1, o3, o4), cl100k_base for gpt-4,
// gpt-3.5-turbo and the text-embedding models. Other providers' models do
// not publish their tokenizers; their counts are estimates: claude-*
// models are counted with cl100k_base (its smaller vocabulary is closer to
// Claude's counts than o200k_base's), and every other model with
// o200k_base. Encoding.Exact says which case a model is.
//
// Encodings are loaded once, on first use, and shared; counting is safe
// for concurrent use.
package tokencount

import (
	"strings"
	"sync"

	"github.com/tidwall/gjson"
	"github.com/tiktoken-go/tokenizer"
)

// lazyCodec is one tiktoken encoding, built on first use. Building one
// reads its vocabulary into a map (tens of milliseconds, tens of MB for
// o200k_base), which a veil that never counts should not pay.
type lazyCodec struct {
	name  tokenizer.Encoding
	once  sync.Once
	codec tokenizer.Codec
}

func (l *lazyCodec) get() tokenizer.Codec {
	l.once.Do(func() {
		c, err := tokenizer.Get(l.name)
		if err != nil {
			panic("tokencount: " + err.Error()) // the names below are the library's own
		}
		l.codec = c
	})
	return l.codec
}

var (
	o200k  = &lazyCodec{name: tokenizer.O200kBase}
	cl100k = &lazyCodec{name: tokenizer.Cl100kBase}
)

// Encoding counts tokens in one tiktoken encoding. The zero Encoding is
// o200k_base, as an estimate.
type Encoding struct {
	c     *lazyCodec
	exact bool
}

// ForModel returns the encoding of model. A provider prefix ("openai/")
// and an Azure-style "gpt-35" spelling are understood.
func ForModel(model string) Encoding {
	m := strings.ToLower(model)
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	m = strings.TrimPrefix(m, "ft:")
	switch {
	case hasAnyPrefix(m, "gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "o1", "o3", "o4"):
		return Encoding{c: o200k, exact: true}
	case hasAnyPrefix(m, "gpt-4", "gpt-3.5", "gpt-35", "text-embedding-", "davinci-002", "babbage-002"):
		return Encoding{c: cl100k, exact: true}
	case strings.HasPrefix(m, "claude"):
		return Encoding{c: cl100k}
	}
	return Encoding{c: o200k}
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// Name is the encoding's name, such as "o200k_base".
func (e Encoding) Name() string { return string(e.lazy().name) }

// Exact reports whether the encoding is the model's own; when it is not,
// counts are estimates.
func (e Encoding) Exact() bool { return e.exact }

func (e Encoding) lazy() *lazyCodec {
	if e.c == nil {
		return o200k
	}
	return e.c
}

// Count returns the number of tokens of text.
func (e Encoding) Count(text string) int {
	if text == "" {
		return 0
	}
	n, err := e.lazy().get().Count(text)
	if err != nil {
		// The split pattern never fails on a string; fall back on the
		// rule of thumb of four bytes a token.
		return (len(text) + 3) / 4
	}
	return n
}

// CountBytes returns the number of tokens of text.
func (e Encoding) CountBytes(text []byte) int {
	if len(text) == 0 {
		return 0
	}
	return e.Count(string(text))
}

// The chat format's overheads, as OpenAI's cookbook counts them for the
// current chat models ("How to count tokens with tiktoken",
// num_tokens_from_messages): every message costs 3 tokens besides the
// tokens of its values (<|start|>{role}<|message|>...<|end|>), a name 1
// more, and every reply is primed with <|start|>assistant<|message|>, 3
// tokens.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	// ReplyPriming is what a chat prompt adds after its messages.
	ReplyPriming = 3
)

// Messages returns the prompt tokens of a chat completion's messages (a
// JSON array): per message, tokensPerMessage, the tokens of its role, of
// its content (a string, or the text of each text part), of its name plus
// tokensPerName, and of the name and arguments of the calls an assistant
// message made; then the reply priming. Images and audio parts are not
// counted.
func (e Encoding) Messages(msgs gjson.Result) int {
	if !msgs.IsArray() {
		return 0
	}
	n := ReplyPriming
	msgs.ForEach(func(_, m gjson.Result) bool {
		n += e.Message(m)
		return true
	})
	return n
}

// Message returns the tokens one chat message adds to a prompt.
func (e Encoding) Message(m gjson.Result) int {
	n := e.Overhead(m.Get("role").Str, m.Get("name")) + e.Content(m.Get("content"))
	m.Get("tool_calls").ForEach(func(_, c gjson.Result) bool {
		n += e.Count(c.Get("function.name").Str) + e.Count(c.Get("function.arguments").Str)
		return true
	})
	if fc := m.Get("function_call"); fc.IsObject() {
		n += e.Count(fc.Get("name").Str) + e.Count(fc.Get("arguments").Str)
	}
	return n
}

// Overhead returns the tokens a chat message adds besides its content and
// calls: tokensPerMessage, its role, and its name (when a string) with
// tokensPerName.
func (e Encoding) Overhead(role string, name gjson.Result) int {
	n := tokensPerMessage + e.Count(role)
	if name.Type == gjson.String {
		n += e.Count(name.Str) + tokensPerName
	}
	return n
}

// Content returns the tokens of a message content: a string, or an array
// of strings and parts with text, each counted on its own.
func (e Encoding) Content(content gjson.Result) int {
	if content.Type == gjson.String {
		return e.Count(content.Str)
	}
	n := 0
	content.ForEach(func(_, part gjson.Result) bool {
		if part.Type == gjson.String {
			n += e.Count(part.Str)
		} else if t := part.Get("text"); t.Type == gjson.String {
			n += e.Count(t.Str)
		}
		return true
	})
	return n
}

// Request returns the prompt tokens of an OpenAI request body: a chat
// completion's messages (and the JSON of its tools, counted as text, an
// estimate of how the provider renders them), a legacy completion's
// prompt, an embeddings request's input or a Responses request's
// instructions and input.
func (e Encoding) Request(body []byte) int {
	r := gjson.GetManyBytes(body, "messages", "tools", "functions", "prompt", "input", "instructions")
	if r[0].IsArray() {
		n := e.Messages(r[0])
		for _, tools := range r[1:3] {
			if tools.IsArray() {
				n += e.Count(tools.Raw)
			}
		}
		return n
	}
	n := e.Count(r[5].Str)
	for _, v := range r[3:5] {
		n += e.Texts(v)
	}
	return n
}

// Texts returns the tokens of a prompt or input: a string, an array of
// strings, of token IDs (counted one each) or of token arrays, or a
// Responses input of messages.
func (e Encoding) Texts(v gjson.Result) int {
	switch {
	case v.Type == gjson.String:
		return e.Count(v.Str)
	case !v.IsArray():
		return 0
	}
	n := 0
	v.ForEach(func(_, item gjson.Result) bool {
		switch {
		case item.Type == gjson.String:
			n += e.Count(item.Str)
		case item.Type == gjson.Number:
			n++
		case item.IsArray():
			n += len(item.Array())
		case item.IsObject():
			n += e.Message(item)
		}
		return true
	})
	return n
}
