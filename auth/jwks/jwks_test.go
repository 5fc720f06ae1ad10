package jwks_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/veil/auth/jwks"
	"github.com/wedsync/veil/internal/jwkstest"
)

// clock is a settable time for MinRefresh.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestDiscoveryAndEachAlgorithm(t *testing.T) {
	for _, alg := range []string{jwks.RS256, jwks.ES256, jwks.EdDSA} {
		t.Run(alg, func(t *testing.T) {
			iss := jwkstest.New(t, alg)
			s, err := jwks.New(jwks.Options{Issuer: iss.URL})
			if err != nil {
				t.Fatal(err)
			}
			k, err := s.Lookup(context.Background(), iss.SigningKey(), alg)
			if err != nil {
				t.Fatalf("lookup: %v", err)
			}
			if k.ID != iss.SigningKey() || k.Alg != alg || k.Public == nil {
				t.Errorf("key %+v", k)
			}
			if _, err := s.Lookup(context.Background(), iss.SigningKey(), "HS256"); !errors.Is(err, jwks.ErrUnknownKey) {
				t.Errorf("a key used with another algorithm: %v, want ErrUnknownKey", err)
			}
		})
	}
}

func TestRotationFetchesOnceForAnUnknownKey(t *testing.T) {
	iss := jwkstest.New(t, jwks.RS256)
	clk := &clock{t: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	s, err := jwks.New(jwks.Options{Issuer: iss.URL, MinRefresh: 10 * time.Second, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := iss.SigningKey()
	if err := s.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	clk.add(11 * time.Second)
	second := iss.Rotate(t, jwks.ES256)
	iss.Retire(first)
	if _, err := s.Lookup(ctx, second, jwks.ES256); err != nil {
		t.Fatalf("rotated key not found: %v", err)
	}
	if n := iss.Fetches(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	// Unknown keys within MinRefresh of the last fetch cost no fetch.
	for range 50 {
		if _, err := s.Lookup(ctx, "forged", jwks.RS256); !errors.Is(err, jwks.ErrUnknownKey) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if n := iss.Fetches(); n != 2 {
		t.Errorf("%d fetches after 50 unknown keys, want 2", n)
	}
	if _, err := s.Lookup(ctx, first, jwks.RS256); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Errorf("retired key: %v, want ErrUnknownKey", err)
	}
	clk.add(11 * time.Second)
	if _, err := s.Lookup(ctx, "forged", jwks.RS256); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	if n := iss.Fetches(); n != 3 {
		t.Errorf("%d fetches, want 3 once MinRefresh passed", n)
	}
}

func TestLastGoodSetKept(t *testing.T) {
	var mu sync.Mutex
	status := http.StatusOK
	iss := jwkstest.New(t, jwks.EdDSA)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st := status
		mu.Unlock()
		if st != http.StatusOK {
			http.Error(w, "down", st)
			return
		}
		resp, err := http.Get(iss.JWKSURL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var v any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		_ = json.NewEncoder(w).Encode(v)
	}))
	defer proxy.Close()
	s, err := jwks.New(jwks.Options{JWKSURL: proxy.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	if err := s.Fetch(context.Background()); err == nil {
		t.Fatal("a failed fetch reported no error")
	}
	if _, err := s.Lookup(context.Background(), iss.SigningKey(), jwks.EdDSA); err != nil {
		t.Errorf("the last good key is gone after a failed fetch: %v", err)
	}
	if at, err := s.Fetched(); at.IsZero() || err == nil {
		t.Errorf("Fetched() = %v, %v", at, err)
	}
}

func TestNeverFetched(t *testing.T) {
	s, err := jwks.New(jwks.Options{JWKSURL: "http://127.0.0.1:1/keys", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(context.Background(), "k", jwks.RS256); !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("got %v, want ErrUnavailable", err)
	}
}

func TestTLSWithCAFileAndToken(t *testing.T) {
	iss := jwkstest.NewTLS(t, jwks.ES256)
	iss.RequireToken("pod-token")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("pod-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	without, err := jwks.New(jwks.Options{Issuer: iss.URL, TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := without.Fetch(context.Background()); err == nil {
		t.Error("fetched over TLS without the issuer's CA")
	}
	s, err := jwks.New(jwks.Options{Issuer: iss.URL, CAFile: iss.CAFile, TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Fetch(context.Background()); err != nil {
		t.Fatalf("fetch with CA and token: %v", err)
	}
	noToken, _ := jwks.New(jwks.Options{Issuer: iss.URL, CAFile: iss.CAFile})
	if err := noToken.Fetch(context.Background()); err == nil {
		t.Error("fetched without the required token")
	}
}

func TestDiscoveryMustNameTheIssuer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "https://elsewhere.example", "jwks_uri": "https://elsewhere.example/keys"})
	}))
	defer srv.Close()
	s, _ := jwks.New(jwks.Options{Issuer: srv.URL})
	if err := s.Fetch(context.Background()); err == nil {
		t.Error("accepted a discovery document of another issuer")
	}
}

func TestParseKey(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	good := jwkstest.JWK("r", &rsaKey.PublicKey)
	mod := func(m map[string]string, k, v string) []byte {
		c := map[string]string{}
		for a, b := range m {
			c[a] = b
		}
		c[k] = v
		b, _ := json.Marshal(c)
		return b
	}
	enc := func(m map[string]string) []byte { b, _ := json.Marshal(m); return b }
	tests := []struct {
		name string
		raw  []byte
		ok   bool
	}{
		{"rsa", enc(good), true},
		{"rsa without alg", mod(good, "alg", ""), true},
		{"rsa for encryption", mod(good, "use", "enc"), false},
		{"rsa naming another alg", mod(good, "alg", "RS512"), false},
		{"rsa with a private part", mod(good, "d", "AQAB"), false},
		{"weak rsa", enc(jwkstest.JWK("w", &weak.PublicKey)), false},
		{"bad modulus", mod(good, "n", "!!"), false},
		{"P-384", []byte(`{"kty":"EC","crv":"P-384","x":"` + jsonB64(p384.X.Bytes()) + `","y":"` + jsonB64(p384.Y.Bytes()) + `"}`), false},
		{"point off the curve", []byte(`{"kty":"EC","crv":"P-256","x":"` + jsonB64(make([]byte, 32)) + `","y":"` + jsonB64(append(make([]byte, 31), 1)) + `"}`), false},
		{"X25519", []byte(`{"kty":"OKP","crv":"X25519","x":"` + jsonB64(make([]byte, 32)) + `"}`), false},
		{"symmetric", []byte(`{"kty":"oct","k":"c2VjcmV0"}`), false},
		{"not JSON", []byte(`{`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := jwks.ParseKey(tt.raw)
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func jsonB64(b []byte) string {
	s, _ := json.Marshal(b) // standard base64, padded
	out := s[1 : len(s)-1]
	for i, c := range out {
		switch c {
		case '+':
			out[i] = '-'
		case '/':
			out[i] = '_'
		}
	}
	for len(out) > 0 && out[len(out)-1] == '=' {
		out = out[:len(out)-1]
	}
	return string(out)
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte(`{"kty":"RSA","n":"AQAB","e":"AQAB"}`))
	f.Add([]byte(`{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}`))
	f.Add([]byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		k, err := jwks.ParseKey(raw)
		if err == nil && (k.Public == nil || k.Alg == "") {
			t.Fatalf("accepted a key without a public part: %+v", k)
		}
	})
}
