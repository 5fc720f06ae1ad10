package app

import (
	"context"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/provider"
)

var _ admin.KeyValidator = (*App)(nil)

// ValidateKey asks the provider named name of the runtime in force whether
// it accepts key, with the model-list probe (which spends no tokens) through
// the provider's translator, URL and proxy. The key is not kept.
func (a *App) ValidateKey(ctx context.Context, name string, key keys.Secret) (admin.KeyVerdict, error) {
	for _, p := range a.rt.Load().Providers {
		if p.Name() == name {
			return probeVerdict(ctx, p, key), nil
		}
	}
	return admin.KeyVerdict{}, fmt.Errorf("%w: %s", admin.ErrUnknownProvider, name)
}

// ValidateKey asks the provider named name in cfg whether it accepts key,
// as (*App).ValidateKey does, without starting veil.
func ValidateKey(ctx context.Context, cfg *config.Config, name string, key keys.Secret) (admin.KeyVerdict, error) {
	pc, ok := cfg.Provider(name)
	if !ok {
		return admin.KeyVerdict{}, fmt.Errorf("%w: %s", admin.ErrUnknownProvider, name)
	}
	p, err := provider.New(*pc, nil, provider.Options{
		MaxResponseBytes: cfg.Limits.MaxResponseBytes,
		ReadBufferSize:   cfg.Limits.MaxHeaderBytes,
	})
	if err != nil {
		return admin.KeyVerdict{}, err
	}
	defer p.Close()
	return probeVerdict(ctx, p, key), nil
}

// probeVerdict asks p for its model list with key and says what the
// answer makes of the key. The provider's words about a refused key are
// left out (they quote part of it); other words pass with whatever looks
// like a key removed.
func probeVerdict(ctx context.Context, p *provider.Provider, key keys.Secret) admin.KeyVerdict {
	v := admin.KeyVerdict{Provider: p.Name(), Fingerprint: key.Fingerprint()}
	deadline := time.Now().Add(keyProbeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	r, err := p.CheckKey(keys.NewKey(key, billing.ClientKey, ""), deadline)
	v.Status, v.Models = r.Status, r.Models
	said := scrubKeys(r.Message, key.Reveal())
	switch {
	case r.Status == 0:
		v.Verdict = admin.VerdictUnreachable
		v.Detail = "the provider did not answer"
		if err != nil {
			v.Detail += ": " + scrubKeys(err.Error(), key.Reveal())
		}
	case r.OK():
		v.Verdict = admin.VerdictValid
		v.Detail = fmt.Sprintf("the provider accepted the key and listed %d models", r.Models)
		if err != nil {
			v.Detail = "the provider accepted the key; its model list could not be read: " + scrubKeys(err.Error(), key.Reveal())
		}
	case r.Refused():
		v.Verdict = admin.VerdictRejected
		v.Detail = "the provider refused the key (" + statusText(r.Status) + ")"
	case r.Status == fasthttp.StatusTooManyRequests && (r.Code == "insufficient_quota" || r.Code == "billing_hard_limit_reached"):
		v.Verdict = admin.VerdictNoQuota
		v.Detail = "the key's account has no quota left (" + r.Code + "): its owner must add credit or raise the limit"
	case r.Status == fasthttp.StatusTooManyRequests:
		v.Verdict = admin.VerdictRateLimited
		v.Detail = "the provider is rate limiting; ask again later"
		if said != "" {
			v.Detail += ": " + said
		}
	default:
		v.Verdict = admin.VerdictProviderError
		v.Detail = "the provider answered " + statusText(r.Status)
		if said != "" {
			v.Detail += ": " + said
		}
	}
	return v
}
