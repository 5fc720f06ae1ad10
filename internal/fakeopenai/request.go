package fakeopenai

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/tokencount"
)

// Request validation errors, worded like OpenAI's.

// invalidRequest returns a 400 invalid_request_error about param (none
// when empty) with the given code (none when empty).
func invalidRequest(param, code, message string) *apiError {
	return &apiError{
		status:  fasthttp.StatusBadRequest,
		message: message,
		typ:     "invalid_request_error",
		param:   param,
		code:    code,
	}
}

func errInvalidJSON() *apiError {
	return invalidRequest("", "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "+
		"your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "+
		"valid JSON. If you have trouble figuring out how to fix this, please contact us through our help "+
		"center at help.openai.com.)")
}

func errMissingModel() *apiError {
	return invalidRequest("", "", "you must provide a model parameter")
}

func errMissingParam(param string) *apiError {
	return invalidRequest(param, "missing_required_parameter", "Missing required parameter: '"+param+"'.")
}

func errInvalidType(param, want string, got gjson.Result) *apiError {
	return invalidRequest(param, "invalid_type",
		"Invalid type for '"+param+"': expected "+want+", but got "+jsonTypeName(got)+" instead.")
}

func errEmptyArray(param string) *apiError {
	return invalidRequest(param, "empty_array", "Invalid '"+param+"': empty array. Expected an array with minimum length 1, "+
		"but got an empty array instead.")
}

func errBelowMin(param string, minimum, got int64) *apiError {
	return invalidRequest(param, "integer_below_min_value", "Invalid '"+param+"': integer below minimum value. Expected a value >= "+
		strconv.FormatInt(minimum, 10)+", but got "+strconv.FormatInt(got, 10)+" instead.")
}

func errAboveMax(param string, maximum, got int64) *apiError {
	return invalidRequest(param, "integer_above_max_value", "Invalid '"+param+"': integer above maximum value. Expected a value <= "+
		strconv.FormatInt(maximum, 10)+", but got "+strconv.FormatInt(got, 10)+" instead.")
}

func errInvalidValue(param, got string) *apiError {
	return invalidRequest(param, "invalid_value", "Invalid value for '"+param+"': '"+got+"' is not supported.")
}

