package provider

import (
	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/sse"
)

// openAI speaks OpenAI's own API: the path and body pass unchanged and the
// key goes in one Authorization header.
type openAI struct{}

var _ Translator = openAI{}

// Request points dst at the provider and sets its credential.
func (openAI) Request(dst *fasthttp.Request, p *Provider, c *Call) error {
	p.setURI(dst, c.Suffix, c.Query)
	setBearer(dst, c)
	return nil
}

// Response leaves OpenAI's answers as they are.
func (openAI) Response(*fasthttp.Response, *Call) error { return nil }

// Stream leaves OpenAI's events as they are.
func (openAI) Stream(src sse.Source, _ *Call) sse.Source { return src }

// setBearer sets exactly one Authorization header with the call's key, and
// the key's OpenAI organization and project.
func setBearer(dst *fasthttp.Request, c *Call) {
	dst.Header.Del(fasthttp.HeaderAuthorization) // whatever came before, exactly one goes out
	dst.Header.SetBytesV(fasthttp.HeaderAuthorization, c.Key.Bearer())
	if c.Key.Organization != "" {
		dst.Header.Set("OpenAI-Organization", c.Key.Organization)
	}
	if c.Key.Project != "" {
		dst.Header.Set("OpenAI-Project", c.Key.Project)
	}
}
