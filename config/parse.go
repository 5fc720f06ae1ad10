package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxWalk bounds the number of YAML nodes visited while checking a
// document, so that alias expansion cannot make parsing explode. Real
// configurations have a few hundred nodes.
const maxWalk = 1 << 16

var durationType = reflect.TypeFor[time.Duration]()

// Load reads the configuration file at path and parses it with Parse,
// using path as the source name in error messages.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes a YAML configuration, applies defaults and the VEIL_*
// environment overrides from the process environment, and validates the
// result. The source names the input in error messages.
//
// Decoding is strict: unknown fields, duplicate fields, values of the
// wrong type and malformed durations are errors. Secret references are
// checked for syntax but not resolved. All errors are *FieldError values,
// several of them joined with errors.Join.
func Parse(data []byte, source string) (*Config, error) {
	return ParseWithEnv(data, source, os.LookupEnv)
}

// ParseWithEnv is Parse with an injectable environment lookup; a nil
// lookup means an empty environment.
func ParseWithEnv(data []byte, source string, lookup func(string) (string, bool)) (*Config, error) {
	c := &Config{source: source, lines: map[string]int{}, envs: map[string]string{}}
	schema, err := c.decode(data)
	if err != nil {
		return nil, err
	}
	c.applyEnv(lookup)
	c.ApplyDefaults()
	if err := c.Validate(); err != nil || len(schema) > 0 {
		return nil, mergeErrors(schema, err)
	}
	return c, nil
}

// decode checks the document against the Config schema, recording the line
// of every field, and then decodes it into c. A document that is not YAML
// is a fatal error; schema errors (unknown fields, values of the wrong
// type) are returned apart, with what could be decoded left in c, so that
// validation can report the document's other mistakes in the same pass.
func (c *Config) decode(data []byte) (schema []error, fatal error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := safeDecode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty document: all defaults
		}
		return nil, c.syntaxError(data, err)
	}
	var extra yaml.Node
	if err := safeDecode(dec, &extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, c.syntaxError(data, err)
		}
		return nil, &FieldError{Source: c.source, Line: extra.Line, Msg: "multiple YAML documents are not supported"}
	}

	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	w := walker{source: c.source, lines: c.lines, budget: maxWalk}
	w.walk(root, reflect.TypeFor[Config](), "")
	if len(w.errs) > 0 {
		// Decode what can be, leniently: the walk has reported the rest.
		_ = safeDecode(yaml.NewDecoder(bytes.NewReader(data)), c)
		return w.errs, nil
	}

	// The walk has already rejected everything the strict decoder would,
	// with better messages; decoding strictly again is a safety net.
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := safeDecode(dec, c); err != nil && !errors.Is(err, io.EOF) {
		return nil, c.yamlError(err)
	}
	return nil, nil
}

// mergeErrors joins a document's schema errors with its validation errors,
// in the order of their lines, leaving out a validation error about a field
// whose value a schema error already refused (it was not decoded, so the
// validator saw a zero value).
func mergeErrors(schema []error, validation error) error {
	all := append([]error(nil), schema...)
	refused := make(map[string]bool, len(schema))
	for _, e := range schema {
		var fe *FieldError
		if errors.As(e, &fe) {
			refused[fe.Field] = true // "": the document itself
		}
	}
	for _, e := range leafErrors(validation) {
		var fe *FieldError
		if errors.As(e, &fe) && len(schema) > 0 && refusedField(refused, fe.Field) {
			continue
		}
		all = append(all, e)
	}
	slices.SortStableFunc(all, func(a, b error) int {
		var fa, fb *FieldError
		errors.As(a, &fa)
		errors.As(b, &fb)
		if fa == nil || fb == nil || fa.Line == 0 || fb.Line == 0 {
			return 0
		}
		return fa.Line - fb.Line
	})
	return errors.Join(all...)
}

// refusedField reports whether field, or a field it lies in or that lies
// in it, is in refused; every field is when the document itself is.
func refusedField(refused map[string]bool, field string) bool {
	if refused[""] {
		return true
	}
	for f := range refused {
		if f == field || strings.HasPrefix(field, f+".") || strings.HasPrefix(field, f+"[") ||
			strings.HasPrefix(f, field+".") || strings.HasPrefix(f, field+"[") {
			return true
		}
	}
	return false
}

