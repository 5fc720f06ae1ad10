package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Key identifies a cached answer: the SHA-256 of a scope and the canonical
// form of a request body.
type Key [32]byte

var _ fmt.Stringer = Key{}

// String returns the key in lowercase hexadecimal.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// IgnoredFields are the top-level request fields that do not change the
// answer and so are left out of the key: user only labels the end user,
// stream and stream_options only choose how the answer is delivered (the
// cache converts between streamed and plain answers). Fields with side
// effects or that change the answer's shape, such as store, metadata or
// service_tier, stay in the key. NewKey reads the list on every call; it
// must not be modified while keys are being computed.
var IgnoredFields = []string{"user", "stream", "stream_options"}

var (
	// ErrInvalidJSON is returned by NewKey for a body that is not valid
	// JSON (including strings that are not valid UTF-8).
	ErrInvalidJSON = errors.New("cache: invalid json")
	// ErrDuplicateKey is returned by NewKey for a body with an object that
	// has the same key twice, whose meaning is ambiguous.
	ErrDuplicateKey = errors.New("cache: duplicate object key")
	// ErrNotObject is returned by NewKey for a body whose top-level value
	// is not a JSON object.
	ErrNotObject = errors.New("cache: request body is not a json object")
	// ErrTooDeep is returned by NewKey for a body nested more than
	// MaxDepth levels deep.
	ErrTooDeep = errors.New("cache: json nested too deep")
)

// MaxDepth is the deepest nesting of arrays and objects that NewKey accepts.
const MaxDepth = 1000

// keyDomain separates veil cache keys from other SHA-256 uses and versions
// the canonical form: change it whenever the canonical form changes.
const keyDomain = "veil/cache/key/v1\x00"

// maxPooledBuffer is the largest buffer a pooled canonicaliser keeps, so that
// one huge body does not pin its memory.
const maxPooledBuffer = 1 << 20

// NewKey returns the key of a request body within a scope.
//
// The key is the SHA-256 of the length-prefixed scope and the canonical form
// of body, so different scopes never share keys (tenant isolation: the scope
// is the supplier ID by default, and a platform-wide scope only where the
// configuration allows sharing). In the canonical form object keys are sorted
// by their unescaped value, insignificant whitespace is removed, strings use
// one escaping (so "\u0041" equals "A"), numbers are normalised exactly (1,
// 1.0, 1e0 and 10e-1 are equal, -0 equals 0, and integers of any size stay
// distinct), arrays keep their order, and the top-level IgnoredFields are
// left out. NewKey returns an error wrapping ErrInvalidJSON, ErrNotObject,
// ErrDuplicateKey or ErrTooDeep when body cannot be canonicalised; such a
// request should not be cached.
func NewKey(scope string, body []byte) (Key, error) {
	c := canonPool.Get().(*canon)
	defer c.release()
	c.out = append(c.out[:0], keyDomain...)
	c.out = binary.BigEndian.AppendUint64(c.out, uint64(len(scope)))
	c.out = append(c.out, scope...)
	if err := c.canonicalise(body); err != nil {
		return Key{}, err
	}
	return sha256.Sum256(c.out), nil
}

// Canonical appends the canonical form of body, as NewKey hashes it, to dst.
// It is meant for debugging and tests.
func Canonical(dst, body []byte) ([]byte, error) {
	c := canonPool.Get().(*canon)
	defer c.release()
	c.out = c.out[:0]
	if err := c.canonicalise(body); err != nil {
		return dst, err
	}
	return append(dst, c.out...), nil
}

var canonPool = sync.Pool{New: func() any {
	return &canon{
		out:     make([]byte, 0, 4096),
		arena:   make([]byte, 0, 512),
		scratch: make([]byte, 0, 4096),
		members: make([]member, 0, 64),
	}
}}

// canon is a canonicaliser. It writes the canonical form of src to out in
// one pass; each object's members are written in source order and then, if
// needed, reordered in place through scratch. The members of all open
// objects share one stack (members) and their unescaped keys share one
// arena, so that nesting costs no allocations.
type canon struct {
	src     []byte
	i       int
	depth   int
	out     []byte
	arena   []byte
	scratch []byte
	members []member
}

// member is one object member: its unescaped key in arena and its canonical
// "key":value in out.
type member struct {
	keyStart, keyEnd int
	outStart, outEnd int
	ignored          bool
}

