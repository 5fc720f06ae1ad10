package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
	"go.uber.org/zap"
)

// The login retry backoff: exponential from loginRetryMin to loginRetryMax
// with jitter.
const (
	loginRetryMin = 500 * time.Millisecond
	loginRetryMax = 30 * time.Second
)

// minReloginInterval spaces logins out when tokens end quickly, such as
// tokens whose max TTL is shorter than the watcher's grace period.
const minReloginInterval = 500 * time.Millisecond

// nudgeInterval is the least time between two checks of the token caused
// by refused reads.
const nudgeInterval = 5 * time.Second

// maxKubernetesTokenBytes bounds the service account token file.
const maxKubernetesTokenBytes = 64 << 10

// Start logs in (token method: validates the token with lookup-self) and
// returns the outcome of this first attempt. Either way it leaves a
// background loop running until Close: after a failure the loop retries
// with backoff; after a success it keeps the token alive with an
// api.LifetimeWatcher, which renews it at about two thirds of its lease.
// When the watcher stops, because the token reached its max TTL or could
// not be renewed, the AppRole and Kubernetes methods log in again at once;
// the token method logs it, keeps its token and tries renewing later.
//
// ctx bounds the first attempt only; its values, but not its cancellation,
// reach the background loop. Start may be called once.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.started:
		c.mu.Unlock()
		return errors.New("vault: Start called twice")
	}
	c.started = true
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.wg.Add(1)
	c.mu.Unlock()

	secret, err := c.login(ctx)
	go c.run(bg, secret, err)
	return err
}

// run is the background loop: it logs in until that succeeds, keeps the
// token alive until that is no longer possible, and starts over.
func (c *Client) run(ctx context.Context, secret *api.Secret, err error) {
	defer c.wg.Done()
	var retry, tokenRetry backoff
	var lastLogin time.Time
	for {
		last := ""
		for err != nil {
			if ctx.Err() != nil {
				return // Close, not a failure worth logging
			}
			d := retry.next()
			c.loginFailed(err, last, d)
			last = err.Error()
			if !sleep(ctx, d) {
				return
			}
			secret, err = c.login(ctx)
		}
		retry.reset()
		lastLogin = time.Now()

		reason, renewed := c.keepAlive(ctx, secret)
		if ctx.Err() != nil {
			return
		}
		wait := minReloginInterval - time.Since(lastLogin)
		if c.method == MethodToken {
			// The token cannot be replaced: try renewing it again later.
			if renewed {
				tokenRetry.reset()
			}
			wait = max(wait, tokenRetry.next())
		} else {
			c.log.Info("vault re-login", zap.String("method", c.method),
				zap.String("accessor", c.currentAccessor()), zap.String("reason", reason))
		}
		if !sleep(ctx, wait) {
			return
		}
		secret, err = c.login(ctx)
	}
}

// loginFailed logs a failed login (token method: a failed check of the
// token) that will be retried in d: at warn level when it failed
// differently from the attempt before (whose error said last), else at
// debug level, so that a login failing the same way for hours is one
// warning. A token of the token method that Vault refuses is logged as
// rejected.
func (c *Client) loginFailed(err error, last string, d time.Duration) {
	msg := "vault login failed"
	if c.method == MethodToken && errors.Is(err, ErrForbidden) {
		msg = "vault token rejected"
	}
	fields := []zap.Field{zap.String("method", c.method), zap.Error(err), zap.Duration("retry_in", d)}
	if err.Error() == last {
		c.log.Debug(msg, fields...)
		return
	}
	c.log.Warn(msg, fields...)
}

// Why keepAlive returned, logged with re-logins.
const (
	reasonMaxTTL        = "max_ttl"        // a renewal could not extend the lease
	reasonLifetimeEnd   = "lifetime_end"   // the watcher stopped near the end of the lease
	reasonRenewalFailed = "renewal_failed" // renewals failed until near the end
	reasonRejected      = "token_rejected" // Vault refused the token
	reasonWatcherFailed = "watcher_failed" // the watcher could not start
)

