package config

import (
	"strconv"
	"strings"
)

// FieldError describes one problem in a configuration. Parse, Load and
// Validate return either a single *FieldError or several joined with
// errors.Join; use errors.As to extract them.
//
// Error formats it as "source:line: field: message", for example
// "veil.yaml:14: providers[1].base_url: must be an absolute http or https
// URL". Parts that are unknown are left out, and a value that came from an
// environment variable is reported as "env VEIL_PROXY_LISTEN: listen.proxy:
// message".
type FieldError struct {
	// Source is the name given to Parse, usually the file path. It is
	// empty for a Config that was not parsed.
	Source string
	// Line is the 1-based line in Source of the field or, when the field
	// itself is absent, of its nearest enclosing element that is present.
	// It is 0 when no position is known, for example for defaults.
	Line int
	// Field is the path of the field, such as providers[1].base_url, with
	// zero-based indexes. It is empty for problems with the whole document.
	Field string
	// Env is the environment variable that supplied the value, or "".
	Env string
	// Msg describes the problem.
	Msg string
}

// Error implements the error interface.
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString("env ")
		b.WriteString(e.Env)
	case e.Source != "":
		b.WriteString(e.Source)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
	case e.Line > 0:
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Field)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}
