package auth_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/veil/auth"
	"github.com/wedsync/veil/keys"
)

const (
	hsKey1       = "veil-test-hs256-key-one-0123456789abcdef"
	hsKey2       = "veil-test-hs256-key-two-0123456789abcdef"
	testIssuer   = "https://auth.wedsync.test"
	testAudience = "veil"
)

// testEdKey returns a fixed Ed25519 key pair, so that fuzz seeds stay valid.
func testEdKey() (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

// testJWTOptions accepts HS256 with two keys (rotation) and EdDSA with the
// test key, from testIssuer for testAudience.
func testJWTOptions() *auth.JWTOptions {
	pub, _ := testEdKey()
	return &auth.JWTOptions{
		HS256Keys:   []keys.Secret{keys.NewSecret(hsKey1), keys.NewSecret(hsKey2)},
		Ed25519Keys: []ed25519.PublicKey{pub},
		Issuer:      testIssuer,
		Audience:    testAudience,
	}
}

// claims returns valid claims for the test clock, changed by mods.
func claims(mods ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss":         testIssuer,
		"aud":         testAudience,
		"sub":         "svc:planner",
		"supplier_id": "acme-photo",
		"iat":         testNow.Add(-time.Minute).Unix(),
		"exp":         testNow.Add(time.Hour).Unix(),
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

func set(name string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[name] = v } }

func unset(name string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, name) } }

func at(d time.Duration) int64 { return testNow.Add(d).Unix() }

// sign returns a compact JWT for c, signed by method with key, with extra
// header fields.
func sign(method jwt.SigningMethod, key any, c jwt.MapClaims, header ...string) string {
	tok := jwt.NewWithClaims(method, c)
	for i := 0; i+1 < len(header); i += 2 {
		tok.Header[header[i]] = header[i+1]
	}
	s, err := tok.SignedString(key)
	if err != nil {
		panic(err)
	}
	return s
}

func signHS(key string, c jwt.MapClaims) string { return sign(jwt.SigningMethodHS256, []byte(key), c) }

func signEd(c jwt.MapClaims) string {
	_, priv := testEdKey()
	return sign(jwt.SigningMethodEdDSA, priv, c)
}

// rawToken assembles a token from a literal header, claims and signature.
func rawToken(header, claimsJSON string, sig []byte) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claimsJSON)) + "." + enc.EncodeToString(sig)
}

