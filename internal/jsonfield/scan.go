// Package jsonfield reads top-level fields of JSON request bodies without
// decoding them.
//
// The scanner validates the JSON structure as it goes (strings and their
// escapes, numbers, literals, nested objects and arrays) and hands out raw
// value bytes that alias the input, so reading a few fields of a large body
// costs one pass and no allocations. It accepts exactly the documents that
// encoding/json accepts, except that nesting deeper than MaxDepth is rejected.
// Like encoding/json, it does not validate UTF-8 inside strings.
package jsonfield

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"strconv"
)

// MaxDepth is the deepest nesting of objects and arrays that the scanner
// accepts. The top-level object counts as depth 1.
const MaxDepth = 128

// ErrTooDeep is returned when the input nests objects and arrays deeper than
// MaxDepth.
var ErrTooDeep = errors.New("jsonfield: nesting exceeds maximum depth")

// ErrNotObject is returned when the top-level JSON value is not an object.
var ErrNotObject = errors.New("jsonfield: top-level value is not an object")

// SyntaxError reports malformed JSON and the byte offset at which the scanner
// noticed it.
type SyntaxError struct {
	// Offset is the byte offset in the input of the offending byte, or the
	// length of the input when it ended too early.
	Offset int
	// Msg describes the problem.
	Msg string
}

// Error implements the error interface.
func (e *SyntaxError) Error() string {
	return "jsonfield: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

func syntaxErr(off int, msg string) error {
	return &SyntaxError{Offset: off, Msg: msg}
}

func unexpectedEnd(b []byte) error {
	return syntaxErr(len(b), "unexpected end of input")
}

func unexpectedByte(b []byte, i int, context string) error {
	if i >= len(b) {
		return unexpectedEnd(b)
	}
	return syntaxErr(i, "invalid character "+strconv.QuoteRune(rune(b[i]))+" "+context)
}

// Each calls fn for every top-level member of the JSON object in body, in
// document order, including duplicate keys. key is the raw key, still escaped
// and without its quotes; value is the exact JSON text of the value. Both
// alias body.
//
// Each validates the whole document and returns an error for malformed JSON,
// nesting deeper than MaxDepth or a top-level value that is not an object.
// When fn returns false, Each stops and returns nil without looking at the
// rest of body.
func Each(body []byte, fn func(key, value []byte) bool) error {
	var s objectScanner
	if err := s.begin(body, 0); err != nil {
		return err
	}
	for {
		key, value, ok, err := s.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if !fn(key, value) {
			return nil
		}
	}
}

// Get returns the raw JSON value at a path of object keys, for example
// Get(body, "usage", "prompt_tokens"). Keys are matched after unescaping and,
// as with encoding/json, the last of duplicate keys wins.
//
// The whole of body is validated as by Each. ok is false, with a nil error,
// when a key is missing or a value along the path is not an object. An empty
// path returns the top-level object.
func Get(body []byte, path ...string) (value []byte, ok bool, err error) {
	var s objectScanner
	if err := s.begin(body, 0); err != nil {
		return nil, false, err
	}
	if len(path) == 0 {
		for {
			_, _, more, err := s.next()
			if err != nil {
				return nil, false, err
			}
			if !more {
				break
			}
		}
		return body[s.start:s.end], true, nil
	}
	// The first level validates the whole document; deeper levels scan
	// values that were validated already.
	for depth := 0; ; depth++ {
		key := path[depth]
		var found []byte
		for {
			k, v, more, err := s.next()
			if err != nil {
				return nil, false, err
			}
			if !more {
				break
			}
			if keyEquals(k, key) {
				found = v
			}
		}
		if found == nil {
			return nil, false, nil
		}
		if depth == len(path)-1 {
			return found, true, nil
		}
		if found[0] != '{' {
			return nil, false, nil
		}
		if err := s.begin(found, depth+1); err != nil {
			return nil, false, err
		}
	}
}

// objectScanner iterates over the members of one JSON object.
type objectScanner struct {
	b     []byte
	i     int
	depth int // containers enclosing the object's values, the object included
	start int // offset of the opening brace
	end   int // offset just past the closing brace, once seen
	first bool
	done  bool
}

// begin starts scanning the object that makes up b, which may be surrounded by
// whitespace; outer is the number of containers enclosing it.
func (s *objectScanner) begin(b []byte, outer int) error {
	*s = objectScanner{b: b, depth: outer + 1, first: true}
	i := skipSpace(b, 0)
	if i >= len(b) {
		return unexpectedEnd(b)
	}
	if b[i] != '{' {
		if _, err := scanValue(b, i, outer); err != nil {
			return err
		}
		return ErrNotObject
	}
	if s.depth > MaxDepth {
		return ErrTooDeep
	}
	s.start = i
	s.i = i + 1
	return nil
}

// next returns the next member; ok is false after the closing brace, once
// the rest of the input has been checked to be whitespace.
func (s *objectScanner) next() (key, value []byte, ok bool, err error) {
	if s.done {
		return nil, nil, false, nil
	}
	b := s.b
	i := skipSpace(b, s.i)
	if i >= len(b) {
		return nil, nil, false, unexpectedEnd(b)
	}
	if s.first {
		s.first = false
		if b[i] == '}' {
			return nil, nil, false, s.finish(i + 1)
		}
	} else {
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return nil, nil, false, s.finish(i + 1)
		default:
			return nil, nil, false, unexpectedByte(b, i, "after object member")
		}
	}
	if i >= len(b) {
		return nil, nil, false, unexpectedEnd(b)
	}
	if b[i] != '"' {
		return nil, nil, false, unexpectedByte(b, i, "looking for object key")
	}
	keyEnd, err := scanString(b, i)
	if err != nil {
		return nil, nil, false, err
	}
	key = b[i+1 : keyEnd-1]
	i = skipSpace(b, keyEnd)
	if i >= len(b) || b[i] != ':' {
		return nil, nil, false, unexpectedByte(b, i, "after object key")
	}
	i = skipSpace(b, i+1)
	valueEnd, err := scanValue(b, i, s.depth)
	if err != nil {
		return nil, nil, false, err
	}
	s.i = valueEnd
	return key, b[i:valueEnd], true, nil
}

