package jsonfield

import (
	"bytes"
	"errors"
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

var (
	errNotString  = errors.New("jsonfield: value is not a string")
	errNotBool    = errors.New("jsonfield: value is not a boolean")
	errNotNumber  = errors.New("jsonfield: value is not a number")
	errNotInteger = errors.New("jsonfield: number is not an integer")
	errRange      = errors.New("jsonfield: integer out of range")
)

// String returns the contents of the raw JSON string raw, unescaped. It
// decodes exactly as encoding/json does: \uXXXX escapes including surrogate
// pairs, with invalid surrogates and invalid UTF-8 replaced by U+FFFD.
//
// When raw has no escapes and is valid UTF-8, the result is a subslice of raw
// and String does not allocate.
func String(raw []byte) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, errNotString
	}
	end, err := scanString(raw, 0)
	if err != nil {
		return nil, err
	}
	if end != len(raw) {
		return nil, errNotString
	}
	s := raw[1 : len(raw)-1]
	if !needsUnescape(s) {
		return s, nil
	}
	return appendUnescaped(make([]byte, 0, len(s)+4), s), nil
}

// needsUnescape reports whether the contents of a valid JSON string differ
// from their decoded form: they hold an escape or invalid UTF-8.
func needsUnescape(s []byte) bool {
	return bytes.IndexByte(s, '\\') >= 0 || !utf8.Valid(s)
}

// decodeAt decodes the character at s[i] of the contents s of a valid JSON
// string, as encoding/json does, and returns it with the index after it.
func decodeAt(s []byte, i int) (rune, int) {
	c := s[i]
	if c >= utf8.RuneSelf {
		r, size := utf8.DecodeRune(s[i:])
		return r, i + size
	}
	if c != '\\' {
		return rune(c), i + 1
	}
	switch s[i+1] {
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	case 'u':
		r := rune(hex4(s[i+2:]))
		i += 6
		if !utf16.IsSurrogate(r) {
			return r, i
		}
		if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
			if d := utf16.DecodeRune(r, rune(hex4(s[i+2:]))); d != utf8.RuneError {
				return d, i + 6
			}
		}
		return utf8.RuneError, i
	default: // '"', '\\', '/'
		return rune(s[i+1]), i + 2
	}
}

// appendUnescaped appends the decoded form of the contents s of a valid JSON
// string to dst.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf && c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		var r rune
		r, i = decodeAt(s, i)
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

// unescapeInto decodes the contents s of a valid JSON string into buf. It
// reports false when the result does not fit.
func unescapeInto(buf []byte, s []byte) ([]byte, bool) {
	n := 0
	for i := 0; i < len(s); {
		var r rune
		r, i = decodeAt(s, i)
		if n+utf8.RuneLen(r) > len(buf) {
			return nil, false
		}
		n += utf8.EncodeRune(buf[n:], r)
	}
	return buf[:n], true
}

func hex4(b []byte) int {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

// keyEquals reports whether the raw (escaped) key contents equal name once
// decoded.
func keyEquals(raw []byte, name string) bool {
	if string(raw) == name {
		return !needsUnescape(raw)
	}
	if !needsUnescape(raw) {
		return false
	}
	var enc [utf8.UTFMax]byte
	j := 0
	for i := 0; i < len(raw); {
		var r rune
		r, i = decodeAt(raw, i)
		n := utf8.EncodeRune(enc[:], r)
		if j+n > len(name) || string(enc[:n]) != name[j:j+n] {
			return false
		}
		j += n
	}
	return j == len(name)
}

// Bool returns the value of the raw JSON literal true or false.
func Bool(raw []byte) (bool, error) {
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errNotBool
}

// Int returns the value of the raw JSON number raw when it is an integer that
// fits in an int64. Exponents and fractions are accepted as long as the value
// is integral, so 1e3, 1.0 and 2.50e1 are 1000, 1 and 25; 1.5 and 1e-1 are
// errors.
func Int(raw []byte) (int64, error) {
	if len(raw) == 0 {
		return 0, errNotNumber
	}
	if end, err := scanNumber(raw, 0); err != nil || end != len(raw) {
		return 0, errNotNumber
	}
	i := 0
	neg := raw[0] == '-'
	if neg {
		i++
	}
	// Fast path: plain integers.
	var u uint64
	j := i
	for ; j < len(raw) && isDigit(raw[j]); j++ {
		if j-i >= 19 {
			break // may overflow: use the general path
		}
		u = u*10 + uint64(raw[j]-'0')
	}
	if j == len(raw) {
		return signed(u, neg)
	}
	return intSlow(raw[i:], neg)
}

func signed(u uint64, neg bool) (int64, error) {
	if neg {
		if u > 1<<63 {
			return 0, errRange
		}
		return -int64(u), nil
	}
	if u > math.MaxInt64 {
		return 0, errRange
	}
	return int64(u), nil
}

// intSlow handles numbers with many digits, a fraction or an exponent. s is a
// valid JSON number without its sign.
func intSlow(s []byte, neg bool) (int64, error) {
	// The value is 0.d[0]d[1]...d[nd-1] * 10^dp, as in strconv's decimal.
	var d [20]byte
	nd, dp := 0, 0
	nonzero := false  // a significant digit was seen
	sig, last := 0, 0 // significant digits seen; 1 + index of the last nonzero one
	keep := func(c byte) {
		if nd < len(d) {
			d[nd] = c
			nd++
		}
		sig++
		if c != '0' {
			last = sig
		}
	}
	i := 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		if !nonzero && s[i] == '0' {
			continue
		}
		nonzero = true
		dp++
		keep(s[i])
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && isDigit(s[i]); i++ {
			if !nonzero && s[i] == '0' {
				dp--
				continue
			}
			nonzero = true
			keep(s[i])
		}
	}
	if i < len(s) { // exponent
		i++
		eneg := false
		if s[i] == '+' || s[i] == '-' {
			eneg = s[i] == '-'
			i++
		}
		e := 0
		for ; i < len(s); i++ {
			if e < 1e6 {
				e = e*10 + int(s[i]-'0')
			}
		}
		if eneg {
			e = -e
		}
		dp += e
	}
	if !nonzero {
		return 0, nil // zero, whatever the exponent
	}
	switch {
	case last > dp:
		return 0, errNotInteger // a nonzero digit after the decimal point
	case dp > len(d):
		return 0, errRange // at least 10^20
	}
	nd = min(nd, last)
	var u uint64
	for k := 0; k < dp; k++ {
		c := byte('0')
		if k < nd {
			c = d[k]
		}
		if u > (math.MaxUint64-uint64(c-'0'))/10 {
			return 0, errRange
		}
		u = u*10 + uint64(c-'0')
	}
	return signed(u, neg)
}