// leafErrors flattens joined errors.
func leafErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// syntaxError converts a YAML syntax error into a *FieldError at the line
// where the document stops being YAML. yaml.v3 reports some errors at the
// line where the enclosing block began (an indentation slip on line 4 of a
// list that starts on line 2 is reported at line 1), so the line is found
// again: the first line whose prefix of the document fails to parse with
// the same message.
func (c *Config) syntaxError(data []byte, err error) error {
	out := c.yamlError(err)
	var fe *FieldError
	sm := yamlLine.FindStringSubmatch(err.Error())
	if !errors.As(out, &fe) || sm == nil {
		return out
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxSyntaxScan || len(data) > maxSyntaxScanBytes {
		return out
	}
	end := 0
	for i, l := range lines {
		end += len(l)
		var n yaml.Node
		perr := safeDecode(yaml.NewDecoder(bytes.NewReader(data[:end])), &n)
		if perr == nil || errors.Is(perr, io.EOF) {
			continue
		}
		if m := yamlLine.FindStringSubmatch(perr.Error()); len(m) > 2 && m[2] == sm[2] {
			if i+1 > fe.Line {
				fe.Line = i + 1
				fe.Field = c.fieldAtLine(fe.Line)
				if fe.Field == "" && !strings.HasPrefix(fe.Msg, "invalid YAML: ") {
					fe.Msg = "invalid YAML: " + fe.Msg
				}
			}
			break
		}
	}
	if strings.Contains(fe.Msg, "did not find expected") || strings.Contains(fe.Msg, "cannot start any token") {
		fe.Msg += " (check this line's indentation: spaces, not tabs, lined up with its siblings)"
	}
	return out
}

// maxSyntaxScan and maxSyntaxScanBytes bound the documents whose syntax
// error line is searched for (one parse per line); larger ones keep the
// line yaml.v3 gave.
const (
	maxSyntaxScan      = 2000
	maxSyntaxScanBytes = 256 << 10
)

// safeDecode calls dec.Decode(v), turning a panic into an error. yaml.v3
// converts its own failures to errors; any other panic is a bug in it and
// must not take the process down.
func safeDecode(dec *yaml.Decoder, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: decoder failure: %v", r)
		}
	}()
	return dec.Decode(v)
}

// yamlLine matches the "line N: message" form of yaml.v3 errors.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError converts an error from yaml.v3 into *FieldError values.
func (c *Config) yamlError(err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	errs := make([]error, 0, len(msgs))
	for _, m := range msgs {
		fe := &FieldError{Source: c.source, Msg: "invalid YAML: " + strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			fe.Line, _ = strconv.Atoi(sm[1])
			fe.Field = c.fieldAtLine(fe.Line)
			fe.Msg = sm[2]
			if fe.Field == "" {
				fe.Msg = "invalid YAML: " + fe.Msg
			}
		}
		errs = append(errs, fe)
	}
	return errors.Join(errs...)
}

// fieldAtLine returns the most specific recorded field path on a line.
func (c *Config) fieldAtLine(line int) string {
	best := ""
	for path, l := range c.lines {
		if l == line && (len(path) > len(best) || len(path) == len(best) && path < best) {
			best = path
		}
	}
	return best
}

// applyEnv applies the VEIL_* overrides. Empty values are ignored.
func (c *Config) applyEnv(lookup func(string) (string, bool)) {
	if lookup == nil {
		return
	}
	overrides := []struct {
		env, path string
		dst       *string
	}{
		{EnvProxyListen, "listen.proxy", &c.Listen.Proxy},
		{EnvAdminListen, "listen.admin", &c.Listen.Admin},
		{EnvLogLevel, "log.level", &c.Log.Level},
		{EnvLogFormat, "log.format", &c.Log.Format},
	}
	for _, o := range overrides {
		v, ok := lookup(o.env)
		if !ok || v == "" {
			continue
		}
		*o.dst = v
		c.envs[o.path] = o.env
	}
}

// walker checks a YAML node tree against the Go types of Config: unknown
// and duplicate fields, node kinds and scalar values, and records the line
// of every field it sees.
type walker struct {
	source string
	lines  map[string]int
	errs   []error
	budget int
	// merging holds the merge (<<) values being walked, to stop cycles.
	merging map[*yaml.Node]bool
}

// spend consumes one unit of the walk budget and reports whether the walk
// may continue. The first time the budget runs out it records an error.
func (w *walker) spend(n *yaml.Node) bool {
	w.budget--
	if w.budget == 0 {
		w.errs = append(w.errs, &FieldError{Source: w.source, Line: n.Line, Msg: "document is too large or contains excessive aliasing"})
	}
	return w.budget > 0
}

