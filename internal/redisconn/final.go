package redisconn

import (
	"context"
	"errors"
	"net"

	"github.com/redis/go-redis/v9"
)

// ambiguousFinal is a hook on each node of a Cluster client. go-redis's
// cluster client resends a command after a lost connection or a timeout,
// as it does after a MOVED redirect, whatever its MaxRetries; but such a
// command may have run already, and veil's writes are not idempotent. The
// hook replaces those errors by a sentError, which the cluster client does
// not recognise and so returns as it is. Errors that prove the command did
// not run (a failed dial, no pooled connection, a closed client) and error
// replies (MOVED, ASK, TRYAGAIN, CLUSTERDOWN...) pass unchanged, and are
// redirected or retried as go-redis decides.
type ambiguousFinal struct{}

var _ redis.Hook = ambiguousFinal{}

// DialHook implements redis.Hook: dials are left alone.
func (ambiguousFinal) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook: an ambiguous error becomes final.
func (ambiguousFinal) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if mayHaveRun(err) {
			return &sentError{err: err}
		}
		return err
	}
}

// ProcessPipelineHook implements redis.Hook: pipelines are left alone.
// go-redis resends a cluster pipeline's commands below the hooks; veil
// pipelines only reads, and XADD batches that its emitter would resend
// anyway.
func (ambiguousFinal) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// mayHaveRun reports whether err leaves open whether the command ran: an
// error other than a reply from the server, a refused dial, an empty
// pool, a closed client or the caller's context ending (which go-redis
// never retries, and which callers recognise).
func mayHaveRun(err error) bool {
	if err == nil || errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		return false
	}
	var op *net.OpError
	return !errors.As(err, &op) || op.Op != "dial"
}

// sentError is the failure of a command that may have reached a server.
// It does not unwrap, on purpose: go-redis's retry decision looks for
// io.EOF and net.Error through the chain.
type sentError struct{ err error }

// Error implements error.
func (e *sentError) Error() string {
	return "sent, outcome unknown: " + e.err.Error()
}
