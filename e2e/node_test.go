package e2e

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/wedsync/veil/internal/nodetest"
)

// normalize drops the fields the provider makes up per call (ids, clocks),
// so two answers to the same request compare equal.
func normalize(t *testing.T, out []byte) []any {
	t.Helper()
	var docs []any
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		docs = append(docs, scrub(v))
	}
	return docs
}

func scrub(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range []string{"id", "created", "created_at", "system_fingerprint", "_request_id"} {
			delete(x, k)
		}
		for k, e := range x {
			x[k] = scrub(e)
		}
	case []any:
		for i, e := range x {
			x[i] = scrub(e)
		}
	}
	return v
}

// TestNodeSDK: the official openai Node SDK gets through veil exactly the
// chunks and answers it gets from the provider directly, with and without
// include_usage; veil's own errors surface as the SDK's APIError.
//
// It runs with each installed SDK: the newest major this Node.js runs and
// the previous one.
func TestNodeSDK(t *testing.T) {
	h := start(t, setup{})
	for _, sdk := range nodetest.SDKs {
		pkg := "OPENAI_PACKAGE=" + sdk
		t.Run(sdk, func(t *testing.T) {
			for _, mode := range []string{"chat", "stream", "stream_usage", "embeddings", "models"} {
				t.Run(mode, func(t *testing.T) {
					via := normalize(t, nodetest.Run(t, mode, h.baseURL(), h.token, testSupplier, pkg))
					direct := normalize(t, nodetest.Run(t, mode, h.up.URL(), h.platformKey, "", pkg))
					if !reflect.DeepEqual(via, direct) {
						t.Errorf("through veil the SDK saw\n%v\ndirectly\n%v", via, direct)
					}
					if len(via) == 0 {
						t.Error("the SDK printed nothing")
					}
				})
			}
			t.Run("error", func(t *testing.T) {
				out := nodetest.Run(t, "error", h.baseURL(), "not-a-veil-token", testSupplier, pkg)
				var e struct {
					Status int    `json:"status"`
					Code   string `json:"code"`
				}
				if err := json.Unmarshal(bytes.TrimSpace(out), &e); err != nil || e.Status != 401 || e.Code != "invalid_caller_token" {
					t.Errorf("error mode printed %s", out)
				}
			})
		})
	}
}
