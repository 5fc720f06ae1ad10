// Package provider owns veil's upstream AI providers: where each one lives,
// how an OpenAI-shaped call is turned into that provider's wire request, and
// the connection pool that carries it.
package provider

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/keys"
)

// Call describes one upstream attempt in provider-neutral terms. Slices alias
// the client request and are valid only while it is being served.
type Call struct {
	// Suffix is the client path after "/v1", for example "/chat/completions".
	Suffix []byte
	// Query is the raw query string without "?".
	Query []byte
	// Model is the model the attempt asks for.
	Model []byte
	// Key is the credential that pays for the attempt.
	Key *keys.Key
}

// Translator is one provider schema's half of every call: it turns an
// OpenAI-shaped request into the provider's wire request and the
// provider's answer back into OpenAI's shape, so that clients cannot tell
// which provider served them. Each provider type has one; see openai.go,
// azure.go, anthropic.go and compat.go.
type Translator interface {
	// Request sets what dst needs for the provider: URI, credentials and,
	// where the schemas differ, the body. Headers and body copied from the
	// client are already in dst. A *RequestError says the provider cannot
	// serve the call as asked.
	Request(dst *fasthttp.Request, p *Provider, c *Call) error
	// Response rewrites an answer's status, headers and, unless it is an
	// event stream, body into OpenAI's shape. A streamed body is read
	// (bounded) and replaced when it is rewritten.
	Response(resp *fasthttp.Response, c *Call) error
	// Stream returns the events of a streamed answer as OpenAI chunks.
	Stream(src sse.Source, c *Call) sse.Source
}

// RequestError says why a provider cannot serve a call as the client asked
// for it, for example a parameter its schema has no place for whose loss
// would change the answer. It is the client's to fix: veil answers it with
// Status in OpenAI's error envelope, unless another planned provider can
// serve the call.
type RequestError struct {
	Status  int
	Code    string
	Param   string
	Message string
}

// Error returns the message.
func (e *RequestError) Error() string { return e.Message }

func unsupported(param, msg string) *RequestError {
	return &RequestError{Status: fasthttp.StatusBadRequest, Code: "unsupported_parameter", Param: param, Message: msg}
}

// Provider is one configured upstream: its identity, its platform key and
// its connection pool. Upstream addresses come only from configuration.
type Provider struct {
	name     string
	typ      string
	scheme   []byte
	host     []byte
	basePath []byte
	models   map[string]struct{}
	// modelMap holds the models served by another name (model_map).
	modelMap map[string][]byte
	platform *Pool

	translator Translator
	client     *fasthttp.HostClient
	// conns holds the open upstream connections by local address, so that
	// a streamed answer's read deadline can be moved from its header
	// deadline to the call's deadline once the headers are in, and a
	// marked call's connection found to cut it (see Cut).
	conns sync.Map // netip.AddrPort -> *trackedConn
	// tlsConfig is the TLS configuration of an https provider (veil dials
	// TLS itself, so that its connections see the plain request); nil for
	// http.
	tlsConfig *tls.Config
	// proxy is the http proxy connections go through; nil for none.
	proxy *url.URL
}

// Options tunes the connection pool of a provider.
type Options struct {
	// MaxResponseBytes bounds buffered (non-streamed) response bodies.
	MaxResponseBytes int
	// ReadBufferSize bounds upstream response headers.
	ReadBufferSize int
}

