package auth

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/wedsync/veil/keys"
)

// JWTOptions configures the verification of signed tokens. Only HS256 and
// EdDSA (Ed25519) are accepted, and only for an algorithm with at least one
// key configured; "none" and every other algorithm are refused.
type JWTOptions struct {
	// HS256Keys are the shared secrets; a token verifies if any of them
	// signed it, so a new key can be added before the old one is removed.
	// Each must be at least 32 bytes (RFC 7518, section 3.2).
	HS256Keys []keys.Secret
	// Ed25519Keys are the EdDSA public keys; a token verifies if any of
	// them signed it.
	Ed25519Keys []ed25519.PublicKey
	// Issuer, when set, is the iss a token must carry.
	Issuer string
	// Audience, when set, must be in a token's aud.
	Audience string
	// SupplierClaim names the claim holding the supplier ID; the default
	// is "supplier_id".
	SupplierClaim string
	// CallerClaim names the claim that becomes the caller name; the default
	// is "sub".
	CallerClaim string
	// Leeway is the clock skew allowed when checking exp, nbf and iat; the
	// default is 30s.
	Leeway time.Duration
	// MaxTTL is the longest lifetime accepted: exp minus iat, or minus the
	// current time when iat is absent. The default is 24h. exp is always
	// required.
	MaxTTL time.Duration
}

// Defaults for the zero fields of JWTOptions.
const (
	// DefaultSupplierClaim is the default JWTOptions.SupplierClaim.
	DefaultSupplierClaim = "supplier_id"
	// DefaultCallerClaim is the default JWTOptions.CallerClaim.
	DefaultCallerClaim = "sub"
	// DefaultLeeway is the default JWTOptions.Leeway.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxTTL is the default JWTOptions.MaxTTL.
	DefaultMaxTTL = 24 * time.Hour
)

const (
	// minHS256KeyLen is the shortest HS256 key accepted: the hash size.
	minHS256KeyLen = 32
	// maxJWTLen bounds the work spent on a token before it is refused.
	maxJWTLen = 8 << 10
)

// jwtVerifier verifies JWTs; it is immutable once built.
type jwtVerifier struct {
	parser        *jwt.Parser
	keyfunc       jwt.Keyfunc
	hmacKeys      any // jwt.VerificationKeySet, boxed once
	edKeys        any // jwt.VerificationKeySet, boxed once
	methods       []string
	issuer        string
	audience      string
	supplierClaim string
	callerClaim   string
	maxTTL        time.Duration
	now           func() time.Time
}

