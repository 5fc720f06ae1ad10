package fakeopenai

import (
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Limits OpenAI puts on function definitions.
const (
	maxTools        = 128
	maxFunctionName = 64
)

// toolMode is the effective tool_choice (or legacy function_call) of a chat
// request.
type toolMode int

const (
	toolNone     toolMode = iota // answer with text
	toolAuto                     // call when the prompt asks for it
	toolRequired                 // always call
	toolNamed                    // always call the named function
)

// toolDef is one function offered by a chat request.
type toolDef struct {
	name   string
	params gjson.Result // the parameters JSON schema; may not exist
	// nameWords and descWords are the significant words of the name and of
	// the description (see significantWords).
	nameWords, descWords []string
}

// toolSpec is what a chat request says about functions.
type toolSpec struct {
	defs     []toolDef
	mode     toolMode
	named    int    // index in defs of the function named by tool_choice
	parallel bool   // parallel_tool_calls, true unless false
	legacy   bool   // functions and function_call rather than tools and tool_choice
	raw      string // the definitions as sent, folded into the prompt
}

// offered reports whether the request offers any function.
func (ts *toolSpec) offered() bool { return len(ts.defs) > 0 }

// toolCall is one generated function call.
type toolCall struct {
	id     string // call_ and 24 base62 characters; empty for legacy calls
	name   string
	args   string   // a JSON object, as the API sends it: in a string
	pieces []string // args as streamed; they concatenate to args
}

// parseTools validates tools, tool_choice and parallel_tool_calls, or the
// legacy functions and function_call when tools is absent (tools wins when
// both are given, and the legacy fields are then ignored).
func parseTools(root gjson.Result) (toolSpec, *apiError) {
	tools := root.Get("tools")
	choice := root.Get("tool_choice")
	parallel := root.Get("parallel_tool_calls")
	if present(tools) {
		return parseToolList(tools, choice, parallel)
	}
	if present(choice) {
		return toolSpec{}, errOnlyWith("tool_choice", "tools")
	}
	if present(parallel) {
		return toolSpec{}, errOnlyWith("parallel_tool_calls", "tools")
	}
	fns := root.Get("functions")
	call := root.Get("function_call")
	if present(fns) {
		return parseFunctionList(fns, call)
	}
	if present(call) {
		return toolSpec{}, errOnlyWith("function_call", "functions")
	}
	return toolSpec{}, nil
}

// parseToolList validates tools, tool_choice and parallel_tool_calls.
func parseToolList(tools, choice, parallel gjson.Result) (toolSpec, *apiError) {
	ts := toolSpec{mode: toolAuto, parallel: true, raw: tools.Raw}
	items, e := listItems(tools, "tools")
	if e != nil {
		return ts, e
	}
	for i, t := range items {
		path := "tools[" + itoa(i) + "]"
		if !t.IsObject() {
			return ts, errInvalidType(path, "an object", t)
		}
		if e := checkFunctionType(t.Get("type"), path+".type"); e != nil {
			return ts, e
		}
		fn := t.Get("function")
		if !present(fn) {
			return ts, errMissingParam(path + ".function")
		}
		d, e := parseFunction(fn, path+".function")
		if e != nil {
			return ts, e
		}
		ts.defs = append(ts.defs, d)
	}
	if present(parallel) {
		if !parallel.IsBool() {
			return ts, errInvalidType("parallel_tool_calls", "a boolean", parallel)
		}
		ts.parallel = parallel.Bool()
	}
	if choice.IsObject() {
		if e := checkFunctionType(choice.Get("type"), "tool_choice.type"); e != nil {
			return ts, e
		}
	}
	e = ts.parseChoice(choice, "tool_choice", "tools", "function.name", "'none', 'auto', and 'required'",
		"none", "auto", "required")
	return ts, e
}

// parseFunctionList validates the legacy functions and function_call.
func parseFunctionList(fns, call gjson.Result) (toolSpec, *apiError) {
	ts := toolSpec{mode: toolAuto, legacy: true, raw: fns.Raw}
	items, e := listItems(fns, "functions")
	if e != nil {
		return ts, e
	}
	for i, fn := range items {
		d, e := parseFunction(fn, "functions["+itoa(i)+"]")
		if e != nil {
			return ts, e
		}
		ts.defs = append(ts.defs, d)
	}
	e = ts.parseChoice(call, "function_call", "functions", "name", "'none' and 'auto'", "none", "auto")
	return ts, e
}

// listItems returns the items of tools or functions, which must be an
// array of 1 to maxTools items.
func listItems(list gjson.Result, param string) ([]gjson.Result, *apiError) {
	if !list.IsArray() {
		return nil, errInvalidType(param, "an array", list)
	}
	items := list.Array()
	switch {
	case len(items) == 0:
		return nil, errEmptyArray(param)
	case len(items) > maxTools:
		return nil, errArrayTooLong(param, maxTools, len(items))
	}
	return items, nil
}

// checkFunctionType checks the type, found at path, of a tool or a named
// tool_choice: "function" is the only one supported.
func checkFunctionType(typ gjson.Result, path string) *apiError {
	switch {
	case !present(typ):
		return errMissingParam(path)
	case typ.Type != gjson.String:
		return errInvalidType(path, "a string", typ)
	case typ.Str != "function":
		return errUnsupported(path, typ.Str, "'function'")
	}
	return nil
}

// toolModes are the modes tool_choice and function_call may name.
var toolModes = map[string]toolMode{"none": toolNone, "auto": toolAuto, "required": toolRequired}

// parseChoice sets the mode from choice, the param tool_choice or
// function_call when present: one of modes (supported lists them for the
// error), or an object naming, at namePath, one of the functions listed in
// the param list.
func (ts *toolSpec) parseChoice(choice gjson.Result, param, list, namePath, supported string, modes ...string) *apiError {
	switch {
	case !present(choice):
		return nil
	case choice.Type == gjson.String:
		if !slices.Contains(modes, choice.Str) {
			return errUnsupported(param, choice.Str, supported)
		}
		ts.mode = toolModes[choice.Str]
		return nil
	case !choice.IsObject():
		return errInvalidType(param, "a string or an object", choice)
	}
	path := param + "." + namePath
	name := choice.Get(namePath)
	if !present(name) {
		return errMissingParam(path)
	}
	if name.Type != gjson.String {
		return errInvalidType(path, "a string", name)
	}
	if ts.named = ts.find(name.Str); ts.named < 0 {
		return errNoSuchFunction(param, name.Str, list)
	}
	ts.mode = toolNamed
	return nil
}

// parseFunction validates one function definition found at path.
func parseFunction(fn gjson.Result, path string) (toolDef, *apiError) {
	if !fn.IsObject() {
		return toolDef{}, errInvalidType(path, "an object", fn)
	}
	name := fn.Get("name")
	switch {
	case !present(name):
		return toolDef{}, errMissingParam(path + ".name")
	case name.Type != gjson.String:
		return toolDef{}, errInvalidType(path+".name", "a string", name)
	case len(name.Str) > maxFunctionName:
		return toolDef{}, errStringTooLong(path+".name", maxFunctionName, len(name.Str))
	case !validFunctionName(name.Str):
		return toolDef{}, errNamePattern(path + ".name")
	}
	desc := fn.Get("description")
	if present(desc) && desc.Type != gjson.String {
		return toolDef{}, errInvalidType(path+".description", "a string", desc)
	}
	params := fn.Get("parameters")
	if present(params) && !params.IsObject() {
		return toolDef{}, errInvalidType(path+".parameters", "an object", params)
	}
	return toolDef{
		name:      name.Str,
		params:    params,
		nameWords: significantWords(name.Str),
		descWords: significantWords(desc.Str),
	}, nil
}

// validFunctionName reports whether name matches ^[a-zA-Z0-9_-]+$.
func validFunctionName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// find returns the index of the function called name, or -1.
func (ts *toolSpec) find(name string) int {
	for i, d := range ts.defs {
		if d.name == name {
			return i
		}
	}
	return -1
}

// choose returns the indexes in ts.defs of the functions the answer calls,
// in call order; none means the answer is text. It is a deterministic
// function of the request:
//
//   - tool_choice "none" (function_call "none") answers with text.
//   - A named function (tool_choice {"type":"function","function":
//     {"name":...}}, function_call {"name":...}) is called, alone.
//   - "auto", the default, calls the functions that the last user message
//     mentions, unless the last message is a "tool" (or "function") message:
//     a turn that hands results back is answered with text. A function is
//     mentioned when a significant word of its name or description occurs
//     in the message (see significantWords); functions are ranked by the
//     number of distinct such words, a name word counting twice, ties in
//     declaration order. With no function mentioned the answer is text.
//   - "required" calls the mentioned functions as "auto" does, even after
//     results; when none is mentioned it calls the function picked by the
//     prompt hash (seed modulo the number of functions).
//
// The best ranked function is called; when parallel_tool_calls is not false
// and two or more functions are mentioned, the best two are called. Legacy
// function calling never calls two.
func (ts *toolSpec) choose(seed uint64, userText string, afterResults bool) []int {
	switch ts.mode {
	case toolNone:
		return nil
	case toolNamed:
		return []int{ts.named}
	}
	ranked := ts.rank(userText)
	switch {
	case ts.mode == toolAuto && (afterResults || len(ranked) == 0):
		return nil
	case len(ranked) == 0:
		return []int{int(seed % uint64(len(ts.defs)))}
	case ts.parallel && !ts.legacy && len(ranked) >= 2:
		return ranked[:2]
	}
	return ranked[:1]
}

// rank returns the indexes of the functions text mentions, best first.
func (ts *toolSpec) rank(text string) []int {
	said := make(map[string]bool)
	for _, w := range significantWords(text) {
		said[w] = true
	}
	type scored struct{ i, score int }
	var hits []scored
	for i, d := range ts.defs {
		seen := make(map[string]bool)
		score := 0
		for _, w := range d.nameWords {
			if said[w] && !seen[w] {
				seen[w] = true
				score += 2
			}
		}
		for _, w := range d.descWords {
			if said[w] && !seen[w] {
				seen[w] = true
				score++
			}
		}
		if score > 0 {
			hits = append(hits, scored{i, score})
		}
	}
	// Insertion sort keeps declaration order among ties.
	for a := 1; a < len(hits); a++ {
		for b := a; b > 0 && hits[b].score > hits[b-1].score; b-- {
			hits[b], hits[b-1] = hits[b-1], hits[b]
		}
	}
	out := make([]int, len(hits))
	for k, h := range hits {
		out[k] = h.i
	}
	return out
}

// stopWords are common words of four letters or more that say nothing
// about which function a prompt wants.
var stopWords = func() map[string]bool {
	m := make(map[string]bool)
	for _, w := range strings.Fields(`about after again also another because been before being below between
		both cannot could does doing done during each either every from given have having here into just know
		like make many more most much must need only other over please provide provided return returns same
		should some such tell than that their them then there these they thing this those through under until
		using very want what when where which while will with within without would your yours function functions
		tool tools call calls value values parameter parameters specified`) {
		m[w] = true
	}
	return m
}()

// significantWords returns the words of s that identify a function or a
// request: runs of letters and digits, split at underscores, hyphens, dots
// and camelCase humps, lower-cased, with a plural "s" dropped, of at least
// four letters and not in a short list of common English words.
func significantWords(s string) []string {
	var out []string
	for _, w := range splitWords(s) {
		w = strings.ToLower(w)
		if len(w) > 4 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") {
			w = w[:len(w)-1]
		}
		if utf8.RuneCountInString(w) >= 4 && !stopWords[w] {
			out = append(out, w)
		}
	}
	return out
}

