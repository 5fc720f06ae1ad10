package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// JWTIssuer is an issuer whose tokens are verified against its published
// keys (a JSON Web Key Set): an OpenID Connect provider, or a Kubernetes
// cluster whose projected service-account tokens are callers.
type JWTIssuer struct {
	// Issuer is the iss of its tokens, an https URL. Without JWKSURL its
	// OpenID Connect discovery document names the key set.
	Issuer string `yaml:"issuer"`
	// Audience is required: the aud veil's tokens carry.
	Audience string `yaml:"audience"`
	// JWKSURL is the key set's URL; it skips discovery.
	JWKSURL string `yaml:"jwks_url"`
	// CAFile is a PEM bundle trusted for the issuer's TLS certificate
	// instead of the system roots (a cluster's ca.crt).
	CAFile string `yaml:"ca_file"`
	// TokenFile holds a bearer token sent when fetching keys (a pod's
	// service-account token, where the API server asks for one).
	TokenFile string `yaml:"token_file"`
	// RefreshInterval is how often the keys are fetched again; a token
	// naming an unknown key fetches them at once, at most every 10s.
	// Default 1h.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// UnknownKeyInterval is the least time between two fetches caused by
	// tokens naming a key veil does not hold (a rotation), so that forged
	// key IDs cannot make veil hammer the issuer. Default 10s.
	UnknownKeyInterval time.Duration `yaml:"unknown_key_interval"`
	// SupplierClaim and CallerClaim are as in the jwt section; a
	// Kubernetes issuer uses neither.
	SupplierClaim string `yaml:"supplier_claim"`
	CallerClaim   string `yaml:"caller_claim"`
	// Kubernetes makes the issuer a cluster whose service accounts are
	// callers.
	Kubernetes *KubernetesCallers `yaml:"kubernetes"`
}

// KubernetesCallers maps a cluster's service accounts to the suppliers
// they may act for.
type KubernetesCallers struct {
	// ServiceAccounts maps "NAMESPACE/NAME" to supplier IDs, or ["*"] for
	// every supplier. A pod's token names its service account; the
	// supplier comes from X-Supplier-ID, which may be left out when the
	// account has one supplier.
	ServiceAccounts map[string][]string `yaml:"service_accounts"`
}

// Defaults of a JWT issuer.
const (
	// DefaultJWKSRefresh is the default JWTIssuer.RefreshInterval.
	DefaultJWKSRefresh = time.Hour
	// DefaultJWKSUnknownKeyInterval is the default
	// JWTIssuer.UnknownKeyInterval.
	DefaultJWKSUnknownKeyInterval = 10 * time.Second
)

// jwtIssuers checks the jwt.issuers section.
func (v *validator) jwtIssuers() {
	seen := map[string]bool{}
	for i, is := range v.c.JWT.Issuers {
		path := fmt.Sprintf("jwt.issuers[%d]", i)
		switch {
		case is.Issuer == "":
			v.fail(path+".issuer", "is required: the iss of the issuer's tokens")
		case seen[is.Issuer]:
			v.fail(path+".issuer", "%q is listed twice", is.Issuer)
		case is.Issuer == v.c.JWT.Issuer && len(v.c.JWT.HS256Keys)+len(v.c.JWT.Ed25519PublicKeys) > 0:
			v.fail(path+".issuer", "%q is also jwt.issuer, whose tokens the static keys verify", is.Issuer)
		default:
			v.issuerURL(path+".issuer", is.Issuer)
		}
		seen[is.Issuer] = true
		if is.Audience == "" {
			v.fail(path+".audience", "is required, so that tokens minted for other services are refused")
		}
		if is.JWKSURL != "" {
			v.issuerURL(path+".jwks_url", is.JWKSURL)
		}
		for _, f := range []struct{ name, val string }{{"ca_file", is.CAFile}, {"token_file", is.TokenFile}} {
			if f.val != "" && !filepath.IsAbs(f.val) {
				v.fail(path+"."+f.name, "must be an absolute path, got %q", f.val)
			}
		}
		v.timeout(path+".refresh_interval", is.RefreshInterval, true)
		v.timeout(path+".unknown_key_interval", is.UnknownKeyInterval, true)
		if k := is.Kubernetes; k != nil {
			if len(k.ServiceAccounts) == 0 {
				v.fail(path+".kubernetes.service_accounts", "is required: map NAMESPACE/NAME to the suppliers each account may act for")
			}
			for sa, suppliers := range k.ServiceAccounts {
				sp := path + ".kubernetes.service_accounts." + sa
				ns, name, ok := strings.Cut(sa, "/")
				if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
					v.fail(sp, "must be NAMESPACE/NAME, got %q", sa)
				}
				if len(suppliers) == 0 {
					v.fail(sp, `lists no supplier: list supplier IDs or ["*"]`)
				}
			}
		}
	}
}

// issuerURL checks an issuer or key set URL: https, or http on loopback
// only (a local issuer in development).
func (v *validator) issuerURL(path, raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		v.fail(path, "must be an https URL, got %q", raw)
		return
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			v.fail(path, "must be https (http only on loopback), got %q", raw)
		}
	default:
		v.fail(path, "must be an https URL, got %q", raw)
	}
}
