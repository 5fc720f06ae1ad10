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
// missing key, unreachable stays unreachable (cached keys keep serving).
func fetchError(supplier, provider string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("supplier %s, provider %s: %w", supplier, provider, keys.ErrKeyMissing)
	case IsUnreachable(err) || errors.Is(err, ErrNotReady):
		return fmt.Errorf("supplier %s, provider %s: %w: %w", supplier, provider, keys.ErrUnreachable, err)
	default:
		return fmt.Errorf("supplier %s, provider %s: %w", supplier, provider, err)
	}
}
