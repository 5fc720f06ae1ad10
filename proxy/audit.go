package proxy

import (
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/policy"
	"go.uber.org/zap"
)

// audit logs a key event of an exchange (fingerprints only).
func (s *Server) audit(x *exchange, msg string, a *policy.Attempt, key *keys.Key, status int) {
	s.auditWarn(msg, zap.ByteString("request_id", x.reqID), zap.ByteString("supplier", x.supplier),
		zap.String("provider", a.Provider.Name()), zap.Object("key", key), zap.Int("status", status))
}

// auditWarn writes one warning to the audit trail and, for operators
// watching the service, to the operational log.
func (s *Server) auditWarn(msg string, fields ...zap.Field) {
	s.log.Warn(msg, fields...)
	s.auditor.Warn(msg, fields...)
}

// auditFallback writes that a call planned on the supplier's own key moves
// to platform keys, billed to the platform, and why.
func (s *Server) auditFallback(x *exchange, a *policy.Attempt, cause *Error) {
	why, status := "client_key_unavailable", 0
	if cause != nil {
		why, status = cause.Code, cause.Status
	}
	s.auditWarn("supplier call falls back to platform keys", zap.ByteString("request_id", x.reqID),
		zap.ByteString("supplier", x.supplier), zap.String("provider", a.Provider.Name()), zap.ByteString("model", a.Model),
		zap.String("cause", why), zap.Int("status", status), zap.String("billed", string(billing.PaidByPlatform)))
}
