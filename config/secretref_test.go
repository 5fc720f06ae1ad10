package config

import (
	"strings"
	"testing"
)

func TestSecretRefParse(t *testing.T) {
	tests := []struct {
		ref     SecretRef
		want    ParsedRef
		wantErr string
	}{
		{ref: "env://OPENAI_API_KEY", want: ParsedRef{Scheme: SchemeEnv, Name: "OPENAI_API_KEY"}},
		{ref: "env://_x1", want: ParsedRef{Scheme: SchemeEnv, Name: "_x1"}},
		{ref: "file:///var/run/secrets/veil/openai-api-key", want: ParsedRef{Scheme: SchemeFile, Path: "/var/run/secrets/veil/openai-api-key"}},
		{ref: "file:///a", want: ParsedRef{Scheme: SchemeFile, Path: "/a"}},
		{ref: "vault://secret/apps/veil#openai", want: ParsedRef{Scheme: SchemeVault, Mount: "secret", Path: "apps/veil", Field: "openai"}},
		{ref: "vault://kv/data/team-a/openai#api_key", want: ParsedRef{Scheme: SchemeVault, Mount: "kv", Path: "data/team-a/openai", Field: "api_key"}},

		{ref: "", wantErr: "is required"},
		{ref: " env://X", wantErr: "leading or trailing whitespace"},
		{ref: "env://X\n", wantErr: "leading or trailing whitespace"},
		{ref: "sk-proj-abc123", wantErr: "not a literal value"},
		{ref: "Bearer abc", wantErr: "not a literal value"},
		{ref: "env:X", wantErr: "not a literal value"},
		{ref: "://x", wantErr: "not a literal value"},
		{ref: "1env://X", wantErr: "not a literal value"},
		{ref: "https://vault.example.com/x", wantErr: `unsupported secret reference scheme "https": use env://, file:// or vault://`},
		{ref: "ENV://X", wantErr: `unsupported secret reference scheme "ENV"`},
		{ref: "env://", wantErr: "env reference needs a variable name"},
		{ref: "env://1ABC", wantErr: "variable name must match"},
		{ref: "env://A-B", wantErr: "variable name must match"},
		{ref: "env://A B", wantErr: "whitespace or control characters"},
		{ref: "env://A/B", wantErr: "variable name must match"},
		{ref: "file://", wantErr: "absolute path"},
		{ref: "file://relative/path", wantErr: "absolute path and no host"},
		{ref: "file://host/etc/x", wantErr: "absolute path and no host"},
		{ref: "file:///", wantErr: "needs a file path"},
		{ref: "file:////", wantErr: "needs a file path"},
		{ref: "file:///a\tb", wantErr: "whitespace or control characters"},
		{ref: "vault://", wantErr: "needs a field after '#'"},
		{ref: "vault://secret/app", wantErr: "needs a field after '#'"},
		{ref: "vault://secret/app#", wantErr: "needs a field after '#'"},
		{ref: "vault://secret#field", wantErr: "needs a mount and a secret path"},
		{ref: "vault:///app#field", wantErr: "needs a mount and a secret path"},
		{ref: "vault://secret/#field", wantErr: "needs a mount and a secret path"},
		{ref: "vault://secret/a//b#field", wantErr: "empty, '.' or '..' segments"},
		{ref: "vault://secret/a/#field", wantErr: "empty, '.' or '..' segments"},
		{ref: "vault://secret/../b#field", wantErr: "empty, '.' or '..' segments"},
		{ref: "vault://../b#field", wantErr: "mount must not be '.' or '..'"},
		{ref: "vault://secret/app#a#b", wantErr: "single '#'"},
	}
	for _, tt := range tests {
		t.Run(string(tt.ref), func(t *testing.T) {
			got, err := tt.ref.Parse()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse() error = %v, want error containing %q", err, tt.wantErr)
				}
				if verr := tt.ref.Validate(); verr == nil || verr.Error() != err.Error() {
					t.Errorf("Validate() = %v, want %v", verr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if got != tt.want {
				t.Errorf("Parse() = %+v, want %+v", got, tt.want)
			}
			if err := tt.ref.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestSecretRefLiteralNotEchoed(t *testing.T) {
	// Only a well-formed URI scheme before "://" is quoted; anything else may
	// be a pasted secret.
	for _, ref := range []SecretRef{"sk-live-0123456789", "sk-live:0123456789", "s3cr3t_value://x", "0123456789abcdef0123://x"} {
		t.Run(string(ref), func(t *testing.T) {
			err := ref.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want error")
			}
			if strings.Contains(err.Error(), "0123456789") || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "://x") {
				t.Errorf("Validate() = %q repeats the value", err)
			}
		})
	}
}

func TestSecretRefScheme(t *testing.T) {
	tests := []struct {
		ref  SecretRef
		want string
	}{
		{"env://X", "env"},
		{"file:///x", "file"},
		{"vault://a/b#c", "vault"},
		{"https://x", "https"},
		{"literal", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.ref), func(t *testing.T) {
			if got := tt.ref.Scheme(); got != tt.want {
				t.Errorf("Scheme() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSecretRefIsZero(t *testing.T) {
	tests := []struct {
		ref  SecretRef
		want bool
	}{
		{"", true},
		{"env://X", false},
		{" ", false},
	}
	for _, tt := range tests {
		t.Run(string(tt.ref), func(t *testing.T) {
			if got := tt.ref.IsZero(); got != tt.want {
				t.Errorf("IsZero() = %v, want %v", got, tt.want)
			}
		})
	}
}
