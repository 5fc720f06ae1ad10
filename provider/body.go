package provider

import (
	"bytes"
	"io"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/jsonfield"
)

// maxTranslatedBody bounds an answer body read to be rewritten: error
// envelopes and, for translated schemas, whole non-streamed answers.
const maxTranslatedBody = 32 << 20

// readBody returns an answer's body, reading (at most maxTranslatedBody
// of) a streamed one and closing its stream.
func readBody(resp *fasthttp.Response) ([]byte, bool, error) {
	st := resp.BodyStream()
	if st == nil {
		return resp.Body(), false, nil
	}
	b, err := io.ReadAll(io.LimitReader(st, maxTranslatedBody))
	_ = resp.CloseBodyStream()
	return b, true, err
}

// setBody replaces an answer's body with b, as a stream when it was one.
func setBody(resp *fasthttp.Response, streamed bool, b []byte) {
	if streamed {
		resp.SetBodyStream(bytes.NewReader(b), len(b))
		return
	}
	resp.SetBody(b)
}

// openAIError is the content of OpenAI's error envelope.
type openAIError struct {
	Message string
	Type    string
	Param   string
	Code    string
}

// appendEnvelope appends {"error":{"message","type","param","code"}}.
func (e *openAIError) appendEnvelope(dst []byte) []byte { //nolint:unparam // append-style, like strconv.AppendInt; callers pass nil today
	return jsonfield.AppendErrorEnvelope(dst, e.Message, e.Type, e.Param, e.Code)
}

// typeForStatus is OpenAI's error type for an HTTP status.
func typeForStatus(status int) string {
	switch {
	case status == fasthttp.StatusUnauthorized:
		return "authentication_error"
	case status == fasthttp.StatusForbidden:
		return "permission_error"
	case status == fasthttp.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// codeForStatus is OpenAI's error code for an HTTP status where the
// upstream gave none that OpenAI clients know.
func codeForStatus(status int) string {
	switch status {
	case fasthttp.StatusUnauthorized:
		return "invalid_api_key"
	case fasthttp.StatusTooManyRequests:
		return "rate_limit_exceeded"
	case fasthttp.StatusNotFound:
		return "not_found"
	}
	if status >= 500 {
		return "server_error"
	}
	return ""
}

// fieldString reads a string member of a JSON object; "" when absent or
// not a string. Numbers are given as their digits.
func fieldString(obj []byte, name string) string {
	v, ok, _ := jsonfield.Get(obj, name)
	if !ok || len(v) == 0 {
		return ""
	}
	if v[0] == '"' {
		s, err := jsonfield.String(v)
		if err != nil {
			return ""
		}
		return string(s)
	}
	if n, err := jsonfield.Int(v); err == nil {
		return strconv.FormatInt(n, 10)
	}
	return ""
}

// getObject returns the JSON object at path in body.
func getObject(body []byte, path ...string) ([]byte, bool) {
	v, ok, err := jsonfield.Get(body, path...)
	if err != nil || !ok || len(v) == 0 || v[0] != '{' {
		return nil, false
	}
	return v, true
}

// now is the clock of translated answers' created times; tests fix it.
var now = time.Now
