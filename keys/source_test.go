package keys

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveEnv(t *testing.T) {
	t.Setenv("VEIL_TEST_KEY", testValue)
	t.Setenv("VEIL_TEST_EMPTY", "")
	tests := []struct {
		name    string
		ref     string
		want    string
		wantErr error  // checked with errors.Is when set
		errHas  string // a substring the error must contain
	}{
		{"set", "env://VEIL_TEST_KEY", testValue, nil, ""},
		{"scheme case", "ENV://VEIL_TEST_KEY", testValue, nil, ""},
		{"unset", "env://VEIL_TEST_UNSET", "", nil, `"VEIL_TEST_UNSET" is not set`},
		{"empty", "env://VEIL_TEST_EMPTY", "", nil, `"VEIL_TEST_EMPTY" is empty`},
		{"no name", "env://", "", ErrInvalidReference, ""},
		{"bad name", "env://A=B", "", ErrInvalidReference, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkResolve(t, tt.ref, tt.want, tt.wantErr, tt.errHas)
		})
	}
}

func TestResolveFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	plain := write("plain", testValue)
	newline := write("newline", testValue+"\n")
	crlf := write("crlf", testValue+" \r\n\n")
	empty := write("empty", "\n")
	large := write("large", strings.Repeat("x", DefaultMaxFileBytes+1))
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		ref     string
		want    string
		wantErr error
		errHas  string
	}{
		{"plain", "file://" + plain, testValue, nil, ""},
		{"trailing newline", "file://" + newline, testValue, nil, ""},
		{"trailing whitespace", "file://" + crlf, testValue, nil, ""},
		{"empty", "file://" + empty, "", nil, empty},
		{"missing", "file://" + missing, "", os.ErrNotExist, missing},
		{"directory", "file://" + dir, "", nil, dir},
		{"too large", "file://" + large, "", nil, large},
		{"relative", "file://relative/path", "", ErrInvalidReference, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkResolve(t, tt.ref, tt.want, tt.wantErr, tt.errHas)
		})
	}
}

func TestResolveSchemes(t *testing.T) {
	tests := []struct {
		name    string
		ref     string
		wantErr error
		errHas  string
	}{
		{"vault", "vault://secret/data/openai#key", ErrSourceNotConfigured, "vault source"},
		{"unknown", "ftp://host/key", ErrUnsupportedScheme, `"ftp"`},
		{"no scheme", testValue, ErrInvalidReference, ""},
		{"empty", "", ErrInvalidReference, ""},
		{"bad scheme", "sk-" + testValue + "://x", ErrInvalidReference, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkResolve(t, tt.ref, "", tt.wantErr, tt.errHas)
		})
	}
}

// checkResolve resolves ref and checks the result; errors must never hold
// the secret value.
func checkResolve(t *testing.T, ref, want string, wantErr error, errHas string) {
	t.Helper()
	s, err := Resolve(ref)
	if want != "" {
		if err != nil {
			t.Fatalf("Resolve(%q): %v", ref, err)
		}
		if s.Reveal() != want {
			t.Fatalf("Resolve(%q) = %q, want %q", ref, s.Reveal(), want)
		}
		return
	}
	if err == nil {
		t.Fatalf("Resolve(%q) = %v, want an error", ref, s)
	}
	if !s.IsZero() {
		t.Errorf("Resolve returned a secret with an error")
	}
	if wantErr != nil && !errors.Is(err, wantErr) {
		t.Errorf("err = %v, want %v", err, wantErr)
	}
	if !strings.Contains(err.Error(), errHas) {
		t.Errorf("err = %q, want it to contain %q", err, errHas)
	}
	assertHidden(t, "error", err.Error())
}

// staticSource resolves any reference of its scheme to a fixed value.
type staticSource struct{ value string }

func (s staticSource) Resolve(ctx context.Context, ref string) (Secret, error) {
	return NewSecret(s.value), nil
}

func TestSources(t *testing.T) {
	env := map[string]string{"KEY": "from-env"}
	srcs := Sources{
		"env":   EnvSource{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }},
		"vault": staticSource{"from-vault"},
	}
	ctx := context.Background()
	for ref, want := range map[string]string{"env://KEY": "from-env", "vault://a/b": "from-vault"} {
		s, err := srcs.Resolve(ctx, ref)
		if err != nil || s.Reveal() != want {
			t.Errorf("Resolve(%q) = %v, %v; want %q", ref, s, err, want)
		}
	}
	if _, err := srcs.Resolve(ctx, "file:///etc/hostname"); !errors.Is(err, ErrUnsupportedScheme) {
		t.Errorf("file:// without a file source: err = %v", err)
	}
	if _, err := (EnvSource{}).Resolve(ctx, "file:///x"); !errors.Is(err, ErrUnsupportedScheme) {
		t.Errorf("EnvSource with a file reference: err = %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (FileSource{}).Resolve(canceled, "file:///etc/hostname"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: err = %v", err)
	}
	var _ Source = Sources{}
}
