package provider

import (
	"bytes"
	"errors"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/sse"
)

// azure speaks Azure OpenAI: OpenAI's bodies under
// /openai/deployments/{deployment}/..., the api-version query parameter and
// the key in an api-key header. Its error envelopes lack OpenAI's type and
// use Azure's codes; both are mapped. Azure's own headers (apim-request-id,
// x-ms-*) and its prompt-filter preamble chunk are not passed on.
type azure struct {
	apiVersion  string
	deployments map[string]string
}

var _ Translator = (*azure)(nil)

func newAzure(cfg *config.Provider) (*azure, error) {
	if cfg.Azure == nil || cfg.Azure.APIVersion == "" {
		return nil, errors.New("azure: api_version is required")
	}
	return &azure{apiVersion: cfg.Azure.APIVersion, deployments: cfg.Azure.Deployments}, nil
}

// deploymentPaths are the OpenAI endpoints Azure serves per deployment.
var deploymentPaths = map[string]bool{
	"/chat/completions": true, "/completions": true, "/embeddings": true, "/audio/speech": true,
	"/audio/transcriptions": true, "/audio/translations": true, "/images/generations": true,
}

// deployment is the Azure deployment that serves model.
func (a *azure) deployment(model []byte) (string, *RequestError) {
	if d, ok := a.deployments[string(model)]; ok {
		return d, nil
	}
	m := string(model)
	if m == "" || strings.ContainsAny(m, "/\\?#%") || strings.Contains(m, "..") {
		return "", &RequestError{Status: fasthttp.StatusBadRequest, Code: "model_not_found", Param: "model",
			Message: "The model `" + m + "` has no Azure deployment configured in veil."}
	}
	return m, nil
}

// Request points dst at the deployment's endpoint with the api-version and
// the api-key header.
func (a *azure) Request(dst *fasthttp.Request, p *Provider, c *Call) error {
	buf := pathPool.Get()
	defer pathPool.Put(buf)
	suffix := string(c.Suffix)
	switch {
	case deploymentPaths[suffix]:
		d, e := a.deployment(c.Model)
		if e != nil {
			return e
		}
		buf.B = append(append(append(buf.B[:0], "/openai/deployments/"...), d...), suffix...)
	default:
		// /models and the rest live under /openai.
		buf.B = append(append(buf.B[:0], "/openai"...), suffix...)
	}
	args := fasthttp.AcquireArgs()
	defer fasthttp.ReleaseArgs(args)
	args.ParseBytes(c.Query)
	args.Del("api-version")
	args.Set("api-version", a.apiVersion)
	q := args.AppendBytes(nil)
	p.setURI(dst, buf.B, q)
	dst.Header.Del(fasthttp.HeaderAuthorization)
	dst.Header.Del("OpenAI-Organization")
	dst.Header.Del("OpenAI-Project")
	dst.Header.Set("api-key", c.Key.Secret().Reveal())
	return nil
}

// azureCodes maps Azure's error codes to OpenAI's.
var azureCodes = map[string]string{
	"DeploymentNotFound": "model_not_found",
	"401":                "invalid_api_key",
	"429":                "rate_limit_exceeded",
	"404":                "not_found",
	"400":                "invalid_request_error",
	"500":                "server_error",
	"408":                "timeout",
}

// Response drops Azure's own headers and gives error envelopes OpenAI's
// type and codes.
func (a *azure) Response(resp *fasthttp.Response, _ *Call) error {
	dropHeaders(&resp.Header, "X-Ms-", "Apim-", "Azureml-")
	status := resp.StatusCode()
	if status < 400 || isEventStream(resp) {
		return nil
	}
	body, streamed, err := readBody(resp)
	if err != nil {
		return err
	}
	e := openAIError{Type: typeForStatus(status), Code: codeForStatus(status), Message: "provider answered " + fasthttp.StatusMessage(status)}
	if obj, ok := errorObject(body); ok {
		if m := fieldString(obj, "message"); m != "" {
			e.Message = m
		}
		if t := fieldString(obj, "type"); t != "" {
			e.Type = t
		}
		e.Param = fieldString(obj, "param")
		if code := fieldString(obj, "code"); code != "" {
			if mapped, ok := azureCodes[code]; ok {
				code = mapped
			}
			e.Code = code
		}
	}
	setBody(resp, streamed, e.appendEnvelope(nil))
	resp.Header.SetContentType("application/json")
	return nil
}

// Stream drops the prompt-filter preamble: a chunk with no choices and no
// usage that OpenAI never sends.
func (a *azure) Stream(src sse.Source, _ *Call) sse.Source { return azureEvents{src} }

type azureEvents struct{ src sse.Source }

// Buffered reports whether the next event is already read (see
// sse.Reader.Buffered).
func (s azureEvents) Buffered() bool { return sse.Buffered(s.src) }

func (s azureEvents) Next() (sse.Event, error) {
	for {
		ev, err := s.src.Next()
		if err != nil || !bytes.Contains(ev.Data, []byte(`"choices":[]`)) || bytes.Contains(ev.Data, []byte(`"usage":{`)) {
			return ev, err
		}
	}
}

// errorObject returns the "error" object of an error envelope.
func errorObject(body []byte) ([]byte, bool) {
	v, ok := getObject(body, "error")
	return v, ok
}

// dropHeaders removes the response headers whose names start with one of
// the prefixes (canonical case).
func dropHeaders(h *fasthttp.ResponseHeader, prefixes ...string) {
	var drop []string
	for k := range h.All() {
		for _, p := range prefixes {
			if len(k) >= len(p) && strings.EqualFold(string(k[:len(p)]), p) {
				drop = append(drop, string(k))
				break
			}
		}
	}
	for _, k := range drop {
		h.Del(k)
	}
}

func isEventStream(resp *fasthttp.Response) bool {
	return bytes.HasPrefix(resp.Header.ContentType(), []byte("text/event-stream"))
}
