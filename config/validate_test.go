package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseValidation(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		env  map[string]string
		want []wantErr
	}{
		{
			name: "valid",
			doc:  okProviders + okCallers,
		},
		{
			name: "no providers",
			doc:  okCallers,
			want: []wantErr{{field: "providers", msg: "at least one provider is required"}},
		},
		{
			name: "empty providers list",
			doc:  "providers: []\n" + okCallers,
			want: []wantErr{{field: "providers", at: "providers:", msg: "at least one provider is required"}},
		},
		{
			name: "no callers",
			doc:  okProviders,
			want: []wantErr{{field: "callers", msg: "at least one caller is required"}},
		},
		{
			name: "provider name missing",
			doc: okCallers + `providers:
  - type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
`,
			want: []wantErr{{field: "providers[0].name", at: "- type: openai", msg: "is required"}},
		},
		{
			name: "provider name malformed",
			doc: okCallers + `providers:
  - name: Open AI
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
routing:
  default_provider: x
`,
			want: []wantErr{
				{field: "providers[0].name", at: "name: Open AI", msg: "a-z, 0-9"},
				{field: "routing.default_provider", at: "default_provider: x", msg: `"x" does not name a provider; known providers: Open AI`},
			},
		},
		{
			name: "provider name too long",
			doc: okCallers + `providers:
  - name: ` + strings.Repeat("a", 65) + `
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
`,
			want: []wantErr{{field: "providers[0].name", at: "name: aaa", msg: "1 to 64 characters"}},
		},
		{
			name: "provider names duplicate",
			doc: okCallers + okProviders + `  - name: openai
    type: openai
    base_url: https://example.com/v1
    api_key: env://K2
`,
			want: []wantErr{{field: "providers[1].name", at: "  - name: openai\n    type: openai\n    base_url: https://example.com", msg: `duplicate provider name "openai", also used by providers[0]`}},
		},
		{
			name: "provider type missing",
			doc: okCallers + `providers:
  - name: a
    base_url: https://api.openai.com/v1
    api_key: env://K
`,
			want: []wantErr{{field: "providers[0].type", at: "last:- name: a", msg: "is required; supported types: openai"}},
		},
		{
			name: "provider type unsupported",
			doc: okCallers + `providers:
  - name: a
    type: gemini
    base_url: https://generativelanguage.googleapis.com/v1beta
    api_key: env://K
`,
			want: []wantErr{{field: "providers[0].type", at: "type: gemini", msg: `unsupported provider type "gemini"; supported types: openai, azure, anthropic, openaicompat`}},
		},
		{
			name: "azure without api_version",
			doc: okCallers + `providers:
  - name: a
    type: azure
    base_url: https://wedsync.openai.azure.com
    api_key: env://K
`,
			want: []wantErr{{field: "providers[0].azure.api_version", at: "last:name: a", msg: "is required for type azure"}},
		},
		{
			name: "azure api_version and deployment malformed",
			doc: okCallers + `providers:
  - name: a
    type: azure
    base_url: https://wedsync.openai.azure.com
    api_key: env://K
    azure:
      api_version: "2024-10"
      deployments:
        gpt-4o: "my deployment"
`,
			want: []wantErr{
				{field: "providers[0].azure.api_version", at: "api_version:", msg: `"2024-10" must look like 2024-10-21`},
				{field: "providers[0].azure.deployments.gpt-4o", at: "gpt-4o:", msg: `deployment "my deployment" must be 1 to 64 characters`},
			},
		},
		{
			name: "settings of another type",
			doc: okCallers + `providers:
  - name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
    anthropic:
      max_tokens: 100
`,
			want: []wantErr{{field: "providers[0].anthropic", at: "anthropic:", msg: `is only for type anthropic, not "openai"`}},
		},
		{
			name: "anthropic max_tokens negative",
			doc: okCallers + `providers:
  - name: a
    type: anthropic
    base_url: https://api.anthropic.com/v1
    api_key: env://K
    anthropic:
      max_tokens: -1
`,
			want: []wantErr{{field: "providers[0].anthropic.max_tokens", at: "max_tokens:", msg: "must be positive, got -1"}},
		},
		{
			name: "compat quirks invalid",
			doc: okCallers + `providers:
  - name: a
    type: openaicompat
    base_url: http://localhost:11434/v1
    compat:
      auth: basic
      max_tokens_field: max_output_tokens
      drop_fields: [user, n, "bad field"]
`,
			want: []wantErr{
				{field: "providers[0].api_key", at: "last:name: a", msg: "is required"},
				{field: "providers[0].compat.auth", at: "auth:", msg: `"basic" is not one of bearer, api-key, none`},
				{field: "providers[0].compat.max_tokens_field", at: "max_tokens_field:", msg: "only max_tokens is supported"},
				{field: "providers[0].compat.drop_fields[1]", at: "drop_fields:", msg: `"n" changes the answer and cannot be dropped`},
				{field: "providers[0].compat.drop_fields[2]", at: "drop_fields:", msg: `"bad field" is not a request field name`},
			},
		},
		{
			name: "base_url missing",
			doc: okCallers + `providers:
  - name: a
    type: openai
    api_key: env://K
`,
			want: []wantErr{{field: "providers[0].base_url", at: "last:- name: a", msg: "is required"}},
		},
		{
			name: "api_key missing",
			doc: okCallers + `providers:
  - name: a
    type: openai
    base_url: https://api.openai.com/v1
`,
			want: []wantErr{{field: "providers[0].api_key", at: "last:- name: a", msg: "is required"}},
		},
		{
			name: "api_key literal is not echoed",
			doc: okCallers + `providers:
  - name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: sk-proj-abcdef
`,
			want: []wantErr{{field: "providers[0].api_key", at: "api_key:", msg: "not a literal value"}},
		},
		{
			name: "api_key unknown scheme",
			doc: okCallers + `providers:
  - name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: k8s://ns/secret
`,
			want: []wantErr{{field: "providers[0].api_key", at: "api_key:", msg: `unsupported secret reference scheme "k8s"`}},
		},
		{
			name: "models entries",
			doc: okCallers + `providers:
  - name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
    models:
      - gpt-4o
      - ""
      - gpt 4
      - gpt-4o
`,
			want: []wantErr{
				{field: "providers[0].models[1]", at: `- ""`, msg: "must not be empty"},
				{field: "providers[0].models[2]", at: "- gpt 4", msg: "whitespace"},
				{field: "providers[0].models[3]", at: "last:- gpt-4o", msg: "duplicate model"},
			},
		},
		{
			name: "provider max_conns and dial_timeout negative",
			doc: okCallers + `providers:
  - name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
    max_conns: -2
    dial_timeout: -1s
`,
			want: []wantErr{
				{field: "providers[0].max_conns", at: "max_conns", msg: "must be positive, got -2"},
				{field: "providers[0].dial_timeout", at: "dial_timeout", msg: "must not be negative, got -1s"},
			},
		},
		{
			name: "default_provider unknown",
			doc: okProviders + okCallers + `routing:
  default_provider: azure
`,
			want: []wantErr{{field: "routing.default_provider", at: "default_provider", msg: `"azure" does not name a provider; known providers: openai`}},
		},
		{
			name: "listen addresses malformed",
			doc: okProviders + okCallers + `listen:
  proxy: localhost
  admin: 127.0.0.1:http
`,
			want: []wantErr{
				{field: "listen.proxy", at: "proxy: localhost", msg: `must be host:port, such as 127.0.0.1:8080: got "localhost"`},
				{field: "listen.admin", at: "admin: 127", msg: `port "http" is not a number`},
			},
		},
		{
			name: "listen port out of range",
			doc: okProviders + okCallers + `listen:
  proxy: 127.0.0.1:65536
`,
			want: []wantErr{{field: "listen.proxy", at: "proxy:", msg: "between 0 and 65535"}},
		},
		{
			name: "listen same address twice",
			doc: okProviders + okCallers + `listen:
  proxy: 127.0.0.1:8080
  admin: 127.0.0.1:8080
`,
			want: []wantErr{{field: "listen.admin", at: "admin:", msg: "must differ from listen.proxy"}},
		},
		{
			name: "admin on all interfaces without token",
			doc: okProviders + okCallers + `listen:
  admin: 0.0.0.0:9090
`,
			want: []wantErr{{field: "admin.token", msg: `is required because listen.admin "0.0.0.0:9090" is not a loopback address`}},
		},
		{
			name: "admin with empty host without token",
			doc: okProviders + okCallers + `listen:
  admin: :9090
admin: {}
`,
			want: []wantErr{{field: "admin.token", at: "admin: {}", msg: "is required"}},
		},
		{
			name: "admin on loopback needs no token",
			doc: okProviders + okCallers + `listen:
  proxy: "[::1]:8080"
  admin: localhost:9090
`,
		},
		{
			name: "admin on ipv6 loopback needs no token",
			doc: okProviders + okCallers + `listen:
  admin: "[::1]:9090"
`,
		},
		{
			name: "admin on other interface with token",
			doc: okProviders + okCallers + `listen:
  admin: 10.0.0.1:9090
admin:
  token: file:///var/run/secrets/veil/admin-token
`,
		},
		{
			name: "admin token malformed",
			doc: okProviders + okCallers + `admin:
  token: file://relative/path
`,
			want: []wantErr{{field: "admin.token", at: "token: file", msg: "absolute path"}},
		},
		{
			name: "admin on other interface with named tokens",
			doc: okProviders + okCallers + `listen:
  admin: 10.0.0.1:9090
admin:
  tokens:
    - name: alice
      role: viewer
      token: env://ALICE_TOKEN
    - name: bob
      role: operator
      token: file:///var/run/secrets/veil/bob
`,
		},
		{
			name: "admin token and named tokens together",
			doc: okProviders + okCallers + `admin:
  token: env://ADMIN_TOKEN
  tokens:
    - name: alice
      role: admin
      token: env://ALICE_TOKEN
`,
		},
		{
			name: "named admin tokens malformed",
			doc: okProviders + okCallers + `admin:
  token: "env://ADMIN_TOKEN"
  tokens:
    - name: alice
      role: viewer
      token: env://ALICE_TOKEN
    - name: "alice"
      role: operator
      token: env://ALICE2_TOKEN
    - role: root
      token: env://ADMIN_TOKEN
    - name: admin
      role: admin
      token: env://OTHER_TOKEN
    - name: carol
      role: viewer
    - name: dave
      role: viewer
      token: file://relative
`,
			want: []wantErr{
				{field: "admin.tokens[1].name", at: `- name: "alice"`, msg: `duplicate operator name "alice", also used by admin.tokens[0]`},
				{field: "admin.tokens[2].name", at: "- role: root", msg: "is required"},
				{field: "admin.tokens[2].role", at: "- role: root", msg: `must be one of viewer, operator, admin, got "root"`},
				{field: "admin.tokens[2].token", at: "token: env://ADMIN_TOKEN", msg: "same token as admin.token"},
				{field: "admin.tokens[3].name", at: "- name: admin", msg: `"admin" is the name of admin.token`},
				{field: "admin.tokens[4].token", at: "- name: carol", msg: "is required"},
				{field: "admin.tokens[5].token", at: "token: file://relative", msg: "absolute path"},
			},
		},
		{
			name: "named admin tokens share a token",
			doc: okProviders + okCallers + `admin:
  tokens:
    - name: alice
      role: viewer
      token: env://SHARED
    - name: bob
      role: admin
      token: "env://SHARED"
`,
			want: []wantErr{{field: "admin.tokens[1].token", at: `token: "env://SHARED"`, msg: "same token as admin.tokens[0]"}},
		},
		{
			name: "limits negative",
			doc: okProviders + okCallers + `limits:
  max_body_bytes: -1
  max_header_bytes: -1
  read_timeout: -1s
  write_timeout: -1ms
  idle_timeout: -1s
  request_timeout: -1s
  stream_idle_timeout: -1s
  keepalive_interval: -1s
  max_event_bytes: -1
  max_response_bytes: -1
  max_in_flight: -1
`,
			want: []wantErr{
				{field: "limits.max_body_bytes", at: "max_body_bytes", msg: "must be a positive number of bytes, got -1"},
				{field: "limits.max_header_bytes", at: "max_header_bytes", msg: "must be a positive number of bytes"},
				{field: "limits.read_timeout", at: "read_timeout", msg: "must not be negative, got -1s"},
				{field: "limits.write_timeout", at: "write_timeout", msg: "must not be negative, got -1ms"},
				{field: "limits.idle_timeout", at: "idle_timeout", msg: "must not be negative"},
				{field: "limits.request_timeout", at: "request_timeout", msg: "must not be negative"},
				{field: "limits.stream_idle_timeout", at: "stream_idle_timeout", msg: "must not be negative"},
				{field: "limits.keepalive_interval", at: "keepalive_interval", msg: "must not be negative"},
				{field: "limits.max_event_bytes", at: "max_event_bytes", msg: "must be a positive number of bytes"},
				{field: "limits.max_response_bytes", at: "max_response_bytes", msg: "must be a positive number of bytes"},
				{field: "limits.max_in_flight", at: "max_in_flight", msg: "must not be negative (0 means no cap), got -1"},
			},
		},
		{
			name: "log level and format",
			doc: okProviders + okCallers + `log:
  level: verbose
  format: text
`,
			want: []wantErr{
				{field: "log.level", at: "level:", msg: `must be one of debug, info, warn, error, got "verbose"`},
				{field: "log.format", at: "format:", msg: `must be one of json, console, got "text"`},
			},
		},
		{
			name: "caller name missing",
			doc: okProviders + `callers:
  - token: env://APP_TOKEN
    suppliers: ["*"]
`,
			want: []wantErr{{field: "callers[0].name", at: "- token", msg: "is required"}},
		},
		{
			name: "caller name malformed",
			doc: okProviders + `callers:
  - name: my app
    token: env://APP_TOKEN
    suppliers: ["*"]
`,
			want: []wantErr{{field: "callers[0].name", at: "name: my app", msg: "A-Z, a-z, 0-9"}},
		},
		{
			name: "caller names duplicate",
			doc: okProviders + `callers:
  - name: app
    token: env://A
    suppliers: ["*"]
  - name: app
    token: env://B
    suppliers: ["*"]
`,
			want: []wantErr{{field: "callers[1].name", at: "name: app\n    token: env://B", msg: `duplicate caller name "app", also used by callers[0]`}},
		},
		{
			name: "caller without token",
			doc: okProviders + `callers:
  - name: app
    suppliers: ["*"]
`,
			want: []wantErr{{field: "callers[0]", at: "- name: app", msg: "one of token_sha256 and token is required"}},
		},
		{
			name: "caller with both tokens",
			doc: okProviders + `callers:
  - name: app
    token: env://A
    token_sha256: e0462a38da76cf9d76265131d0574db09d038e611e9af445c145672c2e26f9ba
    suppliers: ["*"]
`,
			want: []wantErr{{field: "callers[0]", at: "- name: app", msg: "set only one of token_sha256 and token"}},
		},
		{
			name: "caller hash malformed",
			doc: okProviders + `callers:
  - name: app
    token_sha256: e0462a38da76cf9d76265131d0574db09d038e611e9af445c145672c2e26f9bz
    suppliers: ["*"]
`,
			want: []wantErr{{field: "callers[0].token_sha256", at: "token_sha256", msg: "must be 64 hexadecimal characters"}},
		},
		{
			name: "caller hash too short",
			doc: okProviders + `callers:
  - name: app
    token_sha256: e0462a38
    suppliers: ["*"]
`,
			want: []wantErr{{field: "callers[0].token_sha256", at: "token_sha256", msg: "must be 64 hexadecimal characters"}},
		},
		{
			name: "caller hashes duplicate across case",
			doc: okProviders + `callers:
  - name: a
    token_sha256: e0462a38da76cf9d76265131d0574db09d038e611e9af445c145672c2e26f9ba
    suppliers: ["*"]
  - name: b
    token_sha256: E0462A38DA76CF9D76265131D0574DB09D038E611E9AF445C145672C2E26F9BA
    suppliers: ["*"]
`,
			want: []wantErr{{field: "callers[1].token_sha256", at: "token_sha256: E04", msg: "same token as callers[0]"}},
		},
		{
			name: "caller token refs duplicate",
			doc: okProviders + `callers:
  - name: a
    token: env://T
    suppliers: ["*"]
  - name: b
    token: env://T
    suppliers: ["*"]
`,
			want: []wantErr{{field: "callers[1].token", at: "last:token: env://T", msg: "same token as callers[0]"}},
		},
		{
			name: "caller token ref malformed",
			doc: okProviders + `callers:
  - name: a
    token: vault://secret#field
    suppliers: ["*"]
`,
			want: []wantErr{{field: "callers[0].token", at: "token:", msg: "needs a mount and a secret path"}},
		},
		{
			name: "bad env override names the variable",
			doc:  okProviders + okCallers + "listen:\n  proxy: 127.0.0.1:8080\n",
			env:  map[string]string{EnvProxyListen: "8080", EnvLogLevel: "loud"},
			want: []wantErr{
				{field: "listen.proxy", env: EnvProxyListen, msg: `got "8080"`},
				{field: "log.level", env: EnvLogLevel, msg: `got "loud"`},
			},
		},
		{
			name: "env override making admin public requires token",
			doc:  okProviders + okCallers,
			env:  map[string]string{EnvAdminListen: "0.0.0.0:9090"},
			want: []wantErr{{field: "admin.token", msg: "is required"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(tt.doc), "veil.yaml", envMap(tt.env))
			checkErrors(t, tt.doc, err, tt.want)
		})
	}
}

func TestFieldErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  FieldError
		want string
	}{
		{"full", FieldError{Source: "veil.yaml", Line: 14, Field: "providers[1].base_url", Msg: "bad"}, "veil.yaml:14: providers[1].base_url: bad"},
		{"no line", FieldError{Source: "veil.yaml", Field: "providers", Msg: "bad"}, "veil.yaml: providers: bad"},
		{"env", FieldError{Source: "veil.yaml", Line: 3, Field: "listen.proxy", Env: "VEIL_PROXY_LISTEN", Msg: "bad"}, "env VEIL_PROXY_LISTEN: listen.proxy: bad"},
		{"no source", FieldError{Field: "log.level", Msg: "bad"}, "log.level: bad"},
		{"line without source", FieldError{Line: 2, Msg: "bad"}, "line 2: bad"},
		{"document", FieldError{Source: "veil.yaml", Line: 1, Msg: "bad"}, "veil.yaml:1: bad"},
		{"message only", FieldError{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidateConfigBuiltInCode(t *testing.T) {
	c := &Config{
		Providers: []Provider{{Name: "openai", Type: ProviderTypeOpenAI, BaseURL: "https://api.openai.com/v1/", APIKey: "env://OPENAI_API_KEY"}},
		Callers:   []Caller{{Name: "app", Token: "file:///run/secrets/app-token", Suppliers: []string{"*"}}},
	}
	err := c.Validate()
	got := fieldErrors(t, err)
	if len(got) == 0 {
		t.Fatal("Validate() = nil before ApplyDefaults, want errors for zero limits")
	}
	for _, fe := range got {
		if fe.Line != 0 || fe.Source != "" {
			t.Errorf("error %q has a position, want none", fe)
		}
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() after ApplyDefaults = %v", err)
	}
	if got, want := c.Providers[0].BaseURL, "https://api.openai.com/v1"; got != want {
		t.Errorf("BaseURL = %q, want %q", got, want)
	}
}

func TestValidateKeepsLinesAfterParse(t *testing.T) {
	doc := okProviders + okCallers
	c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	c.Providers[0].BaseURL = "ftp://example.com"
	c.Limits.ReadTimeout = -time.Second
	checkErrors(t, doc, c.Validate(), []wantErr{
		{field: "limits.read_timeout", msg: "must not be negative"},
		{field: "providers[0].base_url", at: "base_url", msg: "must be an absolute http or https URL"},
	})
}

func TestCheckBaseURL(t *testing.T) {
	tests := []struct {
		url     string
		wantErr string
	}{
		{"https://api.openai.com/v1", ""},
		{"http://vllm.svc.cluster.local:8000/v1", ""},
		{"http://127.0.0.1:8000", ""},
		{"https://[::1]:8443/v1", ""},
		{"HTTPS://api.openai.com/v1", ""},
		{"api.openai.com/v1", "must be an absolute http or https URL"},
		{"/v1", "must be an absolute http or https URL"},
		{"ftp://example.com", "must be an absolute http or https URL"},
		{"https://", "must be an absolute http or https URL"},
		{"https:///v1", "must be an absolute http or https URL"},
		{"https://:443/v1", "must be an absolute http or https URL"},
		{"https:api.openai.com", "must be an absolute http or https URL"},
		{"https://user:pass@api.openai.com/v1", "must not contain user information"},
		{"https://api.openai.com/v1?api-version=1", "must not contain a query"},
		{"https://api.openai.com/v1?", "must not contain a query"},
		{"https://api.openai.com/v1#x", "must not contain a fragment"},
		{"https://api.openai.com/v1#", "must not contain a fragment"},
		{"https://api.openai.com:0/v1", "not a number between 1 and 65535"},
		{"https://api.openai.com:99999/v1", "not a number between 1 and 65535"},
		{"https://api.openai.com:/v1", "empty port"},
		{"https://api.openai.com/v 1", "whitespace"},
		{"https://api.openai.com:x/v1", "must be an absolute http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := checkBaseURL(tt.url)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("checkBaseURL(%q) = %v, want nil", tt.url, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("checkBaseURL(%q) = %v, want error containing %q", tt.url, err, tt.wantErr)
			case err != nil && strings.Contains(tt.url, "pass") && strings.Contains(err.Error(), "pass"):
				t.Errorf("checkBaseURL(%q) = %v, repeats the password", tt.url, err)
			}
		})
	}
}

func TestBaseURLErrorLine(t *testing.T) {
	doc := okCallers + okProviders + `  - name: second
    type: openai
    base_url: https://user:secret@example.com/v1
    api_key: env://SECOND_KEY
`
	_, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	line := lineOf(t, doc, "base_url: https://user")
	want := fmt.Sprintf("veil.yaml:%d: providers[1].base_url: must not contain user information", line)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v, want prefix %q", err, want)
	}
	if strings.Contains(err.Error(), "secret@") {
		t.Errorf("error repeats the URL credentials: %v", err)
	}
}