func (c *canon) release() {
	c.src = nil
	if cap(c.out) > maxPooledBuffer || cap(c.scratch) > maxPooledBuffer || cap(c.arena) > maxPooledBuffer {
		return
	}
	c.arena, c.scratch, c.members = c.arena[:0], c.scratch[:0], c.members[:0]
	canonPool.Put(c)
}

func (c *canon) canonicalise(body []byte) error {
	c.src, c.i, c.depth = body, 0, 0
	c.arena, c.members = c.arena[:0], c.members[:0]
	c.skipSpace()
	if c.i >= len(c.src) {
		return c.errorf(ErrInvalidJSON, "empty body")
	}
	if c.src[c.i] != '{' {
		return ErrNotObject
	}
	if err := c.object(true); err != nil {
		return err
	}
	c.skipSpace()
	if c.i != len(c.src) {
		return c.errorf(ErrInvalidJSON, "data after the top-level value")
	}
	return nil
}

func (c *canon) errorf(kind error, what string) error {
	return fmt.Errorf("%w: %s at offset %d", kind, what, c.i)
}

func (c *canon) skipSpace() {
	for c.i < len(c.src) {
		switch c.src[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *canon) value() error {
	c.skipSpace()
	if c.i >= len(c.src) {
		return c.errorf(ErrInvalidJSON, "unexpected end of input")
	}
	switch b := c.src[c.i]; {
	case b == '{':
		return c.object(false)
	case b == '[':
		return c.array()
	case b == '"':
		return c.str(false)
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	default:
		return c.errorf(ErrInvalidJSON, "unexpected character")
	}
}

func (c *canon) literal(lit string) error {
	if !bytes.HasPrefix(c.src[c.i:], []byte(lit)) {
		return c.errorf(ErrInvalidJSON, "invalid literal")
	}
	c.out = append(c.out, lit...)
	c.i += len(lit)
	return nil
}

func (c *canon) enter() error {
	c.depth++
	if c.depth > MaxDepth {
		return c.errorf(ErrTooDeep, "nesting limit reached")
	}
	return nil
}

// open enters the array or object whose opening bracket is at c.i,
// copying the bracket. When the container is empty, that is end follows,
// it copies end too, leaves the container and reports done.
func (c *canon) open(end byte) (done bool, err error) {
	if err := c.enter(); err != nil {
		return false, err
	}
	c.out = append(c.out, c.src[c.i])
	c.i++
	c.skipSpace()
	if c.i < len(c.src) && c.src[c.i] == end {
		c.leave()
		return true, nil
	}
	return false, nil
}

// leave copies the closing bracket at c.i and leaves its container.
func (c *canon) leave() {
	c.out = append(c.out, c.src[c.i])
	c.i++
	c.depth--
}

func (c *canon) array() error {
	if done, err := c.open(']'); done || err != nil {
		return err
	}
	for {
		if err := c.value(); err != nil {
			return err
		}
		c.skipSpace()
		if c.i >= len(c.src) {
			return c.errorf(ErrInvalidJSON, "unterminated array")
		}
		switch c.src[c.i] {
		case ',':
			c.i++
			c.out = append(c.out, ',')
		case ']':
			c.leave()
			return nil
		default:
			return c.errorf(ErrInvalidJSON, "expected ',' or ']'")
		}
	}
}

func (c *canon) object(top bool) error {
	if done, err := c.open('}'); done || err != nil {
		return err
	}
	base, arenaBase, contentStart := len(c.members), len(c.arena), len(c.out)
	kept := 0
	for {
		c.skipSpace()
		if c.i >= len(c.src) || c.src[c.i] != '"' {
			return c.errorf(ErrInvalidJSON, "expected object key")
		}
		before := len(c.out)
		if kept > 0 {
			c.out = append(c.out, ',')
		}
		m := member{keyStart: len(c.arena), outStart: len(c.out)}
		if err := c.str(true); err != nil {
			return err
		}
		m.keyEnd = len(c.arena)
		c.skipSpace()
		if c.i >= len(c.src) || c.src[c.i] != ':' {
			return c.errorf(ErrInvalidJSON, "expected ':'")
		}
		c.i++
		c.out = append(c.out, ':')
		if err := c.value(); err != nil {
			return err
		}
		m.outEnd = len(c.out)
		if top && isIgnored(c.arena[m.keyStart:m.keyEnd]) {
			m.ignored = true
			c.out = c.out[:before]
		} else {
			kept++
		}
		c.members = append(c.members, m)
		c.skipSpace()
		if c.i >= len(c.src) {
			return c.errorf(ErrInvalidJSON, "unterminated object")
		}
		if c.src[c.i] == ',' {
			c.i++
			continue
		}
		if c.src[c.i] != '}' {
			return c.errorf(ErrInvalidJSON, "expected ',' or '}'")
		}
		c.i++
		break
	}
	if err := c.sortMembers(c.members[base:], contentStart); err != nil {
		return err
	}
	c.out = append(c.out, '}')
	c.members, c.arena = c.members[:base], c.arena[:arenaBase]
	c.depth--
	return nil
}

// sortMembers sorts ms by key, rejects duplicate keys and, unless the members
// already are in key order, rewrites out[contentStart:] in key order.
func (c *canon) sortMembers(ms []member, contentStart int) error {
	arena := c.arena
	slices.SortFunc(ms, func(a, b member) int {
		return bytes.Compare(arena[a.keyStart:a.keyEnd], arena[b.keyStart:b.keyEnd])
	})
	inOrder, last := true, -1
	for i, m := range ms {
		if i > 0 && bytes.Equal(arena[m.keyStart:m.keyEnd], arena[ms[i-1].keyStart:ms[i-1].keyEnd]) {
			return fmt.Errorf("%w: %q", ErrDuplicateKey, arena[m.keyStart:m.keyEnd])
		}
		if m.ignored {
			continue
		}
		if m.outStart < last {
			inOrder = false
		}
		last = m.outStart
	}
	if inOrder {
		return nil
	}
	c.scratch = append(c.scratch[:0], c.out[contentStart:]...)
	c.out = c.out[:contentStart]
	first := true
	for _, m := range ms {
		if m.ignored {
			continue
		}
		if !first {
			c.out = append(c.out, ',')
		}
		first = false
		c.out = append(c.out, c.scratch[m.outStart-contentStart:m.outEnd-contentStart]...)
	}
	return nil
}

func isIgnored(key []byte) bool {
	for _, f := range IgnoredFields {
		if string(key) == f {
			return true
		}
	}
	return false
}

// str writes the canonical form of the string at c.src[c.i]; when key is
// true it also appends the string's unescaped value to the arena.
//
// The canonical form escapes '"' and '\\', uses \b, \f, \n, \r and \t, and
// \u00xx for the other control characters, keeps every other valid character
// as UTF-8, and writes a lone surrogate escape as \udxxx in lowercase.
func (c *canon) str(key bool) error {
	src := c.src
	i := c.i + 1
	c.out = append(c.out, '"')
	for {
		j := i
		for j < len(src) && plain[src[j]] {
			j++
		}
		c.out = append(c.out, src[i:j]...)
		if key {
			c.arena = append(c.arena, src[i:j]...)
		}
		i = j
		if i >= len(src) {
			c.i = i
			return c.errorf(ErrInvalidJSON, "unterminated string")
		}
		switch b := src[i]; {
		case b == '"':
			c.out = append(c.out, '"')
			c.i = i + 1
			return nil
		case b < 0x20:
			c.i = i
			return c.errorf(ErrInvalidJSON, "control character in string")
		case b >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 {
				c.i = i
				return c.errorf(ErrInvalidJSON, "invalid utf-8 in string")
			}
			c.out = append(c.out, src[i:i+size]...)
			if key {
				c.arena = append(c.arena, src[i:i+size]...)
			}
			i += size
		default: // '\\'
			r, n, ok := unescape(src[i:])
			if !ok {
				c.i = i
				return c.errorf(ErrInvalidJSON, "invalid escape in string")
			}
			i += n
			c.appendRune(r, key)
		}
	}
}

// unescape decodes the escape sequence at the start of b, joining a UTF-16
// surrogate pair. It returns the rune (a lone surrogate is returned as is),
// the length of the sequence and whether it was valid.
func unescape(b []byte) (rune, int, bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	switch b[1] {
	case '"', '\\', '/':
		return rune(b[1]), 2, true
	case 'b':
		return '\b', 2, true
	case 'f':
		return '\f', 2, true
	case 'n':
		return '\n', 2, true
	case 'r':
		return '\r', 2, true
	case 't':
		return '\t', 2, true
	case 'u':
		r, ok := hex4(b[2:])
		if !ok {
			return 0, 0, false
		}
		if utf16.IsSurrogate(r) && r < 0xdc00 && len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
			if r2, ok := hex4(b[8:]); ok && r2 >= 0xdc00 && r2 < 0xe000 {
				return utf16.DecodeRune(r, r2), 12, true
			}
		}
		return r, 6, true
	default:
		return 0, 0, false
	}
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, h := range b[:4] {
		switch {
		case h >= '0' && h <= '9':
			h -= '0'
		case h >= 'a' && h <= 'f':
			h -= 'a' - 10
		case h >= 'A' && h <= 'F':
			h -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// plain marks the bytes that a string's canonical form keeps as they are
// without further checks: printable ASCII other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// shortEscapes maps the runes that JSON escapes with a backslash and one
// letter to that letter.
var shortEscapes = [...]byte{'"': '"', '\\': '\\', '\b': 'b', '\f': 'f', '\n': 'n', '\r': 'r', '\t': 't'}

// appendRune writes the canonical form of an unescaped rune.
func (c *canon) appendRune(r rune, key bool) {
	switch {
	case r >= 0 && r < rune(len(shortEscapes)) && shortEscapes[r] != 0:
		c.out = append(c.out, '\\', shortEscapes[r])
	case r < 0x20 || utf16.IsSurrogate(r):
		c.out = append(c.out, '\\', 'u',
			hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	default:
		c.out = utf8.AppendRune(c.out, r)
	}
	if !key {
		return
	}
	if utf16.IsSurrogate(r) {
		// WTF-8: never valid UTF-8, so a lone surrogate cannot equal
		// any other key.
		c.arena = append(c.arena, 0xed, byte(0x80|(r>>6)&0x3f), byte(0x80|r&0x3f))
		return
	}
	c.arena = utf8.AppendRune(c.arena, r)
}

// number writes the canonical form of the number at c.src[c.i]: an optional
// '-', the significant digits without leading or trailing zeros, and 'e' and
// a decimal exponent unless it is zero; zero is "0".
func (c *canon) number() error {
	p, end, ok := scanNumber(c.src, c.i)
	if !ok {
		c.i = end
		return c.errorf(ErrInvalidJSON, "invalid number")
	}
	c.i = end
	start := len(c.out)
	if p.neg {
		c.out = append(c.out, '-')
	}
	digitsStart := len(c.out)
	c.out = append(c.out, c.src[p.intStart:p.intEnd]...)
	c.out = append(c.out, c.src[p.fracStart:p.fracEnd]...)
	digits := c.out[digitsStart:]
	lead := 0
	for lead < len(digits) && digits[lead] == '0' {
		lead++
	}
	if lead == len(digits) {
		c.out = append(c.out[:start], '0')
		return nil
	}
	trail := 0
	for digits[len(digits)-1-trail] == '0' {
		trail++
	}
	n := copy(digits, digits[lead:len(digits)-trail])
	c.out = c.out[:digitsStart+n]

	// The value is digits × 10^(exp − len(frac) + trail).
	shift := int64(trail) - int64(p.fracEnd-p.fracStart)
	expDigits := c.src[p.expStart:p.expEnd]
	for len(expDigits) > 0 && expDigits[0] == '0' {
		expDigits = expDigits[1:]
	}
	if len(expDigits) <= 18 {
		var exp int64
		for _, d := range expDigits {
			exp = exp*10 + int64(d-'0')
		}
		if p.expNeg {
			exp = -exp
		}
		if exp += shift; exp != 0 {
			c.out = strconv.AppendInt(append(c.out, 'e'), exp, 10)
		}
		return nil
	}
	// A huge exponent: exact arithmetic, rarely needed.
	var exp big.Int
	exp.SetString(string(expDigits), 10)
	if p.expNeg {
		exp.Neg(&exp)
	}
	exp.Add(&exp, big.NewInt(shift))
	if exp.Sign() != 0 {
		c.out = exp.Append(append(c.out, 'e'), 10)
	}
	return nil
}
