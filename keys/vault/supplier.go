package vault

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/keys"
)

// SupplierFetcher reads suppliers' own keys from KV v2: the secret at
// PathTemplate ({supplier} and {provider} replaced) below Mount, field
// api_key, with optional organization and project.
type SupplierFetcher struct {
	Client       *Client
	Mount        string
	PathTemplate string
}

var _ keys.Fetcher = (*SupplierFetcher)(nil)

func (f *SupplierFetcher) path(supplier, provider string) string {
	return strings.NewReplacer("{supplier}", supplier, "{provider}", provider).Replace(f.PathTemplate)
}

// Fetch reads the supplier's current key for the provider.
func (f *SupplierFetcher) Fetch(ctx context.Context, supplier, provider string) (*keys.Key, error) {
	kv, err := f.Client.ReadKV(ctx, f.Mount, f.path(supplier, provider))
	if err != nil {
		return nil, fetchError(supplier, provider, err)
	}
	key, ok := kv.Field(DefaultField)
	if !ok {
		return nil, fmt.Errorf("supplier %s, provider %s: the secret has no %s field: %w", supplier, provider, DefaultField, keys.ErrKeyMissing)
	}
	k := keys.NewKey(key, billing.ClientKey, strconv.Itoa(kv.Version))
	if org, ok := kv.Field("organization"); ok {
		k.Organization = org.Reveal()
	}
	if proj, ok := kv.Field("project"); ok {
		k.Project = proj.Reveal()
	}
	return k, nil
}

// Version reads the secret's current version from its metadata.
func (f *SupplierFetcher) Version(ctx context.Context, supplier, provider string) (string, error) {
	v, err := f.Client.KVVersion(ctx, f.Mount, f.path(supplier, provider))
	if err != nil {
		return "", fetchError(supplier, provider, err)
	}
	return strconv.Itoa(v), nil
}

// fetchError maps Vault's errors onto the key cache's: not found is a
// missing key; unreachable stays unreachable; a refused read, or a login
// that Vault answered with a refusal, means Vault rejected veil's
// credentials. In the last two cases cached keys keep serving until they
// are stale.
func fetchError(supplier, provider string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("supplier %s, provider %s: %w", supplier, provider, keys.ErrKeyMissing)
	case IsUnreachable(err):
		return fmt.Errorf("supplier %s, provider %s: %w: %w", supplier, provider, keys.ErrUnreachable, err)
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrNotReady) && loginRefused(err):
		return fmt.Errorf("supplier %s, provider %s: %w: %w", supplier, provider, keys.ErrCredentialsRejected, err)
	case errors.Is(err, ErrNotReady):
		// Not logged in yet, and no login has failed: Vault has not
		// answered yet.
		return fmt.Errorf("supplier %s, provider %s: %w: %w", supplier, provider, keys.ErrUnreachable, err)
	default:
		return fmt.Errorf("supplier %s, provider %s: %w", supplier, provider, err)
	}
}

// loginRefused reports whether err, an ErrNotReady error, comes with the
// error of a login that failed for another reason than Vault's being
// unreachable: Vault refused the credentials.
func loginRefused(err error) bool {
	var oe *opError
	return errors.As(err, &oe) && oe.cause != nil && !IsUnreachable(oe.cause)
}
