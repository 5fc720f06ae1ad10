package keys

import (
	"fmt"
	"io"

	"go.uber.org/zap/zapcore"

	"github.com/wedsync/veil/billing"
)

// Key is a provider credential ready for the request path: the secret, its
// pre-rendered Authorization value (so the hot path never concatenates
// strings), where it came from and which version it is. A Key is immutable
// once made and shared by every request that uses it.
type Key struct {
	secret  Secret
	bearer  []byte
	source  billing.KeySource
	version string
	// Organization and Project are the optional OpenAI-Organization and
	// OpenAI-Project values that go with a supplier's key.
	Organization, Project string
}

// NewKey wraps a secret as a key of source and version (opaque: a Vault KV
// version, or empty).
func NewKey(s Secret, source billing.KeySource, version string) *Key {
	return &Key{secret: s, bearer: []byte("Bearer " + s.Reveal()), source: source, version: version}
}

// Secret is the key itself.
func (k *Key) Secret() Secret { return k.secret }

// Bearer is "Bearer <key>", for an Authorization header. Callers must not
// modify or log it.
func (k *Key) Bearer() []byte { return k.bearer }

// Source is where the key comes from: platform or client.
func (k *Key) Source() billing.KeySource { return k.source }

// Version is the key's version at its source, or empty.
func (k *Key) Version() string { return k.version }

// Fingerprint identifies the key in logs without revealing it.
func (k *Key) Fingerprint() string { return k.secret.Fingerprint() }

// String shows the key's source, version and fingerprint only.
func (k *Key) String() string {
	if k == nil {
		return "key:none"
	}
	s := "key:" + string(k.source) + ":" + k.secret.Fingerprint()
	if k.version != "" {
		s += "@v" + k.version
	}
	return s
}

// GoString shows the same as String, so %#v reveals nothing either.
func (k *Key) GoString() string { return k.String() }

// Format prints String for every verb, so no fmt verb can reach the
// pre-rendered Authorization value.
func (k *Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// MarshalLogObject shows the key's source, version and fingerprint only.
func (k *Key) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("source", string(k.source))
	enc.AddString("fingerprint", k.secret.Fingerprint())
	if k.version != "" {
		enc.AddString("version", k.version)
	}
	return nil
}
