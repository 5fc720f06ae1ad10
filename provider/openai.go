package provider

import "github.com/valyala/fasthttp"

// openAI speaks OpenAI's own API: the path and body pass unchanged and the
// key goes in one Authorization header.
type openAI struct{}

var _ Translator = openAI{}

// PrepareRequest points dst at the provider and sets its credential.
func (openAI) PrepareRequest(dst *fasthttp.Request, p *Provider, c *Call) error {
	p.setURI(dst, c.Suffix, c.Query)
	dst.Header.Del(fasthttp.HeaderAuthorization) // whatever came before, exactly one goes out
	dst.Header.SetBytesV(fasthttp.HeaderAuthorization, c.Key.Bearer())
	if c.Key.Organization != "" {
		dst.Header.Set("OpenAI-Organization", c.Key.Organization)
	}
	if c.Key.Project != "" {
		dst.Header.Set("OpenAI-Project", c.Key.Project)
	}
	return nil
}
