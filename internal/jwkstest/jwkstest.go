// Package jwkstest runs a token issuer for tests: an HTTP(S) server with an
// OpenID Connect discovery document and a JSON Web Key Set, whose signing
// keys (RS256, ES256, EdDSA) can be rotated and retired while it runs, and
// which signs tokens with them.
package jwkstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is a running test issuer.
type Issuer struct {
	// URL is the issuer's URL (its iss), and JWKSURL its key set's.
	URL     string
	JWKSURL string
	// CAFile is a PEM file of the server's certificate when it serves
	// TLS (NewTLS), empty otherwise.
	CAFile string

	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	keys    []*key // published, in order
	signing *key
	n       int
	// Token, when set, is the bearer token the server requires.
	token string
}

type key struct {
	kid    string
	alg    string
	priv   crypto.Signer
	method jwt.SigningMethod
}

// New starts an issuer over plain HTTP with one signing key of alg (RS256,
// ES256 or EdDSA); it stops with the test.
func New(t testing.TB, alg string) *Issuer {
	t.Helper()
	i := &Issuer{}
	i.srv = httptest.NewServer(http.HandlerFunc(i.serve))
	i.start(t, alg)
	return i
}

// NewTLS is New over HTTPS with a certificate of its own, written to
// CAFile.
func NewTLS(t testing.TB, alg string) *Issuer {
	t.Helper()
	i := &Issuer{}
	i.srv = httptest.NewTLSServer(http.HandlerFunc(i.serve))
	i.CAFile = filepath.Join(t.TempDir(), "issuer-ca.pem")
	cert := i.srv.Certificate()
	if err := os.WriteFile(i.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	i.start(t, alg)
	return i
}

func (i *Issuer) start(t testing.TB, alg string) {
	t.Cleanup(i.srv.Close)
	i.URL = i.srv.URL
	i.JWKSURL = i.srv.URL + "/keys"
	i.Rotate(t, alg)
}

// RequireToken makes the server refuse fetches without this bearer token.
func (i *Issuer) RequireToken(token string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.token = token
}

// Fetches returns how many times the key set was served.
func (i *Issuer) Fetches() int64 { return i.fetches.Load() }

func (i *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	token := i.token
	i.mu.Unlock()
	if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": i.URL, "jwks_uri": i.JWKSURL,
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "EdDSA"}})
	case "/keys":
		i.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": i.published()})
	default:
		http.NotFound(w, r)
	}
}

// published returns the JSON Web Keys of the published keys.
func (i *Issuer) published() []map[string]string {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]map[string]string, 0, len(i.keys))
	for _, k := range i.keys {
		out = append(out, JWK(k.kid, k.priv.Public()))
	}
	return out
}

// JWK returns the JSON Web Key of a public key.
func JWK(kid string, pub crypto.PublicKey) map[string]string {
	enc := base64.RawURLEncoding.EncodeToString
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": enc(p.N.Bytes()), "e": enc(big.NewInt(int64(p.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, _ := p.Bytes() // 0x04 || X || Y
		return map[string]string{"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
			"x": enc(b[1:33]), "y": enc(b[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": enc(p)}
	}
	return nil
}

// Rotate adds a new key of alg, publishes it beside the old ones and signs
// with it from now on; it returns its key ID.
func (i *Issuer) Rotate(t testing.TB, alg string) string {
	t.Helper()
	k := &key{alg: alg}
	var err error
	switch alg {
	case "RS256":
		k.priv, err = rsa.GenerateKey(rand.Reader, 2048)
		k.method = jwt.SigningMethodRS256
	case "ES256":
		k.priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k.method = jwt.SigningMethodES256
	case "EdDSA":
		_, k.priv, err = ed25519.GenerateKey(rand.Reader)
		k.method = jwt.SigningMethodEdDSA
	default:
		t.Fatalf("jwkstest: unknown algorithm %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.n++
	k.kid = fmt.Sprintf("key-%d-%s", i.n, alg)
	i.keys = append(i.keys, k)
	i.signing = k
	return k.kid
}

// Retire stops publishing the key kid.
func (i *Issuer) Retire(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for n, k := range i.keys {
		if k.kid == kid {
			i.keys = append(i.keys[:n], i.keys[n+1:]...)
			return
		}
	}
}

// Sign signs claims with the current signing key, naming it in the kid
// header.
func (i *Issuer) Sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	i.mu.Lock()
	k := i.signing
	i.mu.Unlock()
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// SigningKey returns the current signing key's ID.
func (i *Issuer) SigningKey() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.signing.kid
}
