package fakeopenai

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// azureRegion is the region Azure answers advertise in x-ms-region.
const azureRegion = "East US"

// azureRouteOf maps a method and a path under /openai/ to a route.
func azureRouteOf(method, path []byte) route {
	p := string(path)
	if string(method) == fasthttp.MethodGet && p == "/openai/models" {
		return routeAzureModels
	}
	rest, ok := strings.CutPrefix(p, "/openai/deployments/")
	if !ok || string(method) != fasthttp.MethodPost {
		return routeAzureNotFound
	}
	switch dep, op, _ := strings.Cut(rest, "/"); {
	case dep == "":
		return routeAzureNotFound
	case op == "chat/completions":
		return routeAzureChat
	case op == "completions":
		return routeAzureCompletions
	case op == "embeddings":
		return routeAzureEmbeddings
	}
	return routeAzureNotFound
}

// azureDeployment returns the deployment named by an Azure path, or "".
func azureDeployment(path []byte) string {
	rest, ok := strings.CutPrefix(string(path), "/openai/deployments/")
	if !ok {
		return ""
	}
	dep, _, _ := strings.Cut(rest, "/")
	return dep
}

// azureOperation returns the name Azure gives the operation of rt in its
// rate limit messages.
func azureOperation(rt route) string {
	switch rt {
	case routeAzureCompletions:
		return "Completions_Create"
	case routeAzureEmbeddings:
		return "Embeddings_Create"
	}
	return "ChatCompletions_Create"
}

// validAPIVersion reports whether v has the form of an Azure OpenAI
// api-version: YYYY-MM-DD, optionally followed by -preview.
func validAPIVersion(v string) bool {
	v = strings.TrimSuffix(v, "-preview")
	if len(v) != len("2006-01-02") {
		return false
	}
	_, err := time.Parse("2006-01-02", v)
	return err == nil
}

// gatewayError returns an error in Azure's {"code","message"} shape.
func gatewayError(status int, code, message string) apiError {
	return apiError{status: status, code: code, message: message, gateway: true}
}

// appendGatewayError appends {"error":{"code":...,"message":...}}.
func appendGatewayError(b []byte, e apiError) []byte {
	b = append(b, `{"error":{"code":`...)
	b = appendJSONString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.message)
	return append(b, "}}"...)
}

// errAzureNotFound is Azure's answer to a path or api-version it does not
// know.
func errAzureNotFound() apiError {
	return gatewayError(fasthttp.StatusNotFound, "404", "Resource not found")
}