func TestAuthenticateJWT(t *testing.T) {
	pub, _ := testEdKey()
	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	main := newAuth(t, auth.Options{Callers: testCallers(), JWT: testJWTOptions()})
	edOnly := newAuth(t, auth.Options{JWT: &auth.JWTOptions{Ed25519Keys: []ed25519.PublicKey{pub}}})
	custom := newAuth(t, auth.Options{JWT: &auth.JWTOptions{
		HS256Keys:     []keys.Secret{keys.NewSecret(hsKey1)},
		SupplierClaim: "https://wedsync.test/supplier",
		CallerClaim:   "azp",
		MaxTTL:        time.Hour,
	}})

	valid := signHS(hsKey1, claims())
	parts := strings.Split(valid, ".")
	otherPayload := strings.Split(signHS(hsKey1, claims(set("supplier_id", "rose.venue"))), ".")[1]

	tests := []struct {
		name     string
		auth     *auth.Authenticator // nil: main
		token    string
		supplier string
		want     want
	}{
		{"hs256", nil, valid, "", ok("svc:planner", "acme-photo")},
		{"hs256 with matching header", nil, valid, "acme-photo", ok("svc:planner", "acme-photo")},
		{"hs256 rotated key", nil, signHS(hsKey2, claims()), "", ok("svc:planner", "acme-photo")},
		{"eddsa", nil, signEd(claims()), "", ok("svc:planner", "acme-photo")},
		{"eddsa only config", edOnly, signEd(claims()), "", ok("svc:planner", "acme-photo")},
		{"aud list", nil, signHS(hsKey1, claims(set("aud", []string{"other", testAudience}))), "", ok("svc:planner", "acme-photo")},
		{"exp within leeway", nil, signHS(hsKey1, claims(set("iat", at(-time.Hour)), set("exp", at(-10*time.Second)))), "", ok("svc:planner", "acme-photo")},
		{"nbf within leeway", nil, signHS(hsKey1, claims(set("nbf", at(10*time.Second)))), "", ok("svc:planner", "acme-photo")},
		{"iat within leeway", nil, signHS(hsKey1, claims(set("iat", at(10*time.Second)))), "", ok("svc:planner", "acme-photo")},
		{"lifetime at max ttl", nil, signHS(hsKey1, claims(set("exp", at(-time.Minute+24*time.Hour)))), "", ok("svc:planner", "acme-photo")},
		{"no iat, remaining life within max ttl", nil, signHS(hsKey1, claims(unset("iat"), set("exp", at(23*time.Hour)))), "", ok("svc:planner", "acme-photo")},
		{"sanitised caller", nil, signHS(hsKey1, claims(set("sub", "svc planner\n\x1b[31m"))), "", ok("svc_planner___31m", "acme-photo")},
		{"bounded caller", nil, signHS(hsKey1, claims(set("sub", strings.Repeat("s", 300)))), "", ok(strings.Repeat("s", 128), "acme-photo")},
		{"custom claims", custom, signHS(hsKey1, jwt.MapClaims{"azp": "planner-app", "https://wedsync.test/supplier": "rose.venue", "exp": at(time.Hour)}), "", ok("planner-app", "rose.venue")},

		{"forged hs256", nil, signHS("an-attacker-key-0123456789abcdef-xx", claims()), "", refused(401, auth.CodeInvalidToken)},
		{"forged eddsa", nil, sign(jwt.SigningMethodEdDSA, otherPriv, claims()), "", refused(401, auth.CodeInvalidToken)},
		{"tampered claims", nil, parts[0] + "." + otherPayload + "." + parts[2], "", refused(401, auth.CodeInvalidToken)},
		{"truncated signature", nil, valid[:len(valid)-4], "", refused(401, auth.CodeInvalidToken)},
		{"alg none", nil, sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims()), "", refused(401, auth.CodeInvalidToken)},
		{"alg none with signature", nil, rawToken(`{"alg":"none","typ":"JWT"}`, `{"sub":"x","supplier_id":"acme-photo"}`, []byte("sig")), "", refused(401, auth.CodeInvalidToken)},
		{"alg NONE", nil, rawToken(`{"alg":"NONE"}`, `{"sub":"x"}`, []byte("sig")), "", refused(401, auth.CodeInvalidToken)},
		{"alg missing", nil, rawToken(`{"typ":"JWT"}`, `{"sub":"x"}`, []byte("sig")), "", refused(401, auth.CodeInvalidToken)},
		{"alg hs512", nil, sign(jwt.SigningMethodHS512, []byte(hsKey1), claims()), "", refused(401, auth.CodeInvalidToken)},
		{"alg confusion", nil, sign(jwt.SigningMethodHS256, []byte(pub), claims()), "", refused(401, auth.CodeInvalidToken)},
		{"alg confusion eddsa only", edOnly, sign(jwt.SigningMethodHS256, []byte(pub), claims()), "", refused(401, auth.CodeInvalidToken)},
		{"hs256 to eddsa only", edOnly, valid, "", refused(401, auth.CodeInvalidToken)},
		{"malformed", nil, "aaaa.bbbb.cccc", "", refused(401, auth.CodeInvalidToken)},
		{"too long", nil, signHS(hsKey1, claims(set("pad", strings.Repeat("p", 9000)))), "", refused(401, auth.CodeInvalidToken)},

		{"expired", nil, signHS(hsKey1, claims(set("iat", at(-2*time.Hour)), set("exp", at(-time.Hour)))), "", refused(401, auth.CodeTokenExpired)},
		{"expired beyond leeway", nil, signHS(hsKey1, claims(set("iat", at(-time.Hour)), set("exp", at(-31*time.Second)))), "", refused(401, auth.CodeTokenExpired)},
		{"not yet valid", nil, signHS(hsKey1, claims(set("nbf", at(5*time.Minute)))), "", refused(401, auth.CodeTokenNotYetValid)},
		{"issued in the future", nil, signHS(hsKey1, claims(set("iat", at(5*time.Minute)))), "", refused(401, auth.CodeTokenNotYetValid)},
		{"wrong issuer", nil, signHS(hsKey1, claims(set("iss", "https://evil.test"))), "", refused(401, auth.CodeInvalidToken)},
		{"missing issuer", nil, signHS(hsKey1, claims(unset("iss"))), "", refused(401, auth.CodeInvalidToken)},
		{"wrong audience", nil, signHS(hsKey1, claims(set("aud", "other"))), "", refused(401, auth.CodeInvalidToken)},
		{"missing audience", nil, signHS(hsKey1, claims(unset("aud"))), "", refused(401, auth.CodeInvalidToken)},
		{"expired and wrong issuer", nil, signHS(hsKey1, claims(set("iss", "x"), set("iat", at(-2*time.Hour)), set("exp", at(-time.Hour)))), "", refused(401, auth.CodeInvalidToken)},
		{"missing exp", nil, signHS(hsKey1, claims(unset("exp"))), "", refused(401, auth.CodeInvalidToken)},
		{"zero exp", nil, signHS(hsKey1, claims(set("exp", 0))), "", refused(401, auth.CodeInvalidToken)},
		{"string exp", nil, signHS(hsKey1, claims(set("exp", "tomorrow"))), "", refused(401, auth.CodeInvalidToken)},
		{"huge exp", nil, signHS(hsKey1, claims(set("exp", 1e300))), "", refused(401, auth.CodeTokenExpired)},
		{"lifetime over max ttl", nil, signHS(hsKey1, claims(set("exp", at(24*time.Hour)))), "", refused(401, auth.CodeInvalidToken)},
		{"no iat, remaining life over max ttl", nil, signHS(hsKey1, claims(unset("iat"), set("exp", at(25*time.Hour)))), "", refused(401, auth.CodeInvalidToken)},
		{"custom max ttl", custom, signHS(hsKey1, jwt.MapClaims{"azp": "a", "https://wedsync.test/supplier": "s", "exp": at(2 * time.Hour)}), "", refused(401, auth.CodeInvalidToken)},
		{"missing supplier claim", nil, signHS(hsKey1, claims(unset("supplier_id"))), "", refused(401, auth.CodeInvalidToken)},
		{"missing supplier claim with header", nil, signHS(hsKey1, claims(unset("supplier_id"))), "acme-photo", refused(401, auth.CodeInvalidToken)},
		{"numeric supplier claim", nil, signHS(hsKey1, claims(set("supplier_id", 42))), "", refused(401, auth.CodeInvalidToken)},
		{"malformed supplier claim", nil, signHS(hsKey1, claims(set("supplier_id", "acme photo"))), "", refused(401, auth.CodeInvalidToken)},
		{"missing caller claim", nil, signHS(hsKey1, claims(unset("sub"))), "", refused(401, auth.CodeInvalidToken)},
		{"custom claims ignore defaults", custom, signHS(hsKey1, claims()), "", refused(401, auth.CodeInvalidToken)},

		{"malformed header", nil, valid, "acme photo", refused(400, auth.CodeInvalidSupplierID)},
		{"header claim mismatch", nil, valid, "rose.venue", refused(403, auth.CodeSupplierMismatch)},
		{"header claim case mismatch", nil, valid, "Acme-photo", refused(403, auth.CodeSupplierMismatch)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.auth
			if a == nil {
				a = main
			}
			id, f := a.Authenticate([]byte("Bearer "+tt.token), []byte(tt.supplier), "198.51.100.7:443")
			check(t, id, f, tt.want)
			if f != nil {
				sig := tt.token[strings.LastIndexByte(tt.token, '.')+1:]
				if strings.Contains(f.Message, tt.token) || sig != "" && strings.Contains(f.Message, sig) {
					t.Fatalf("failure message %q quotes the token", f.Message)
				}
				return
			}
			if !id.Signed {
				t.Error("JWT identity is not Signed")
			}
			if got := id.Caller.Scope(); !slices.Equal(got, []string{tt.want.supplier}) {
				t.Errorf("Scope() = %q, want only %q", got, tt.want.supplier)
			}
			if id.Caller.Allows([]byte("zeta_caterer")) {
				t.Error("JWT caller allows a supplier other than its claim")
			}
		})
	}
}