// keepAlive watches the lifetime of the login secret with a
// LifetimeWatcher until the token needs a new login (or renewal attempt),
// or ctx ends. It reports why it returned and whether the token was
// renewed at least once.
//
// A renewal that returns a shorter lease than the login did was capped by
// the token's max TTL: no renewal can help any more, so the AppRole and
// Kubernetes methods log in again at once rather than when the watcher
// gives up, which leaves the watcher's grace period (10-20% of the lease)
// as the only margin.
func (c *Client) keepAlive(ctx context.Context, secret *api.Secret) (reason string, renewed bool) {
	var done <-chan error
	var renewals <-chan *api.RenewOutput
	var lease int
	if secret != nil {
		w, err := c.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
		if err != nil {
			c.log.Error("vault token watcher failed", zap.Error(c.classify(context.Background(), "watch token", err)))
			return reasonWatcherFailed, false
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			w.Start()
		}()
		defer w.Stop()
		done, renewals = w.DoneCh(), w.RenewCh()
		if secret.Auth != nil {
			lease = secret.Auth.LeaseDuration
		}
	}
	var lastCheck time.Time
	capped := false
	rejected := false // the token method's token was found rejected and logged
	for {
		select {
		case <-ctx.Done():
			return "", renewed
		case r := <-renewals:
			renewed = true
			fields := []zap.Field{zap.String("method", c.method), zap.String("accessor", c.currentAccessor())}
			if r == nil || r.Secret == nil || r.Secret.Auth == nil {
				c.log.Info("vault token renewed", fields...)
				continue
			}
			got := r.Secret.Auth.LeaseDuration
			ttl := time.Duration(got) * time.Second
			fields = append(fields, zap.Duration("ttl", ttl), zap.Time("expires_at", c.now().Add(ttl)))
			c.log.Info("vault token renewed", fields...)
			if got >= lease || capped {
				continue
			}
			capped = true
			if c.method != MethodToken {
				return reasonMaxTTL, renewed
			}
			c.log.Warn("vault token reached its max TTL and will expire", fields...)
		case err := <-done:
			fields := []zap.Field{zap.String("method", c.method), zap.String("accessor", c.currentAccessor())}
			if err != nil {
				c.log.Warn("vault token renewal stopped", append(fields, zap.Error(c.classify(context.Background(), "renew token", err)))...)
				return reasonRenewalFailed, renewed
			}
			c.log.Info("vault token near the end of its lifetime", fields...)
			return reasonLifetimeEnd, renewed
		case <-c.nudge:
			if time.Since(lastCheck) < nudgeInterval {
				continue
			}
			lastCheck = time.Now()
			_, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
			err = c.classify(ctx, "look up token", err)
			switch {
			case errors.Is(err, ErrForbidden) && c.method == MethodToken:
				// The token cannot be replaced: say so once, and keep
				// watching it.
				if !rejected {
					rejected = true
					c.log.Warn("vault token rejected", zap.String("method", c.method),
						zap.String("accessor", c.currentAccessor()), zap.Error(err))
				}
			case errors.Is(err, ErrForbidden):
				c.log.Warn("vault token rejected", zap.String("method", c.method),
					zap.String("accessor", c.currentAccessor()), zap.Error(err))
				return reasonRejected, renewed
			}
		}
	}
}

// login makes one login attempt and records its outcome. It returns the
// secret whose lifetime to watch, nil when the token never expires.
func (c *Client) login(ctx context.Context) (*api.Secret, error) {
	var secret *api.Secret
	var err error
	if c.method == MethodToken {
		secret, err = c.checkToken(ctx)
	} else {
		secret, err = c.loginMethod(ctx)
	}
	c.mu.Lock()
	if err != nil {
		c.lastErr = err
	} else {
		c.lastErr = nil
		c.ready = true
	}
	c.mu.Unlock()
	return secret, err
}

