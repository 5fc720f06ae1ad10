package jsonfield

import (
	"errors"
	"math"
	"strconv"
)

// Request holds the fields of an OpenAI-style request body (chat
// completions, completions, embeddings, responses) that veil reads. Byte
// slices alias the scanned body unless noted otherwise.
//
// A field that is absent and a field that is JSON null are treated alike:
// both leave the zero value.
type Request struct {
	// Model is the unescaped model name. It aliases the body unless the
	// JSON string holds escapes (or invalid UTF-8), in which case it is a
	// new slice.
	Model    []byte
	HasModel bool
	// Stream is the value of "stream".
	Stream bool
	// HasStreamOptions reports whether "stream_options" is an object.
	HasStreamOptions bool
	// IncludeUsage is the value of "stream_options.include_usage".
	IncludeUsage bool
	// Temperature is the raw JSON number of "temperature", or nil.
	Temperature []byte
	// TopP is the raw JSON number of "top_p", or nil.
	TopP []byte
	// Seed is the raw JSON number of "seed", or nil. It is checked to be an
	// integer that fits in an int64.
	Seed []byte
	// N is the value of "n", or 0 when absent.
	N int
	// MaxTokens is the output token limit, or 0 when absent. It is read
	// from "max_completion_tokens", "max_output_tokens" (responses API) or
	// "max_tokens", in that order of precedence when several are present.
	MaxTokens int
	// HasTools reports whether "tools" or "functions" is a non-empty array.
	HasTools bool
	// User is the contents of the "user" string, still escaped and without
	// its quotes, or nil.
	User []byte
}

// FieldError reports a known request field whose value has the wrong type or
// is out of range, so that the proxy can answer 400 naming the parameter.
type FieldError struct {
	// Field is the name of the field, with a dot for nested fields, for
	// example "stream_options.include_usage".
	Field string
	// Msg says what is wrong, for example "must be a boolean".
	Msg string
}

// Error implements the error interface.
func (e *FieldError) Error() string {
	return "invalid field " + strconv.Quote(e.Field) + ": " + e.Msg
}

const (
	msgString  = "must be a string"
	msgBool    = "must be a boolean"
	msgNumber  = "must be a number"
	msgInteger = "must be an integer"
	msgRange   = "is out of range"
	msgObject  = "must be an object"
	msgArray   = "must be an array"
)

type field uint8

const (
	fieldUnknown field = iota
	fieldModel
	fieldStream
	fieldStreamOptions
	fieldTemperature
	fieldTopP
	fieldSeed
	fieldN
	fieldMaxTokens
	fieldMaxOutputTokens
	fieldMaxCompletionTokens
	fieldTools
	fieldFunctions
	fieldUser
	fieldIncludeUsage
)

func lookupField(name []byte) field {
	switch string(name) {
	case "model":
		return fieldModel
	case "stream":
		return fieldStream
	case "stream_options":
		return fieldStreamOptions
	case "temperature":
		return fieldTemperature
	case "top_p":
		return fieldTopP
	case "seed":
		return fieldSeed
	case "n":
		return fieldN
	case "max_tokens":
		return fieldMaxTokens
	case "max_output_tokens":
		return fieldMaxOutputTokens
	case "max_completion_tokens":
		return fieldMaxCompletionTokens
	case "tools":
		return fieldTools
	case "functions":
		return fieldFunctions
	case "user":
		return fieldUser
	case "include_usage":
		return fieldIncludeUsage
	}
	return fieldUnknown
}

// keyField identifies a raw (escaped) key.
func keyField(raw []byte) field {
	if f := lookupField(raw); f != fieldUnknown || !needsUnescape(raw) {
		return f
	}
	var buf [32]byte // longer than any known field
	if name, ok := unescapeInto(buf[:], raw); ok {
		return lookupField(name)
	}
	return fieldUnknown
}

// ScanRequest fills r from the JSON object in body in one pass, validating
// the whole body as Each does; malformed JSON is reported in preference to
// wrong field types. Members are processed in document order: the first known
// field with a value of the wrong type is reported as a *FieldError, and of
// duplicate keys the last wins. Keys are matched exactly (case-sensitively)
// after unescaping; unknown fields are skipped.
//
// ScanRequest does not allocate unless the model name holds escapes or the
// body is invalid.
func ScanRequest(body []byte, r *Request) error {
	*r = Request{}
	var s objectScanner
	if err := s.begin(body, 0); err != nil {
		return err
	}
	var st requestState
	var ferr *FieldError
	for {
		k, v, ok, err := s.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if ferr != nil {
			continue // only validate the rest
		}
		if f := keyField(k); f != fieldUnknown {
			ferr = st.apply(r, f, v)
		}
	}
	if ferr != nil {
		*r = Request{}
		return ferr
	}
	r.HasTools = st.tools || st.functions
	for rank := len(st.limits) - 1; rank >= 0; rank-- {
		if st.hasLimits[rank] {
			r.MaxTokens = st.limits[rank]
			break
		}
	}
	return nil
}

