// Package auth authenticates the apps that call veil and scopes them to
// suppliers. A caller presents either a static bearer token, configured by
// its SHA-256 hash, or a signed JWT: with static keys (HS256 or EdDSA), or
// from an issuer whose published keys veil follows (RS256, ES256 or EdDSA;
// see package jwks), such as an OpenID Connect provider or a Kubernetes
// cluster whose service accounts are callers. Every refusal is written to
// an audit log, which never holds a credential.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// CallerSpec configures a caller that authenticates with a static token.
type CallerSpec struct {
	// Name identifies the caller in logs and error messages.
	Name string
	// TokenHash is the SHA-256 of the caller's bearer token.
	TokenHash [32]byte
	// Suppliers is the caller's scope: ["*"] for every supplier, or the
	// supplier IDs it may act for. It must not be empty.
	Suppliers []string
}

// Options configures an Authenticator.
type Options struct {
	// Callers are the static-token callers.
	Callers []CallerSpec
	// JWT configures JWT verification; nil refuses JWTs.
	JWT *JWTOptions
	// Audit receives one line for every refused request; nil discards them.
	Audit *zap.Logger
	// Now returns the current time for JWT checks; nil means time.Now.
	Now func() time.Time
}

// Identity is who is calling and for whom. Supplier aliases the
// X-Supplier-ID header value passed to Authenticate, or holds the verified
// JWT claim; it must not be modified.
type Identity struct {
	// Caller is the authenticated caller; it must not be modified.
	Caller *Caller
	// Supplier is the supplier the request acts for.
	Supplier []byte
	// Signed reports whether the identity came from a verified JWT.
	Signed bool
}

// Authenticator authenticates callers. It is immutable and safe for
// concurrent use.
type Authenticator struct {
	hashes  [][32]byte
	callers []Caller
	jwt     *jwtVerifiers // nil: JWTs are refused
	audit   *zap.Logger
}