// loginMethod logs in with AppRole or Kubernetes and installs the token.
func (c *Client) loginMethod(ctx context.Context) (*api.Secret, error) {
	op := c.method + " login"
	var method api.AuthMethod
	switch c.method {
	case MethodAppRole:
		m, err := approle.NewAppRoleAuth(c.auth.RoleID.Reveal(),
			&approle.SecretID{FromString: c.auth.SecretID.Reveal()},
			approle.WithMountPath(c.auth.Mount))
		if err != nil {
			return nil, c.classify(ctx, op, err)
		}
		method = m
	case MethodKubernetes:
		jwt, err := readTokenFile(c.auth.TokenFile)
		if err != nil {
			return nil, newOpError(op, nil, err.Error())
		}
		c.secretsMu.Lock()
		c.jwt = jwt
		c.secretsMu.Unlock()
		m, err := kubernetes.NewKubernetesAuth(c.auth.Role,
			kubernetes.WithServiceAccountToken(jwt), kubernetes.WithMountPath(c.auth.Mount))
		if err != nil {
			return nil, c.classify(ctx, op, err)
		}
		method = m
	}
	// Log in from a clone without the current token, which may have
	// expired; the clone keeps the namespace header.
	lc, err := c.api.CloneWithHeaders()
	if err != nil {
		return nil, c.classify(ctx, op, err)
	}
	lc.ClearToken()
	secret, err := method.Login(ctx, lc)
	if err != nil {
		return nil, c.classify(ctx, op, err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, newOpError(op, nil, "vault returned no token")
	}
	c.setToken(secret.Auth.ClientToken)
	c.setAccessor(secret.Auth.Accessor)
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	c.log.Info("vault login", zap.String("method", c.method), zap.String("mount", c.auth.Mount),
		zap.String("accessor", secret.Auth.Accessor), zap.Strings("policies", secret.Auth.Policies),
		zap.Duration("ttl", ttl), zap.Time("expires_at", c.now().Add(ttl)),
		zap.Bool("renewable", secret.Auth.Renewable))
	return secret, nil
}

// checkToken validates the token of the token method with lookup-self and,
// when it is renewable, renews it to get a secret to watch.
func (c *Client) checkToken(ctx context.Context) (*api.Secret, error) {
	const op = "token lookup"
	info, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, c.classify(ctx, op, err)
	}
	if info == nil || info.Data == nil {
		return nil, newOpError(op, nil, "vault returned no token information")
	}
	accessor, _ := info.Data["accessor"].(string)
	renewable, _ := info.Data["renewable"].(bool)
	ttl := time.Duration(jsonInt(info.Data["ttl"])) * time.Second
	period := time.Duration(jsonInt(info.Data["period"])) * time.Second
	c.setAccessor(accessor)
	fields := []zap.Field{zap.String("method", c.method), zap.String("accessor", accessor),
		zap.Strings("policies", stringList(info.Data["policies"])),
		zap.Duration("ttl", ttl), zap.Bool("renewable", renewable)}
	if period > 0 {
		fields = append(fields, zap.Duration("period", period))
	}
	if ttl > 0 {
		fields = append(fields, zap.Time("expires_at", c.now().Add(ttl)))
	}
	c.log.Info("vault token valid", fields...)

	token := c.api.Token()
	switch {
	case ttl == 0:
		return nil, nil // a token that never expires, such as a root token
	case !renewable:
		c.log.Warn("vault token is not renewable and will expire",
			zap.String("accessor", accessor), zap.Duration("ttl", ttl))
		return &api.Secret{Auth: &api.SecretAuth{ClientToken: token, Accessor: accessor,
			LeaseDuration: int(ttl / time.Second)}}, nil
	}
	secret, err := c.api.Auth().Token().RenewSelfWithContext(ctx, 0)
	if err == nil && (secret == nil || secret.Auth == nil) {
		err = errors.New("vault returned no token information")
	}
	if err != nil {
		err = c.classify(ctx, "token renewal", err)
		if IsUnreachable(err) || ctx.Err() != nil {
			return nil, err
		}
		// Vault refused the renewal: watch the token's remaining lifetime.
		c.log.Warn("vault token renewal refused", zap.String("accessor", accessor), zap.Error(err))
		return &api.Secret{Auth: &api.SecretAuth{ClientToken: token, Accessor: accessor,
			LeaseDuration: int(ttl / time.Second)}}, nil
	}
	ttl = time.Duration(secret.Auth.LeaseDuration) * time.Second
	c.log.Info("vault token renewed", zap.String("method", c.method), zap.String("accessor", accessor),
		zap.Duration("ttl", ttl), zap.Time("expires_at", c.now().Add(ttl)))
	return secret, nil
}

func (c *Client) setAccessor(a string) {
	c.mu.Lock()
	c.accessor = a
	c.mu.Unlock()
}

func (c *Client) currentAccessor() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accessor
}

// poke asks the background loop to check the token, without waiting.
func (c *Client) poke() {
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

// readTokenFile reads a Kubernetes service account token.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading service account token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKubernetesTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading service account token: %w", err)
	}
	if len(b) > maxKubernetesTokenBytes {
		return "", fmt.Errorf("service account token %q is larger than %d bytes", path, maxKubernetesTokenBytes)
	}
	jwt := strings.TrimSpace(string(b))
	clear(b)
	if jwt == "" {
		return "", fmt.Errorf("service account token %q is empty", path)
	}
	return jwt, nil
}

// jsonInt returns v as an int when it is a JSON number, else 0.
func jsonInt(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return 0
		}
		return i
	case float64:
		return int64(n)
	case int:
		return int64(n)
	case int64:
		return n
	}
	return 0
}

// stringList returns the strings of a JSON array.
func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// backoff is an exponential backoff with jitter; the zero value is ready.
type backoff struct {
	attempt int
}

// next returns the wait before the next attempt: between half and all of
// loginRetryMin doubled per earlier attempt, capped at loginRetryMax.
func (b *backoff) next() time.Duration {
	d := loginRetryMin << min(b.attempt, 16)
	if d > loginRetryMax || d <= 0 {
		d = loginRetryMax
	}
	b.attempt++
	return d/2 + rand.N(d/2+1) //nolint:gosec // G404: retry jitter, not a secret
}

func (b *backoff) reset() { b.attempt = 0 }

// sleep waits for d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
