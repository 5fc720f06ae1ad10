package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// HashToken returns the SHA-256 hash of a bearer token, the form in which
// static caller tokens are configured.
func HashToken(token string) [32]byte {
	return sha256.Sum256([]byte(token))
}

// ParseTokenHash parses a SHA-256 token hash written as 64 hexadecimal
// digits, as produced by `printf %s "$TOKEN" | sha256sum`.
func ParseTokenHash(hexHash string) ([32]byte, error) {
	var h [32]byte
	if len(hexHash) != hex.EncodedLen(len(h)) {
		return h, fmt.Errorf("auth: token hash must be %d hexadecimal digits, got %d characters",
			hex.EncodedLen(len(h)), len(hexHash))
	}
	if _, err := hex.Decode(h[:], []byte(hexHash)); err != nil {
		return [32]byte{}, fmt.Errorf("auth: token hash must be hexadecimal: %w", err)
	}
	return h, nil
}
