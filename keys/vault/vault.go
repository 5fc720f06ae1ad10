// Package vault is veil's HashiCorp Vault client. It logs in with a token,
// AppRole or Kubernetes, keeps its token alive in the background (renewing
// it, and logging in again when it cannot be renewed further), reads KV
// version 2 secrets into keys.Secret values, and resolves vault:// secret
// references as a keys.Source.
//
// Neither errors nor log lines contain a secret value or the token: log
// lines name the token by its accessor, and errors pass through a redactor
// that knows the credentials in use. IsUnreachable tells a Vault that
// cannot be reached (keep serving cached keys) from a Vault that answered
// "forbidden" or "not found".
package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"

	"github.com/wedsync/veil/keys"
)

// DefaultTimeout bounds each Vault call when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// DefaultServiceAccountTokenFile is where the Kubernetes method reads the
// pod's service account token when Auth.TokenFile is empty.
const DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token" //nolint:gosec // G101: a file path, not a credential

// The authentication methods of Auth.Method.
const (
	MethodToken      = "token"
	MethodAppRole    = "approle"
	MethodKubernetes = "kubernetes"
)

// The retry policy of the api client: a failed call is retried once,
// shortly, so that an outage is noticed within about Timeout.
const (
	defaultMaxRetries = 1
	minRetryWait      = 250 * time.Millisecond
	maxRetryWait      = time.Second
)

// Options configures a Client. Empty connection fields fall back to
// Vault's usual environment variables (VAULT_ADDR, VAULT_CACERT,
// VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME,
// VAULT_NAMESPACE); VAULT_CAPATH, VAULT_SKIP_VERIFY and VAULT_MAX_RETRIES
// are honoured too.
type Options struct {
	// Address is Vault's URL, such as https://vault.internal:8200.
	Address string
	// CACert is a PEM file of the CA certificates that verify Vault's.
	CACert string
	// ClientCert and ClientKey are PEM files of a TLS client certificate.
	ClientCert, ClientKey string
	// TLSServerName is the name expected in Vault's certificate.
	TLSServerName string
	// Namespace is the Vault Enterprise namespace of every call.
	Namespace string
	// Timeout bounds each Vault call, its retry included; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Auth says how to log in.
	Auth Auth
	// Log receives audit-style lines: logins, renewals, re-logins and
	// their failures. Tokens appear only by accessor. Nil means no logs.
	Log *zap.Logger
	// Now is the clock used for the times the client reports and for
	// scheduled KV deletions; nil means time.Now.
	Now func() time.Time
}

// Auth says how a Client logs in to Vault.
type Auth struct {
	// Method is MethodToken (the default when empty), MethodAppRole or
	// MethodKubernetes.
	Method string
	// Token is the token of the token method; zero means $VAULT_TOKEN.
	Token keys.Secret
	// RoleID and SecretID are the AppRole credentials.
	RoleID, SecretID keys.Secret
	// Role is the Vault role of the Kubernetes method.
	Role string
	// TokenFile is the Kubernetes service account token, read again at
	// every login since Kubernetes rotates it; empty means
	// DefaultServiceAccountTokenFile.
	TokenFile string
	// Mount is the path the auth method is mounted at; empty means
	// "approle" or "kubernetes".
	Mount string
}

// Client is veil's Vault client. Create it with New, log in with Start,
// and stop it with Close. Its methods are safe for concurrent use.
type Client struct {
	api    *api.Client
	http   *http.Client
	log    *zap.Logger
	now    func() time.Time
	method string
	auth   Auth

	// nudge asks the background loop to check the token after Vault
	// refused a read: with AppRole and Kubernetes a revoked token is
	// replaced at once rather than when its lease would end; with the
	// token method, which cannot replace it, its rejection is logged once.
	nudge chan struct{}

	secretsMu sync.RWMutex
	static    []string // credentials given in Options
	tokens    []string // the current token first, then the previous one
	jwt       string   // the last Kubernetes service account token read

	mu       sync.Mutex
	started  bool
	closed   bool
	ready    bool
	lastErr  error // the last login error, nil after a success
	accessor string
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

var _ keys.Source = (*Client)(nil)

// New returns a Client configured by o. It makes no call to Vault; Start
// logs in.
func New(o Options) (*Client, error) {
	method := o.Auth.Method
	if method == "" {
		method = MethodToken
	}
	switch method {
	case MethodToken, MethodAppRole, MethodKubernetes:
	default:
		return nil, fmt.Errorf("vault: unknown auth method %q: want %s, %s or %s",
			method, MethodToken, MethodAppRole, MethodKubernetes)
	}

	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault: reading VAULT_* environment: %w", cfg.Error)
	}
	if o.Address != "" {
		cfg.Address = o.Address
		cfg.AgentAddress = "" // an explicit address wins over VAULT_AGENT_ADDR
	}
	if err := configureTLS(cfg, o); err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cfg.Timeout = timeout
	if os.Getenv(api.EnvVaultMaxRetries) == "" {
		cfg.MaxRetries = defaultMaxRetries
	}
	cfg.MinRetryWait = minRetryWait
	cfg.MaxRetryWait = maxRetryWait
	cfg.Logger = nil // the retry logger would print request URLs at debug level

	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: creating client: %w", err)
	}
	if o.Namespace != "" {
		client.SetNamespace(o.Namespace)
	}

	c := &Client{
		api:    client,
		http:   cfg.HttpClient,
		log:    o.Log,
		now:    o.Now,
		method: method,
		auth:   o.Auth,
		nudge:  make(chan struct{}, 1),
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	c.log = c.log.Named("vault")
	if c.now == nil {
		c.now = time.Now
	}

	switch method {
	case MethodToken:
		if !o.Auth.Token.IsZero() {
			client.SetToken(o.Auth.Token.Reveal())
		}
		token := client.Token() // $VAULT_TOKEN when Auth.Token is zero
		if token == "" {
			return nil, errors.New("vault: the token method needs Auth.Token or VAULT_TOKEN")
		}
		c.static = []string{token}
		c.tokens = []string{token}
	case MethodAppRole:
		if o.Auth.RoleID.IsZero() || o.Auth.SecretID.IsZero() {
			return nil, errors.New("vault: the approle method needs Auth.RoleID and Auth.SecretID")
		}
		if c.auth.Mount == "" {
			c.auth.Mount = MethodAppRole
		}
		c.static = []string{o.Auth.SecretID.Reveal(), o.Auth.RoleID.Reveal()}
		client.ClearToken() // ignore $VAULT_TOKEN: only a login gives a token
	case MethodKubernetes:
		if o.Auth.Role == "" {
			return nil, errors.New("vault: the kubernetes method needs Auth.Role")
		}
		if c.auth.Mount == "" {
			c.auth.Mount = MethodKubernetes
		}
		if c.auth.TokenFile == "" {
			c.auth.TokenFile = DefaultServiceAccountTokenFile
		}
		client.ClearToken()
	}
	if err := validMount(c.auth.Mount, method); err != nil {
		return nil, err
	}
	return c, nil
}