func TestBreakerLimits(t *testing.T) {
	tests := []struct {
		name     string
		limits   string
		window   time.Duration
		min      int
		rate     float64
		wantErrs []wantErr
	}{
		{name: "defaults", window: 30 * time.Second, min: 20, rate: 0.5},
		{name: "set", limits: "  breaker_window: 1m\n  breaker_min_requests: 50\n  breaker_error_rate: 0.25\n",
			window: time.Minute, min: 50, rate: 0.25},
		{name: "zero rate turns the trigger off", limits: "  breaker_error_rate: 0\n",
			window: 30 * time.Second, min: 20, rate: 0},
		{name: "a rate of one", limits: "  breaker_error_rate: 1\n", window: 30 * time.Second, min: 20, rate: 1},
		{name: "rate above one", limits: "  breaker_error_rate: 1.5\n", wantErrs: []wantErr{
			{field: "limits.breaker_error_rate", at: "breaker_error_rate", msg: "must be between 0 and 1 (0 turns the trigger off), got 1.5"}}},
		{name: "negative rate", limits: "  breaker_error_rate: -0.1\n", wantErrs: []wantErr{
			{field: "limits.breaker_error_rate", at: "breaker_error_rate", msg: "must be between 0 and 1"}}},
		{name: "rate not a number", limits: "  breaker_error_rate: half\n", wantErrs: []wantErr{
			{field: "limits.breaker_error_rate", at: "breaker_error_rate", msg: "must be a number, not a string"}}},
		{name: "negative window and minimum", limits: "  breaker_window: -1s\n  breaker_min_requests: -3\n", wantErrs: []wantErr{
			{field: "limits.breaker_window", at: "breaker_window", msg: "must not be negative, got -1s"},
			{field: "limits.breaker_min_requests", at: "breaker_min_requests", msg: "must be positive, got -3"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := okProviders + okCallers
			if tc.limits != "" {
				doc += "limits:\n" + tc.limits
			}
			c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
			if tc.wantErrs != nil {
				checkErrors(t, doc, err, tc.wantErrs)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l := c.Limits
			if l.BreakerWindow != tc.window || l.BreakerMinRequests != tc.min || l.ErrorRate() != tc.rate {
				t.Errorf("window %s, min %d, rate %v; want %s, %d, %v", l.BreakerWindow, l.BreakerMinRequests,
					l.ErrorRate(), tc.window, tc.min, tc.rate)
			}
		})
	}
	t.Run("built in code", func(t *testing.T) {
		var l Limits
		if l.ErrorRate() != DefaultBreakerErrorRate {
			t.Errorf("absent rate reads as %v", l.ErrorRate())
		}
		c := Default()
		if c.Limits.BreakerErrorRate == nil || *c.Limits.BreakerErrorRate != DefaultBreakerErrorRate {
			t.Errorf("ApplyDefaults left the rate %v", c.Limits.BreakerErrorRate)
		}
	})
}

// TestMaxRetries: an explicit max_retries of 0 turns retries off; absent
// is the default; negative is refused.
func TestMaxRetries(t *testing.T) {
	for _, tc := range []struct {
		limits string
		want   int
	}{{"", DefaultMaxRetries}, {"  max_retries: 0\n", 0}, {"  max_retries: 5\n", 5}} {
		doc := okProviders + okCallers
		if tc.limits != "" {
			doc += "limits:\n" + tc.limits
		}
		c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
		if err != nil {
			t.Fatalf("%q: %v", tc.limits, err)
		}
		if got := c.Limits.Retries(); got != tc.want {
			t.Errorf("%q: retries %d, want %d", tc.limits, got, tc.want)
		}
	}
	doc := okProviders + okCallers + "limits:\n  max_retries: -1\n"
	_, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	checkErrors(t, doc, err, []wantErr{{field: "limits.max_retries", at: "max_retries", msg: "must not be negative, got -1"}})
}
