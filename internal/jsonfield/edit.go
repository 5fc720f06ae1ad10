package jsonfield

import (
	"bytes"
	"errors"
)

// errNotSubslice guards against values that do not alias the body.
var errNotSubslice = errors.New("jsonfield: value does not alias the body")

// offset is the index of sub within body; sub must be a subslice of body.
func offset(body, sub []byte) (int, error) {
	off := cap(body) - cap(sub)
	if off < 0 || off > len(body) || off+len(sub) > len(body) {
		return 0, errNotSubslice
	}
	return off, nil
}

// span is the byte span of one top-level member: from the opening quote of
// its key to the end of its value.
type span struct{ start, end int }

// findMember locates the top-level member name in the object body.
func findMember(body []byte, name string) (span, bool, error) {
	m, n, err := findMembers(body, name)
	return m, n > 0, err
}

// findMembers returns the last top-level member called name and how many
// there are.
func findMembers(body []byte, name string) (span, int, error) {
	var m span
	var count int
	var ferr error
	err := Each(body, func(key, value []byte) bool {
		if string(key) != name {
			return true
		}
		ks, err := offset(body, key)
		if err != nil {
			ferr = err
			return false
		}
		vs, err := offset(body, value)
		if err != nil {
			ferr = err
			return false
		}
		m = span{start: ks - 1, end: vs + len(value)}
		count++
		return true // the last duplicate wins, as in ScanRequest
	})
	if err == nil {
		err = ferr
	}
	return m, count, err
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// RemoveMember appends to dst the JSON object body without its top-level
// member name (and the comma that separated it; every occurrence, when the
// name is duplicated). removed is false, and body is appended unchanged,
// when there is no such member.
func RemoveMember(dst, body []byte, name string) (out []byte, removed bool, err error) {
	n := len(dst)
	out, count, err := removeLast(dst, body, name)
	for ; count > 1 && err == nil; count-- {
		// A duplicated name (rare): remove the next one from the result.
		rest := append([]byte(nil), out[n:]...)
		out, _, err = removeLast(out[:n], rest, name)
	}
	return out, count > 0, err
}

// removeLast removes the last member called name and reports how many
// there were.
func removeLast(dst, body []byte, name string) ([]byte, int, error) {
	m, count, err := findMembers(body, name)
	if err != nil {
		return dst, 0, err
	}
	if count == 0 {
		return append(dst, body...), 0, nil
	}
	start, end := m.start, m.end
	// Take the comma before the member, or, for the first member, the one
	// after it.
	i := start - 1
	for i >= 0 && isSpaceByte(body[i]) {
		i--
	}
	if i >= 0 && body[i] == ',' {
		start = i
	} else {
		j := end
		for j < len(body) && isSpaceByte(body[j]) {
			j++
		}
		if j < len(body) && body[j] == ',' {
			end = j + 1
		}
	}
	dst = append(dst, body[:start]...)
	return append(dst, body[end:]...), count, nil
}

// SetIncludeUsage appends to dst the request body with
// stream_options.include_usage set to true, keeping every other field
// (including other stream_options) as it was.
func SetIncludeUsage(dst, body []byte) ([]byte, error) {
	m, ok, err := findMember(body, "stream_options")
	if err != nil {
		return dst, err
	}
	if !ok {
		i := bytes.IndexByte(body, '{')
		if i < 0 {
			return dst, ErrNotObject
		}
		rest := bytes.TrimLeft(body[i+1:], " \t\r\n")
		dst = append(dst, body[:i+1]...)
		dst = append(dst, `"stream_options":{"include_usage":true}`...)
		if len(rest) > 0 && rest[0] != '}' {
			dst = append(dst, ',')
		}
		return append(dst, body[i+1:]...), nil
	}
	// Rewrite the existing stream_options object.
	raw := body[m.start:m.end]
	colon := bytes.IndexByte(raw, ':')
	value := bytes.TrimSpace(raw[colon+1:])
	dst = append(dst, body[:m.start]...)
	dst = append(dst, `"stream_options":{"include_usage":true`...)
	if len(value) > 0 && value[0] == '{' {
		if err := Each(value, func(key, v []byte) bool {
			if string(key) == "include_usage" {
				return true
			}
			dst = append(dst, ',', '"')
			dst = append(dst, key...)
			dst = append(dst, '"', ':')
			dst = append(dst, v...)
			return true
		}); err != nil {
			return dst, err
		}
	}
	dst = append(dst, '}')
	return append(dst, body[m.end:]...), nil
}

// SetString appends to dst the JSON object body with its top-level member
// name set to the string value: replaced where it is, or added first when
// absent. Every other byte of body is kept.
func SetString(dst, body []byte, name, value string) ([]byte, error) {
	return setMember(dst, body, name, nil, value)
}

// SetRaw is SetString for a value given as raw JSON (a number, an object,
// a string with its quotes); raw is not checked.
func SetRaw(dst, body []byte, name string, raw []byte) ([]byte, error) {
	return setMember(dst, body, name, raw, "")
}

// setMember sets name to raw, or to the string str when raw is nil.
func setMember(dst, body []byte, name string, raw []byte, str string) ([]byte, error) {
	m, ok, err := findMember(body, name)
	if err != nil {
		return dst, err
	}
	value := func(dst []byte) []byte {
		dst = AppendString(dst, name)
		dst = append(dst, ':')
		if raw != nil {
			return append(dst, raw...)
		}
		return AppendString(dst, str)
	}
	if !ok {
		i := bytes.IndexByte(body, '{')
		if i < 0 {
			return dst, ErrNotObject
		}
		rest := bytes.TrimLeft(body[i+1:], " \t\r\n")
		dst = value(append(dst, body[:i+1]...))
		if len(rest) > 0 && rest[0] != '}' {
			dst = append(dst, ',')
		}
		return append(dst, body[i+1:]...), nil
	}
	dst = value(append(dst, body[:m.start]...))
	return append(dst, body[m.end:]...), nil
}