func (s *objectScanner) finish(end int) error {
	s.done = true
	s.end = end
	if i := skipSpace(s.b, end); i < len(s.b) {
		return unexpectedByte(s.b, i, "after top-level value")
	}
	return nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t'
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanValue returns the offset just past the JSON value that starts at b[i];
// depth is the number of containers enclosing the value.
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, unexpectedEnd(b)
	}
	switch c := b[i]; c {
	case '"':
		return scanString(b, i)
	case '{', '[':
		return scanContainer(b, i, depth)
	case 't':
		return scanLiteral(b, i, "true")
	case 'f':
		return scanLiteral(b, i, "false")
	case 'n':
		return scanLiteral(b, i, "null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return scanNumber(b, i)
		}
		return 0, unexpectedByte(b, i, "looking for beginning of value")
	}
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	for j := 0; j < len(lit); j++ {
		if i+j >= len(b) {
			return 0, unexpectedEnd(b)
		}
		if b[i+j] != lit[j] {
			return 0, unexpectedByte(b, i+j, "in literal "+lit)
		}
	}
	return i + len(lit), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber returns the end of the number that starts at b[i], following the
// JSON grammar: -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?.
func scanNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
		if i >= len(b) {
			return 0, unexpectedEnd(b)
		}
	}
	switch {
	case b[i] == '0':
		i++
	case isDigit(b[i]):
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return 0, unexpectedByte(b, i, "in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		var err error
		if i, err = scanDigits(b, i+1, "after decimal point in numeric literal"); err != nil {
			return 0, err
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		return scanDigits(b, i, "in exponent of numeric literal")
	}
	return i, nil
}

// scanDigits returns the end of the one or more digits that must start at
// b[i]; where describes the place for the error when there are none.
func scanDigits(b []byte, i int, where string) (int, error) {
	if i >= len(b) {
		return 0, unexpectedEnd(b)
	}
	if !isDigit(b[i]) {
		return 0, unexpectedByte(b, i, where)
	}
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i, nil
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// specialMask has the high bit set in the byte lane of the first '"', '\\'
// or control character of x (little endian), and possibly in lanes above it.
// The lowest set bit is exact: borrows only propagate upwards.
func specialMask(x uint64) uint64 {
	q := x ^ (lsb * '"')
	s := x ^ (lsb * '\\')
	return ((q-lsb)&^q | (s-lsb)&^s | (x - lsb*0x20)) &^ x & msb
}

// scanString returns the offset just past the string that starts with the
// quote at b[i].
func scanString(b []byte, i int) (int, error) {
	i++
	for {
		for i+8 <= len(b) {
			m := specialMask(binary.LittleEndian.Uint64(b[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return 0, unexpectedEnd(b)
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			n, err := scanEscape(b, i)
			if err != nil {
				return 0, err
			}
			i += n
		case c < 0x20:
			return 0, unexpectedByte(b, i, "in string literal")
		default:
			i++
		}
	}
}

// scanEscape checks the escape sequence at b[i] and returns its length.
func scanEscape(b []byte, i int) (int, error) {
	if i+1 >= len(b) {
		return 0, unexpectedEnd(b)
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		for j := i + 2; j < i+6; j++ {
			if j >= len(b) {
				return 0, unexpectedEnd(b)
			}
			if hexVal(b[j]) < 0 {
				return 0, unexpectedByte(b, j, "in \\u hexadecimal character escape")
			}
		}
		return 6, nil
	default:
		return 0, unexpectedByte(b, i+1, "in string escape code")
	}
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// scanContainer returns the offset just past the object or array that starts
// at b[i]; depth is the number of containers enclosing it. It works without
// recursion, keeping the kinds of the open containers in a bit set.
func scanContainer(b []byte, i, depth int) (int, error) {
	var objects [(MaxDepth + 63) / 64]uint64
	n := 0 // containers opened by this call and not yet closed
	for {
		// b[i] opens a container.
		if depth+n+1 > MaxDepth {
			return 0, ErrTooDeep
		}
		if b[i] == '{' {
			objects[n>>6] |= 1 << (n & 63)
		} else {
			objects[n>>6] &^= 1 << (n & 63)
		}
		n++
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return 0, unexpectedEnd(b)
		}
		needElem := true
		if b[i] == '}' || b[i] == ']' {
			if (b[i] == '}') != (objects[(n-1)>>6]&(1<<((n-1)&63)) != 0) {
				return 0, unexpectedByte(b, i, "looking for beginning of value")
			}
			i++
			n--
			if n == 0 {
				return i, nil
			}
			needElem = false
		}
		for {
			isObj := objects[(n-1)>>6]&(1<<((n-1)&63)) != 0
			if needElem {
				if isObj {
					if b[i] != '"' {
						return 0, unexpectedByte(b, i, "looking for object key")
					}
					end, err := scanString(b, i)
					if err != nil {
						return 0, err
					}
					i = skipSpace(b, end)
					if i >= len(b) || b[i] != ':' {
						return 0, unexpectedByte(b, i, "after object key")
					}
					i = skipSpace(b, i+1)
					if i >= len(b) {
						return 0, unexpectedEnd(b)
					}
				}
				if c := b[i]; c == '{' || c == '[' {
					break // open the nested container
				}
				end, err := scanValue(b, i, depth+n)
				if err != nil {
					return 0, err
				}
				i = end
			}
			// After a value: a separator or a closing bracket.
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, unexpectedEnd(b)
			}
			switch c := b[i]; {
			case c == ',':
				i = skipSpace(b, i+1)
				if i >= len(b) {
					return 0, unexpectedEnd(b)
				}
				needElem = true
			case (isObj && c == '}') || (!isObj && c == ']'):
				i++
				n--
				if n == 0 {
					return i, nil
				}
				needElem = false
			case isObj:
				return 0, unexpectedByte(b, i, "after object member")
			default:
				return 0, unexpectedByte(b, i, "after array element")
			}
		}
	}
}
