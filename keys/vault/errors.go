package vault

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/wedsync/veil/keys"
)

var (
	// ErrNotFound is returned when a secret, its current version or one of
	// its fields does not exist, or when the current version is deleted or
	// destroyed.
	ErrNotFound = errors.New("vault: secret not found")
	// ErrForbidden is returned when Vault denies a request: the token lacks
	// the policy, or is invalid or expired (HTTP 401 and 403).
	ErrForbidden = errors.New("vault: permission denied")
	// ErrUnreachable is returned when Vault cannot be reached or cannot
	// answer for now: a network failure, a timeout, or a 5xx or 429 answer
	// (sealed, standby, overloaded). Callers may keep using what they read
	// earlier; IsUnreachable tests for it.
	ErrUnreachable = errors.New("vault: unreachable")
	// ErrNotReady is returned by reads made before the client has logged in
	// (AppRole and Kubernetes methods). It is joined with the last login
	// error, so IsUnreachable reports whether Vault was unreachable then.
	ErrNotReady = errors.New("vault: not logged in yet")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("vault: client closed")
)

// IsUnreachable reports whether err means that Vault could not be reached
// or could not answer for now, as opposed to an answer such as "forbidden"
// or "not found". veil keeps serving cached keys on such errors.
func IsUnreachable(err error) bool {
	return errors.Is(err, ErrUnreachable)
}

// maxDetail bounds the part of an error message that comes from Vault's
// answer, which may be a proxy's HTML page.
const maxDetail = 200

// opError is the error of one Vault operation. Its message names the
// operation and says what Vault answered, with every known secret
// redacted. It matches its kind (one of the sentinels above, or nil) with
// errors.Is and unwraps to its cause only when the cause's own message
// contained no secret.
type opError struct {
	op     string
	kind   error
	detail string
	cause  error
}

// Error names the operation and what went wrong, without secrets.
func (e *opError) Error() string {
	return "vault: " + e.op + ": " + e.detail
}

// Unwrap returns the error's kind and its cause, when it has them.
func (e *opError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// Is makes the error match the key cache's sentinels too:
// keys.ErrUnreachable when Vault could not be reached, and
// keys.ErrCredentialsRejected when it refused veil's token, so that keys
// read through vault:// references are classified like those read by a
// SupplierFetcher.
func (e *opError) Is(target error) bool {
	switch target {
	case keys.ErrUnreachable:
		return e.kind == ErrUnreachable
	case keys.ErrCredentialsRejected:
		return e.kind == ErrForbidden
	}
	return false
}

// newOpError returns an error of kind for op with a detail message.
func newOpError(op string, kind error, detail string) error {
	return &opError{op: op, kind: kind, detail: detail}
}

// classify turns an error of the api package into an opError for op. The
// returned message passes through redact, which removes known secrets.
// When ctx is done, the context's error is reported instead, since the
// caller gave up rather than Vault failing.
func classify(ctx context.Context, op string, err error, redact func(string) string) error {
	if err == nil {
		return nil
	}
	var oe *opError
	if errors.As(err, &oe) {
		return err
	}
	if ctx != nil && ctx.Err() != nil {
		return &opError{op: op, detail: ctx.Err().Error(), cause: ctx.Err()}
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		return responseError(op, re, redact)
	}
	e := &opError{op: op}
	if isNetworkError(err) {
		e.kind = ErrUnreachable
	}
	msg := err.Error()
	clean := truncate(redact(msg))
	if clean == msg {
		e.cause = err
	}
	if e.kind == ErrUnreachable { //nolint:errorlint // kind holds a bare sentinel, never a wrapped error
		e.detail = "unreachable: " + clean
	} else {
		e.detail = clean
	}
	return e
}

// responseError describes an error answer of Vault.
func responseError(op string, re *api.ResponseError, redact func(string) string) error {
	e := &opError{op: op}
	var what string
	switch code := re.StatusCode; {
	case code == 401 || code == 403:
		e.kind, what = ErrForbidden, "permission denied"
	case code == 404:
		e.kind, what = ErrNotFound, "not found"
	case code == 429 || code >= 500:
		e.kind, what = ErrUnreachable, "unavailable"
	default:
		what = "rejected"
	}
	var b strings.Builder
	b.WriteString(what)
	b.WriteString(" (HTTP ")
	b.WriteString(strconv.Itoa(re.StatusCode))
	b.WriteString(")")
	msgs := vaultMessages(re.Errors, what)
	if len(msgs) > 0 {
		b.WriteString(": ")
		b.WriteString(truncate(redact(strings.Join(msgs, "; "))))
	}
	e.detail = b.String()
	return e
}

// vaultMessages returns the distinct messages of Vault's errors list,
// split out of the "2 errors occurred: * a * b" form of multierror and
// without the one that only repeats what.
func vaultMessages(errs []string, what string) []string {
	var msgs []string
	seen := map[string]bool{what: true}
	add := func(m string) {
		m = strings.Join(strings.Fields(m), " ")
		if m != "" && !seen[m] {
			seen[m] = true
			msgs = append(msgs, m)
		}
	}
	for _, e := range errs {
		if !strings.Contains(e, "\n\t* ") {
			add(e)
			continue
		}
		for _, line := range strings.Split(e, "\n") {
			if m, ok := strings.CutPrefix(strings.TrimSpace(line), "* "); ok {
				add(m)
			}
		}
	}
	return msgs
}

// isNetworkError reports whether err comes from the transport rather than
// from an answer of Vault: a refused or dropped connection, a DNS or TLS
// failure, or a timeout.
func isNetworkError(err error) bool {
	var ue *url.Error
	var ne net.Error
	switch {
	case errors.As(err, &ue), errors.As(err, &ne):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return false
}

// truncate bounds s to maxDetail bytes on a rune boundary.
func truncate(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// isRuneStart reports whether b starts a UTF-8 encoded rune.
func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// redactor replaces known secrets in messages.
type redactor struct {
	secrets []string
}

// redact returns s with every secret replaced by "[redacted]".
func (r redactor) redact(s string) string {
	for _, v := range r.secrets {
		if v != "" && strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}
