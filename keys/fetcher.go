package keys

import (
	"context"
	"fmt"

	"github.com/wedsync/veil/billing"
)

// RefFetcher serves suppliers' keys that config names by reference
// (supplier entries' keys: env://, file:///, vault://), and hands every
// other supplier and provider to Next (Vault's supplier path), or reports
// the key missing when there is no Next. A reference is resolved again on
// every refresh, so a rewritten file or a new Vault version is picked up.
type RefFetcher struct {
	// Refs maps supplier, then provider, to a secret reference.
	Refs map[string]map[string]string
	// Sources resolve the references.
	Sources Source
	// Next serves suppliers without a reference; nil means none.
	Next Fetcher
}

var _ Fetcher = (*RefFetcher)(nil)

// Fetch resolves the supplier's reference for the provider, or asks Next.
func (f *RefFetcher) Fetch(ctx context.Context, supplier, provider string) (*Key, error) {
	ref, ok := f.Refs[supplier][provider]
	if !ok {
		if f.Next == nil {
			return nil, fmt.Errorf("supplier %s, provider %s: %w", supplier, provider, ErrKeyMissing)
		}
		return f.Next.Fetch(ctx, supplier, provider)
	}
	s, err := f.Sources.Resolve(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("supplier %s, provider %s: %w", supplier, provider, err)
	}
	return NewKey(s, billing.ClientKey, s.Fingerprint()), nil
}

// Version is the referenced key's fingerprint, since references have no
// version of their own; or Next's version.
func (f *RefFetcher) Version(ctx context.Context, supplier, provider string) (string, error) {
	if _, ok := f.Refs[supplier][provider]; !ok {
		if f.Next == nil {
			return "", fmt.Errorf("supplier %s, provider %s: %w", supplier, provider, ErrKeyMissing)
		}
		return f.Next.Version(ctx, supplier, provider)
	}
	k, err := f.Fetch(ctx, supplier, provider)
	if err != nil {
		return "", err
	}
	return k.Version(), nil
}
