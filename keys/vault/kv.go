package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wedsync/veil/keys"
)

// DefaultField is the field a vault:// reference without "#field" names.
const DefaultField = "api_key"

// KV is the current version of a KV version 2 secret.
type KV struct {
	// Data holds every field as a Secret, so that printing or logging a KV
	// never shows a value. String values are kept as they are; other JSON
	// values (numbers, booleans, arrays, objects) as their compact JSON.
	Data map[string]keys.Secret
	// Version is the version number of the secret read.
	Version int
	// CreatedTime is when that version was written.
	CreatedTime time.Time

	lists map[string][]keys.Secret
}

// Field returns the named field and whether it is present and not empty.
func (kv *KV) Field(name string) (keys.Secret, bool) {
	s, ok := kv.Data[name]
	return s, ok && !s.IsZero()
}

// Secrets returns the named field as a list: the non-empty elements of a
// JSON array of strings (such as "api_keys": ["k1", "k2"]), the value of
// any other non-empty field, or nil when the field is missing or empty.
func (kv *KV) Secrets(name string) []keys.Secret {
	if list, ok := kv.lists[name]; ok {
		return list
	}
	if s, ok := kv.Field(name); ok {
		return []keys.Secret{s}
	}
	return nil
}

// ReadKV reads the current version of the KV version 2 secret at path in
// the engine mounted at mount (GET <mount>/data/<path>). A missing secret,
// or one whose current version is deleted or destroyed, gives an error
// matching ErrNotFound; a refused read, ErrForbidden; a Vault that cannot
// be reached, ErrUnreachable (see IsUnreachable). With the AppRole and
// Kubernetes methods, reads before the first login fail with ErrNotReady.
func (c *Client) ReadKV(ctx context.Context, mount, path string) (*KV, error) {
	mount, path, op, err := kvPaths("read", mount, path)
	if err != nil {
		return nil, err
	}
	if err := c.checkUsable(op); err != nil {
		return nil, err
	}
	secret, err := c.api.Logical().ReadWithContext(ctx, mount+"/data/"+path)
	if err != nil {
		return nil, c.readError(ctx, op, err)
	}
	if secret == nil || secret.Data == nil {
		return nil, newOpError(op, ErrNotFound, "secret not found")
	}
	return decodeKV(op, secret)
}

// KVVersion returns the current version number of the KV version 2 secret
// at path (GET <mount>/metadata/<path>), a cheap way to notice a change. A
// missing secret, or one whose current version is deleted (as of
// Options.Now) or destroyed, gives an error matching ErrNotFound.
func (c *Client) KVVersion(ctx context.Context, mount, path string) (int, error) {
	mount, path, op, err := kvPaths("read metadata of", mount, path)
	if err != nil {
		return 0, err
	}
	if err := c.checkUsable(op); err != nil {
		return 0, err
	}
	secret, err := c.api.Logical().ReadWithContext(ctx, mount+"/metadata/"+path)
	if err != nil {
		return 0, c.readError(ctx, op, err)
	}
	if secret == nil || secret.Data == nil {
		return 0, newOpError(op, ErrNotFound, "secret not found")
	}
	version := int(jsonInt(secret.Data["current_version"]))
	if version <= 0 {
		return 0, newOpError(op, ErrNotFound, "secret has no version")
	}
	versions, _ := secret.Data["versions"].(map[string]any)
	meta, _ := versions[strconv.Itoa(version)].(map[string]any)
	if why := deleted(meta, c.now()); why != "" {
		return 0, newOpError(op, ErrNotFound, fmt.Sprintf("version %d is %s", version, why))
	}
	return version, nil
}

// Resolve reads the secret a reference of the form
// vault://<mount>/<path>#<field> names, such as
// vault://secret/wedsync/platform/openai#api_key. The mount is the first
// path segment, the path is written without KV version 2's "data/", and the
// field defaults to DefaultField. A missing or empty field gives an error
// matching ErrNotFound.
func (c *Client) Resolve(ctx context.Context, ref string) (keys.Secret, error) {
	mount, path, field, err := ParseRef(ref)
	if err != nil {
		return keys.Secret{}, err
	}
	kv, err := c.ReadKV(ctx, mount, path)
	if err != nil {
		return keys.Secret{}, err
	}
	s, ok := kv.Field(field)
	if !ok {
		what := "has no field"
		if _, present := kv.Data[field]; present {
			what = "has an empty field"
		}
		return keys.Secret{}, newOpError("resolve "+mount+"/"+path, ErrNotFound,
			fmt.Sprintf("version %d %s %q", kv.Version, what, field))
	}
	return s, nil
}

