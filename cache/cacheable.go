package cache

import "bytes"

// Endpoint names, as the proxy labels the OpenAI endpoints.
const (
	// EndpointChatCompletions is POST /v1/chat/completions.
	EndpointChatCompletions = "chat_completions"
	// EndpointCompletions is POST /v1/completions.
	EndpointCompletions = "completions"
	// EndpointEmbeddings is POST /v1/embeddings.
	EndpointEmbeddings = "embeddings"
	// EndpointResponses is POST /v1/responses. It is never cacheable: the
	// Responses API keeps server-side state (store, previous_response_id).
	EndpointResponses = "responses"
)

// Request holds what Cacheable needs to know about a request.
type Request struct {
	// Endpoint is one of the Endpoint constants.
	Endpoint string
	// Temperature is the raw JSON value of the temperature field, or nil
	// when the field is absent.
	Temperature []byte
	// Seed is the raw JSON value of the seed field, or nil when the field
	// is absent.
	Seed []byte
	// N is the value of the n field; 0 means absent, which the API treats
	// as 1.
	N int
}

// Cacheable reports whether the answer to r may be served from the cache.
//
// Embeddings are always cacheable. Chat completions and completions are
// cacheable only when they ask for a single choice (n absent or 1) and are
// deterministic: a temperature of exactly zero (any JSON spelling of zero,
// such as 0, 0.0, 0e5 or -0) or a seed that is present and not null. Every
// other endpoint, including responses, is not cacheable.
func Cacheable(r Request) bool {
	switch r.Endpoint {
	case EndpointEmbeddings:
		return true
	case EndpointChatCompletions, EndpointCompletions:
	default:
		return false
	}
	if r.N != 0 && r.N != 1 {
		return false
	}
	return isZeroNumber(r.Temperature) || present(r.Seed)
}

// present reports whether raw is a JSON value other than null.
func present(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && string(raw) != "null"
}

// isZeroNumber reports whether raw is a JSON number whose value is zero.
func isZeroNumber(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	p, end, ok := scanNumber(raw, 0)
	if !ok || end != len(raw) {
		return false
	}
	for _, b := range raw[p.intStart:p.intEnd] {
		if b != '0' {
			return false
		}
	}
	for _, b := range raw[p.fracStart:p.fracEnd] {
		if b != '0' {
			return false
		}
	}
	return true
}

// numParts locates the parts of a JSON number in its source.
type numParts struct {
	neg                bool
	intStart, intEnd   int
	fracStart, fracEnd int
	expNeg             bool
	expStart, expEnd   int
}

// scanNumber scans the JSON number that starts at b[i] and returns its parts
// and the index just past it. ok is false when b[i:] does not start with a
// number that follows the JSON grammar.
func scanNumber(b []byte, i int) (p numParts, end int, ok bool) {
	if i < len(b) && b[i] == '-' {
		p.neg = true
		i++
	}
	if i >= len(b) {
		return p, i, false
	}
	p.intStart = i
	switch c := b[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i = skipDigits(b, i+1)
	default:
		return p, i, false
	}
	p.intEnd = i
	p.fracStart, p.fracEnd = i, i
	if i < len(b) && b[i] == '.' {
		if p.fracStart, p.fracEnd, ok = digits(b, i+1); !ok {
			return p, p.fracEnd, false
		}
		i = p.fracEnd
	}
	p.expStart, p.expEnd = i, i
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			p.expNeg = b[i] == '-'
			i++
		}
		if p.expStart, p.expEnd, ok = digits(b, i); !ok {
			return p, p.expEnd, false
		}
		i = p.expEnd
	}
	return p, i, true
}

// digits finds the run of digits that starts at b[i]: it returns where
// the run starts and ends, and whether it holds a digit at all.
func digits(b []byte, i int) (start, end int, ok bool) {
	end = skipDigits(b, i)
	return i, end, end > i
}

// skipDigits returns the index of the first non-digit at or after b[i].
func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
