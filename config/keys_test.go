package config

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/billing"
)

func TestKeysDefaults(t *testing.T) {
	c, err := ParseWithEnv([]byte(okProviders+okCallers), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Vault.Enabled || c.Vault.KVMount != "secret" || c.Vault.SupplierPath != DefaultSupplierPath || c.Vault.Auth.Method != "token" {
		t.Errorf("vault defaults %+v", c.Vault)
	}
	if c.Keys.RefreshInterval != time.Minute || c.Keys.MaxStaleness != 15*time.Minute || c.Keys.GracePeriod != 5*time.Minute {
		t.Errorf("keys defaults %+v", c.Keys)
	}
	if c.Suppliers.DefaultMode != billing.ModePlatform || c.JWT.SupplierClaim != "supplier_id" || c.JWT.Enabled() || c.Audit.Output != "stderr" {
		t.Errorf("defaults: suppliers %+v jwt %+v audit %+v", c.Suppliers, c.JWT, c.Audit)
	}
	if got := c.Vault.SupplierKeyPath("bella-photo", "openai"); got != "wedsync/suppliers/bella-photo/openai" {
		t.Errorf("supplier key path %q", got)
	}
}

func TestKeysParse(t *testing.T) {
	doc := `providers:
  - name: openai
    type: openai
    base_url: https://api.openai.com/v1
    api_keys: [vault://secret/wedsync/platform/openai#api_key, env://OPENAI_SPARE_KEY]
callers:
  - name: app
    token: env://APP_TOKEN
    suppliers: [bella-photo, rose-venue]
vault:
  enabled: true
  address: https://vault.internal:8200
  auth:
    method: approle
    role_id: file:///var/run/secrets/veil/role-id
    secret_id: env://VEIL_SECRET_ID
keys:
  refresh_interval: 30s
  prewarm: [bella-photo]
suppliers:
  default_mode: platform
  entries:
    - id: bella-photo
      mode: client
    - id: rose-venue
      keys:
        openai: env://ROSE_OPENAI_KEY
jwt:
  hs256_keys: [env://JWT_SECRET]
  issuer: wedsync
`
	c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Providers[0].PlatformKeys(); len(got) != 2 {
		t.Errorf("platform keys %v", got)
	}
	if c.Vault.Auth.Mount != "approle" || c.Keys.RefreshInterval != 30*time.Second {
		t.Errorf("vault %+v keys %+v", c.Vault.Auth, c.Keys)
	}
	bella, ok := c.Supplier("bella-photo")
	if !ok || bella.Mode != billing.ModeClient {
		t.Errorf("bella %+v", bella)
	}
	rose, _ := c.Supplier("rose-venue")
	if rose.Mode != billing.ModePlatform || rose.Keys["openai"] != "env://ROSE_OPENAI_KEY" {
		t.Errorf("rose %+v", rose)
	}
	if !c.JWT.Enabled() {
		t.Error("jwt should be enabled")
	}
}

func TestKeysValidation(t *testing.T) {
	cases := []struct {
		name, doc, field, msg string
	}{
		{"vault ref without vault", `providers:
  - name: openai
    type: openai
    base_url: https://api.openai.com/v1
    api_key: vault://secret/wedsync/platform/openai#api_key
` + okCallers, "providers[0].api_key", "vault.enabled is false"},
		{"both api_key and api_keys", `providers:
  - name: openai
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://A
    api_keys: [env://B]
` + okCallers, "providers[0]", "only one of api_key and api_keys"},
		{"caller without scope", okProviders + `callers:
  - name: app
    token: env://T
`, "callers[0].suppliers", "is required"},
		{"bad supplier in scope", okProviders + `callers:
  - name: app
    token: env://T
    suppliers: ["bella photo"]
`, "callers[0].suppliers[0]", "not a supplier ID"},
		{"star with others", okProviders + `callers:
  - name: app
    token: env://T
    suppliers: ["*", bella]
`, "callers[0].suppliers[0]", "already allows every supplier"},
		{"client supplier without keys or vault", okProviders + okCallers + `suppliers:
  entries:
    - id: bella
      mode: client
`, "suppliers.entries[0]", "Vault is not enabled"},
		{"supplier key for unknown provider", okProviders + okCallers + `suppliers:
  entries:
    - id: bella
      mode: client
      keys:
        anthropic: env://K
`, "suppliers.entries[0].keys.anthropic", "does not name a provider"},
		{"bad mode", okProviders + okCallers + `suppliers:
  default_mode: shared
`, "suppliers.default_mode", "must be one of platform, client"},
		{"approle without ids", okProviders + okCallers + `vault:
  enabled: true
  auth:
    method: approle
`, "vault.auth.role_id", "is required"},
		{"unknown auth method", okProviders + okCallers + `vault:
  enabled: true
  auth:
    method: ldap
`, "vault.auth.method", "must be one of token, approle, kubernetes"},
		{"kubernetes without role", okProviders + okCallers + `vault:
  enabled: true
  auth:
    method: kubernetes
`, "vault.auth.role", "is required"},
		{"relative audit file", okProviders + okCallers + `audit:
  output: audit.log
`, "audit.output", "absolute file path"},
		{"enabled is a bool", okProviders + okCallers + `vault:
  enabled: sometimes
`, "vault.enabled", "must be true or false"},
		{"duplicate supplier", okProviders + okCallers + `suppliers:
  entries:
    - id: bella
    - id: bella
`, "suppliers.entries[1].id", "duplicate supplier"},
		{"issuer without audience", okProviders + okCallers + `jwt:
  issuers:
    - issuer: https://oidc.wedsync.example
`, "jwt.issuers[0].audience", "is required"},
		{"issuer over plain http", okProviders + okCallers + `jwt:
  issuers:
    - issuer: http://oidc.wedsync.example
      audience: veil
`, "jwt.issuers[0].issuer", "must be https"},
		{"issuer listed twice", okProviders + okCallers + `jwt:
  issuers:
    - issuer: https://oidc.wedsync.example
      audience: veil
    - issuer: https://oidc.wedsync.example
      audience: veil
`, "jwt.issuers[1].issuer", "listed twice"},
		{"relative ca file", okProviders + okCallers + `jwt:
  issuers:
    - issuer: https://kubernetes.default.svc.cluster.local
      audience: veil
      ca_file: ca.crt
`, "jwt.issuers[0].ca_file", "absolute path"},
		{"service account without namespace", okProviders + okCallers + `jwt:
  issuers:
    - issuer: https://kubernetes.default.svc.cluster.local
      audience: veil
      kubernetes:
        service_accounts:
          photo-tagger: [bella]
`, "jwt.issuers[0].kubernetes.service_accounts.photo-tagger", "NAMESPACE/NAME"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(tc.doc), "veil.yaml", noEnv)
			if err == nil {
				t.Fatal("accepted")
			}
			found := false
			for _, fe := range fieldErrors(t, err) {
				if fe.Field == tc.field && strings.Contains(fe.Msg, tc.msg) {
					found = true
					if fe.Line == 0 {
						t.Errorf("%s has no line", fe.Field)
					}
				}
			}
			if !found {
				t.Errorf("no error on %s containing %q in:\n%v", tc.field, tc.msg, err)
			}
		})
	}
}
