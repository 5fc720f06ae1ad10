package admin

import (
	"github.com/wedsync/veil/internal/generation"
)

// RuntimeLoader loads the runtime in force; the shared
// *atomic.Pointer[generation.Runtime] that the proxy reads is one.
type RuntimeLoader interface {
	Load() *generation.Runtime
}

// errorDoc is an admin endpoint's error document.
func errorDoc(code, msg string) map[string]any {
	return map[string]any{"error": map[string]string{"code": code, "message": msg}}
}

// fail is an admin endpoint's error answer.
func fail(status int, code, msg string) (int, any) {
	return status, errorDoc(code, msg)
}

// respond answers with status and v, or, when err is set, with what
// failure makes of it.
func respond[T any](v T, err error, status int, failure func(error) (int, any)) (int, any) {
	if err != nil {
		return failure(err)
	}
	return status, v
}