// New builds a provider from its configuration and its resolved platform
// keys (none when the provider only serves suppliers' own keys).
func New(cfg config.Provider, platformKeys []keys.Secret, opts Options) (*Provider, error) {
	tr, err := newTranslator(&cfg)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", cfg.Name, err)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("provider %s: base url: %w", cfg.Name, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("provider %s: base url must be absolute http or https", cfg.Name)
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	proxy, err := proxyFor(cfg.ProxyURL, u)
	if err != nil {
		return nil, fmt.Errorf("provider %s: proxy: %w", cfg.Name, err)
	}
	p := &Provider{
		proxy:      proxy,
		tlsConfig:  tlsConfigFor(u),
		name:       cfg.Name,
		typ:        cfg.Type,
		scheme:     []byte(u.Scheme),
		host:       []byte(u.Host),
		basePath:   []byte(strings.TrimRight(u.Path, "/")),
		translator: tr,
	}
	if len(platformKeys) == 0 && !cfg.NeedsKey() {
		// A server without authentication: calls carry an empty key that
		// the translator does not send.
		platformKeys = []keys.Secret{{}}
	}
	if len(platformKeys) > 0 {
		p.platform = NewPool(platformKeys)
	}
	if len(cfg.ModelMap) > 0 {
		p.modelMap = make(map[string][]byte, len(cfg.ModelMap))
		for from, to := range cfg.ModelMap {
			p.modelMap[from] = []byte(to)
		}
	}
	if len(cfg.Models) > 0 {
		p.models = make(map[string]struct{}, len(cfg.Models))
		for _, m := range cfg.Models {
			p.models[m] = struct{}{}
		}
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = 5 * time.Second
	}
	readBuf := opts.ReadBufferSize
	if readBuf <= 0 {
		readBuf = 16 << 10
	}
	p.client = &fasthttp.HostClient{
		Addr:                      addr,
		IsTLS:                     u.Scheme == "https",
		Name:                      "veil",
		NoDefaultUserAgentHeader:  true,
		MaxConns:                  cfg.MaxConns,
		MaxConnWaitTimeout:        cfg.ConnWait,
		MaxIdleConnDuration:       90 * time.Second,
		MaxIdemponentCallAttempts: 1,
		ReadBufferSize:            readBuf,
		WriteBufferSize:           16 << 10,
		MaxResponseBodySize:       opts.MaxResponseBytes,
		Dial:                      func(a string) (net.Conn, error) { return p.dial(a, dialTimeout) },
	}
	return p, nil
}

// Name is the provider's configured name.
func (p *Provider) Name() string { return p.name }

// Type is the provider's schema, for example "openai".
func (p *Provider) Type() string { return p.typ }

// BaseURL is the configured upstream base URL.
func (p *Provider) BaseURL() string {
	return string(p.scheme) + "://" + string(p.host) + string(p.basePath)
}

// Platform is the provider's pool of platform keys, or nil when it has none.
func (p *Provider) Platform() *Pool { return p.platform }

// Serves reports whether the provider lists the model or maps it to one of
// its own; a provider without a model list serves any model.
func (p *Provider) Serves(model []byte) bool {
	if _, ok := p.modelMap[string(model)]; ok {
		return true
	}
	if p.models == nil {
		return true
	}
	_, ok := p.models[string(model)]
	return ok
}

// Lists reports whether the provider names the model explicitly, in its
// model list or its model map.
func (p *Provider) Lists(model []byte) bool {
	if _, ok := p.modelMap[string(model)]; ok {
		return true
	}
	if p.models == nil {
		return false
	}
	_, ok := p.models[string(model)]
	return ok
}

// ModelFor is the model the provider is asked for when a call names model:
// its model_map entry, else model itself.
func (p *Provider) ModelFor(model []byte) []byte {
	if to, ok := p.modelMap[string(model)]; ok {
		return to
	}
	return model
}

// Prepare fills dst for the call: URI, host, credentials and, where the
// provider's schema is not OpenAI's, the body. Headers and body copied from
// the client must already be in dst. A *RequestError says the provider
// cannot serve the call as asked.
func (p *Provider) Prepare(dst *fasthttp.Request, c *Call) error {
	return p.translator.Request(dst, p, c)
}

// Translate rewrites an answer of the provider into OpenAI's shape: its
// status, headers and, unless it is an event stream, its body.
func (p *Provider) Translate(resp *fasthttp.Response, c *Call) error {
	return p.translator.Response(resp, c)
}

// Events returns the events of a streamed answer as OpenAI chunks.
func (p *Provider) Events(src sse.Source, c *Call) sse.Source {
	return p.translator.Stream(src, c)
}

// Do sends req and reads the response headers (and the body unless
// resp.StreamBody is set). The headers must be in by headerDeadline; a
// streamed body may then be read until deadline, which bounds the whole
// call. A buffered body must be in by headerDeadline too.
func (p *Provider) Do(req *fasthttp.Request, resp *fasthttp.Response, headerDeadline, deadline time.Time) error {
	if deadline.Before(headerDeadline) {
		headerDeadline = deadline
	}
	if err := p.client.DoDeadline(req, resp, headerDeadline); err != nil {
		return err
	}
	if resp.StreamBody && deadline.After(headerDeadline) {
		p.extend(resp.LocalAddr(), deadline)
	}
	return nil
}

