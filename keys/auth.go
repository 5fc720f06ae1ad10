package keys

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
)

var (
	// ErrMissingCredentials is returned by Authenticate when the request
	// carries no bearer token.
	ErrMissingCredentials = errors.New("keys: missing bearer token")
	// ErrInvalidCredentials is returned by Authenticate when the token
	// matches no caller or the authorization scheme is not Bearer.
	ErrInvalidCredentials = errors.New("keys: invalid credentials")
)

// Credential is a caller's name and the SHA-256 hash of its bearer token, as
// configured.
type Credential struct {
	Name string
	Hash [32]byte
}

// Caller is an authenticated application calling veil.
type Caller struct {
	Name string
}

// HashToken returns the SHA-256 hash of a bearer token, the form in which
// tokens are configured.
func HashToken(token string) [32]byte {
	return sha256.Sum256([]byte(token))
}

// ParseTokenHash parses a SHA-256 token hash written as 64 hexadecimal
// digits, as produced by `printf %s "$TOKEN" | sha256sum`.
func ParseTokenHash(hexHash string) ([32]byte, error) {
	var h [32]byte
	if len(hexHash) != hex.EncodedLen(len(h)) {
		return h, fmt.Errorf("keys: token hash must be %d hexadecimal digits, got %d characters",
			hex.EncodedLen(len(h)), len(hexHash))
	}
	if _, err := hex.Decode(h[:], []byte(hexHash)); err != nil {
		return [32]byte{}, fmt.Errorf("keys: token hash must be hexadecimal: %w", err)
	}
	return h, nil
}

// Authenticator checks the bearer tokens of callers against configured
// token hashes. It is immutable and safe for concurrent use.
type Authenticator struct {
	hashes  [][32]byte
	callers []Caller
}

// NewAuthenticator returns an Authenticator for creds. It is an error to
// pass no credentials, an empty name, a duplicate name, a zero hash (an
// unset field) or the same hash twice (a token must identify one caller).
func NewAuthenticator(creds []Credential) (*Authenticator, error) {
	if len(creds) == 0 {
		return nil, errors.New("keys: no caller credentials configured")
	}
	a := &Authenticator{
		hashes:  make([][32]byte, len(creds)),
		callers: make([]Caller, len(creds)),
	}
	names := make(map[string]bool, len(creds))
	hashes := make(map[[32]byte]string, len(creds))
	for i, c := range creds {
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("keys: caller credential %d has no name", i)
		case names[c.Name]:
			return nil, fmt.Errorf("keys: duplicate caller name %q", c.Name)
		case c.Hash == [32]byte{}:
			return nil, fmt.Errorf("keys: caller %q has no token hash", c.Name)
		}
		if other, dup := hashes[c.Hash]; dup {
			return nil, fmt.Errorf("keys: callers %q and %q have the same token hash", other, c.Name)
		}
		names[c.Name] = true
		hashes[c.Hash] = c.Name
		a.hashes[i] = c.Hash
		a.callers[i] = Caller{Name: c.Name}
	}
	return a, nil
}

// Authenticate checks the raw value of an Authorization header, "Bearer
// <token>" with the scheme in any case and surrounding spaces or tabs
// tolerated. It returns the matching caller, which must not be modified, or
// nil and ErrMissingCredentials (no header or no token) or
// ErrInvalidCredentials (another scheme, or an unknown token).
//
// The token is hashed once and the hash compared with every configured hash
// in constant time, so timing reveals neither which caller matched nor how
// much of a hash did. Authenticate does not allocate.
func (a *Authenticator) Authenticate(authorization []byte) (*Caller, error) {
	h := trimSpace(authorization)
	if len(h) == 0 {
		return nil, ErrMissingCredentials
	}
	const scheme = "bearer"
	if len(h) < len(scheme) || !equalFoldASCII(h[:len(scheme)], scheme) {
		return nil, ErrInvalidCredentials
	}
	rest := h[len(scheme):]
	if len(rest) == 0 {
		return nil, ErrMissingCredentials
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		return nil, ErrInvalidCredentials // e.g. "Bearerx"
	}
	token := trimSpace(rest)
	if len(token) == 0 {
		return nil, ErrMissingCredentials
	}
	sum := sha256.Sum256(token)
	match := -1
	for i := range a.hashes {
		eq := subtle.ConstantTimeCompare(sum[:], a.hashes[i][:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil, ErrInvalidCredentials
	}
	return &a.callers[match], nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// equalFoldASCII reports whether b equals the lowercase ASCII string lower,
// ignoring ASCII case.
func equalFoldASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}