func errStreamOptions() *apiError {
	return invalidRequest("stream_options", "", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
}

func errModelNotFound(model string) *apiError {
	return &apiError{
		status:  fasthttp.StatusNotFound,
		message: "The model `" + model + "` does not exist or you do not have access to it.",
		typ:     "invalid_request_error",
		code:    "model_not_found",
	}
}

// jsonTypeName names the JSON type of r the way OpenAI's messages do.
func jsonTypeName(r gjson.Result) string {
	switch {
	case r.IsArray():
		return "an array"
	case r.IsObject():
		return "an object"
	case r.Type == gjson.String:
		return "a string"
	case r.Type == gjson.Number:
		return "a number"
	case r.IsBool():
		return "a boolean"
	default:
		return "null"
	}
}

// present reports whether r holds a non-null value.
func present(r gjson.Result) bool {
	return r.Exists() && r.Type != gjson.Null
}

// parseRoot validates body as a JSON object.
func parseRoot(body []byte) (gjson.Result, *apiError) {
	if !gjson.ValidBytes(body) {
		return gjson.Result{}, errInvalidJSON()
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return gjson.Result{}, errInvalidJSON()
	}
	return root, nil
}

// requireModel returns the model field of root, or deployed when it is not
// empty: an Azure deployment decides the model and the field is ignored.
func requireModel(root gjson.Result, deployed string) (string, *apiError) {
	if deployed != "" {
		return deployed, nil
	}
	m := root.Get("model")
	if !present(m) {
		return "", errMissingModel()
	}
	if m.Type != gjson.String {
		return "", errInvalidType("model", "a string", m)
	}
	if m.Str == "" {
		return "", errMissingModel()
	}
	return m.Str, nil
}

// optInt returns the integer field name of root, def when absent, checked
// against [lo, hi] (hi <= 0: unbounded).
func optInt(root gjson.Result, name string, def, lo, hi int64) (int64, *apiError) {
	r := root.Get(name)
	if !present(r) {
		return def, nil
	}
	if r.Type != gjson.Number {
		return 0, errInvalidType(name, "an integer", r)
	}
	v := r.Int()
	if v < lo {
		return 0, errBelowMin(name, lo, v)
	}
	if hi > 0 && v > hi {
		return 0, errAboveMax(name, hi, v)
	}
	return v, nil
}

// streamFlags returns the stream and stream_options.include_usage fields
// of a chat or legacy completion request, then checks that its model is
// served (deployed: named by an Azure deployment): the last checks of
// both.
func (s *Server) streamFlags(root gjson.Result, model string, deployed bool) (stream, includeUsage bool, err *apiError) {
	stream = root.Get("stream").Bool()
	so := root.Get("stream_options")
	if present(so) && !stream {
		return false, false, errStreamOptions()
	}
	if e := s.checkModel(model, deployed); e != nil {
		return false, false, e
	}
	return stream, so.Get("include_usage").Bool(), nil
}

// textStats folds text into the prompt hash and token count, counted in
// the encoding of the model asked for, as the provider counts them.
type textStats struct {
	hash   uint64
	tokens int
	enc    tokencount.Encoding
	// text is the text itself when it was given as one string (an
	// embedding's input); empty for token arrays and prompts.
	text string
}

// add folds s in.
func (t *textStats) add(s string) {
	t.hash = fnvString(t.hash, s)
	t.hash = fnvString(t.hash, "\x00")
	t.tokens += t.enc.Count(s)
}

// addContent folds a message content (a string or an array of parts with
// text) in.
func (t *textStats) addContent(content gjson.Result) {
	if !content.IsArray() {
		if content.Type == gjson.String {
			t.add(content.Str)
		}
		return
	}
	content.ForEach(func(_, part gjson.Result) bool {
		if part.Type == gjson.String {
			t.add(part.Str)
			return true
		}
		if txt := part.Get("text"); txt.Type == gjson.String {
			t.add(txt.Str)
		}
		return true
	})
}

// addCall folds a function call of an earlier turn in: its name and its
// arguments, whose tokens are estimated like those of JSON.
func (t *textStats) addCall(name, args string) {
	t.hash = fnvString(t.hash, name)
	t.hash = fnvString(t.hash, "\x00")
	t.hash = fnvString(t.hash, args)
	t.hash = fnvString(t.hash, "\x00")
	t.tokens += t.enc.Count(name) + t.enc.Count(args)
}

// contentText returns the text of a message content: the string, or the
// text parts joined by spaces.
func contentText(content gjson.Result) string {
	if content.Type == gjson.String {
		return content.Str
	}
	var parts []string
	content.ForEach(func(_, part gjson.Result) bool {
		if part.Type == gjson.String {
			parts = append(parts, part.Str)
		} else if txt := part.Get("text"); txt.Type == gjson.String {
			parts = append(parts, txt.Str)
		}
		return true
	})
	return strings.Join(parts, " ")
}

// newTextStats starts a prompt hash for model.
func newTextStats(model string) textStats {
	t := textStats{hash: fnvOffset64, enc: tokencount.ForModel(model)}
	t.hash = fnvString(t.hash, model)
	t.hash = fnvString(t.hash, "\x00")
	return t
}

// textOf returns the stats of the text s for model.
func textOf(model, s string) textStats {
	t := newTextStats(model)
	t.add(s)
	t.text = s
	return t
}

// parseTexts reads the present text parameter param of a completion or
// embeddings request as OpenAI does: a string, an array of strings, an
// array of token IDs (one text) or an array of token arrays.
func parseTexts(v gjson.Result, model, param string) ([]textStats, *apiError) {
	switch {
	case v.Type == gjson.String:
		return []textStats{textOf(model, v.Str)}, nil
	case !v.IsArray():
		return nil, errInvalidType(param, "a string or an array", v)
	}
	var texts []textStats
	tokens := newTextStats(model)
	isTokens := false
	v.ForEach(func(_, item gjson.Result) bool {
		switch {
		case item.Type == gjson.Number:
			isTokens = true
			tokens.add(item.Raw)
		case item.Type == gjson.String:
			texts = append(texts, textOf(model, item.Str))
		case item.IsArray():
			ts := newTextStats(model)
			item.ForEach(func(_, tok gjson.Result) bool {
				ts.add(tok.Raw)
				return true
			})
			texts = append(texts, ts)
		}
		return true
	})
	if isTokens {
		texts = append(texts[:0], tokens)
	}
	if len(texts) == 0 {
		return nil, errEmptyArray(param)
	}
	return texts, nil
}