// Close releases idle upstream connections.
func (p *Provider) Close() { p.client.CloseIdleConnections() }

// setURI points dst at basePath+suffix on the provider's host. The path is
// set decoded and encoded by fasthttp on the wire; the query is kept raw.
func (p *Provider) setURI(dst *fasthttp.Request, suffix, query []byte) {
	u := dst.URI()
	u.SetSchemeBytes(p.scheme)
	u.SetHostBytes(p.host)
	buf := pathPool.Get()
	buf.B = append(append(buf.B[:0], p.basePath...), suffix...)
	u.SetPathBytes(buf.B)
	pathPool.Put(buf)
	u.SetQueryStringBytes(query)
	dst.Header.SetHostBytes(p.host)
}

var pathPool bytebufferpool.Pool

// newTranslator builds the translator of a provider's type.
func newTranslator(cfg *config.Provider) (Translator, error) {
	switch cfg.Type {
	case config.ProviderTypeOpenAI:
		return openAI{}, nil
	case config.ProviderTypeAzure:
		return newAzure(cfg)
	case config.ProviderTypeAnthropic:
		return newAnthropic(cfg), nil
	case config.ProviderTypeOpenAICompat:
		return newCompat(cfg), nil
	}
	return nil, fmt.Errorf("unsupported type %q", cfg.Type)
}

// Probe asks the provider for its model list (GET /models under its base) with a
// platform key and returns the status it answered; it is how active health
// checks see a provider without spending tokens. A provider without
// platform keys cannot be probed.
func (p *Provider) Probe(deadline time.Time) (int, error) {
	if p.platform == nil {
		return 0, errors.New("no platform key to probe with")
	}
	return p.ProbeKey(p.platform.Next(time.Now()), deadline)
}

// ProbeKey asks the provider for its model list with key k, which spends
// no tokens: it is how a key is validated live. It returns the status the
// provider answered.
func (p *Provider) ProbeKey(k *keys.Key, deadline time.Time) (int, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := p.probe(resp, &Call{Suffix: modelsSuffix, Key: k}, deadline); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

// KeyProbe is what a provider answered when asked for its model list with
// one key.
type KeyProbe struct {
	// Status is the HTTP status the provider answered.
	Status int
	// Models is how many models the answer listed when Status is 200.
	Models int
	// Message is the provider's error message when Status is not 200.
	Message string
	// Code is the error's code (its type when it has none) when Status
	// is not 200, such as insufficient_quota.
	Code string
}

// OK reports whether the provider accepted the key.
func (r KeyProbe) OK() bool { return r.Status == fasthttp.StatusOK }

// Refused reports whether the provider refused the key itself (401 or
// 403), rather than failing for another reason.
func (r KeyProbe) Refused() bool {
	return r.Status == fasthttp.StatusUnauthorized || r.Status == fasthttp.StatusForbidden
}

// CheckKey is ProbeKey that also reads the answer, in OpenAI's shape: how
// many models the provider listed, or why it refused.
func (p *Provider) CheckKey(k *keys.Key, deadline time.Time) (KeyProbe, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	c := &Call{Suffix: modelsSuffix, Key: k}
	if err := p.probe(resp, c, deadline); err != nil {
		return KeyProbe{}, err
	}
	r := KeyProbe{Status: resp.StatusCode()}
	if err := p.Translate(resp, c); err != nil {
		return r, fmt.Errorf("read the model list: %w", err)
	}
	if r.OK() {
		var list struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(resp.Body(), &list); err != nil {
			return r, fmt.Errorf("read the model list: %w", err)
		}
		r.Models = len(list.Data)
		return r, nil
	}
	if obj, ok := errorObject(resp.Body()); ok {
		r.Message = fieldString(obj, "message")
		if r.Code = fieldString(obj, "code"); r.Code == "" {
			r.Code = fieldString(obj, "type")
		}
	}
	return r, nil
}

// modelsSuffix is the path of the model list, which probes ask for.
var modelsSuffix = []byte("/models")

// probe sends GET /models for c and reads the answer into resp.
func (p *Provider) probe(resp *fasthttp.Response, c *Call, deadline time.Time) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(fasthttp.MethodGet)
	if err := p.Prepare(req, c); err != nil {
		return err
	}
	return p.Do(req, resp, deadline, deadline)
}
