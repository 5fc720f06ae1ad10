// Package webhook POSTs bodies to a configured URL: it checks the URL and
// headers once, sends each body within a timeout, tells answers worth
// trying again from final ones, and keeps the URL and the header values
// out of every error, since either may hold a secret.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/net/http/httpguts"
)

// DefaultMaxBackoff caps the wait between two tries of Send when
// Options.MaxBackoff is zero.
const DefaultMaxBackoff = 30 * time.Second

// drainLimit bounds how much of an answer's body is read so that the
// connection can be reused.
const drainLimit = 64 << 10

// Options configure New.
type Options struct {
	// Name starts every error, e.g. "alert webhook".
	Name string
	// URL is where bodies are POSTed: http or https.
	URL string
	// Headers are added to every POST, e.g. Authorization; a Host header
	// sets the request's host. Their values are never part of an error.
	Headers map[string]string
	// ContentType is the Content-Type of every POST.
	ContentType string
	// ContentEncoding is the Content-Encoding of every POST; empty means
	// none.
	ContentEncoding string
	// Timeout bounds one POST; zero means no bound but the context's.
	Timeout time.Duration
	// Client sends the POSTs; nil means a client with a transport of the
	// poster's own, which Close releases. Either way redirects that would
	// turn the POST into a GET are not followed.
	Client *http.Client
	// Attempts is how often Send tries one body; below one means one.
	Attempts int
	// Backoff is the wait before Send's second try, doubling for each
	// further one, with jitter.
	Backoff time.Duration
	// MaxBackoff caps the wait between two tries; DefaultMaxBackoff when
	// zero.
	MaxBackoff time.Duration
}

// Poster POSTs bodies to one webhook. Its methods are safe for concurrent
// use.
type Poster struct {
	name        string
	url         string
	host        string
	headers     http.Header
	contentType string
	encoding    string
	timeout     time.Duration
	client      *http.Client
	own         *http.Transport // closed by Close when the client is the poster's
	attempts    int
	backoff     time.Duration
	maxBackoff  time.Duration
}

// StatusError is a webhook answer other than 2xx.
type StatusError struct {
	// StatusCode is the answer's HTTP status.
	StatusCode int
}

// Error returns the status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// Retryable reports whether the status may pass if the POST is tried
// again: 408, 429 and 5xx.
func (e *StatusError) Retryable() bool {
	c := e.StatusCode
	return c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500
}

// permanentError is a failure that trying again would not mend.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent reports whether err, from Post or Send, is a failure that
// trying again would not mend: an answer other than 2xx, 408, 429 and
// 5xx, or a request that could not be built.
func Permanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}

// New checks o and returns its poster. Its errors hold neither the URL
// nor a header value.
func New(o Options) (*Poster, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue would print the URL, which may hold a secret
		}
		return nil, fmt.Errorf("%s url: %w", o.Name, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%s url: want http(s)://host/...", o.Name) //nolint:revive,staticcheck // error-strings, ST1005: the dots are part of the URL pattern
	}
	p := &Poster{
		name:        o.Name,
		url:         u.String(),
		headers:     make(http.Header, len(o.Headers)),
		contentType: o.ContentType,
		encoding:    o.ContentEncoding,
		timeout:     o.Timeout,
		attempts:    max(o.Attempts, 1),
		backoff:     o.Backoff,
		maxBackoff:  o.MaxBackoff,
	}
	for k, v := range o.Headers {
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("%s header %q: invalid name or value", o.Name, k)
		}
		if http.CanonicalHeaderKey(k) == "Host" {
			p.host = v
			continue
		}
		p.headers.Set(k, v)
	}
	if p.maxBackoff <= 0 {
		p.maxBackoff = DefaultMaxBackoff
	}
	var c http.Client
	if o.Client != nil {
		c = *o.Client
	} else {
		p.own = http.DefaultTransport.(*http.Transport).Clone()
		c.Transport = p.own
	}
	c.CheckRedirect = keepPost
	p.client = &c
	return p, nil
}

// keepPost follows only redirects that keep the POST and its body (307,
// 308): one that turns it into a GET would lose the body yet answer 2xx.
func keepPost(req *http.Request, via []*http.Request) error {
	if req.Method != http.MethodPost || len(via) >= 10 {
		return http.ErrUseLastResponse
	}
	return nil
}

// Post POSTs body once. A 2xx answer is success; other answers are a
// *StatusError, wrapped as permanent (see Permanent) unless Retryable.
// The body is not to be changed after Post returns: the transport may
// still hold it.
func (p *Poster) Post(ctx context.Context, body []byte) error {
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return &permanentError{fmt.Errorf("%s request: %w", p.name, err)}
	}
	for k, v := range p.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", p.contentType)
	if p.encoding != "" {
		req.Header.Set("Content-Encoding", p.encoding)
	}
	if p.host != "" {
		req.Host = p.host
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue would print the URL, which may hold a secret
		}
		return fmt.Errorf("%s post: %w", p.name, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	se := &StatusError{StatusCode: resp.StatusCode}
	if se.Retryable() {
		return fmt.Errorf("%s: %w", p.name, se)
	}
	return &permanentError{fmt.Errorf("%s: %w", p.name, se)}
}

// Send POSTs body, trying again after failures that are not permanent
// until Attempts tries have failed or ctx ends, and returns the last
// error. The waits between tries start at Backoff and double up to
// MaxBackoff, with equal jitter so that replicas that saw the same outage
// do not try again in step.
func (p *Poster) Send(ctx context.Context, body []byte) error {
	wait := p.backoff
	for try := 1; ; try++ {
		err := p.Post(ctx, body)
		if err == nil || Permanent(err) || try >= p.attempts || ctx.Err() != nil {
			return err
		}
		d := wait/2 + rand.N(wait/2+1) //nolint:gosec // G404: retry jitter, not a secret
		wait = min(2*wait, p.maxBackoff)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// Close releases the idle connections of the poster's own transport; a
// client given in Options is left alone.
func (p *Poster) Close() {
	if p.own != nil {
		p.own.CloseIdleConnections()
	}
}
