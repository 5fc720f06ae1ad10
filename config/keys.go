package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wedsync/veil/billing"
)

// Defaults of the Vault, supplier and JWT sections.
const (
	// DefaultVaultKVMount is the KV v2 mount holding WedSync's keys.
	DefaultVaultKVMount = "secret"
	// DefaultSupplierPath is where a supplier's key for a provider lives
	// below the KV mount; {supplier} and {provider} are replaced.
	DefaultSupplierPath = "wedsync/suppliers/{supplier}/{provider}"
	// DefaultKeyRefreshInterval is how often cached keys are checked for a
	// new version.
	DefaultKeyRefreshInterval = time.Minute
	// DefaultKeyMaxStaleness is how long a key is served after its source
	// stopped answering.
	DefaultKeyMaxStaleness = 15 * time.Minute
	// DefaultKeyGracePeriod is how long a replaced key version stays usable.
	DefaultKeyGracePeriod = 5 * time.Minute
	// DefaultKeyFetchTimeout bounds one key fetch.
	DefaultKeyFetchTimeout = 5 * time.Second
	// DefaultVaultAuthMethod is the Vault auth method used when none is set.
	DefaultVaultAuthMethod = "token"
	// DefaultSupplierMode is the mode of suppliers without an entry.
	DefaultSupplierMode = billing.ModePlatform
	// DefaultJWTSupplierClaim is the claim that carries the supplier ID.
	DefaultJWTSupplierClaim = "supplier_id"
	// DefaultJWTCallerClaim is the claim that names the caller.
	DefaultJWTCallerClaim = "sub"
	// DefaultJWTLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultJWTLeeway = 30 * time.Second
	// DefaultJWTMaxTTL is the longest accepted token lifetime (exp - iat).
	DefaultJWTMaxTTL = 24 * time.Hour
	// DefaultAuditOutput is where audit lines go.
	DefaultAuditOutput = "stderr"
)

var (
	supplierModes    = modeNames(billing.Modes())
	vaultAuthMethods = []string{"token", "approle", "kubernetes"}
)

// Vault configures the HashiCorp Vault client that reads supplier keys and
// vault:// references. Address, TLS files and namespace fall back to the
// standard VAULT_* environment variables when empty.
type Vault struct {
	// Enabled turns the Vault client on.
	Enabled bool `yaml:"enabled"`
	// Address is the Vault URL; empty means VAULT_ADDR.
	Address string `yaml:"address"`
	// CACert, ClientCert and ClientKey are PEM file paths; empty means
	// VAULT_CACERT, VAULT_CLIENT_CERT and VAULT_CLIENT_KEY.
	CACert     string `yaml:"ca_cert"`
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// TLSServerName overrides the server name checked in Vault's certificate.
	TLSServerName string `yaml:"tls_server_name"`
	// Namespace is the Vault Enterprise namespace, if any.
	Namespace string `yaml:"namespace"`
	// Timeout bounds one Vault call. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// Auth selects and configures the auth method.
	Auth VaultAuth `yaml:"auth"`
	// KVMount is the KV v2 mount of supplier keys. Default "secret".
	KVMount string `yaml:"kv_mount"`
	// SupplierPath is the path template of a supplier's key below KVMount.
	// Default "wedsync/suppliers/{supplier}/{provider}".
	SupplierPath string `yaml:"supplier_path"`
}

// VaultAuth configures how veil logs in to Vault.
type VaultAuth struct {
	// Method is token (default), approle or kubernetes.
	Method string `yaml:"method"`
	// Token references the Vault token (token method); empty means the
	// VAULT_TOKEN environment variable.
	Token SecretRef `yaml:"token"`
	// RoleID and SecretID reference the AppRole credentials.
	RoleID   SecretRef `yaml:"role_id"`
	SecretID SecretRef `yaml:"secret_id"`
	// Role is the Kubernetes auth role.
	Role string `yaml:"role"`
	// TokenFile is the Kubernetes service account token file. Default
	// /var/run/secrets/kubernetes.io/serviceaccount/token.
	TokenFile string `yaml:"token_file"`
	// Mount is the auth method's mount path; defaults to the method name.
	Mount string `yaml:"mount"`
}