// New returns an Authenticator for o. It is an error to configure neither a
// caller nor JWT, or a caller with an empty or duplicate name, a name longer
// than 128 bytes or holding a control character, a zero or duplicate token
// hash, an empty scope, "*" alongside supplier IDs, a repeated supplier, or
// an invalid supplier ID (see ValidSupplierID). JWTOptions documents the JWT
// checks.
func New(o Options) (*Authenticator, error) {
	if len(o.Callers) == 0 && o.JWT == nil {
		return nil, errors.New("auth: no callers and no JWT configuration")
	}
	a := &Authenticator{
		hashes:  make([][32]byte, len(o.Callers)),
		callers: make([]Caller, len(o.Callers)),
		audit:   o.Audit,
	}
	if a.audit == nil {
		a.audit = zap.NewNop()
	}
	names := make(map[string]bool, len(o.Callers))
	hashes := make(map[[32]byte]string, len(o.Callers))
	for i, spec := range o.Callers {
		if err := checkCallerName(spec.Name); err != nil {
			return nil, fmt.Errorf("auth: caller %d: %w", i, err)
		}
		switch {
		case names[spec.Name]:
			return nil, fmt.Errorf("auth: duplicate caller name %q", spec.Name)
		case spec.TokenHash == [32]byte{}:
			return nil, fmt.Errorf("auth: caller %q has no token hash", spec.Name)
		}
		if other, dup := hashes[spec.TokenHash]; dup {
			return nil, fmt.Errorf("auth: callers %q and %q have the same token hash", other, spec.Name)
		}
		c, err := newScopedCaller(spec.Name, spec.Suppliers)
		if err != nil {
			return nil, err
		}
		names[spec.Name] = true
		hashes[spec.TokenHash] = spec.Name
		a.hashes[i] = spec.TokenHash
		a.callers[i] = c
	}
	if o.JWT != nil {
		now := o.Now
		if now == nil {
			now = time.Now
		}
		v, err := newJWTVerifiers(*o.JWT, now)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	return a, nil
}

func checkCallerName(name string) error {
	if name == "" {
		return errors.New("no name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("name is longer than %d bytes", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("name %q has a control character", name)
		}
	}
	return nil
}

// Callers returns the static callers in configuration order, for admin
// output. They must not be modified.
func (a *Authenticator) Callers() []*Caller {
	out := make([]*Caller, len(a.callers))
	for i := range a.callers {
		out[i] = &a.callers[i]
	}
	return out
}

// Authenticate checks the Authorization header value, "Bearer <token>" with
// the scheme in any case and surrounding spaces or tabs tolerated, and the
// X-Supplier-ID header value; either may be empty. remote is the client
// address, used only for the audit line.
//
// A token shaped like a JWT is verified as one when JWT is configured; any
// other token is a static token, hashed once and compared in constant time
// with every configured hash. A static caller must send a supplier in its
// scope; a JWT carries its supplier in a claim, which X-Supplier-ID, if
// sent, must equal.
//
// On success Authenticate returns the identity and a nil Failure, and
// writes nothing; for a static token it does not allocate. On failure it
// returns the Failure and writes one audit line.
func (a *Authenticator) Authenticate(authorization, supplierHeader []byte, remote string) (Identity, *Failure) {
	token, ok := bearerToken(authorization)
	if !ok {
		return a.fail(&failInvalidScheme, "authorization scheme is not bearer", "", supplierHeader, remote)
	}
	if len(token) == 0 {
		return a.fail(&failMissingToken, "no bearer token", "", supplierHeader, remote)
	}
	if a.jwt != nil && jwtShaped(token) {
		return a.authenticateJWT(token, supplierHeader, remote)
	}
	sum := sha256.Sum256(token)
	match := -1
	for i := range a.hashes {
		eq := subtle.ConstantTimeCompare(sum[:], a.hashes[i][:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return a.fail(&failUnknownToken, "unknown static token", "", supplierHeader, remote)
	}
	c := &a.callers[match]
	switch {
	case len(supplierHeader) == 0:
		return a.fail(&failSupplierRequired, "no X-Supplier-ID", c.Name, nil, remote)
	case !ValidSupplierID(supplierHeader):
		return a.fail(&failInvalidSupplier, "malformed X-Supplier-ID", c.Name, nil, remote)
	case !c.Allows(supplierHeader):
		return a.fail(notAllowed(c.Name, supplierHeader), "supplier outside caller scope", c.Name, supplierHeader, remote)
	}
	return Identity{Caller: c, Supplier: supplierHeader}, nil
}

// Failures without details. fail copies them, so callers cannot alter the
// templates.
var (
	failMissingToken = Failure{Status: http.StatusUnauthorized, Code: CodeMissingCallerToken,
		Message: "missing caller token: send Authorization: Bearer <token>"}
	failInvalidScheme = Failure{Status: http.StatusUnauthorized, Code: CodeInvalidCallerToken,
		Message: "invalid caller token: the Authorization scheme must be Bearer"}
	failUnknownToken = Failure{Status: http.StatusUnauthorized, Code: CodeInvalidCallerToken,
		Message: "invalid caller token"}
	failSupplierRequired = Failure{Status: http.StatusBadRequest, Code: CodeSupplierRequired,
		Message: "supplier required: send the supplier ID in the X-Supplier-ID header"}
	failInvalidSupplier = Failure{Status: http.StatusBadRequest, Code: CodeInvalidSupplierID,
		Message: "invalid X-Supplier-ID: " + supplierRule}
)

func notAllowed(caller string, supplier []byte) *Failure {
	return &Failure{Status: http.StatusForbidden, Code: CodeSupplierNotAllowed,
		Message: fmt.Sprintf("caller %q may not act for supplier %q", caller, supplier)}
}

// fail writes the audit line for f and returns a copy of it. supplier is
// logged only when it is a valid supplier ID.
func (a *Authenticator) fail(f *Failure, reason, caller string, supplier []byte, remote string, extra ...zap.Field) (Identity, *Failure) {
	out := *f
	fields := make([]zap.Field, 0, 6+len(extra))
	fields = append(fields,
		zap.String("reason", reason),
		zap.String("code", out.Code),
		zap.Int("status", out.Status),
	)
	if caller != "" {
		fields = append(fields, zap.String("caller", caller))
	}
	if ValidSupplierID(supplier) {
		fields = append(fields, zap.String("supplier", string(supplier)))
	}
	fields = append(fields, zap.String("remote", remote))
	fields = append(fields, extra...)
	a.audit.Warn("caller authentication failed", fields...)
	return Identity{}, &out
}

// bearerToken extracts the token from an Authorization header value. ok is
// false for another scheme; the token is empty when there is none.
func bearerToken(authorization []byte) (token []byte, ok bool) {
	h := trimSpace(authorization)
	if len(h) == 0 {
		return nil, true
	}
	const scheme = "bearer"
	if len(h) < len(scheme) || !equalFoldASCII(h[:len(scheme)], scheme) {
		return nil, false
	}
	rest := h[len(scheme):]
	if len(rest) == 0 {
		return nil, true
	}
	if !isSpace(rest[0]) {
		return nil, false // e.g. "Bearerx"
	}
	return trimSpace(rest), true
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
