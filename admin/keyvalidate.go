package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/wedsync/veil/keys"
)

// Verdict is what a provider made of a key it was asked about.
type Verdict string

// The verdicts of a key check.
const (
	// VerdictValid: the provider accepted the key.
	VerdictValid Verdict = "valid"
	// VerdictRejected: the provider refused the key (401 or 403).
	VerdictRejected Verdict = "rejected"
	// VerdictNoQuota: the key is known but its account is used up (429
	// insufficient_quota or a billing limit); waiting will not help.
	VerdictNoQuota Verdict = "no_quota"
	// VerdictRateLimited: the provider answered 429 for going too fast;
	// the key may be good, ask again later.
	VerdictRateLimited Verdict = "rate_limited"
	// VerdictUnreachable: the provider did not answer.
	VerdictUnreachable Verdict = "unreachable"
	// VerdictProviderError: the provider answered with another error,
	// which says nothing of the key.
	VerdictProviderError Verdict = "provider_error"
)

// KeyVerdict is the answer of a key check: the document of POST
// /admin/keys/validate and what `veil keys validate` prints. It names the
// key by its fingerprint only.
type KeyVerdict struct {
	Provider    string  `json:"provider"`
	Fingerprint string  `json:"fingerprint"`
	Verdict     Verdict `json:"verdict"`
	// Status is the provider's HTTP status; 0 when it did not answer.
	Status int `json:"status,omitempty"`
	// Models is how many models the provider listed for a valid key.
	Models int `json:"models,omitempty"`
	// Detail says more, in words, without any part of the key.
	Detail string `json:"detail,omitempty"`
}

// ErrUnknownProvider is what a KeyValidator returns for a provider that
// is not configured.
var ErrUnknownProvider = errors.New("no such provider")

// KeyValidator asks a configured provider whether it accepts a key,
// without keeping the key.
type KeyValidator interface {
	ValidateKey(ctx context.Context, provider string, key keys.Secret) (KeyVerdict, error)
}

// KeyValidateBody is the body of POST /admin/keys/validate.
type KeyValidateBody struct {
	Provider string `json:"provider"`
	Key      string `json:"key"`
}

// ValidateKey answers POST /admin/keys/validate: it asks the provider
// whether it accepts the key in the body, as `veil keys validate` does, so
// that a supplier's key can be checked before a Vault admin stores it. The
// key is neither kept, logged nor echoed: the answer and the audit line
// name it by its fingerprint.
func ValidateKey(v KeyValidator, audit *zap.Logger) HandlerFunc {
	if audit == nil {
		audit = zap.NewNop()
	}
	return func(ctx context.Context, c Call) (int, any) {
		var body KeyValidateBody
		if err := json.Unmarshal(c.Body, &body); err != nil {
			// The decoder's words may quote the body, and so the key.
			return fail(http.StatusBadRequest, "invalid_json", `the body must be a JSON object {"provider": "...", "key": "..."}`)
		}
		key := keys.NewSecret(strings.TrimSpace(body.Key))
		body.Key = ""
		if key.IsZero() {
			return fail(http.StatusBadRequest, "empty_key", "the key is empty")
		}
		if body.Provider == "" {
			return fail(http.StatusBadRequest, "missing_provider", "name the provider to ask")
		}
		verdict, err := v.ValidateKey(ctx, body.Provider, key)
		if errors.Is(err, ErrUnknownProvider) {
			return fail(http.StatusNotFound, "unknown_provider", "no provider named "+body.Provider+" is configured")
		}
		if err != nil {
			return fail(http.StatusInternalServerError, "validate_failed", err.Error())
		}
		audit.Info("key validated", append(c.Operator.Fields(), zap.String("provider", verdict.Provider),
			zap.String("fingerprint", verdict.Fingerprint), zap.String("verdict", string(verdict.Verdict)),
			zap.Int("status", verdict.Status))...)
		return http.StatusOK, verdict
	}
}
