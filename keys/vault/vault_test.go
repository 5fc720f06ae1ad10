package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wedsync/veil/keys"
)

// Tests in this file need no Vault server.

func TestNewValidates(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "")
	token := keys.NewSecret("hvs.token-for-new")
	tests := []struct {
		name   string
		o      Options
		errHas string // "" means New must succeed
	}{
		{"token", Options{Address: "http://127.0.0.1:1", Auth: Auth{Token: token}}, ""},
		{"token missing", Options{Address: "http://127.0.0.1:1"}, "needs Auth.Token or VAULT_TOKEN"},
		{"unknown method", Options{Auth: Auth{Method: "ldap"}}, `unknown auth method "ldap"`},
		{"approle", Options{Auth: Auth{Method: MethodAppRole, RoleID: token, SecretID: token}}, ""},
		{"approle no secret ID", Options{Auth: Auth{Method: MethodAppRole, RoleID: token}}, "needs Auth.RoleID and Auth.SecretID"},
		{"approle bad mount", Options{Auth: Auth{Method: MethodAppRole, RoleID: token, SecretID: token, Mount: "a/../b"}}, "auth mount"},
		{"kubernetes", Options{Auth: Auth{Method: MethodKubernetes, Role: "veil"}}, ""},
		{"kubernetes no role", Options{Auth: Auth{Method: MethodKubernetes}}, "needs Auth.Role"},
		{"client cert without key", Options{ClientCert: "/nonexistent.pem", Auth: Auth{Token: token}}, "configuring TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.o)
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("New succeeded, want an error with %q", tt.errHas)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q lacks %q", err, tt.errHas)
			}
		})
	}
}

func TestNewTokenFromEnvironment(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "hvs.from-env")
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.api.Token(); got != "hvs.from-env" {
		t.Errorf("token = %q, want the one of VAULT_TOKEN", got)
	}
	if got := c.api.Address(); got != "http://127.0.0.1:1" {
		t.Errorf("address = %q, want the one of VAULT_ADDR", got)
	}
	if got := c.api.MaxRetries(); got != defaultMaxRetries {
		t.Errorf("max retries = %d, want %d", got, defaultMaxRetries)
	}
	if got := c.api.ClientTimeout(); got != DefaultTimeout {
		t.Errorf("timeout = %v, want %v", got, DefaultTimeout)
	}

	// AppRole ignores VAULT_TOKEN: only a login gives a token.
	a, err := New(Options{Auth: Auth{Method: MethodAppRole, RoleID: keys.NewSecret("r"), SecretID: keys.NewSecret("s")}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.api.Token(); got != "" {
		t.Errorf("approle client starts with token %q", got)
	}
	if _, err := a.ReadKV(context.Background(), "secret", "x"); !errors.Is(err, ErrNotReady) {
		t.Errorf("read before login: err = %v, want ErrNotReady", err)
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		ref                string
		mount, path, field string
		wantErr            error
		errHas, errLacks   string
	}{
		{ref: "vault://secret/wedsync/platform/openai#api_keys", mount: "secret", path: "wedsync/platform/openai", field: "api_keys"},
		{ref: "vault://secret/wedsync/suppliers/acme/openai", mount: "secret", path: "wedsync/suppliers/acme/openai", field: DefaultField},
		{ref: "VAULT://kv/a#organization", mount: "kv", path: "a", field: "organization"},
		{ref: "vault://secret/a/#f", mount: "secret", path: "a", field: "f"},
		{ref: "vault://secret#f", wantErr: keys.ErrInvalidReference, errHas: "want vault://mount/path#field"},
		{ref: "vault://", wantErr: keys.ErrInvalidReference},
		{ref: "vault://secret/a#", wantErr: keys.ErrInvalidReference, errHas: "empty field"},
		{ref: "vault://secret/data/wedsync/x#api_key", wantErr: keys.ErrInvalidReference, errHas: "vault://secret/wedsync/x"},
		{ref: "vault://secret/wedsync/suppliers/../platform/openai", wantErr: keys.ErrInvalidReference, errHas: "relative"},
		{ref: "vault://secret/a//b", wantErr: keys.ErrInvalidReference, errHas: "empty path segment"},
		{ref: "vault://secret/a?version=1", wantErr: keys.ErrInvalidReference, errHas: "not allowed"},
		{ref: "env://OPENAI_API_KEY", wantErr: keys.ErrUnsupportedScheme, errHas: `"env"`},
		{ref: "sk-pasted-secret-value", wantErr: keys.ErrInvalidReference, errLacks: "sk-pasted"},
		{ref: "sk-live:/x://y", wantErr: keys.ErrInvalidReference, errLacks: "sk-live"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			mount, path, field, err := ParseRef(tt.ref)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseRef: %v", err)
				}
				if mount != tt.mount || path != tt.path || field != tt.field {
					t.Errorf("got (%q, %q, %q), want (%q, %q, %q)", mount, path, field, tt.mount, tt.path, tt.field)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q lacks %q", err, tt.errHas)
			}
			if tt.errLacks != "" && strings.Contains(err.Error(), tt.errLacks) {
				t.Errorf("error %q reveals %q", err, tt.errLacks)
			}
		})
	}
}

