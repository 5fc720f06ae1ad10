package vault

import (
	"context"
	"strings"

	"github.com/wedsync/veil/keys"
)

// Sources resolves vault:// references with Client and every other
// reference with Base.
type Sources struct {
	Base   keys.Source
	Client *Client
}

var _ keys.Source = Sources{}

// Resolve reads the secret ref names.
func (s Sources) Resolve(ctx context.Context, ref string) (keys.Secret, error) {
	if strings.HasPrefix(ref, "vault://") {
		return s.Client.Resolve(ctx, ref)
	}
	return s.Base.Resolve(ctx, ref)
}