// configureTLS applies the TLS settings of o over those read from the
// environment by api.DefaultConfig.
func configureTLS(cfg *api.Config, o Options) error {
	t := &api.TLSConfig{CACert: o.CACert, TLSServerName: o.TLSServerName}
	if o.ClientCert != "" || o.ClientKey != "" {
		t.ClientCert = firstNonEmpty(o.ClientCert, os.Getenv(api.EnvVaultClientCert))
		t.ClientKey = firstNonEmpty(o.ClientKey, os.Getenv(api.EnvVaultClientKey))
	}
	if t.CACert == "" && t.TLSServerName == "" && t.ClientCert == "" && t.ClientKey == "" {
		return nil
	}
	if err := cfg.ConfigureTLS(t); err != nil {
		return fmt.Errorf("vault: configuring TLS: %w", err)
	}
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// validMount checks an auth mount path.
func validMount(mount, method string) error {
	if method == MethodToken {
		return nil
	}
	if _, err := cleanPath(mount); err != nil {
		return fmt.Errorf("vault: auth mount %q: %w", mount, err)
	}
	return nil
}

// Ready returns nil once the client has logged in (or, with the token
// method, validated its token) at least once, and otherwise an error
// saying why not, joined with the last login error.
func (c *Client) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.ready:
		return nil
	case c.lastErr != nil:
		return fmt.Errorf("%w: %w", ErrNotReady, c.lastErr)
	case !c.started:
		return fmt.Errorf("%w: Start has not been called", ErrNotReady)
	default:
		return ErrNotReady
	}
}

// Close stops the background renewal and login loop, waits for it (an
// in-flight Vault call ends within Timeout) and releases idle connections.
// Later calls fail with ErrClosed. Close does not revoke the token, which
// expires on its own. Close is idempotent.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
	c.http.CloseIdleConnections()
}

// checkUsable returns an error when reads cannot be made: after Close, or
// before the first login of the AppRole and Kubernetes methods.
func (c *Client) checkUsable(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.method == MethodToken || c.ready:
		return nil
	case c.lastErr != nil:
		return &opError{op: op, kind: ErrNotReady, detail: "not logged in yet: " + c.lastErr.Error(), cause: c.lastErr}
	default:
		return newOpError(op, ErrNotReady, "not logged in yet")
	}
}

// redact replaces the credentials and tokens the client knows in s.
func (c *Client) redact(s string) string {
	c.secretsMu.RLock()
	defer c.secretsMu.RUnlock()
	r := redactor{secrets: make([]string, 0, len(c.static)+len(c.tokens)+1)}
	r.secrets = append(r.secrets, c.static...)
	r.secrets = append(r.secrets, c.tokens...)
	r.secrets = append(r.secrets, c.jwt)
	return r.redact(s)
}

// classify wraps an error of the api package for op, redacting secrets.
func (c *Client) classify(ctx context.Context, op string, err error) error {
	return classify(ctx, op, err, c.redact)
}

// setToken makes token the one every call uses.
func (c *Client) setToken(token string) {
	c.secretsMu.Lock()
	if len(c.tokens) == 0 || c.tokens[0] != token {
		c.tokens = append([]string{token}, c.tokens...)
		if len(c.tokens) > 2 {
			c.tokens = c.tokens[:2]
		}
	}
	c.secretsMu.Unlock()
	c.api.SetToken(token)
}

// cleanPath checks a mount or secret path and trims its slashes. It
// rejects empty, "." and ".." segments, which the api client would resolve
// (reaching another supplier's secret), and characters that would change
// the request's meaning.
func cleanPath(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", errors.New("empty path")
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return "", errors.New("empty path segment")
		case ".", "..":
			return "", errors.New("relative path segment")
		}
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || strings.ContainsRune("?#%\\", r) {
			return "", fmt.Errorf("character %q not allowed", r)
		}
	}
	return p, nil
}