func newJWTVerifier(o JWTOptions, now func() time.Time) (*jwtVerifier, error) {
	if len(o.HS256Keys) == 0 && len(o.Ed25519Keys) == 0 {
		return nil, errors.New("auth: JWT is configured without HS256 or Ed25519 keys")
	}
	v := &jwtVerifier{
		issuer:        o.Issuer,
		audience:      o.Audience,
		supplierClaim: o.SupplierClaim,
		callerClaim:   o.CallerClaim,
		maxTTL:        o.MaxTTL,
		now:           now,
	}
	if v.supplierClaim == "" {
		v.supplierClaim = DefaultSupplierClaim
	}
	if v.callerClaim == "" {
		v.callerClaim = DefaultCallerClaim
	}
	if v.supplierClaim == v.callerClaim {
		return nil, fmt.Errorf("auth: JWT supplier and caller claims are both %q", v.supplierClaim)
	}
	leeway := o.Leeway
	switch {
	case leeway < 0:
		return nil, fmt.Errorf("auth: negative JWT leeway %v", leeway)
	case leeway == 0:
		leeway = DefaultLeeway
	}
	switch {
	case v.maxTTL < 0:
		return nil, fmt.Errorf("auth: negative JWT max TTL %v", v.maxTTL)
	case v.maxTTL == 0:
		v.maxTTL = DefaultMaxTTL
	}

	var edSet, hmacSet jwt.VerificationKeySet
	for i, k := range o.Ed25519Keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("auth: Ed25519 key %d is %d bytes, want %d", i, len(k), ed25519.PublicKeySize)
		}
		for j := range i {
			if bytes.Equal(k, o.Ed25519Keys[j]) {
				return nil, fmt.Errorf("auth: Ed25519 keys %d and %d are the same", j, i)
			}
		}
		edSet.Keys = append(edSet.Keys, ed25519.PublicKey(bytes.Clone(k)))
	}
	for i, s := range o.HS256Keys {
		k := s.Reveal()
		if len(k) < minHS256KeyLen {
			return nil, fmt.Errorf("auth: HS256 key %d (%v) is shorter than %d bytes", i, s, minHS256KeyLen)
		}
		for j := range i {
			if o.HS256Keys[j].Reveal() == k {
				return nil, fmt.Errorf("auth: HS256 keys %d and %d are the same (%v)", j, i, s)
			}
		}
		// An Ed25519 public key is public: as an HMAC secret it would let
		// anyone forge tokens (algorithm confusion).
		for j, pub := range o.Ed25519Keys {
			if string(pub) == k {
				return nil, fmt.Errorf("auth: HS256 key %d (%v) is Ed25519 public key %d", i, s, j)
			}
		}
		hmacSet.Keys = append(hmacSet.Keys, []byte(k))
	}
	if len(hmacSet.Keys) > 0 {
		v.hmacKeys = hmacSet
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if len(edSet.Keys) > 0 {
		v.edKeys = edSet
		v.methods = append(v.methods, jwt.SigningMethodEdDSA.Alg())
	}
	v.keyfunc = v.keys

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// keys is the jwt.Keyfunc: the keys of the token's algorithm, and only
// those, so that a key is never used with another algorithm.
func (v *jwtVerifier) keys(t *jwt.Token) (any, error) {
	switch t.Method {
	case jwt.SigningMethodHS256:
		if v.hmacKeys != nil {
			return v.hmacKeys, nil
		}
	case jwt.SigningMethodEdDSA:
		if v.edKeys != nil {
			return v.edKeys, nil
		}
	}
	return nil, errors.New("no key for the token's algorithm")
}

// jwtShaped reports whether token looks like a compact JWS: three base64url
// segments separated by dots, the first two non-empty (the signature is
// empty for alg "none", which is then refused as a JWT).
func jwtShaped(token []byte) bool {
	dots := 0
	start := 0
	for i, c := range token {
		if c == '.' {
			if dots == 2 || i == start {
				return false
			}
			dots++
			start = i + 1
			continue
		}
		if !base64URLByte[c] {
			return false
		}
	}
	return dots == 2
}

var base64URLByte = func() (t [256]bool) {
	t = supplierByte
	t['.'] = false
	return t
}()

// authenticateJWT verifies token as a JWT and derives the identity from its
// claims.
func (a *Authenticator) authenticateJWT(token, supplierHeader []byte, remote string) (Identity, *Failure) {
	v := a.jwt
	if len(token) > maxJWTLen {
		return a.fail(invalidToken("token is too long"), "token too long", "", supplierHeader, remote)
	}
	claims := jwt.MapClaims{}
	t, err := v.parser.ParseWithClaims(string(token), claims, v.keyfunc)
	if err != nil {
		f, reason, verified := v.classify(t, claims, err)
		caller, supplier := "", supplierHeader
		if verified {
			caller = v.callerName(claims)
			if s, ok := claims[v.supplierClaim].(string); ok && validSupplier(s) {
				supplier = []byte(s)
			}
		}
		return a.fail(f, reason, caller, supplier, remote, tokenFields(t, claims)...)
	}

	// The signature and the standard claims are good from here on.
	caller := v.callerName(claims)
	if caller == "" {
		return a.jwtFail(invalidToken("token has no "+v.callerClaim+" claim"), "missing caller claim", "", supplierHeader, remote, t, claims)
	}
	exp, _ := claims.GetExpirationTime() // present: the parser requires it
	start := v.now()
	if iat, _ := claims.GetIssuedAt(); iat != nil {
		start = iat.Time
	}
	if exp.Sub(start) > v.maxTTL {
		return a.jwtFail(invalidToken(fmt.Sprintf("token lifetime exceeds %v", v.maxTTL)), "token lifetime exceeds max TTL", caller, supplierHeader, remote, t, claims)
	}
	supplier, ok := claims[v.supplierClaim].(string)
	switch {
	case !ok:
		return a.jwtFail(invalidToken("token has no "+v.supplierClaim+" claim"), "missing supplier claim", caller, supplierHeader, remote, t, claims)
	case !validSupplier(supplier):
		return a.jwtFail(invalidToken("token's "+v.supplierClaim+" claim is not a valid supplier ID"), "malformed supplier claim", caller, supplierHeader, remote, t, claims)
	}
	id := Identity{Caller: newSingleCaller(caller, supplier), Signed: true}
	if len(supplierHeader) > 0 {
		switch {
		case !ValidSupplierID(supplierHeader):
			return a.jwtFail(&failInvalidSupplier, "malformed X-Supplier-ID", caller, []byte(supplier), remote, t, claims)
		case string(supplierHeader) != supplier:
			f := &Failure{Status: http.StatusForbidden, Code: CodeSupplierMismatch,
				Message: fmt.Sprintf("X-Supplier-ID %q does not match the token's supplier %q", supplierHeader, supplier)}
			return a.jwtFail(f, "X-Supplier-ID differs from supplier claim", caller, supplierHeader, remote, t, claims)
		}
		id.Supplier = supplierHeader // equal to the claim; saves a copy
	} else {
		id.Supplier = []byte(supplier)
	}
	return id, nil
}

func (a *Authenticator) jwtFail(f *Failure, reason, caller string, supplier []byte, remote string, t *jwt.Token, claims jwt.MapClaims) (Identity, *Failure) {
	return a.fail(f, reason, caller, supplier, remote, tokenFields(t, claims)...)
}

// callerName returns the sanitised caller claim, or "" if there is none.
func (v *jwtVerifier) callerName(claims jwt.MapClaims) string {
	s, _ := claims[v.callerClaim].(string)
	return sanitizeName(s)
}

// tokenFields returns the audit fields that identify a token without
// revealing it: its algorithm, key ID and issuer, sanitised, as far as they
// could be parsed. They are unverified when the signature did not verify.
func tokenFields(t *jwt.Token, claims jwt.MapClaims) []zap.Field {
	if t == nil {
		return nil
	}
	var fields []zap.Field
	if alg, ok := t.Header["alg"].(string); ok {
		fields = append(fields, zap.String("alg", sanitizeName(alg)))
	}
	if kid, ok := t.Header["kid"].(string); ok && kid != "" {
		fields = append(fields, zap.String("kid", sanitizeName(kid)))
	}
	if iss, ok := claims["iss"].(string); ok && iss != "" {
		fields = append(fields, zap.String("iss", sanitizeName(iss)))
	}
	return fields
}

func invalidToken(detail string) *Failure {
	return &Failure{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Message: "invalid token: " + detail}
}

// classify maps a parser error to a failure and an audit reason, and
// reports whether the signature had verified (only claims failed). The
// reasons are fixed strings: the parser's messages can quote token bytes.
func (v *jwtVerifier) classify(t *jwt.Token, claims jwt.MapClaims, err error) (f *Failure, reason string, verified bool) {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalidToken("malformed token"), "malformed token", false
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t == nil || t.Method == nil || !v.accepts(t.Method.Alg()) {
			return invalidToken("signing algorithm not accepted"), "algorithm not accepted", false
		}
		return invalidToken("signature is invalid"), "signature invalid", false
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return invalidToken("token could not be verified"), "unverifiable token", false
	}
	// The signature verified; a claim failed. Hard failures come before
	// time failures, so that an expired token from the wrong issuer is not
	// reported as merely expired.
	switch {
	case errors.Is(err, jwt.ErrInvalidType):
		return invalidToken("a registered claim has the wrong type"), "malformed claim", true
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		missing := "aud"
		if exp, _ := claims.GetExpirationTime(); exp == nil {
			missing = "exp"
		} else if iss, _ := claims.GetIssuer(); v.issuer != "" && iss == "" {
			missing = "iss"
		}
		return invalidToken("token has no " + missing + " claim"), "missing " + missing + " claim", true
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalidToken("issuer not accepted"), "issuer not accepted", true
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalidToken("audience not accepted"), "audience not accepted", true
	case errors.Is(err, jwt.ErrTokenExpired):
		return &Failure{Status: http.StatusUnauthorized, Code: CodeTokenExpired, Message: "token has expired"}, "token expired", true
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return &Failure{Status: http.StatusUnauthorized, Code: CodeTokenNotYetValid, Message: "token is not valid yet"}, "token not valid yet", true
	}
	return invalidToken("token claims are invalid"), "invalid claims", true
}

func (v *jwtVerifier) accepts(alg string) bool {
	for _, m := range v.methods {
		if m == alg {
			return true
		}
	}
	return false
}
