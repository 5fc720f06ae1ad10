package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wedsync/veil/billing"

	"go.uber.org/zap"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/keys/vault"
	"github.com/wedsync/veil/provider"
)

// KeyCheck is the result of checking one key: where it came from, which
// version, its fingerprint, and what the provider answered. Nothing in it
// holds any part of the key: the provider's own words about a key it
// refuses, which quote part of it, are left out.
type KeyCheck struct {
	Supplier    string
	Provider    string
	Source      billing.KeySource
	Version     string
	Fingerprint string
	// Models is how many models the provider listed for the key.
	Models int
	// Err is why the key could not be fetched or did not pass the check;
	// it wraps ErrKeyRefused when the provider refused the key, and then
	// says only the provider's status and the refused key's fingerprint.
	Err error
}

// ErrKeyRefused is what a KeyCheck's Err wraps when the provider refused
// the key itself (401 or 403).
var ErrKeyRefused = errors.New("the provider refused the key")

// keyProbeTimeout bounds one key's probe.
const keyProbeTimeout = 15 * time.Second

// CheckKeys fetches keys through the configured sources, without starting
// veil, and validates each live by asking its provider for the model list
// (which costs no tokens), with the probe veil's health checks and
// migrations use, so each provider type is asked as it expects: the
// supplier's own key for each provider when supplier is set, otherwise
// every platform key. providers empty means all.
func CheckKeys(ctx context.Context, cfg *config.Config, o Options, supplier string, providers []string) ([]KeyCheck, error) {
	a := &App{cfg: cfg, log: zap.NewNop(), audit: zap.NewNop(), closeLog: func() {}}
	if o.Audit != nil {
		a.audit = o.Audit
	}
	if err := a.buildSecrets(o.Secrets); err != nil {
		return nil, err
	}
	defer func() {
		if a.vault != nil {
			a.vault.Close()
		}
	}()
	if a.vault != nil {
		if err := a.vault.Ready(); err != nil {
			return nil, fmt.Errorf("vault: %w", err)
		}
	}
	var next keys.Fetcher
	if a.vault != nil {
		next = &vault.SupplierFetcher{Client: a.vault, Mount: cfg.Vault.KVMount, PathTemplate: cfg.Vault.SupplierPath}
	}
	fetcher := &keys.RefFetcher{Refs: supplierRefs(cfg), Sources: a.secrets, Next: next}
	var out []KeyCheck
	for _, pc := range cfg.Providers {
		if len(providers) > 0 && !contains(providers, pc.Name) {
			continue
		}
		checks, err := a.checkProviderKeys(ctx, pc, fetcher, supplier)
		if err != nil {
			return nil, err
		}
		out = append(out, checks...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no provider named %v", providers)
	}
	return out, nil
}

// checkProviderKeys checks the supplier's own key for pc when supplier is
// set, otherwise each of pc's platform keys.
func (a *App) checkProviderKeys(ctx context.Context, pc config.Provider, fetcher keys.Fetcher, supplier string) ([]KeyCheck, error) {
	p, err := provider.New(pc, nil, provider.Options{
		MaxResponseBytes: a.cfg.Limits.MaxResponseBytes,
		ReadBufferSize:   a.cfg.Limits.MaxHeaderBytes,
	})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if supplier != "" {
		c := KeyCheck{Supplier: supplier, Provider: pc.Name, Source: billing.ClientKey}
		fctx, cancel := context.WithTimeout(ctx, a.cfg.Keys.FetchTimeout)
		k, err := fetcher.Fetch(fctx, supplier, pc.Name)
		cancel()
		if err != nil {
			c.Err = err
		} else {
			c.Version, c.Fingerprint = k.Version(), k.Fingerprint()
			c.Models, c.Err = checkKey(ctx, p, k)
		}
		return []KeyCheck{c}, nil
	}
	var out []KeyCheck
	for i, ref := range pc.PlatformKeys() {
		c := KeyCheck{Provider: pc.Name, Source: billing.PlatformKey, Version: fmt.Sprintf("pool[%d]", i)}
		s, err := a.resolve(ref)
		if err != nil {
			c.Err = err
		} else {
			c.Fingerprint = s.Fingerprint()
			c.Models, c.Err = checkKey(ctx, p, keys.NewKey(s, billing.PlatformKey, ""))
		}
		out = append(out, c)
	}
	return out, nil
}

// checkKey asks p for its model list with k and returns how many models it
// listed, or why the key did not pass: ErrKeyRefused when the provider
// refused it. The provider's message about a refused key is never passed
// on, since providers quote part of the key they refuse (OpenAI:
// "Incorrect API key provided: sk-ab***wxyz"); other messages are passed
// on with whatever looks like a key removed.
func checkKey(ctx context.Context, p *provider.Provider, k *keys.Key) (int, error) {
	deadline := time.Now().Add(keyProbeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	r, err := p.CheckKey(k, deadline)
	switch {
	case err != nil:
		return 0, fmt.Errorf("the provider did not answer the probe: %w", err)
	case r.OK():
		return r.Models, nil
	case r.Refused():
		return 0, fmt.Errorf("%w (%s, key %s)", ErrKeyRefused, statusText(r.Status), k.Fingerprint())
	}
	msg := statusText(r.Status)
	if m := scrubKeys(r.Message, k.Secret().Reveal()); m != "" {
		msg += ": " + m
	}
	return 0, fmt.Errorf("the provider answered the probe with %s", msg)
}

// statusText is an HTTP status and its name.
func statusText(status int) string {
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}

// maxProbeMessage bounds the part of a probe's error that comes from the
// provider.
const maxProbeMessage = 200

// keyWord matches a word that looks like a credential or part of one: a
// masked fragment (sk-ab***wxyz, ****), a prefixed key (sk-..., key-...,
// sk_live_...) or a long run of letters and digits.
var keyWord = regexp.MustCompile(`[A-Za-z0-9_\-.]*\*[A-Za-z0-9_\-.*]*|\b(?:sk|pk|rk|key|api|ak)[-_][A-Za-z0-9_\-]{8,}|[A-Za-z0-9_\-]{20,}`)

// keyEcho matches a header or field that echoes a credential
// ("x-api-key: ...", "token=..."), and the value after it.
var keyEcho = regexp.MustCompile(`(?i)\b(x-api-key|api[-_]key|subscription[-_]key|authorization|token)(["']?\s*[:=]\s*)(?:bearer\s+)?("[^"]*"|'[^']*'|\S+)`)

// bearerEcho matches a bearer credential.
var bearerEcho = regexp.MustCompile(`(?i)\b(bearer\s+)\S+`)

// scrubKeys returns a provider's message without anything that looks like
// a key or a fragment of secret (four characters or more), bounded in
// length.
func scrubKeys(msg, secret string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if msg == "" {
		return ""
	}
	msg = keyEcho.ReplaceAllString(msg, "$1$2[redacted]")
	msg = bearerEcho.ReplaceAllString(msg, "$1[redacted]")
	msg = keyWord.ReplaceAllString(msg, "[redacted]")
	for _, w := range strings.Fields(msg) {
		if w != "[redacted]" && sharesFragment(w, secret, 4) {
			msg = strings.ReplaceAll(msg, w, "[redacted]")
		}
	}
	if len(msg) > maxProbeMessage {
		cut := maxProbeMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// sharesFragment reports whether s and secret have n or more characters
// in a row in common.
func sharesFragment(s, secret string, n int) bool {
	for i := 0; i+n <= len(secret); i++ {
		if strings.Contains(s, secret[i:i+n]) {
			return true
		}
	}
	return false
}

func supplierRefs(cfg *config.Config) map[string]map[string]string {
	refs := map[string]map[string]string{}
	for _, e := range cfg.Suppliers.Entries {
		for prov, ref := range e.Keys {
			if refs[e.ID] == nil {
				refs[e.ID] = map[string]string{}
			}
			refs[e.ID][prov] = string(ref)
		}
	}
	return refs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