func TestJWTShapedStaticToken(t *testing.T) {
	// A JWT-shaped token is a static token unless JWT is configured.
	token := "abc.def.ghi"
	callers := []auth.CallerSpec{{Name: "legacy", TokenHash: hash(token), Suppliers: []string{"*"}}}
	tests := []struct {
		name string
		jwt  *auth.JWTOptions
		want want
	}{
		{"without jwt", nil, ok("legacy", "acme-photo")},
		{"with jwt", testJWTOptions(), refused(401, auth.CodeInvalidToken)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuth(t, auth.Options{Callers: callers, JWT: tt.jwt})
			id, f := a.Authenticate([]byte("Bearer "+token), []byte("acme-photo"), "")
			check(t, id, f, tt.want)
		})
	}
}

func TestJWTOnlyRefusesStaticTokens(t *testing.T) {
	a := newAuth(t, auth.Options{JWT: testJWTOptions()})
	id, f := a.Authenticate([]byte("Bearer tok-billing"), []byte("acme-photo"), "")
	check(t, id, f, refused(401, auth.CodeInvalidCallerToken))
}

func TestJWTClockIsOptionsNow(t *testing.T) {
	token := signHS(hsKey1, claims())
	tests := []struct {
		name string
		now  time.Time
		want want
	}{
		{"at issue", testNow, ok("svc:planner", "acme-photo")},
		{"two hours later", testNow.Add(2 * time.Hour), refused(401, auth.CodeTokenExpired)},
		{"an hour earlier", testNow.Add(-time.Hour), refused(401, auth.CodeTokenNotYetValid)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuth(t, auth.Options{JWT: testJWTOptions(), Now: func() time.Time { return tt.now }})
			id, f := a.Authenticate([]byte("Bearer "+token), nil, "")
			check(t, id, f, tt.want)
		})
	}
}

func TestAuthenticateJWTAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are only meaningful without -short and -race")
	}
	a := newAuth(t, auth.Options{JWT: testJWTOptions()})
	tests := []struct {
		name  string
		token string
		max   float64 // a regression ceiling with headroom over the measured count
	}{
		{"hs256", signHS(hsKey1, claims()), 120},
		{"eddsa", signEd(claims()), 120},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, supplier := []byte("Bearer "+tt.token), []byte("acme-photo")
			allocs := testing.AllocsPerRun(200, func() {
				if _, f := a.Authenticate(header, supplier, ""); f != nil {
					t.Fatal(f)
				}
			})
			t.Logf("%s Authenticate: %v allocs per call", tt.name, allocs)
			if allocs > tt.max {
				t.Fatalf("JWT Authenticate allocates %v times per call, want at most %v", allocs, tt.max)
			}
		})
	}
}