func TestKVPathsRejectTraversal(t *testing.T) {
	c, err := New(Options{Address: "http://127.0.0.1:1", Auth: Auth{Token: keys.NewSecret("t")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, path := range []string{"", "/", "wedsync/suppliers/../platform/openai", "a/./b", "a\x00b", "a%2e%2e"} {
		t.Run(fmt.Sprintf("%q", path), func(t *testing.T) {
			if _, err := c.ReadKV(context.Background(), "secret", path); err == nil || IsUnreachable(err) {
				t.Errorf("ReadKV: err = %v, want a path error before any call", err)
			}
			if _, err := c.KVVersion(context.Background(), "secret", path); err == nil || IsUnreachable(err) {
				t.Errorf("KVVersion: err = %v, want a path error before any call", err)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	const token = "hvs.SECRETTOKEN"
	redact := redactor{secrets: []string{token}}.redact
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/v1/secret/data/x",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		err      error
		kind     error // nil: none of the sentinels
		has      string
		unwrapTo error
	}{
		{"refused", context.Background(), refused, ErrUnreachable, "unreachable", syscall.ECONNREFUSED},
		{"eof", context.Background(), io.EOF, ErrUnreachable, "EOF", io.EOF},
		{"client timeout", context.Background(), fmt.Errorf("x: %w", context.DeadlineExceeded), ErrUnreachable, "deadline", nil},
		{"caller canceled", canceled, refused, nil, "canceled", context.Canceled},
		{"403", context.Background(), &api.ResponseError{StatusCode: 403,
			Errors: []string{"2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"}},
			ErrForbidden, "permission denied (HTTP 403): invalid token", nil},
		{"404", context.Background(), &api.ResponseError{StatusCode: 404}, ErrNotFound, "not found (HTTP 404)", nil},
		{"sealed", context.Background(), &api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}},
			ErrUnreachable, "unavailable (HTTP 503): Vault is sealed", nil},
		{"429", context.Background(), &api.ResponseError{StatusCode: 429}, ErrUnreachable, "HTTP 429", nil},
		{"400", context.Background(), &api.ResponseError{StatusCode: 400, Errors: []string{"invalid role or secret ID"}},
			nil, "rejected (HTTP 400): invalid role or secret ID", nil},
		{"raw body with token", context.Background(), &api.ResponseError{StatusCode: 502, RawError: true,
			Errors: []string{"<html>bad gateway for " + token + strings.Repeat("x", 500) + "</html>"}},
			ErrUnreachable, "[redacted]", nil},
		{"wrapped response error", context.Background(), fmt.Errorf("unable to log in: %w",
			&api.ResponseError{StatusCode: 403}), ErrForbidden, "permission denied", nil},
		{"other error with token", context.Background(), errors.New("weird " + token), nil, "weird [redacted]", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(tt.ctx, "read secret/x", tt.err, redact)
			for _, kind := range []error{ErrUnreachable, ErrForbidden, ErrNotFound} {
				if got, want := errors.Is(err, kind), kind == tt.kind; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, kind, got, want)
				}
			}
			if got, want := IsUnreachable(err), tt.kind == ErrUnreachable; got != want {
				t.Errorf("IsUnreachable = %v, want %v", got, want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "vault: read secret/x: ") || !strings.Contains(msg, tt.has) {
				t.Errorf("message %q: want prefix %q and %q", msg, "vault: read secret/x: ", tt.has)
			}
			if strings.Contains(msg, token) || len(msg) > maxDetail+100 {
				t.Errorf("message reveals the token or is too long: %q", msg)
			}
			if tt.unwrapTo != nil && !errors.Is(err, tt.unwrapTo) {
				t.Errorf("error does not unwrap to %v", tt.unwrapTo)
			}
			if strings.Contains(tt.err.Error(), token) && errors.Is(err, tt.err) {
				t.Error("error unwraps to a cause whose message holds the token")
			}
		})
	}
}

func TestDecodeKV(t *testing.T) {
	secret := func(data any, meta map[string]any) *api.Secret {
		return &api.Secret{Data: map[string]any{"data": data, "metadata": meta}}
	}
	meta := map[string]any{"version": json.Number("3"), "created_time": "2026-01-02T03:04:05.123456789Z", "deletion_time": ""}
	kv, err := decodeKV("read x", secret(map[string]any{
		"api_key":      "sk-one",
		"organization": "org-1",
		"api_keys":     []any{"k1", "", "k2", json.Number("7")},
		"count":        json.Number("2"),
		"flag":         true,
		"empty":        "",
		"null":         nil,
	}, meta))
	if err != nil {
		t.Fatal(err)
	}
	if kv.Version != 3 || !kv.CreatedTime.Equal(time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)) {
		t.Errorf("version %d created %v", kv.Version, kv.CreatedTime)
	}
	fields := map[string]string{"api_key": "sk-one", "organization": "org-1", "count": "2", "flag": "true",
		"api_keys": `["k1","","k2",7]`}
	for name, want := range fields {
		if s, ok := kv.Field(name); !ok || s.Reveal() != want {
			t.Errorf("field %s = %q, %v; want %q", name, s.Reveal(), ok, want)
		}
	}
	for _, name := range []string{"empty", "null", "missing"} {
		if _, ok := kv.Field(name); ok {
			t.Errorf("field %s reported present", name)
		}
	}
	var got []string
	for _, s := range kv.Secrets("api_keys") {
		got = append(got, s.Reveal())
	}
	if strings.Join(got, ",") != "k1,k2" {
		t.Errorf("Secrets(api_keys) = %q, want k1,k2", got)
	}
	if s := kv.Secrets("api_key"); len(s) != 1 || s[0].Reveal() != "sk-one" {
		t.Errorf("Secrets(api_key) = %v", s)
	}
	if s := kv.Secrets("missing"); s != nil {
		t.Errorf("Secrets(missing) = %v, want nil", s)
	}
	if printed := fmt.Sprintf("%v %+v %#v", kv, kv, kv); strings.Contains(printed, "sk-one") || strings.Contains(printed, "k2") {
		t.Errorf("printing a KV reveals values: %s", printed)
	}

	deletedMeta := map[string]any{"version": json.Number("4"), "deletion_time": "2026-01-02T03:04:05Z", "destroyed": false}
	destroyedMeta := map[string]any{"version": json.Number("5"), "deletion_time": "", "destroyed": true}
	for name, s := range map[string]*api.Secret{
		"deleted":   secret(nil, deletedMeta),
		"destroyed": secret(nil, destroyedMeta),
		"no data":   {Data: map[string]any{}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeKV("read x", s)
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
			if name != "no data" && !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not say %s", err, name)
			}
		})
	}
}