func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, &FieldError{Source: w.source, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// walk checks n against type t. Errors about n itself are reported at the
// line where n is used, which for an alias is the alias, not its anchor.
func (w *walker) walk(use *yaml.Node, t reflect.Type, path string) {
	n := resolveAlias(use)
	if n == nil {
		return
	}
	if use.Kind == yaml.AliasNode {
		n = withLine(n, use.Line)
	}
	if !w.spend(n) {
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // null leaves the zero value, which selects the default
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem() // an optional value: checked as the value itself
	}
	switch {
	case t == durationType:
		w.duration(n, path)
	case t.Kind() == reflect.Struct:
		w.mapping(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "must be a list, not %s", kindName(n))
			return
		}
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.lines[p] = e.Line
			w.walk(e, t.Elem(), p)
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "must be a string, not %s", kindName(n))
			return
		}
		w.decodes(n, t, path, "must be a string")
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		switch {
		case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" && isDigits(strings.TrimLeft(n.Value, "+-")):
			w.fail(n, path, "integer %s is out of range", n.Value)
		case n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int":
			w.fail(n, path, "must be an integer, not %s", kindName(n))
		default:
			w.decodes(n, t, path, "integer is out of range")
		}
	case t.Kind() == reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
			w.fail(n, path, "must be a number, not %s", kindName(n))
		}
	case t.Kind() == reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			w.fail(n, path, "must be true or false, not %s", kindName(n))
		}
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "must be a mapping, not %s", kindName(n))
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path + "." + k.Value
			if seen[k.Value] {
				w.fail(k, p, "duplicate key %q", k.Value)
				continue
			}
			seen[k.Value] = true
			w.lines[p] = k.Line
			w.walk(v, t.Elem(), p)
		}
	default:
		// Only reachable if a field of an unsupported type is added to Config.
		w.fail(n, path, "unsupported field type %s", t)
	}
}

// decodes records an error with msg unless yaml.v3 can decode the scalar n
// into a value of type t.
func (w *walker) decodes(n *yaml.Node, t reflect.Type, path, msg string) {
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		w.fail(n, path, "%s", msg)
	}
}

func (w *walker) duration(n *yaml.Node, path string) {
	const hint = `use a Go duration such as "30s", "1m30s" or "10m"`
	switch {
	case n.Kind != yaml.ScalarNode:
		w.fail(n, path, "must be a duration, not %s: %s", kindName(n), hint)
	case n.ShortTag() == "!!int" || n.ShortTag() == "!!float":
		w.fail(n, path, "duration %s has no unit: %s", n.Value, hint)
	default:
		if _, err := time.ParseDuration(n.Value); err != nil {
			w.fail(n, path, "invalid duration %q: %s", n.Value, hint)
		}
	}
}

func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "must be a mapping, not %s", kindName(n))
		return
	}
	fields := yamlFields(t)
	seen := map[string]int{}
	w.pairs(n, t, path, fields, seen, 0)
}

// pairs walks the key/value pairs of the mapping n, following merge keys
// ("<<") up to a small depth.
func (w *walker) pairs(n *yaml.Node, t reflect.Type, path string, fields map[string]reflect.Type, seen map[string]int, depth int) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !w.spend(n) {
			return
		}
		k, v := resolveAlias(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			w.merge(v, t, path, fields, seen, depth)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.fail(k, path, "field names must be strings, not %s", kindName(k))
			continue
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		ft, ok := fields[k.Value]
		if !ok {
			w.fail(k, p, "unknown field; valid fields of %s are: %s", describe(path), strings.Join(sortedKeys(fields), ", "))
			continue
		}
		if depth == 0 {
			if first, dup := seen[k.Value]; dup {
				w.fail(k, p, "duplicate field, first set on line %d", first)
				continue
			}
			seen[k.Value] = k.Line
			w.lines[p] = k.Line
		} else if _, explicit := seen[k.Value]; explicit {
			continue // explicit keys override merged ones
		} else if _, ok := w.lines[p]; !ok {
			w.lines[p] = k.Line
		}
		w.walk(v, ft, p)
	}
}

func (w *walker) merge(v *yaml.Node, t reflect.Type, path string, fields map[string]reflect.Type, seen map[string]int, depth int) {
	v = resolveAlias(v)
	if v == nil || depth >= 8 || w.merging[v] {
		return // a mapping that merges itself is reported by the decoder
	}
	if w.merging == nil {
		w.merging = map[*yaml.Node]bool{}
	}
	w.merging[v] = true
	defer delete(w.merging, v)
	switch v.Kind {
	case yaml.MappingNode:
		w.pairs(v, t, path, fields, seen, depth+1)
	case yaml.SequenceNode:
		for _, e := range v.Content {
			if e = resolveAlias(e); e != nil && e.Kind == yaml.MappingNode {
				w.pairs(e, t, path, fields, seen, depth+1)
			} else if e != nil {
				w.fail(e, path, "merge (<<) value must be a mapping or a list of mappings")
			}
		}
	default:
		w.fail(v, path, "merge (<<) value must be a mapping or a list of mappings")
	}
}

// withLine returns a shallow copy of n reporting the given line, so that
// errors about an aliased node point at the alias.
func withLine(n *yaml.Node, line int) *yaml.Node {
	c := *n
	c.Line = line
	return &c
}

// resolveAlias follows alias nodes to the node they refer to.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 64 {
			return nil
		}
		n = n.Alias
	}
	return n
}

// yamlFields maps the YAML names of the exported fields of struct type t
// to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func describe(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
	}
	return "an invalid node"
}