// azureAuth checks the api-key header of an Azure call, or, without one,
// its bearer token, which stands for an Entra ID token and must be one of
// the accepted keys as well.
func (s *Server) azureAuth(ctx *fasthttp.RequestCtx) (apiError, bool) {
	key := string(ctx.Request.Header.Peek("api-key"))
	if key == "" {
		auth := string(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
		if len(auth) > len("bearer ") && strings.EqualFold(auth[:len("bearer ")], "bearer ") {
			key = strings.TrimSpace(auth[len("bearer "):])
		}
	}
	if s.acceptsKey(key) {
		return apiError{}, true
	}
	return errAzureAccessDenied(), false
}

// errAzureAccessDenied is Azure's answer to a missing or wrong key.
func errAzureAccessDenied() apiError {
	return gatewayError(fasthttp.StatusUnauthorized, "401", "Access denied due to invalid subscription key or wrong API "+
		"endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint "+
		"for your resource.")
}

// deploymentModel returns the model deployment dep runs.
func (s *Server) deploymentModel(dep string) (string, bool) {
	if s.opts.AzureDeployments != nil {
		m, ok := s.opts.AzureDeployments[dep]
		return m, ok
	}
	if _, ok := s.models[dep]; ok || s.opts.AllowUnknownModels {
		return dep, true
	}
	return "", false
}

// azure serves the Azure OpenAI paths once authenticated: it checks the
// api-version and the deployment, then answers as OpenAI does, with the
// deployment's model. It reports whether the response was handed off to a
// stream writer.
func (s *Server) azure(ctx *fasthttp.RequestCtx, c *call, rt route) bool {
	if rt == routeAzureNotFound || !validAPIVersion(c.apiVersion) {
		s.writeError(ctx, c, errAzureNotFound())
		return false
	}
	if rt == routeAzureModels {
		s.azureModels(ctx, c)
		return false
	}
	model, ok := s.deploymentModel(c.deployment)
	if !ok || model == "" {
		s.writeError(ctx, c, gatewayError(fasthttp.StatusNotFound, "DeploymentNotFound", "The API deployment for this "+
			"resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment "+
			"and try again."))
		return false
	}
	c.model = model
	switch rt {
	case routeAzureChat:
		return s.chatCompletions(ctx, c)
	case routeAzureCompletions:
		return s.completions(ctx, c)
	}
	s.embeddings(ctx, c)
	return false
}

// azureStatusError returns the envelope of a KindStatus fault on an Azure
// call; writeRateLimited answers those of status 429.
func azureStatusError(f Fault) apiError {
	status := f.Status
	if status == 0 {
		status = fasthttp.StatusInternalServerError
	}
	var e apiError
	switch status {
	case fasthttp.StatusBadRequest:
		e = gatewayError(status, "BadRequest", "The request is invalid.")
	case fasthttp.StatusUnauthorized:
		e = errAzureAccessDenied()
	case fasthttp.StatusNotFound:
		e = errAzureNotFound()
	case fasthttp.StatusServiceUnavailable:
		e = gatewayError(status, "ServiceUnavailable", "The service is temporarily unable to process your request. Please try again later.")
	case fasthttp.StatusRequestTimeout, fasthttp.StatusGatewayTimeout:
		e = gatewayError(status, "Timeout", "The operation was timeout.")
	default:
		if status >= 500 {
			e = gatewayError(status, "InternalServerError", "Backend returned unexpected response. Please contact Microsoft for help.")
		} else {
			e = gatewayError(status, strconv.Itoa(status), "The request failed with status "+strconv.Itoa(status)+".")
		}
	}
	return e.override(f)
}

// azureRateLimitError returns the envelope of a 429 answer to an Azure
// call; f.RetryAfter must be positive.
func azureRateLimitError(c *call, f Fault) apiError {
	secs := strconv.FormatInt(int64(math.Ceil(f.RetryAfter.Seconds())), 10)
	return gatewayError(fasthttp.StatusTooManyRequests, "429", "Requests to the "+azureOperation(c.rt)+" Operation under "+
		"Azure OpenAI API version "+c.apiVersion+" have exceeded token rate limit of your current OpenAI S0 pricing "+
		"tier. Please retry after "+secs+" seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like "+
		"to further increase the default rate limit.").override(f)
}

// azureHeaders returns the headers Azure sets on every answer. A
// non-negative reset marks the answer as rate limited.
func azureHeaders(c *call, reset time.Duration) []headerPair {
	remainingReq, remainingTok := "9999", "29999000"
	if reset >= 0 {
		remainingReq, remainingTok = "0", "0"
	}
	hs := []headerPair{
		{"Apim-Request-Id", c.reqID},
		{"X-Request-Id", c.reqID},
		{"X-Ms-Region", azureRegion},
		{"X-Ratelimit-Limit-Requests", rateLimitRequests},
		{"X-Ratelimit-Remaining-Requests", remainingReq},
		{"X-Ratelimit-Limit-Tokens", rateLimitTokens},
		{"X-Ratelimit-Remaining-Tokens", remainingTok},
		{"X-Content-Type-Options", "nosniff"},
	}
	if c.deployment != "" {
		hs = append(hs, headerPair{"X-Ms-Deployment-Name", c.deployment})
	}
	return hs
}

// Content filter results Azure adds to its answers, all passing.
const (
	filterSafe   = `{"filtered":false,"severity":"safe"}`
	filterClean  = `{"filtered":false,"detected":false}`
	filterCommon = `"hate":` + filterSafe + `,"self_harm":` + filterSafe + `,"sexual":` + filterSafe +
		`,"violence":` + filterSafe
	// choiceFilter is the content_filter_results of a choice.
	choiceFilter = `{` + filterCommon + `,"protected_material_code":` + filterClean +
		`,"protected_material_text":` + filterClean + `}`
	// promptFilter is the prompt_filter_results of an answer.
	promptFilter = `[{"prompt_index":0,"content_filter_results":{` + filterCommon + `,"jailbreak":` + filterClean + `}}]`
)

// appendChoiceEnd closes a choice object; on Azure it first adds the
// choice's content_filter_results, the full set when full, else {} (as in
// the opening and finishing chunks of a stream).
func (g *gen) appendChoiceEnd(b []byte, full bool) []byte {
	if g.azure {
		b = append(b, `,"content_filter_results":`...)
		if full {
			b = append(b, choiceFilter...)
		} else {
			b = append(b, "{}"...)
		}
	}
	return append(b, '}')
}

// appendPromptFilter appends ,"prompt_filter_results":[...] on Azure.
func (g *gen) appendPromptFilter(b []byte) []byte {
	if !g.azure {
		return b
	}
	b = append(b, `,"prompt_filter_results":`...)
	return append(b, promptFilter...)
}

// appendFilterChunk appends the chunk Azure streams open with: no choices,
// empty identity fields and the prompt's filter results.
func (g *gen) appendFilterChunk(b []byte) []byte {
	b = append(b, `data: {"choices":[],"created":0,"id":"","model":"","object":""`...)
	b = g.appendPromptFilter(b)
	return append(b, "}\n\n"...)
}

// azureModels serves GET /openai/models: the models of Options.Models with
// their Azure capabilities.
func (s *Server) azureModels(ctx *fasthttp.RequestCtx, c *call) {
	bp := getBuf()
	b := append(*bp, `{"data":[`...)
	for i, m := range s.modelList {
		if i > 0 {
			b = append(b, ',')
		}
		embed := strings.Contains(m.ID, "embedding")
		legacy := strings.HasSuffix(m.ID, "-instruct")
		b = append(b, `{"status":"succeeded","capabilities":{"fine_tune":false,"inference":true,"completion":`...)
		b = strconv.AppendBool(b, legacy)
		b = append(b, `,"chat_completion":`...)
		b = strconv.AppendBool(b, !embed && !legacy)
		b = append(b, `,"embeddings":`...)
		b = strconv.AppendBool(b, embed)
		b = append(b, `},"lifecycle_status":"generally-available","id":`...)
		b = appendJSONString(b, m.ID)
		b = append(b, `,"created_at":`...)
		b = appendInt(b, m.Created)
		b = append(b, `,"updated_at":`...)
		b = appendInt(b, m.Created)
		b = append(b, `,"object":"model"}`...)
	}
	*bp = append(b, `],"object":"list"}`...) //nolint:gocritic // appendAssign: b grew from *bp; the pooled buffer keeps the result
	s.writeJSON(ctx, c, *bp)
	putBuf(bp)
}