func TestDeleted(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		meta map[string]any
		now  time.Time
		want string
	}{
		{"live", map[string]any{"deletion_time": "", "destroyed": false}, now, ""},
		{"nil", nil, now, ""},
		{"deleted", map[string]any{"deletion_time": "2026-05-01T00:00:00Z"}, now, "deleted"},
		{"scheduled", map[string]any{"deletion_time": "2026-07-01T00:00:00Z"}, now, ""},
		{"scheduled, no clock", map[string]any{"deletion_time": "2026-07-01T00:00:00Z"}, time.Time{}, "deleted"},
		{"destroyed", map[string]any{"deletion_time": "", "destroyed": true}, now, "destroyed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := deleted(tt.meta, tt.now); got != tt.want {
				t.Errorf("deleted = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	var b backoff
	prevMax := time.Duration(0)
	for i := range 20 {
		d := b.next()
		ceiling := min(loginRetryMin<<i, loginRetryMax)
		if d < ceiling/2 || d > ceiling {
			t.Fatalf("attempt %d: wait %v outside [%v, %v]", i, d, ceiling/2, ceiling)
		}
		prevMax = ceiling
	}
	if prevMax != loginRetryMax {
		t.Errorf("backoff does not reach its cap: %v", prevMax)
	}
	b.reset()
	if d := b.next(); d > loginRetryMin {
		t.Errorf("after reset: %v, want at most %v", d, loginRetryMin)
	}
}

func TestStartLifecycle(t *testing.T) {
	c, err := New(Options{Address: "http://127.0.0.1:1", Timeout: 2 * time.Second, Auth: Auth{Token: keys.NewSecret("t")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "Start") {
		t.Errorf("Ready before Start = %v", err)
	}
	err = c.Start(context.Background())
	if !IsUnreachable(err) {
		t.Errorf("Start against a closed port = %v, want unreachable", err)
	}
	if err := c.Ready(); !IsUnreachable(err) || !errors.Is(err, ErrNotReady) {
		t.Errorf("Ready after a failed login = %v, want not ready and unreachable", err)
	}
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Start = %v", err)
	}
	c.Close()
	c.Close()
	if err := c.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	if _, err := c.ReadKV(context.Background(), "secret", "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadKV after Close = %v, want ErrClosed", err)
	}
}
