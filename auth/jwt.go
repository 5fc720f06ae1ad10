package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/wedsync/veil/auth/jwks"
	"github.com/wedsync/veil/keys"
)

// JWTOptions configures the verification of signed tokens. With static
// keys only HS256 and EdDSA (Ed25519) are accepted, and only for an
// algorithm with at least one key configured; tokens of an issuer in
// Issuers are verified against that issuer's key set with RS256, ES256 or
// EdDSA. "none" and every other algorithm are refused.
type JWTOptions struct {
	// Issuers are issuers whose keys come from a key set (JWKS), such as
	// an OpenID Connect provider or a Kubernetes cluster. A token whose
	// iss names one of them is verified against its keys only; other
	// tokens against the static keys below.
	Issuers []IssuerOptions
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

// KeySet is an issuer's verification keys, such as a *jwks.Set.
type KeySet interface {
	// Lookup returns the key with the ID kid for the algorithm alg.
	Lookup(ctx context.Context, kid, alg string) (jwks.Key, error)
}

var _ KeySet = (*jwks.Set)(nil)

// IssuerOptions configure the tokens of one issuer with a key set.
type IssuerOptions struct {
	// Issuer is the iss the issuer's tokens carry.
	Issuer string
	// Audience is required: it must be in a token's aud, so that tokens
	// minted for other services are not accepted.
	Audience string
	// Keys are the issuer's keys.
	Keys KeySet
	// SupplierClaim and CallerClaim are as in JWTOptions; a Kubernetes
	// issuer uses neither.
	SupplierClaim string
	CallerClaim   string
	// ServiceAccounts, when not nil, makes the issuer a Kubernetes
	// cluster whose projected service-account tokens are callers: the sub
	// "system:serviceaccount:NAMESPACE:NAME" names the caller
	// "NAMESPACE/NAME", whose scope is ServiceAccounts["NAMESPACE/NAME"]
	// (["*"] for every supplier). The supplier comes from X-Supplier-ID,
	// which may be left out when the scope is one supplier. A service
	// account not listed is refused.
	ServiceAccounts map[string][]string
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
	hmacKeys      any                // jwt.VerificationKeySet, boxed once
	edKeys        any                // jwt.VerificationKeySet, boxed once
	keySet        KeySet             // an issuer's key set, instead of static keys
	accounts      map[string]*Caller // Kubernetes service accounts by sub; nil otherwise
	methods       []string
	issuer        string
	audience      string
	supplierClaim string
	callerClaim   string
	maxTTL        time.Duration
	leeway        time.Duration
	now           func() time.Time
}

// jwtVerifiers are the verifiers of a JWT configuration: one per issuer
// with a key set, by iss, and one for the static keys (nil without any).
type jwtVerifiers struct {
	static  *jwtVerifier
	issuers map[string]*jwtVerifier
}

func newJWTVerifiers(o JWTOptions, now func() time.Time) (*jwtVerifiers, error) {
	vs := &jwtVerifiers{issuers: make(map[string]*jwtVerifier, len(o.Issuers))}
	if len(o.HS256Keys) > 0 || len(o.Ed25519Keys) > 0 {
		v, err := newJWTVerifier(o, now)
		if err != nil {
			return nil, err
		}
		vs.static = v
	} else if len(o.Issuers) == 0 {
		return nil, errors.New("auth: JWT is configured without HS256 or Ed25519 keys or issuers")
	}
	for i, is := range o.Issuers {
		switch {
		case is.Issuer == "":
			return nil, fmt.Errorf("auth: JWT issuer %d has no issuer URL", i)
		case is.Audience == "":
			return nil, fmt.Errorf("auth: JWT issuer %s has no audience", is.Issuer)
		case is.Keys == nil:
			return nil, fmt.Errorf("auth: JWT issuer %s has no key set", is.Issuer)
		case vs.issuers[is.Issuer] != nil:
			return nil, fmt.Errorf("auth: JWT issuer %s is configured twice", is.Issuer)
		case vs.static != nil && o.Issuer == is.Issuer:
			return nil, fmt.Errorf("auth: JWT issuer %s has both static keys and a key set", is.Issuer)
		}
		v, err := newIssuerVerifier(o, is, now)
		if err != nil {
			return nil, err
		}
		vs.issuers[is.Issuer] = v
	}
	return vs, nil
}

// newIssuerVerifier returns the verifier of one issuer with a key set,
// with the leeway and lifetime of o.
func newIssuerVerifier(o JWTOptions, is IssuerOptions, now func() time.Time) (*jwtVerifier, error) {
	base := JWTOptions{Issuer: is.Issuer, Audience: is.Audience, SupplierClaim: is.SupplierClaim, CallerClaim: is.CallerClaim,
		Leeway: o.Leeway, MaxTTL: o.MaxTTL}
	v, err := newVerifierBase(base, now)
	if err != nil {
		return nil, err
	}
	v.keySet = is.Keys
	v.methods = []string{jwks.RS256, jwks.ES256, jwks.EdDSA}
	v.keyfunc = v.setKey
	if is.ServiceAccounts != nil {
		v.accounts = make(map[string]*Caller, len(is.ServiceAccounts))
		for sa, suppliers := range is.ServiceAccounts {
			ns, name, ok := strings.Cut(sa, "/")
			if !ok || ns == "" || name == "" || strings.Contains(name, "/") || sanitizeName(sa) != sa {
				return nil, fmt.Errorf("auth: JWT issuer %s: service account %q is not NAMESPACE/NAME", is.Issuer, sa)
			}
			c, err := newScopedCaller(sa, suppliers)
			if err != nil {
				return nil, fmt.Errorf("auth: JWT issuer %s: %w", is.Issuer, err)
			}
			v.accounts["system:serviceaccount:"+ns+":"+name] = &c
		}
	}
	v.parser = v.newParser()
	return v, nil
}

// setKey is the jwt.Keyfunc of an issuer with a key set: the key the
// token's kid names, for the token's algorithm only.
func (v *jwtVerifier) setKey(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, err := v.keySet.Lookup(context.Background(), kid, t.Method.Alg())
	if err != nil {
		return nil, err
	}
	return k.Public, nil
}

// pick returns the verifier of a token: its issuer's when the unverified
// iss names an issuer with a key set, else the static keys' (nil when
// there are none).
func (vs *jwtVerifiers) pick(token []byte) *jwtVerifier {
	if len(vs.issuers) > 0 {
		if _, rest, ok := bytes.Cut(token, []byte{'.'}); ok {
			if payload, _, ok := bytes.Cut(rest, []byte{'.'}); ok {
				if raw, err := base64.RawURLEncoding.DecodeString(string(payload)); err == nil {
					if v := vs.issuers[gjson.GetBytes(raw, "iss").String()]; v != nil {
						return v
					}
				}
			}
		}
	}
	return vs.static
}

func newJWTVerifier(o JWTOptions, now func() time.Time) (*jwtVerifier, error) {
	if len(o.HS256Keys) == 0 && len(o.Ed25519Keys) == 0 {
		return nil, errors.New("auth: JWT is configured without HS256 or Ed25519 keys")
	}
	v, err := newVerifierBase(o, now)
	if err != nil {
		return nil, err
	}
	if err := v.staticKeys(o); err != nil {
		return nil, err
	}
	v.parser = v.newParser()
	return v, nil
}

// newVerifierBase returns a verifier with o's claims, leeway and lifetime
// checked and defaulted, without keys or parser.
func newVerifierBase(o JWTOptions, now func() time.Time) (*jwtVerifier, error) {
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
	v.leeway = o.Leeway
	switch {
	case v.leeway < 0:
		return nil, fmt.Errorf("auth: negative JWT leeway %v", v.leeway)
	case v.leeway == 0:
		v.leeway = DefaultLeeway
	}
	switch {
	case v.maxTTL < 0:
		return nil, fmt.Errorf("auth: negative JWT max TTL %v", v.maxTTL)
	case v.maxTTL == 0:
		v.maxTTL = DefaultMaxTTL
	}
	return v, nil
}

// staticKeys sets the verifier's HS256 and Ed25519 keys.
func (v *jwtVerifier) staticKeys(o JWTOptions) error {
	var edSet, hmacSet jwt.VerificationKeySet
	for i, k := range o.Ed25519Keys {
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("auth: Ed25519 key %d is %d bytes, want %d", i, len(k), ed25519.PublicKeySize)
		}
		for j := range i {
			if bytes.Equal(k, o.Ed25519Keys[j]) {
				return fmt.Errorf("auth: Ed25519 keys %d and %d are the same", j, i)
			}
		}
		edSet.Keys = append(edSet.Keys, ed25519.PublicKey(bytes.Clone(k)))
	}
	for i, s := range o.HS256Keys {
		k := s.Reveal()
		if len(k) < minHS256KeyLen {
			return fmt.Errorf("auth: HS256 key %d (%v) is shorter than %d bytes", i, s, minHS256KeyLen)
		}
		for j := range i {
			if o.HS256Keys[j].Reveal() == k {
				return fmt.Errorf("auth: HS256 keys %d and %d are the same (%v)", j, i, s)
			}
		}
		// An Ed25519 public key is public: as an HMAC secret it would let
		// anyone forge tokens (algorithm confusion).
		for j, pub := range o.Ed25519Keys {
			if string(pub) == k {
				return fmt.Errorf("auth: HS256 key %d (%v) is Ed25519 public key %d", i, s, j)
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
	return nil
}

// newParser returns the parser of the verifier's methods and claims.
func (v *jwtVerifier) newParser() *jwt.Parser {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
		jwt.WithStrictDecoding(),
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	return jwt.NewParser(opts...)
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
	if len(token) > maxJWTLen {
		return a.fail(invalidToken("token is too long"), "token too long", "", supplierHeader, remote)
	}
	v := a.jwt.pick(token)
	if v == nil {
		return a.fail(invalidToken("issuer not accepted"), "issuer not accepted", "", supplierHeader, remote)
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
	if v.accounts != nil {
		return a.serviceAccount(v, supplierHeader, remote, t, claims)
	}
	caller := v.callerName(claims)
	if caller == "" {
		return a.jwtFail(invalidToken("token has no "+v.callerClaim+" claim"), "missing caller claim", "", supplierHeader, remote, t, claims)
	}
	if v.exceedsTTL(claims) {
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

// serviceAccount derives the identity from a verified Kubernetes
// service-account token: the account's configured scope, and the supplier
// from X-Supplier-ID (or the scope's only supplier).
func (a *Authenticator) serviceAccount(v *jwtVerifier, supplierHeader []byte, remote string, t *jwt.Token, claims jwt.MapClaims) (Identity, *Failure) {
	sub, _ := claims["sub"].(string)
	c := v.accounts[sub]
	if c == nil {
		name := sanitizeName(strings.Replace(strings.TrimPrefix(sub, "system:serviceaccount:"), ":", "/", 1))
		f := &Failure{Status: http.StatusForbidden, Code: CodeSupplierNotAllowed,
			Message: fmt.Sprintf("service account %q is not a caller of veil", name)}
		return a.jwtFail(f, "service account not configured", name, supplierHeader, remote, t, claims)
	}
	if v.exceedsTTL(claims) {
		return a.jwtFail(invalidToken(fmt.Sprintf("token lifetime exceeds %v", v.maxTTL)), "token lifetime exceeds max TTL", c.Name, supplierHeader, remote, t, claims)
	}
	switch {
	case len(supplierHeader) == 0 && !c.all && len(c.suppliers) == 1:
		return Identity{Caller: c, Supplier: []byte(c.suppliers[0]), Signed: true}, nil
	case len(supplierHeader) == 0:
		return a.jwtFail(&failSupplierRequired, "no X-Supplier-ID", c.Name, nil, remote, t, claims)
	case !ValidSupplierID(supplierHeader):
		return a.jwtFail(&failInvalidSupplier, "malformed X-Supplier-ID", c.Name, nil, remote, t, claims)
	case !c.Allows(supplierHeader):
		return a.jwtFail(notAllowed(c.Name, supplierHeader), "supplier outside caller scope", c.Name, supplierHeader, remote, t, claims)
	}
	return Identity{Caller: c, Supplier: supplierHeader, Signed: true}, nil
}

// exceedsTTL reports whether a token lives longer than MaxTTL: exp minus
// iat, or minus now without iat.
func (v *jwtVerifier) exceedsTTL(claims jwt.MapClaims) bool {
	exp, _ := claims.GetExpirationTime() // present: the parser requires it
	start := v.now()
	if iat, _ := claims.GetIssuedAt(); iat != nil {
		start = iat.Time
	}
	return exp.Sub(start) > v.maxTTL
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
	case errors.Is(err, jwks.ErrUnavailable):
		return &Failure{Status: http.StatusServiceUnavailable, Code: CodeIssuerKeysUnavailable,
			Message: "the token's issuer keys are not available yet; try again"}, "issuer keys unavailable", false
	case errors.Is(err, jwks.ErrUnknownKey):
		return invalidToken("the token's key is not one of its issuer's keys"), "unknown key", false
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
