// Package keys owns provider credentials: secrets held in memory without
// leaking into logs, secret references resolved from their sources, and the
// cache of suppliers' own keys that follows rotations at the source.
package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"

	"go.uber.org/zap/zapcore"
)

// Secret holds a credential in memory. It never prints its value: String,
// GoString, fmt's verbs, encoding/json, encoding.TextMarshaler, slog and zap
// all show only its fingerprint. Reveal is the only way to the value.
//
// The value sits behind a pointer to a string, which fmt prints as an
// address even when it reaches the value through reflection (an unexported
// Secret field of a struct). Secrets are immutable and safe to copy and to
// share between goroutines. The zero Secret is empty.
type Secret struct {
	v  *string
	fp string
}

// NewSecret returns a Secret holding value. An empty value gives the zero
// Secret.
func NewSecret(value string) Secret {
	if value == "" {
		return Secret{}
	}
	return Secret{v: &value, fp: Fingerprint(value)}
}

// Fingerprint returns the first 8 hexadecimal digits of the SHA-256 of
// value, or "" for an empty value. It identifies a credential in logs
// without revealing it.
func Fingerprint(value string) string {
	if value == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:4])
}

// Reveal returns the secret value. Call it only where the value is sent to
// its destination, such as an upstream Authorization header.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// Fingerprint returns the fingerprint of the value, as the package-level
// Fingerprint does, or "" for the zero Secret.
func (s Secret) Fingerprint() string {
	return s.fp
}

// IsZero reports whether s holds no value.
func (s Secret) IsZero() bool {
	return s.v == nil
}

// String returns "secret:" followed by the fingerprint, or "secret:empty"
// for the zero Secret.
func (s Secret) String() string {
	if s.v == nil {
		return "secret:empty"
	}
	return "secret:" + s.fp
}

// GoString implements fmt.GoStringer for %#v, showing only the fingerprint.
func (s Secret) GoString() string {
	return "keys.Secret(" + strconv.Quote(s.String()) + ")"
}

// Format implements fmt.Formatter so that every verb and flag prints the
// form of String (quoted for %q, GoString for %#v), never the value.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	case verb == 'q':
		fmt.Fprint(f, strconv.Quote(s.String()))
	default:
		fmt.Fprint(f, s.String())
	}
}

// MarshalJSON encodes s as a JSON string holding the form of String.
func (s Secret) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, s.String()), nil
}

// MarshalText returns the form of String; it makes encoders that honour
// encoding.TextMarshaler, such as YAML and map keys, safe too.
func (s Secret) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

// MarshalLogObject implements zapcore.ObjectMarshaler, logging only the
// fingerprint.
func (s Secret) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("fingerprint", s.Fingerprint())
	return nil
}

// LogValue implements slog.LogValuer, logging the form of String.
func (s Secret) LogValue() slog.Value {
	return slog.StringValue(s.String())
}

var (
	_ fmt.Formatter           = Secret{}
	_ fmt.GoStringer          = Secret{}
	_ fmt.Stringer            = Secret{}
	_ zapcore.ObjectMarshaler = Secret{}
	_ slog.LogValuer          = Secret{}
)