// requestState holds what ScanRequest resolves only at the end.
type requestState struct {
	tools, functions bool
	// Output token limits by rising precedence: max_tokens,
	// max_output_tokens, max_completion_tokens.
	limits    [3]int
	hasLimits [3]bool
}

// apply records the value v of the known field f.
func (st *requestState) apply(r *Request, f field, v []byte) *FieldError {
	null := v[0] == 'n'
	switch f {
	case fieldModel:
		r.Model, r.HasModel = nil, false
		if null {
			return nil
		}
		if v[0] != '"' {
			return &FieldError{Field: "model", Msg: msgString}
		}
		m, err := String(v)
		if err != nil {
			return &FieldError{Field: "model", Msg: msgString}
		}
		r.Model, r.HasModel = m, true
	case fieldStream:
		r.Stream = false
		if null {
			return nil
		}
		b, err := Bool(v)
		if err != nil {
			return &FieldError{Field: "stream", Msg: msgBool}
		}
		r.Stream = b
	case fieldStreamOptions:
		r.HasStreamOptions, r.IncludeUsage = false, false
		if null {
			return nil
		}
		if v[0] != '{' {
			return &FieldError{Field: "stream_options", Msg: msgObject}
		}
		r.HasStreamOptions = true
		return scanStreamOptions(v, r)
	case fieldTemperature, fieldTopP:
		dst, name := &r.Temperature, "temperature"
		if f == fieldTopP {
			dst, name = &r.TopP, "top_p"
		}
		*dst = nil
		if null {
			return nil
		}
		if !isNumber(v) {
			return &FieldError{Field: name, Msg: msgNumber}
		}
		*dst = v
	case fieldSeed:
		r.Seed = nil
		if null {
			return nil
		}
		if _, err := Int(v); err != nil {
			return intFieldError("seed", err)
		}
		r.Seed = v
	case fieldN:
		r.N = 0
		if null {
			return nil
		}
		n, ferr := intValue("n", v)
		if ferr != nil {
			return ferr
		}
		r.N = n
	case fieldMaxTokens, fieldMaxOutputTokens, fieldMaxCompletionTokens:
		rank := int(f - fieldMaxTokens)
		st.limits[rank], st.hasLimits[rank] = 0, false
		if null {
			return nil
		}
		n, ferr := intValue(maxTokensNames[rank], v)
		if ferr != nil {
			return ferr
		}
		st.limits[rank], st.hasLimits[rank] = n, true
	case fieldTools, fieldFunctions:
		name := "tools"
		if f == fieldFunctions {
			name = "functions"
		}
		nonEmpty := false
		if !null {
			if v[0] != '[' {
				return &FieldError{Field: name, Msg: msgArray}
			}
			nonEmpty = v[skipSpace(v, 1)] != ']'
		}
		if f == fieldTools {
			st.tools = nonEmpty
		} else {
			st.functions = nonEmpty
		}
	case fieldUser:
		r.User = nil
		if null {
			return nil
		}
		if v[0] != '"' {
			return &FieldError{Field: "user", Msg: msgString}
		}
		r.User = v[1 : len(v)-1]
	}
	return nil
}

var maxTokensNames = [3]string{"max_tokens", "max_output_tokens", "max_completion_tokens"}

// scanStreamOptions reads the validated "stream_options" object v.
func scanStreamOptions(v []byte, r *Request) *FieldError {
	var s objectScanner
	_ = s.begin(v, 1) // v was validated
	for {
		k, v, ok, _ := s.next()
		if !ok {
			return nil
		}
		if keyField(k) != fieldIncludeUsage {
			continue
		}
		r.IncludeUsage = false
		if v[0] == 'n' {
			continue
		}
		b, err := Bool(v)
		if err != nil {
			return &FieldError{Field: "stream_options.include_usage", Msg: msgBool}
		}
		r.IncludeUsage = b
	}
}

// isNumber reports whether the validated raw value v is a number.
func isNumber(v []byte) bool {
	return v[0] == '-' || isDigit(v[0])
}

func intValue(name string, v []byte) (int, *FieldError) {
	n, err := Int(v)
	if err != nil {
		return 0, intFieldError(name, err)
	}
	if n > math.MaxInt || n < math.MinInt {
		return 0, &FieldError{Field: name, Msg: msgRange}
	}
	return int(n), nil
}

func intFieldError(name string, err error) *FieldError {
	if errors.Is(err, errRange) {
		return &FieldError{Field: name, Msg: msgRange}
	}
	return &FieldError{Field: name, Msg: msgInteger}
}