// Keys configures the supplier key cache.
type Keys struct {
	// RefreshInterval is how often each cached key is checked for a new
	// version, with jitter. Default 1m.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// MaxStaleness is how long a cached key keeps being served while its
	// source cannot be reached; past it the supplier gets 503. Default 15m.
	MaxStaleness time.Duration `yaml:"max_staleness"`
	// GracePeriod is how long the previous key version stays usable after
	// a new one is picked up. Default 5m.
	GracePeriod time.Duration `yaml:"grace_period"`
	// FetchTimeout bounds one key fetch, including a first fetch that a
	// request waits for. Default 5s.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// Prewarm lists suppliers whose keys are fetched at start-up.
	Prewarm []string `yaml:"prewarm"`
}

// Suppliers holds per-supplier settings.
type Suppliers struct {
	// DefaultMode is the mode of suppliers without an entry: platform
	// (default), client or hybrid.
	DefaultMode billing.Mode `yaml:"default_mode"`
	// DefaultTier is the tier of suppliers without one; empty means no
	// limits.
	DefaultTier string `yaml:"default_tier"`
	// Entries are the suppliers with settings of their own.
	Entries []Supplier `yaml:"entries"`
}

// Supplier is one supplier's settings.
type Supplier struct {
	// ID is the supplier ID sent in X-Supplier-ID.
	ID string `yaml:"id"`
	// Mode is platform, client or hybrid; empty means
	// Suppliers.DefaultMode.
	Mode billing.Mode `yaml:"mode"`
	// Keys maps a provider name to a reference of the supplier's own key
	// for it. Without an entry the key is read from Vault at SupplierPath.
	Keys map[string]SecretRef `yaml:"keys"`
	// Tier names the tier limiting the supplier's platform usage; empty
	// means Suppliers.DefaultTier.
	Tier string `yaml:"tier"`
	// PreferredProvider is tried first where several providers serve a
	// model.
	PreferredProvider string `yaml:"preferred_provider"`
	// Region selects the regional deployments of providers (regions).
	Region string `yaml:"region"`
	// RegionStrict keeps the supplier's calls on its region's providers,
	// as a strict region does for all its suppliers.
	RegionStrict bool `yaml:"region_strict"`
	// AllowPlatformFallback lets a client-mode supplier's call fall back
	// to platform keys (billed to the platform, within the tier) when its
	// own key cannot serve it.
	AllowPlatformFallback bool `yaml:"allow_platform_fallback"`
}

// JWT configures signed supplier tokens. Without any key, JWTs are not
// accepted.
type JWT struct {
	// HS256Keys reference shared secrets; several allow rotation.
	HS256Keys []SecretRef `yaml:"hs256_keys"`
	// Ed25519PublicKeys reference Ed25519 public keys (PEM or base64).
	Ed25519PublicKeys []SecretRef `yaml:"ed25519_public_keys"`
	// Issuer and Audience, when set, must match iss and aud.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// SupplierClaim carries the supplier ID. Default "supplier_id".
	SupplierClaim string `yaml:"supplier_claim"`
	// CallerClaim names the caller. Default "sub".
	CallerClaim string `yaml:"caller_claim"`
	// Leeway is the allowed clock skew. Default 30s.
	Leeway time.Duration `yaml:"leeway"`
	// MaxTTL is the longest accepted token lifetime. Default 24h.
	MaxTTL time.Duration `yaml:"max_ttl"`
	// Issuers are issuers whose keys veil fetches (JWKS): OpenID Connect
	// providers and Kubernetes clusters.
	Issuers []JWTIssuer `yaml:"issuers"`
}

// Enabled reports whether any verification key or issuer is configured.
func (j JWT) Enabled() bool { return len(j.HS256Keys)+len(j.Ed25519PublicKeys)+len(j.Issuers) > 0 }

// Audit configures the audit log: caller auth failures, key fetches and
// rotations, fallbacks and admin actions.
type Audit struct {
	// Output is stderr (default), stdout or an absolute file path.
	Output string `yaml:"output"`
}

// Supplier returns the entry of a supplier, if it has one.
func (c *Config) Supplier(id string) (*Supplier, bool) {
	return find(c.Suppliers.Entries, func(s *Supplier) string { return s.ID }, id)
}

