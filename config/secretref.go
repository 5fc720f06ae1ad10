package config

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Secret reference schemes.
const (
	// SchemeEnv names an environment variable: env://NAME.
	SchemeEnv = "env"
	// SchemeFile names an absolute file path: file:///abs/path.
	SchemeFile = "file"
	// SchemeVault names a field of a Vault secret: vault://mount/path#field.
	SchemeVault = "vault"
)

// errLiteral is returned for values that are not references at all. It
// deliberately does not quote the value, which may be a pasted secret.
var errLiteral = errors.New("must be a secret reference (env://NAME, file:///abs/path or vault://mount/path#field), not a literal value")

// SecretRef is a reference to a secret: env://NAME, file:///path or
// vault://mount/path#field. Configuration never holds secrets themselves;
// this package checks only the syntax of a reference and never resolves it.
//
// An env reference names an environment variable matching
// [A-Za-z_][A-Za-z0-9_]*. A file reference has an empty host and an
// absolute path, taken verbatim (no percent-decoding). A vault reference
// names a mount (the first path segment), a secret path below it and,
// after '#', a field of that secret.
type SecretRef string

// ParsedRef is the parsed form of a SecretRef. Which fields are set
// depends on Scheme.
type ParsedRef struct {
	// Scheme is SchemeEnv, SchemeFile or SchemeVault.
	Scheme string
	// Name is the environment variable name of an env reference.
	Name string
	// Path is the absolute file path of a file reference, or the secret
	// path below the mount of a vault reference.
	Path string
	// Mount is the Vault mount of a vault reference.
	Mount string
	// Field is the field within the Vault secret of a vault reference.
	Field string
}

// IsZero reports whether the reference is empty, meaning not configured.
func (r SecretRef) IsZero() bool {
	return r == ""
}

// Scheme returns the part of the reference before "://", or "" when there
// is none. It does not check that the scheme is supported.
func (r SecretRef) Scheme() string {
	scheme, _, ok := strings.Cut(string(r), "://")
	if !ok {
		return ""
	}
	return scheme
}

// Validate reports whether the reference is well formed. An empty
// reference is an error; callers check IsZero first where a reference is
// optional. Error messages never repeat a value that is not a reference.
func (r SecretRef) Validate() error {
	_, err := r.Parse()
	return err
}

// Parse checks the reference and splits it into its parts.
func (r SecretRef) Parse() (ParsedRef, error) {
	s := string(r)
	if s == "" {
		return ParsedRef{}, errors.New("is required")
	}
	if strings.TrimSpace(s) != s {
		return ParsedRef{}, errors.New("must not have leading or trailing whitespace")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !isSchemeToken(scheme) {
		return ParsedRef{}, errLiteral
	}
	if strings.ContainsFunc(rest, isSpaceOrControl) {
		return ParsedRef{}, fmt.Errorf("%s reference must not contain whitespace or control characters", scheme)
	}
	switch scheme {
	case SchemeEnv:
		return parseEnvRef(rest)
	case SchemeFile:
		return parseFileRef(rest)
	case SchemeVault:
		return parseVaultRef(rest)
	default:
		return ParsedRef{}, fmt.Errorf("unsupported secret reference scheme %q: use env://, file:// or vault://", scheme)
	}
}

func parseEnvRef(name string) (ParsedRef, error) {
	if name == "" {
		return ParsedRef{}, errors.New("env reference needs a variable name: env://NAME")
	}
	if !isEnvName(name) {
		return ParsedRef{}, fmt.Errorf("env reference %q: variable name must match [A-Za-z_][A-Za-z0-9_]*", name)
	}
	return ParsedRef{Scheme: SchemeEnv, Name: name}, nil
}

func parseFileRef(path string) (ParsedRef, error) {
	if !strings.HasPrefix(path, "/") {
		return ParsedRef{}, errors.New("file reference needs an absolute path and no host: file:///abs/path")
	}
	if strings.TrimRight(path, "/") == "" {
		return ParsedRef{}, errors.New("file reference needs a file path: file:///abs/path")
	}
	return ParsedRef{Scheme: SchemeFile, Path: path}, nil
}

func parseVaultRef(rest string) (ParsedRef, error) {
	const shape = "vault://mount/path#field"
	loc, field, ok := strings.Cut(rest, "#")
	if !ok || field == "" {
		return ParsedRef{}, fmt.Errorf("vault reference needs a field after '#': %s", shape)
	}
	if strings.Contains(field, "#") {
		return ParsedRef{}, fmt.Errorf("vault reference must contain a single '#': %s", shape)
	}
	mount, path, ok := strings.Cut(loc, "/")
	if mount == "" || !ok || path == "" {
		return ParsedRef{}, fmt.Errorf("vault reference needs a mount and a secret path: %s", shape)
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return ParsedRef{}, fmt.Errorf("vault reference path must not contain empty, '.' or '..' segments: %s", shape)
		}
	}
	if mount == "." || mount == ".." {
		return ParsedRef{}, fmt.Errorf("vault reference mount must not be '.' or '..': %s", shape)
	}
	return ParsedRef{Scheme: SchemeVault, Mount: mount, Path: path, Field: field}, nil
}

// isSchemeToken reports whether s looks like a URI scheme, so that it can
// be quoted in an error without risking to echo a secret.
func isSchemeToken(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

func isEnvName(s string) bool {
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return s != ""
}

func isSpaceOrControl(c rune) bool {
	return unicode.IsSpace(c) || unicode.IsControl(c) || c == utf8.RuneError
}
