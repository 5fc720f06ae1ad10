// Package jwks keeps the signing keys of a token issuer in memory: a JSON
// Web Key Set fetched from the issuer's jwks_uri (given, or found by OpenID
// Connect discovery), refreshed on an interval, and fetched again, at most
// once per MinRefresh, when a token names a key the set does not hold, so
// that an issuer's key rotation is followed within one request.
//
// Only signature keys veil verifies are kept: RSA (RS256, 2048 bits or
// more), EC P-256 (ES256) and Ed25519 (EdDSA). Other keys in a set are
// skipped, not fatal. The last good set is kept when a fetch fails.
package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Algorithms of the keys a Set holds, as JWS "alg" values.
const (
	RS256 = "RS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// Defaults of Options.
const (
	// DefaultRefresh is how often a set is fetched again.
	DefaultRefresh = time.Hour
	// DefaultMinRefresh is the least time between two fetches caused by
	// tokens naming unknown keys.
	DefaultMinRefresh = 10 * time.Second
	// DefaultTimeout bounds one fetch, discovery included.
	DefaultTimeout = 10 * time.Second
	// maxDocument bounds a discovery document or key set.
	maxDocument = 1 << 20
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048
)

var (
	// ErrUnknownKey means the set holds no key with the token's key ID
	// and algorithm, even after fetching it again.
	ErrUnknownKey = errors.New("jwks: no key with that id and algorithm")
	// ErrUnavailable means the set was never fetched successfully.
	ErrUnavailable = errors.New("jwks: the issuer's keys are not available")
)

// Options configure a Set.
type Options struct {
	// Issuer is the issuer's URL. Without JWKSURL, its OpenID Connect
	// discovery document (Issuer + "/.well-known/openid-configuration")
	// names the key set, and must name Issuer as its issuer.
	Issuer string
	// JWKSURL is the key set's URL; it skips discovery.
	JWKSURL string
	// CAFile is a PEM bundle that replaces the system roots for the
	// issuer's TLS certificates (such as a cluster's CA).
	CAFile string
	// TokenFile holds a bearer token sent with each fetch (such as a
	// pod's service-account token, for a cluster's API server), read at
	// each fetch because such tokens rotate.
	TokenFile string
	// Refresh, MinRefresh and Timeout default to DefaultRefresh,
	// DefaultMinRefresh and DefaultTimeout.
	Refresh    time.Duration
	MinRefresh time.Duration
	Timeout    time.Duration
	// Client replaces the HTTP client built from CAFile (tests).
	Client *http.Client
	// Log receives fetch failures and key changes (key IDs only).
	Log *zap.Logger
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Key is one verification key of a set.
type Key struct {
	// ID is the key's "kid"; Alg its algorithm (RS256, ES256 or EdDSA).
	ID  string
	Alg string
	// Public is a *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Public any
}

// Set is an issuer's verification keys. It is safe for concurrent use.
type Set struct {
	o      Options
	client *http.Client
	log    *zap.Logger
	now    func() time.Time

	mu      sync.RWMutex
	keys    []Key
	fetched time.Time // last successful fetch
	tried   time.Time // last fetch attempt
	lastErr error

	fetchMu sync.Mutex // one fetch at a time
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// New returns a Set for o; it holds no key until Fetch or Start.
func New(o Options) (*Set, error) {
	if o.Issuer == "" && o.JWKSURL == "" {
		return nil, errors.New("jwks: an issuer or a key set URL is required")
	}
	for _, u := range []string{o.Issuer, o.JWKSURL} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return nil, fmt.Errorf("jwks: %q is not an http or https URL", u)
		}
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.MinRefresh <= 0 {
		o.MinRefresh = DefaultMinRefresh
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	s := &Set{o: o, client: o.Client, log: o.Log, now: o.Now, stop: make(chan struct{}), done: make(chan struct{})}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("jwks: reading the CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("jwks: no certificate in the CA file %s", o.CAFile)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		s.client = &http.Client{Transport: tr, Timeout: o.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return s, nil
}

// Start fetches the set once, then again every Refresh (every MinRefresh
// while fetches fail) until Stop. A first fetch that fails is logged and
// retried; it does not stop Start.
func (s *Set) Start() {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	if err := s.Fetch(ctx); err != nil {
		s.log.Warn("issuer keys not fetched; retrying", zap.String("issuer", s.name()), zap.Error(err))
	}
	cancel()
	go s.run()
}

// Stop ends the refreshes Start began and waits for them.
func (s *Set) Stop() {
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.done:
	case <-time.After(s.o.Timeout + time.Second):
	}
}

func (s *Set) run() {
	defer close(s.done)
	for {
		wait := s.o.Refresh
		s.mu.RLock()
		if s.lastErr != nil {
			wait = s.o.MinRefresh
		}
		s.mu.RUnlock()
		t := time.NewTimer(wait)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
		if err := s.Fetch(ctx); err != nil {
			s.log.Warn("issuer keys not refreshed; keeping the last set", zap.String("issuer", s.name()), zap.Error(err))
		}
		cancel()
	}
}

// name is the issuer, or the key set's URL without one.
func (s *Set) name() string {
	if s.o.Issuer != "" {
		return s.o.Issuer
	}
	return s.o.JWKSURL
}

// Lookup returns the key with the ID kid (any key of the algorithm when
// kid is empty and the set has exactly one) for alg. A miss fetches the
// set again, unless the last fetch was less than MinRefresh ago, and
// looks once more.
func (s *Set) Lookup(ctx context.Context, kid, alg string) (Key, error) {
	if k, ok := s.find(kid, alg); ok {
		return k, nil
	}
	s.mu.RLock()
	recent := !s.tried.IsZero() && s.now().Sub(s.tried) < s.o.MinRefresh
	s.mu.RUnlock()
	if !recent {
		ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
		err := s.Fetch(ctx)
		cancel()
		if err != nil {
			s.log.Warn("issuer keys not fetched for an unknown key", zap.String("issuer", s.name()), zap.Error(err))
		}
		if k, ok := s.find(kid, alg); ok {
			return k, nil
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fetched.IsZero() {
		return Key{}, ErrUnavailable
	}
	return Key{}, ErrUnknownKey
}

// find looks kid and alg up in the keys held.
func (s *Set) find(kid, alg string) (Key, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var only Key
	n := 0
	for _, k := range s.keys {
		if k.Alg != alg {
			continue
		}
		if kid != "" && k.ID == kid {
			return k, true
		}
		only = k
		n++
	}
	return only, kid == "" && n == 1
}

// Keys returns a copy of the keys held.
func (s *Set) Keys() []Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]Key(nil), s.keys...)
}

// Fetched returns when the set was last fetched successfully (zero:
// never) and the last fetch's error.
func (s *Set) Fetched() (time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fetched, s.lastErr
}

// Fetch fetches the key set now (after discovery when there is no
// JWKSURL) and replaces the keys held when it has at least one usable
// key. Concurrent calls fetch once.
func (s *Set) Fetch(ctx context.Context) error {
	s.mu.RLock()
	before := s.tried
	s.mu.RUnlock()
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	s.mu.RLock()
	again := s.tried != before // another call fetched while this one waited
	err := s.lastErr
	s.mu.RUnlock()
	if again {
		return err
	}
	keys, err := s.fetch(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tried = s.now()
	s.lastErr = err
	if err != nil {
		return err
	}
	if changed(s.keys, keys) {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID
		}
		s.log.Info("issuer keys changed", zap.String("issuer", s.name()), zap.Strings("kids", ids))
	}
	s.keys, s.fetched = keys, s.tried
	return nil
}

// changed reports whether two key lists differ in their IDs.
func changed(a, b []Key) bool {
	if len(a) != len(b) {
		return true
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Alg != b[i].Alg {
			return true
		}
	}
	return false
}

func (s *Set) fetch(ctx context.Context) ([]Key, error) {
	u := s.o.JWKSURL
	if u == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := s.get(ctx, strings.TrimSuffix(s.o.Issuer, "/")+"/.well-known/openid-configuration", &doc); err != nil {
			return nil, fmt.Errorf("discovery: %w", err)
		}
		if doc.Issuer != s.o.Issuer {
			return nil, fmt.Errorf("discovery names issuer %q, not %q", doc.Issuer, s.o.Issuer)
		}
		p, err := url.Parse(doc.JWKSURI)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return nil, fmt.Errorf("discovery names no usable jwks_uri (%q)", doc.JWKSURI)
		}
		u = doc.JWKSURI
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := s.get(ctx, u, &set); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	var keys []Key
	var skipped []string
	for _, raw := range set.Keys {
		k, err := ParseKey(raw)
		if err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key set %s has no usable key (%d skipped: %s)", u, len(skipped), strings.Join(skipped, "; "))
	}
	if len(skipped) > 0 {
		s.log.Debug("issuer keys skipped", zap.String("issuer", s.name()), zap.Strings("reasons", skipped))
	}
	return keys, nil
}

// get fetches a JSON document.
func (s *Set) get(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if s.o.TokenFile != "" {
		tok, err := os.ReadFile(s.o.TokenFile)
		if err != nil {
			return fmt.Errorf("reading the token file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return fmt.Errorf("get %s: %w", u, err)
	}
	if len(body) > maxDocument {
		return fmt.Errorf("get %s: larger than %d bytes", u, maxDocument)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("get %s: not JSON: %w", u, err)
	}
	return nil
}

// jwk is the JSON form of a key.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
}

// ParseKey parses one JSON Web Key into a verification key: RSA of at
// least 2048 bits (RS256), EC P-256 (ES256) or OKP Ed25519 (EdDSA). A key
// for another use than signatures, with an "alg" that does not fit its
// type, or carrying private parts is refused.
func ParseKey(raw []byte) (Key, error) {
	var j jwk
	if err := json.Unmarshal(raw, &j); err != nil {
		return Key{}, fmt.Errorf("not a JSON key: %w", err)
	}
	if j.Use != "" && j.Use != "sig" {
		return Key{}, fmt.Errorf("key %q is for %q, not signatures", j.Kid, j.Use)
	}
	if j.D != "" {
		return Key{}, fmt.Errorf("key %q carries a private key", j.Kid)
	}
	k := Key{ID: j.Kid}
	switch j.Kty {
	case "RSA":
		k.Alg = RS256
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err := errors.Join(err1, err2); err != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return Key{}, fmt.Errorf("RSA key %q has a bad modulus or exponent", j.Kid)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits || pub.E < 3 || pub.E%2 == 0 {
			return Key{}, fmt.Errorf("RSA key %q is weaker than %d bits or has a bad exponent", j.Kid, minRSABits)
		}
		k.Public = pub
	case "EC":
		k.Alg = ES256
		if j.Crv != "P-256" {
			return Key{}, fmt.Errorf("EC key %q is on %q, not P-256", j.Kid, j.Crv)
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err := errors.Join(err1, err2); err != nil || len(x) != 32 || len(y) != 32 {
			return Key{}, fmt.Errorf("EC key %q has bad coordinates", j.Kid)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return Key{}, fmt.Errorf("EC key %q is not on P-256: %w", j.Kid, err)
		}
		k.Public = pub
	case "OKP":
		k.Alg = EdDSA
		x, err := b64(j.X)
		if j.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return Key{}, fmt.Errorf("OKP key %q is not an Ed25519 public key", j.Kid)
		}
		k.Public = ed25519.PublicKey(x)
	default:
		return Key{}, fmt.Errorf("key %q has unsupported type %q", j.Kid, j.Kty)
	}
	if j.Alg != "" && j.Alg != k.Alg {
		return Key{}, fmt.Errorf("key %q of type %s names algorithm %q", j.Kid, j.Kty, j.Alg)
	}
	return k, nil
}

// b64 decodes base64url without padding (tolerating padding).
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// Registry keeps one started Set per distinct Options, so that key sets
// outlive the configurations built on them: a reload that keeps an
// issuer keeps its keys and its refresh loop.
type Registry struct {
	mu   sync.Mutex
	sets map[registryKey]*Set
	log  *zap.Logger
}

type registryKey struct {
	issuer, url, ca, token string
	refresh, minRefresh    time.Duration
}

// NewRegistry returns an empty Registry whose sets log to log.
func NewRegistry(log *zap.Logger) *Registry {
	if log == nil {
		log = zap.NewNop()
	}
	return &Registry{sets: map[registryKey]*Set{}, log: log}
}

// Set returns the started Set of o, starting one (and fetching its keys
// once, bounded by o's timeout) the first time o is asked for.
func (r *Registry) Set(o Options) (*Set, error) {
	k := registryKey{o.Issuer, o.JWKSURL, o.CAFile, o.TokenFile, o.Refresh, o.MinRefresh}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sets[k]; s != nil {
		return s, nil
	}
	if o.Log == nil {
		o.Log = r.log
	}
	s, err := New(o)
	if err != nil {
		return nil, err
	}
	s.Start()
	r.sets[k] = s
	return s, nil
}

// Close stops every Set.
func (r *Registry) Close() {
	r.mu.Lock()
	sets := r.sets
	r.sets = map[registryKey]*Set{}
	r.mu.Unlock()
	for _, s := range sets {
		s.Stop()
	}
}