// SupplierKeyPath returns the KV path of a supplier's key for a provider.
func (v Vault) SupplierKeyPath(supplier, provider string) string {
	return strings.NewReplacer("{supplier}", supplier, "{provider}", provider).Replace(v.SupplierPath)
}

func (c *Config) applyKeyDefaults() {
	v := &c.Vault
	setDuration(&v.Timeout, DefaultKeyFetchTimeout)
	setDefault(&v.KVMount, DefaultVaultKVMount)
	setDefault(&v.SupplierPath, DefaultSupplierPath)
	v.Auth.Method = strings.ToLower(v.Auth.Method)
	setDefault(&v.Auth.Method, DefaultVaultAuthMethod)
	if v.Auth.Method == "kubernetes" {
		setDefault(&v.Auth.TokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token")
	}
	if v.Auth.Method != "token" {
		setDefault(&v.Auth.Mount, v.Auth.Method)
	}
	k := &c.Keys
	setDuration(&k.RefreshInterval, DefaultKeyRefreshInterval)
	setDuration(&k.MaxStaleness, DefaultKeyMaxStaleness)
	setDuration(&k.GracePeriod, DefaultKeyGracePeriod)
	setDuration(&k.FetchTimeout, DefaultKeyFetchTimeout)
	setDefault(&c.Suppliers.DefaultMode, DefaultSupplierMode)
	for i := range c.Suppliers.Entries {
		setDefault(&c.Suppliers.Entries[i].Mode, c.Suppliers.DefaultMode)
	}
	j := &c.JWT
	setDefault(&j.SupplierClaim, DefaultJWTSupplierClaim)
	setDefault(&j.CallerClaim, DefaultJWTCallerClaim)
	setDuration(&j.Leeway, DefaultJWTLeeway)
	setDuration(&j.MaxTTL, DefaultJWTMaxTTL)
	for i := range j.Issuers {
		setDuration(&j.Issuers[i].RefreshInterval, DefaultJWKSRefresh)
		setDuration(&j.Issuers[i].UnknownKeyInterval, DefaultJWKSUnknownKeyInterval)
	}
	setDefault(&c.Audit.Output, DefaultAuditOutput)
}

// IsSupplierID reports whether s is a valid supplier ID: 1 to 128
// characters of A-Z, a-z, 0-9, '.', '_' and '-', other than "." and "..".
func IsSupplierID(s string) bool {
	if s == "" || len(s) > 128 || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func (v *validator) keys() {
	vc := v.c.Vault
	if vc.Enabled {
		v.timeout("vault.timeout", vc.Timeout, false)
		if vc.Address != "" {
			if err := checkVaultAddress(vc.Address); err != nil {
				v.fail("vault.address", "%v", err)
			}
		}
		if !strings.Contains(vc.SupplierPath, "{supplier}") {
			v.fail("vault.supplier_path", "must contain {supplier}, got %q", vc.SupplierPath)
		}
		if strings.Contains(vc.KVMount, "/") || vc.KVMount == "" {
			v.fail("vault.kv_mount", "must be a single path segment, got %q", vc.KVMount)
		}
		a := vc.Auth
		switch a.Method {
		case "token":
			v.optionalRef("vault.auth.token", a.Token)
		case "approle":
			v.requiredRef("vault.auth.role_id", a.RoleID)
			v.requiredRef("vault.auth.secret_id", a.SecretID)
		case "kubernetes":
			if a.Role == "" {
				v.fail("vault.auth.role", "is required for the kubernetes auth method")
			}
		default:
			v.fail("vault.auth.method", "must be one of %s, got %q", strings.Join(vaultAuthMethods, ", "), a.Method)
		}
	}
	k := v.c.Keys
	v.timeout("keys.refresh_interval", k.RefreshInterval, false)
	v.timeout("keys.max_staleness", k.MaxStaleness, false)
	v.timeout("keys.grace_period", k.GracePeriod, true)
	v.timeout("keys.fetch_timeout", k.FetchTimeout, false)
	for i, id := range k.Prewarm {
		if !IsSupplierID(id) {
			v.fail(fmt.Sprintf("keys.prewarm[%d]", i), "%q is not a supplier ID (1 to 128 of A-Z, a-z, 0-9, '.', '_', '-')", id)
		}
	}

	s := v.c.Suppliers
	if !slices.Contains(billing.Modes(), s.DefaultMode) {
		v.fail("suppliers.default_mode", "must be one of %s, got %q", strings.Join(supplierModes, ", "), s.DefaultMode)
	}
	ids := map[string]int{}
	for i, e := range s.Entries {
		path := fmt.Sprintf("suppliers.entries[%d]", i)
		switch {
		case !IsSupplierID(e.ID):
			v.fail(path+".id", "%q is not a supplier ID (1 to 128 of A-Z, a-z, 0-9, '.', '_', '-')", e.ID)
		default:
			if first, dup := ids[e.ID]; dup {
				v.fail(path+".id", "duplicate supplier %q, also at suppliers.entries[%d]", e.ID, first)
			}
			ids[e.ID] = i
		}
		if !slices.Contains(billing.Modes(), e.Mode) {
			v.fail(path+".mode", "must be one of %s, got %q", strings.Join(supplierModes, ", "), e.Mode)
		}
		for prov, ref := range e.Keys {
			if _, ok := v.c.Provider(prov); !ok {
				v.fail(path+".keys."+prov, "%q does not name a provider", prov)
			}
			v.requiredRef(path+".keys."+prov, ref)
		}
		if e.PreferredProvider != "" {
			if _, ok := v.c.Provider(e.PreferredProvider); !ok {
				v.fail(path+".preferred_provider", "%q does not name a provider", e.PreferredProvider)
			}
		}
		if e.Mode != billing.ModePlatform && len(e.Keys) == 0 && !vc.Enabled {
			v.fail(path, "supplier %q uses its own keys but has no keys and Vault is not enabled", e.ID)
		}
	}
	if s.DefaultMode != billing.ModePlatform && !vc.Enabled {
		v.fail("suppliers.default_mode", "a client or hybrid default mode needs vault.enabled: true, where supplier keys live")
	}

	j := v.c.JWT
	for i, r := range j.HS256Keys {
		v.requiredRef(fmt.Sprintf("jwt.hs256_keys[%d]", i), r)
	}
	for i, r := range j.Ed25519PublicKeys {
		v.requiredRef(fmt.Sprintf("jwt.ed25519_public_keys[%d]", i), r)
	}
	v.jwtIssuers()
	if j.Enabled() {
		v.timeout("jwt.leeway", j.Leeway, true)
		v.timeout("jwt.max_ttl", j.MaxTTL, false)
	}

	if o := v.c.Audit.Output; o != "stderr" && o != "stdout" && !strings.HasPrefix(o, "/") {
		v.fail("audit.output", "must be stderr, stdout or an absolute file path, got %q", o)
	}
	for i, cl := range v.c.Callers {
		path := fmt.Sprintf("callers[%d].suppliers", i)
		if len(cl.Suppliers) == 0 {
			v.fail(path, `is required: list the supplier IDs this caller may act for, or ["*"] for all`)
			continue
		}
		for j, id := range cl.Suppliers {
			if id == "*" {
				if len(cl.Suppliers) > 1 {
					v.fail(fmt.Sprintf("%s[%d]", path, j), `"*" already allows every supplier; list nothing else`)
				}
				continue
			}
			if !IsSupplierID(id) {
				v.fail(fmt.Sprintf("%s[%d]", path, j), "%q is not a supplier ID", id)
			}
		}
	}
}

func (v *validator) requiredRef(path string, r SecretRef) {
	if err := r.Validate(); err != nil {
		v.fail(path, "%v", err)
		return
	}
	if r.Scheme() == SchemeVault && !v.c.Vault.Enabled {
		v.fail(path, "is a vault:// reference but vault.enabled is false")
	}
}

func (v *validator) optionalRef(path string, r SecretRef) {
	if !r.IsZero() {
		v.requiredRef(path, r)
	}
}

func checkVaultAddress(s string) error {
	if err := checkBaseURL(s); err != nil {
		return fmt.Errorf("%w (the Vault address)", err)
	}
	return nil
}

// modeNames returns the modes as the strings configuration spells them.
func modeNames(modes []billing.Mode) []string {
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = string(m)
	}
	return names
}
