package fakeopenai

import (
	"strconv"

	"github.com/wedsync/veil/internal/jsonfield"
)

const hexDigits = "0123456789abcdef"

// appendJSONString appends s to b as a JSON string literal.
func appendJSONString(b []byte, s string) []byte { return jsonfield.AppendString(b, s) }

// appendJSONStringBody appends s escaped for a JSON string, without quotes.
func appendJSONStringBody(b []byte, s string) []byte { return jsonfield.AppendStringBody(b, s) }

// appendJSONWords appends words joined by single spaces as a JSON string
// literal. With leadingSpace the text starts with a space, which is how
// streamed pieces after the first one are glued together.
func appendJSONWords(b []byte, words []string, leadingSpace bool) []byte {
	b = append(b, '"')
	for i, w := range words {
		if i > 0 || leadingSpace {
			b = append(b, ' ')
		}
		b = appendJSONStringBody(b, w)
	}
	return append(b, '"')
}

// appendJSONPieces appends pieces concatenated as a JSON string literal.
func appendJSONPieces(b []byte, pieces []string) []byte {
	b = append(b, '"')
	for _, p := range pieces {
		b = appendJSONStringBody(b, p)
	}
	return append(b, '"')
}

// appendJSONStringOrNull appends s as a JSON string, or null when s is empty.
func appendJSONStringOrNull(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, s)
}

// appendInt appends the decimal form of n.
func appendInt(b []byte, n int64) []byte {
	return strconv.AppendInt(b, n, 10)
}

// appendHex64 appends x as exactly 16 lowercase hex digits.
func appendHex64(b []byte, x uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[(x>>uint(shift))&0xf])
	}
	return b
}
