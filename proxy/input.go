package proxy

import (
	"bytes"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// MaxModelBytes is the longest model name veil accepts. Real names
// (accounts/fireworks/models/..., ft:gpt-4o-mini:org:name:id) are far
// shorter.
const MaxModelBytes = 256

// validModel reports whether m can be a model name: 1 to MaxModelBytes
// bytes of letters, digits and . _ - : / @ +, with no empty, "." or ".."
// path segment. Whatever a provider does with the name (Azure puts it in
// the URL path), such a name cannot reach another path, add a query or
// split a header line.
func validModel(m []byte) bool {
	if len(m) == 0 || len(m) > MaxModelBytes {
		return false
	}
	seg := 0 // bytes of the current path segment; -1 while it is all dots
	dots := 0
	for i, c := range m {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '-', c == ':', c == '@', c == '+':
			seg++
		case c == '.':
			seg++
			dots++
		case c == '/':
			if seg == 0 || seg == dots || i == len(m)-1 {
				return false // "//", "/./", "/../", a leading or trailing slash
			}
			seg, dots = 0, 0
		default:
			return false
		}
	}
	return seg != dots // the last segment is not "." or ".."
}

// framingError says why the request's framing is refused, or nil. fasthttp
// already refuses duplicate Content-Length headers, Transfer-Encoding
// other than a single "chunked", and control characters in header names
// and values; what reaches the handler may still carry both
// Content-Length and Transfer-Encoding (fasthttp reads such a body as
// chunked) or a header folded over lines (obs-fold). Both are how request
// smuggling disagrees with a proxy in front of or behind veil, so both are
// refused and the connection is closed.
func framingError(raw []byte) *Error {
	var length, encoding bool
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte{'\n'})
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			break // the blank line that ends the header
		}
		switch {
		case line[0] == ' ' || line[0] == '\t':
			return &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "malformed_request",
				Message: "veil refuses header lines folded over several lines (obs-fold)"}
		case hasFieldName(line, "content-length"):
			length = true
		case hasFieldName(line, "transfer-encoding"):
			encoding = true
		}
	}
	if length && encoding {
		return &Error{Status: fasthttp.StatusBadRequest, Type: typeInvalidRequest, Code: "malformed_request",
			Message: "veil refuses a request with both Content-Length and Transfer-Encoding"}
	}
	return nil
}

// hasFieldName reports whether the header line starts with the field name
// (lowercase) followed by optional spaces and a colon.
func hasFieldName(line []byte, name string) bool {
	if len(line) <= len(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := line[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	for _, c := range line[len(name):] {
		switch c {
		case ':':
			return true
		case ' ', '\t':
		default:
			return false
		}
	}
	return false
}

// credentialParams are query parameters through which some APIs take a
// key. veil alone picks the key, so a client's never reaches a provider.
var credentialParams = map[string]bool{
	"api_key": true, "api-key": true, "apikey": true, "key": true, "access_token": true, "token": true,
	"subscription-key": true, "x-api-key": true,
}

// appendSafeQuery appends the query q without its credential parameters
// (compared case-insensitively, after unescaping) to dst.
func appendSafeQuery(dst, q []byte) []byte {
	for len(q) > 0 {
		var pair []byte
		pair, q, _ = bytes.Cut(q, []byte{'&'})
		name, _, _ := bytes.Cut(pair, []byte{'='})
		if len(pair) == 0 || credentialParam(name) {
			continue
		}
		if len(dst) > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, pair...)
	}
	return dst
}

func credentialParam(name []byte) bool {
	if len(name) > 32 {
		return false
	}
	s := string(name) // only calls with a query get here
	if strings.ContainsAny(s, "%+") {
		u, err := url.QueryUnescape(s)
		if err != nil {
			return true // an undecodable name is dropped too
		}
		s = u
	}
	return credentialParams[strings.ToLower(s)]
}
