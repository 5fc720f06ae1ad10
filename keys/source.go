package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// DefaultMaxFileBytes is the largest secret file FileSource reads when its
// MaxBytes is zero.
const DefaultMaxFileBytes = 64 << 10

var (
	// ErrInvalidReference is returned for a secret reference that is not of
	// the form scheme://rest.
	ErrInvalidReference = errors.New("keys: invalid secret reference")
	// ErrUnsupportedScheme is returned for a secret reference whose scheme
	// no source handles.
	ErrUnsupportedScheme = errors.New("keys: unsupported secret reference scheme")
	// ErrSourceNotConfigured is returned for a secret reference whose
	// scheme is known but whose source has not been configured.
	ErrSourceNotConfigured = errors.New("keys: secret source not configured")
)

// Source resolves secret references of one scheme, such as
// "env://OPENAI_API_KEY". Errors name the reference but never contain a
// secret value. Implementations must be safe for concurrent use.
type Source interface {
	Resolve(ctx context.Context, ref string) (Secret, error)
}

// laterSources names the schemes whose sources are planned but must be
// configured explicitly, with what resolves them.
var laterSources = map[string]string{
	"vault": "the vault source",
}

// Sources dispatches secret references to a Source by scheme (the part
// before "://", compared case-insensitively; keys must be lowercase).
type Sources map[string]Source

// DefaultSources returns the sources that need no configuration: "env"
// (EnvSource) and "file" (FileSource).
func DefaultSources() Sources {
	return Sources{"env": EnvSource{}, "file": FileSource{}}
}

// Resolve resolves ref with the source of its scheme.
func (s Sources) Resolve(ctx context.Context, ref string) (Secret, error) {
	scheme, _, err := splitRef(ref)
	if err != nil {
		return Secret{}, err
	}
	src, ok := s[scheme]
	if !ok {
		if by, planned := laterSources[scheme]; planned {
			return Secret{}, fmt.Errorf("%w: %s:// references are resolved by %s, which is not configured",
				ErrSourceNotConfigured, scheme, by)
		}
		return Secret{}, fmt.Errorf("%w %q", ErrUnsupportedScheme, scheme)
	}
	return src.Resolve(ctx, ref)
}

// Resolve resolves a secret reference with DefaultSources:
// "env://NAME" reads an environment variable and "file:///abs/path" a file.
func Resolve(ref string) (Secret, error) {
	return DefaultSources().Resolve(context.Background(), ref)
}

// splitRef splits ref into its lowercased scheme and the rest. Since a
// misconfigured reference may be a pasted secret, errors quote only a scheme
// made of scheme characters, never the rest of ref.
func splitRef(ref string) (scheme, rest string, err error) {
	scheme, rest, ok := strings.Cut(ref, "://")
	if !ok || !ValidScheme(scheme) {
		return "", "", fmt.Errorf("%w: want scheme://..., such as env://NAME or file:///path", ErrInvalidReference)
	}
	return strings.ToLower(scheme), rest, nil
}

// ValidScheme reports whether s is a URL scheme (RFC 3986, section 3.1),
// so that an error may quote it without risk of quoting a pasted secret.
func ValidScheme(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// refRest checks that ctx is not done and that ref has the scheme want,
// and returns the rest of ref.
func refRest(ctx context.Context, ref, want string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	scheme, rest, err := splitRef(ref)
	if err != nil {
		return "", err
	}
	if scheme != want {
		return "", fmt.Errorf("%w %q for the %s source", ErrUnsupportedScheme, scheme, want)
	}
	return rest, nil
}

// EnvSource resolves "env://NAME" references from environment variables.
type EnvSource struct {
	// LookupEnv looks variables up; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
}

// Resolve returns the value of the variable named by ref. An unset or empty
// variable is an error naming the variable.
func (e EnvSource) Resolve(ctx context.Context, ref string) (Secret, error) {
	name, err := refRest(ctx, ref, "env")
	if err != nil {
		return Secret{}, err
	}
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return Secret{}, fmt.Errorf("%w: env:// needs a variable name", ErrInvalidReference)
	}
	lookup := e.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	value, ok := lookup(name)
	switch {
	case !ok:
		return Secret{}, fmt.Errorf("keys: environment variable %q is not set", name)
	case value == "":
		return Secret{}, fmt.Errorf("keys: environment variable %q is empty", name)
	}
	return NewSecret(value), nil
}

// FileSource resolves "file:///abs/path" references by reading the file.
// Trailing whitespace, such as the newline editors add, is trimmed. The path
// is taken literally, without percent-decoding.
type FileSource struct {
	// MaxBytes bounds the size of a secret file; zero means
	// DefaultMaxFileBytes.
	MaxBytes int64
}

// Resolve returns the contents of the file named by ref. A missing,
// unreadable, oversized or empty file is an error naming the path.
func (f FileSource) Resolve(ctx context.Context, ref string) (Secret, error) {
	path, err := refRest(ctx, ref, "file")
	if err != nil {
		return Secret{}, err
	}
	if !strings.HasPrefix(path, "/") {
		return Secret{}, fmt.Errorf("%w: file:// needs an absolute path, as in file:///run/secrets/key", ErrInvalidReference)
	}
	limit := f.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxFileBytes
	}
	file, err := os.Open(path)
	if err != nil {
		return Secret{}, fmt.Errorf("keys: reading secret file: %w", err)
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return Secret{}, fmt.Errorf("keys: reading secret file: %w", err)
	}
	if int64(len(b)) > limit {
		return Secret{}, fmt.Errorf("keys: secret file %q is larger than %d bytes", path, limit)
	}
	value := strings.TrimRight(string(b), " \t\r\n")
	clear(b)
	if value == "" {
		return Secret{}, fmt.Errorf("keys: secret file %q is empty", path)
	}
	return NewSecret(value), nil
}
