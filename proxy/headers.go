package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// Header names veil sets on every answer.
const (
	HeaderRequestID = "X-Request-Id"
	HeaderProvider  = "X-Veil-Provider"
	HeaderModel     = "X-Veil-Model"
	HeaderKeySource = "X-Veil-Key-Source"
	HeaderAttempts  = "X-Veil-Attempts"
	HeaderFailover  = "X-Veil-Failover"
	// HeaderUpstreamRequestID carries the provider's own ID of its answer.
	HeaderUpstreamRequestID = "X-Veil-Upstream-Request-Id"
)

// dropRequestHeader reports whether a client request header must not reach
// the upstream: client credentials (veil alone picks the key), hop-by-hop
// headers, headers that say where a request came from or should go (a
// provider's edge may route on them), veil's own control headers and
// headers fasthttp sets itself. Keys arrive normalized by fasthttp
// ("Openai-Organization").
func dropRequestHeader(key []byte, understood bool) bool {
	switch string(key) {
	case "Authorization", "Api-Key", "X-Api-Key", "Openai-Api-Key", "Ocp-Apim-Subscription-Key", "X-Goog-Api-Key",
		"Openai-Organization", "Openai-Project",
		"Proxy-Authorization", "Cookie",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Forwarded-Prefix",
		"X-Real-Ip", "X-Original-Url", "X-Rewrite-Url", "X-Original-Host", "X-Host", "X-Http-Method-Override",
		"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade",
		"Host", "Content-Length",
		"X-Supplier-Id", "X-Workflow", "X-Key-Source":
		return true
	case "Accept-Encoding":
		// veil reads understood answers (usage, errors), so it asks for
		// them uncompressed; pass-through bodies keep the client's choice.
		return understood
	}
	return len(key) > 7 && bytes.EqualFold(key[:7], []byte("X-Veil-"))
}

// copyRequestHeaders copies the client's headers to the upstream request,
// dropping what must not be forwarded, including any header the client
// named in Connection.
func copyRequestHeaders(dst *fasthttp.RequestHeader, src *fasthttp.RequestHeader, understood bool) {
	dst.SetMethodBytes(src.Method())
	if ct := src.ContentType(); len(ct) > 0 {
		dst.SetContentTypeBytes(ct)
	}
	if ua := src.UserAgent(); len(ua) > 0 {
		dst.SetUserAgentBytes(ua)
	}
	conn := src.Peek(fasthttp.HeaderConnection)
	for k, v := range src.All() {
		switch string(k) {
		case "Content-Type", "User-Agent":
			continue
		}
		if dropRequestHeader(k, understood) || (len(conn) > 0 && listsToken(conn, k)) {
			continue
		}
		dst.AddBytesKV(k, v)
	}
}

// listsToken reports whether the comma-separated list names token,
// case-insensitively.
func listsToken(list, token []byte) bool {
	for len(list) > 0 {
		var item []byte
		item, list, _ = bytes.Cut(list, []byte{','})
		if bytes.EqualFold(bytes.TrimSpace(item), token) {
			return true
		}
	}
	return false
}

// dropResponseHeader reports whether an upstream response header is
// hop-by-hop or managed by veil's server.
func dropResponseHeader(key []byte) bool {
	switch string(key) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Content-Length":
		return true
	}
	return false
}

// copyResponseHeaders copies the upstream's end-to-end headers to the
// client response.
func copyResponseHeaders(dst *fasthttp.ResponseHeader, src *fasthttp.ResponseHeader) {
	dst.SetStatusCode(src.StatusCode())
	dst.SetContentTypeBytes(src.ContentType())
	for k, v := range src.All() {
		if string(k) == "Content-Type" || dropResponseHeader(k) {
			continue
		}
		dst.AddBytesKV(k, v)
	}
}

// stripResponseHeaders removes hop-by-hop headers from a response that was
// read directly into the client response.
func stripResponseHeaders(h *fasthttp.ResponseHeader) {
	for _, k := range [...]string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Trailer", "Upgrade"} {
		h.Del(k)
	}
	h.ResetConnectionClose()
}
