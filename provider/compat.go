package provider

import (
	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/jsonfield"
	"github.com/wedsync/veil/internal/sse"
)

// compat speaks OpenAI's API to a server that implements it with quirks
// (vLLM, Ollama, Groq, Together): fields it rejects are removed, the newer
// max_completion_tokens is renamed where only max_tokens is known, and the
// key is sent as the server expects, or not at all. Answers pass as they
// came.
type compat struct {
	streamOptions bool
	renameMax     bool
	drop          []string
	auth          string
}

var _ Translator = (*compat)(nil)

func newCompat(cfg *config.Provider) *compat {
	q := config.Compat{Auth: config.DefaultCompatAuth}
	if cfg.Compat != nil {
		q = *cfg.Compat
	}
	c := &compat{streamOptions: q.StreamOptions(), renameMax: q.MaxTokensField == "max_tokens", auth: q.Auth}
	c.drop = append(c.drop, q.DropFields...)
	if !c.streamOptions {
		c.drop = append(c.drop, "stream_options")
	}
	return c
}

var bodyPool bytebufferpool.Pool

// Request points dst at the server, edits the body for its quirks and sets
// the credential.
func (t *compat) Request(dst *fasthttp.Request, p *Provider, c *Call) error {
	p.setURI(dst, c.Suffix, c.Query)
	switch t.auth {
	case "none":
		dst.Header.Del(fasthttp.HeaderAuthorization)
	case "api-key":
		dst.Header.Del(fasthttp.HeaderAuthorization)
		dst.Header.Set("api-key", c.Key.Secret().Reveal())
	default:
		setBearer(dst, c)
	}
	body := dst.Body()
	if len(body) == 0 || body[0] != '{' || len(t.drop) == 0 && !t.renameMax {
		return nil
	}
	a, b := bodyPool.Get(), bodyPool.Get()
	defer bodyPool.Put(a)
	defer bodyPool.Put(b)
	out, changed := body, false
	for _, f := range t.drop {
		var removed bool
		var err error
		b.B, removed, err = jsonfield.RemoveMember(b.B[:0], out, f)
		if err != nil {
			return nil // not JSON veil can edit: the server judges it
		}
		if removed {
			a, b = b, a
			out, changed = a.B, true
		}
	}
	if t.renameMax {
		if v, ok, _ := jsonfield.Get(out, "max_completion_tokens"); ok {
			raw := append([]byte(nil), v...)
			var err error
			if b.B, _, err = jsonfield.RemoveMember(b.B[:0], out, "max_completion_tokens"); err == nil {
				a, b = b, a
				if b.B, err = jsonfield.SetRaw(b.B[:0], a.B, "max_tokens", raw); err == nil {
					out, changed = b.B, true
				}
			}
		}
	}
	if changed {
		dst.SetBody(out)
	}
	return nil
}

// Response leaves the server's answers as they are.
func (*compat) Response(*fasthttp.Response, *Call) error { return nil }

// Stream leaves the server's events as they are.
func (*compat) Stream(src sse.Source, _ *Call) sse.Source { return src }
