package auth

import (
	"net/http"
	"strconv"
)

// Failure codes, the "code" of the OpenAI error envelope.
const (
	// CodeMissingCallerToken means there is no Authorization header or no
	// bearer token (401).
	CodeMissingCallerToken = "missing_caller_token"
	// CodeInvalidCallerToken means another scheme than Bearer, or a static
	// token that matches no caller (401).
	CodeInvalidCallerToken = "invalid_caller_token"
	// CodeInvalidToken means a JWT that is malformed, forged, signed with a
	// refused algorithm, or that fails a claim check (401).
	CodeInvalidToken = "invalid_token"
	// CodeTokenExpired means a JWT past its exp, leeway included (401).
	CodeTokenExpired = "token_expired"
	// CodeTokenNotYetValid means a JWT before its nbf or iat, leeway
	// included (401).
	CodeTokenNotYetValid = "token_not_yet_valid" //nolint:gosec // G101: an error code, not a credential
	// CodeSupplierRequired means a static caller sent no X-Supplier-ID (400).
	CodeSupplierRequired = "supplier_required"
	// CodeInvalidSupplierID means X-Supplier-ID is not a valid supplier ID
	// (400).
	CodeInvalidSupplierID = "invalid_supplier_id"
	// CodeSupplierNotAllowed means the supplier is outside the caller's
	// scope (403).
	CodeSupplierNotAllowed = "supplier_not_allowed"
	// CodeIssuerKeysUnavailable means a JWT of an issuer whose keys veil
	// could not fetch yet (503).
	CodeIssuerKeysUnavailable = "issuer_keys_unavailable"
	// CodeSupplierMismatch means X-Supplier-ID differs from the JWT's
	// supplier (403).
	CodeSupplierMismatch = "supplier_mismatch"
)

// Failure is a refused request, rendered by the proxy as an OpenAI error
// envelope. Its message never contains the caller's credentials.
type Failure struct { //nolint:errname // an exported name used across packages; a rename is churn for no gain
	// Status is the HTTP status: 400, 401, 403 or 503.
	Status int
	// Code is one of the Code constants.
	Code string
	// Message explains the refusal to the caller.
	Message string
}

// Error returns the status, code and message.
func (f *Failure) Error() string {
	return "auth: " + strconv.Itoa(f.Status) + " " + f.Code + ": " + f.Message
}

// Type returns the OpenAI error type for the envelope: authentication_error
// for 401, permission_error for 403 and invalid_request_error otherwise.
func (f *Failure) Type() string {
	switch f.Status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	default:
		return "invalid_request_error"
	}
}