// splitWords splits s into runs of letters and digits, also splitting
// where a lower-case letter is followed by an upper-case one.
func splitWords(s string) []string {
	var out []string
	start := -1
	var prev rune
	for i, r := range s {
		word := unicode.IsLetter(r) || unicode.IsDigit(r)
		switch {
		case !word:
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		case start < 0:
			start = i
		case unicode.IsUpper(r) && unicode.IsLower(prev):
			out = append(out, s[start:i])
			start = i
		}
		prev = r
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// Character classes of splitPieces.
const (
	classWord = iota
	classSpace
	classOther
)

// runeClass returns the splitPieces class of r.
func runeClass(r rune) int {
	switch {
	case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_':
		return classWord
	case unicode.IsSpace(r):
		return classSpace
	default:
		return classOther
	}
}

// splitPieces splits s into the pieces it is streamed in, about one token
// each: a run of letters, digits and underscores together with the spaces
// before it, a run of spaces, or a run of other characters. The pieces
// concatenate to s.
func splitPieces(s string) []string {
	var out []string
	start, prev := 0, -1
	for i, r := range s {
		c := runeClass(r)
		if prev >= 0 && c != prev && !(prev == classSpace && c == classWord) {
			out = append(out, s[start:i])
			start = i
		}
		prev = c
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// jsonTokens estimates the tokens of a JSON text the way splitPieces would
// cut it, not counting whitespace between tokens.
func jsonTokens(s string) int {
	n, prev := 0, classSpace
	for _, r := range s {
		c := runeClass(r)
		if c != classSpace && c != prev {
			n++
		}
		prev = c
	}
	return n
}

// newCall generates the call of function d for the choice seeded by seed;
// string arguments are drawn from text, the last user message.
func newCall(id string, d *toolDef, seed uint64, text string) toolCall {
	ag := argGen{x: fnvString(seed, d.name), words: valueWords(text, seed, d)}
	if present(d.params) {
		ag.value(d.params, "", 0)
	} else {
		ag.b = append(ag.b, "{}"...)
	}
	args := string(ag.b)
	return toolCall{id: id, name: d.name, args: args, pieces: splitPieces(args)}
}

// limitCalls cuts calls to limit argument pieces in all (no cut when limit
// is not positive) and reports whether it cut.
func limitCalls(calls []toolCall, limit int) ([]toolCall, bool) {
	if limit <= 0 {
		return calls, false
	}
	left := limit
	for k := range calls {
		if left == 0 {
			return calls[:k], true
		}
		if p := calls[k].pieces; len(p) > left {
			calls[k].pieces = p[:left]
			calls[k].args = strings.Join(p[:left], "")
			return calls[:k+1], true
		}
		left -= len(calls[k].pieces)
	}
	return calls, false
}

// maxSchemaDepth bounds the nesting of generated arguments.
const maxSchemaDepth = 6

// argGen builds the arguments of a call from a JSON schema.
type argGen struct {
	x     uint64
	words []string
	b     []byte
}

// next returns the next pseudo-random number.
func (g *argGen) next() uint64 { return splitmix(&g.x) }

// schemaType returns the type a value of schema gets: its "type", the first
// non-null one of a type list, or one guessed from the other keywords.
func schemaType(schema gjson.Result) string {
	t := schema.Get("type")
	if t.Type == gjson.String {
		return t.Str
	}
	if t.IsArray() {
		for _, v := range t.Array() {
			if v.Str != "null" && v.Type == gjson.String {
				return v.Str
			}
		}
		return "null"
	}
	switch {
	case schema.Get("properties").IsObject():
		return "object"
	case present(schema.Get("items")):
		return "array"
	}
	return "string"
}

// value appends a value of schema; key is the property it is for.
func (g *argGen) value(schema gjson.Result, key string, depth int) {
	if c := schema.Get("const"); c.Exists() {
		g.b = append(g.b, c.Raw...)
		return
	}
	if enum := schema.Get("enum"); enum.IsArray() {
		if vs := enum.Array(); len(vs) > 0 {
			g.b = append(g.b, vs[g.next()%uint64(len(vs))].Raw...)
			return
		}
	}
	for _, alt := range []string{"anyOf", "oneOf"} {
		if opts := schema.Get(alt); opts.IsArray() {
			for _, o := range opts.Array() {
				if schemaType(o) != "null" {
					g.value(o, key, depth+1)
					return
				}
			}
		}
	}
	if depth > maxSchemaDepth {
		g.b = append(g.b, "null"...)
		return
	}
	switch schemaType(schema) {
	case "object":
		g.object(schema, depth)
	case "array":
		g.array(schema, key, depth)
	case "integer":
		g.b = strconv.AppendInt(g.b, g.integer(schema), 10)
	case "number":
		n := float64(g.integer(schema)) + float64(g.next()%4)/4
		if hi := schema.Get("maximum"); hi.Type == gjson.Number && n > hi.Float() {
			n = hi.Float()
		}
		g.b = strconv.AppendFloat(g.b, n, 'f', -1, 64)
	case "boolean":
		g.b = strconv.AppendBool(g.b, g.next()&1 == 1)
	case "null":
		g.b = append(g.b, "null"...)
	default:
		g.b = appendJSONString(g.b, g.text(schema, key))
	}
}

// object appends an object with every property of schema, in schema order,
// then the required names that have no property schema, as strings.
func (g *argGen) object(schema gjson.Result, depth int) {
	g.b = append(g.b, '{')
	done := make(map[string]bool)
	key := func(name string) {
		if len(done) > 0 {
			g.b = append(g.b, ',')
		}
		done[name] = true
		g.b = appendJSONString(g.b, name)
		g.b = append(g.b, ':')
	}
	schema.Get("properties").ForEach(func(k, v gjson.Result) bool {
		key(k.Str)
		g.value(v, k.Str, depth+1)
		return true
	})
	schema.Get("required").ForEach(func(_, k gjson.Result) bool {
		if k.Type == gjson.String && !done[k.Str] {
			key(k.Str)
			g.b = appendJSONString(g.b, g.text(gjson.Result{}, k.Str))
		}
		return true
	})
	g.b = append(g.b, '}')
}

// array appends one or two items (within minItems and maxItems, at most
// five).
func (g *argGen) array(schema gjson.Result, key string, depth int) {
	n := 1 + int(g.next()%2)
	if lo := schema.Get("minItems"); lo.Type == gjson.Number {
		n = max(n, min(int(lo.Int()), 5))
	}
	if hi := schema.Get("maxItems"); hi.Type == gjson.Number {
		n = min(n, max(int(hi.Int()), 0))
	}
	items := schema.Get("items")
	g.b = append(g.b, '[')
	for i := range n {
		if i > 0 {
			g.b = append(g.b, ',')
		}
		g.value(items, key, depth+1)
	}
	g.b = append(g.b, ']')
}

// integer returns an integer within minimum and maximum, 1 to 20 by
// default.
func (g *argGen) integer(schema gjson.Result) int64 {
	lo := int64(1)
	if v := schema.Get("minimum"); v.Type == gjson.Number {
		lo = v.Int()
	}
	hi := lo + 19
	if v := schema.Get("maximum"); v.Type == gjson.Number {
		hi = v.Int()
	}
	if hi < lo {
		return lo
	}
	return lo + int64(g.next()%uint64(hi-lo+1))
}

// text returns a string value for the property key: one fitting the
// schema's format, or the last word of the key, when they ask for a date, a
// time, an e-mail address, a URL or an ID, else one or two words of the
// prompt.
func (g *argGen) text(schema gjson.Result, key string) string {
	last := ""
	if kw := splitWords(key); len(kw) > 0 {
		last = strings.ToLower(kw[len(kw)-1])
	}
	day := func() string { return "2026-06-" + strconv.Itoa(10+int(g.next()%20)) }
	switch format := schema.Get("format").Str; {
	case format == "date-time" || last == "at" || last == "datetime" || last == "timestamp":
		return day() + "T16:00:00Z"
	case format == "date" || last == "date" || last == "day":
		return day()
	case format == "time" || last == "time":
		return strconv.Itoa(10+int(g.next()%10)) + ":00"
	case format == "email" || last == "email":
		return strings.ToLower(g.word()) + "@example.com"
	case format == "uri" || format == "url" || last == "url" || last == "uri" || last == "link" || last == "website":
		return "https://example.com/" + strings.ToLower(g.word())
	case format == "uuid":
		var b []byte
		b = appendHex64(b, g.next())
		b = appendHex64(b, g.next())
		return formatUUID(string(b))
	case last == "id":
		return strings.ToLower(g.word()) + "-" + strconv.Itoa(100+int(g.next()%900))
	}
	k := int(g.next() % uint64(len(g.words)))
	if k+1 < len(g.words) && g.next()%2 == 0 {
		return g.words[k] + " " + g.words[k+1]
	}
	return g.words[k]
}

// word returns one of g.words.
func (g *argGen) word() string {
	return g.words[g.next()%uint64(len(g.words))]
}

// valueWords returns the words the string arguments of a call to d are
// drawn from: the names in text (capitalized words not starting a
// sentence), else its significant words, else all its words, as written;
// words of d's name are left out while others remain. When text has no
// words, the words of a corpus sentence picked by seed are used.
func valueWords(text string, seed uint64, d *toolDef) []string {
	var names, sig, all []string
	sentenceStart := true
	start := -1
	flush := func(end int) {
		w := text[start:end]
		start = -1
		first := sentenceStart
		sentenceStart = false
		if sw := significantWords(w); len(sw) > 0 && slices.Contains(d.nameWords, sw[0]) {
			return
		}
		all = append(all, w)
		if len(significantWords(w)) == 0 {
			return
		}
		sig = append(sig, w)
		if r, _ := utf8.DecodeRuneInString(w); unicode.IsUpper(r) && !first {
			names = append(names, w)
		}
	}
	for i, r := range text {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			flush(i)
		}
		if r == '.' || r == '!' || r == '?' || r == '\n' {
			sentenceStart = true
		}
	}
	if start >= 0 {
		flush(len(text))
	}
	for _, ws := range [][]string{names, sig, all} {
		if len(ws) > 0 {
			return ws
		}
	}
	return splitWords(sentences[seed%uint64(len(sentences))])
}

// Validation errors about functions, worded like OpenAI's.

func errOnlyWith(param, needs string) *apiError {
	return invalidRequest(param, "", "Invalid value for '"+param+"': '"+param+"' is only allowed when '"+needs+"' are specified.")
}

func errUnsupported(param, got, supported string) *apiError {
	return invalidRequest(param, "invalid_value", "Invalid value: '"+got+"'. Supported values are: "+supported+".")
}

func errNoSuchFunction(param, name, list string) *apiError {
	return invalidRequest(param, "", "Invalid value for '"+param+"': no function named '"+name+"' was specified in the '"+list+"' parameter.")
}

func errArrayTooLong(param string, maximum, got int) *apiError {
	return invalidRequest(param, "array_above_max_length", "Invalid '"+param+"': array too long. Expected an array with maximum length "+itoa(maximum)+
		", but got an array with length "+itoa(got)+" instead.")
}

func errStringTooLong(param string, maximum, got int) *apiError {
	return invalidRequest(param, "string_above_max_length", "Invalid '"+param+"': string too long. Expected a string with maximum length "+itoa(maximum)+
		", but got a string with length "+itoa(got)+" instead.")
}

func errNamePattern(param string) *apiError {
	return invalidRequest(param, "invalid_value", "Invalid '"+param+"': string does not match pattern. Expected a string that matches the "+
		"pattern '^[a-zA-Z0-9_-]+$'.")
}

func errToolWithoutCalls(i int) *apiError {
	// The misspelt "preceding" (sic) is the service's own spelling.
	return invalidRequest("messages.["+itoa(i)+"].role", "",
		"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.") //nolint:misspell // the service's exact message
}

func errUnknownCallID(i int, id string) *apiError {
	return invalidRequest("messages.["+itoa(i)+"].tool_call_id", "",
		"Invalid parameter: 'tool_call_id' of '"+id+"' not found in 'tool_calls' of previous message.")
}

func errUnansweredCalls(i int, ids []string) *apiError {
	return invalidRequest("messages.["+itoa(i)+"].role", "", "An assistant message with 'tool_calls' must be followed by tool messages responding to each "+
		"'tool_call_id'. The following tool_call_ids did not have response messages: "+strings.Join(ids, ", "))
}