// ParseRef splits a reference of the form vault://<mount>/<path>#<field>
// into its parts (the field defaulting to DefaultField). Errors match
// keys.ErrInvalidReference or keys.ErrUnsupportedScheme; they never quote
// a reference whose scheme is not vault, which may be a pasted secret.
func ParseRef(ref string) (mount, path, field string, err error) {
	scheme, rest, ok := strings.Cut(ref, "://")
	if !ok || !strings.EqualFold(scheme, "vault") {
		if ok && keys.ValidScheme(scheme) {
			return "", "", "", fmt.Errorf("%w %q for the vault source", keys.ErrUnsupportedScheme, strings.ToLower(scheme))
		}
		return "", "", "", fmt.Errorf("%w: want vault://mount/path#field", keys.ErrInvalidReference)
	}
	rest, field, hasField := strings.Cut(rest, "#")
	switch {
	case !hasField:
		field = DefaultField
	case field == "":
		return "", "", "", fmt.Errorf("%w: vault://%s#: empty field name", keys.ErrInvalidReference, rest)
	}
	mount, path, ok = strings.Cut(strings.Trim(rest, "/"), "/")
	if !ok || mount == "" || path == "" {
		return "", "", "", fmt.Errorf("%w: vault://%s: want vault://mount/path#field", keys.ErrInvalidReference, rest)
	}
	if path == "data" || strings.HasPrefix(path, "data/") {
		return "", "", "", fmt.Errorf("%w: vault://%s: write the KV path without \"data/\", as in vault://%s/%s",
			keys.ErrInvalidReference, rest, mount, strings.TrimPrefix(path, "data/"))
	}
	if _, err := cleanPath(rest); err != nil {
		return "", "", "", fmt.Errorf("%w: vault://%s: %w", keys.ErrInvalidReference, rest, err)
	}
	return mount, path, field, nil
}

// kvPaths checks mount and path and names the operation.
func kvPaths(verb, mount, path string) (m, p, op string, err error) {
	m, err = cleanPath(mount)
	if err != nil {
		return "", "", "", fmt.Errorf("vault: %s: mount %q: %w", verb, mount, err)
	}
	p, err = cleanPath(path)
	if err != nil {
		return "", "", "", fmt.Errorf("vault: %s %s: path %q: %w", verb, m, path, err)
	}
	return m, p, verb + " " + m + "/" + p, nil
}

// readError classifies the error of a read and, when Vault refused it,
// asks the background loop to check the token.
func (c *Client) readError(ctx context.Context, op string, err error) error {
	err = c.classify(ctx, op, err)
	if errors.Is(err, ErrForbidden) {
		c.poke()
	}
	return err
}

// decodeKV converts the answer of GET <mount>/data/<path>.
func decodeKV(op string, secret *api.Secret) (*KV, error) {
	meta, _ := secret.Data["metadata"].(map[string]any)
	version := int(jsonInt(meta["version"]))
	data, ok := secret.Data["data"].(map[string]any)
	if !ok || data == nil {
		if why := deleted(meta, time.Time{}); why != "" && version > 0 {
			return nil, newOpError(op, ErrNotFound, fmt.Sprintf("current version %d is %s", version, why))
		}
		return nil, newOpError(op, ErrNotFound, "secret has no data")
	}
	kv := &KV{Data: make(map[string]keys.Secret, len(data)), Version: version}
	if s, _ := meta["created_time"].(string); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			kv.CreatedTime = t
		}
	}
	for name, v := range data {
		kv.Data[name] = keys.NewSecret(fieldString(v))
		if list, ok := v.([]any); ok {
			if kv.lists == nil {
				kv.lists = make(map[string][]keys.Secret)
			}
			secrets := make([]keys.Secret, 0, len(list))
			for _, e := range list {
				if s, ok := e.(string); ok && s != "" {
					secrets = append(secrets, keys.NewSecret(s))
				}
			}
			kv.lists[name] = secrets
		}
	}
	return kv, nil
}

// fieldString returns a field's value as text: strings as they are, other
// values as compact JSON, null as "".
func fieldString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// deleted says why version metadata marks a version unreadable ("deleted"
// or "destroyed"), or "" when it does not. A deletion time after now is a
// scheduled deletion that has not happened; the zero now means the
// deletion has happened, as when Vault returned no data.
func deleted(meta map[string]any, now time.Time) string {
	if meta == nil {
		return ""
	}
	if d, _ := meta["destroyed"].(bool); d {
		return "destroyed"
	}
	s, _ := meta["deletion_time"].(string)
	if s == "" {
		return ""
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil && !now.IsZero() && t.After(now) {
		return ""
	}
	return "deleted"
}
