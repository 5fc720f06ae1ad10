package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/keys"
)

// fragments returns every run of n characters of secret.
func fragments(secret string, n int) []string {
	var out []string
	for i := 0; i+n <= len(secret); i++ {
		out = append(out, secret[i:i+n])
	}
	return out
}

// checkNoFragment fails t if text holds 4 characters in a row of secret.
func checkNoFragment(t *testing.T, what, text, secret string) {
	t.Helper()
	for _, f := range fragments(secret, 4) {
		if strings.Contains(text, f) {
			t.Errorf("%s %q holds %q, part of the key", what, text, f)
		}
	}
}

// TestCheckKeysShowsNoPartOfARefusedKey: the provider's refusal quotes
// the refused key's first and last characters (as OpenAI does); the check
// reports the status and the refused key's fingerprint, and no part of
// the key.
func TestCheckKeysShowsNoPartOfARefusedKey(t *testing.T) {
	// Every run of 4 characters holds a letter beyond f, so that no run can
	// appear in a hexadecimal fingerprint by chance.
	const good, refused = "sk-Gx7WqhLv9TnJRbpYc3Mz6H", "sk-Zq9xW2vLp7TnJRbXYcKMdW"
	up := fakeopenai.New(fakeopenai.Options{Keys: []string{good}})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	env := map[string]string{"GOOD_KEY": good, "REFUSED_KEY": refused}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	yaml := `providers:
  - name: openai
    type: openai
    base_url: ` + up.URL() + `
    api_key: env://REFUSED_KEY
callers:
  - name: app
    token_sha256: e0462a38da76cf9d76265131d0574db09d038e611e9af445c145672c2e26f9ba
    suppliers: ["*"]
suppliers:
  entries:
    - id: rose-venue
      mode: client
      keys:
        openai: env://REFUSED_KEY
    - id: bella-photography
      mode: client
      keys:
        openai: env://GOOD_KEY
`
	cfg, err := config.ParseWithEnv([]byte(yaml), "veil.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Secrets: keys.Sources{"env": keys.EnvSource{LookupEnv: lookup}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, supplier := range []string{"rose-venue", ""} { // the supplier's own key, then the platform key
		checks, err := CheckKeys(ctx, cfg, opts, supplier, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(checks) != 1 || checks[0].Fingerprint != keys.Fingerprint(refused) || !errors.Is(checks[0].Err, ErrKeyRefused) {
			t.Fatalf("supplier %q: checks %+v, want the key refused with fingerprint %s", supplier, checks, keys.Fingerprint(refused))
		}
		msg := checks[0].Err.Error()
		if !strings.Contains(msg, "401 Unauthorized") || !strings.Contains(msg, keys.Fingerprint(refused)) {
			t.Errorf("supplier %q: %q, want the status and the refused key's fingerprint", supplier, msg)
		}
		checkNoFragment(t, "error", msg, refused)
	}
	// The refusal did quote the key, so the test would see it leak.
	if body := refusalBody(t, up.URL(), refused); !strings.Contains(body, refused[len(refused)-4:]) {
		t.Fatalf("the fake provider's refusal %q does not quote the key; the test proves nothing", body)
	}

	checks, err := CheckKeys(ctx, cfg, opts, "bella-photography", nil)
	if err != nil || len(checks) != 1 || checks[0].Err != nil || checks[0].Models == 0 {
		t.Errorf("the good key: %+v %v", checks, err)
	}
}

// refusalBody is what the provider at base answers a model list asked
// with key.
func refusalBody(t *testing.T, base, key string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestScrubKeys(t *testing.T) {
	const secret = "sk-Zq9xW2vLp7TnJRbXYcKMdW"
	cases := []struct {
		name, msg string
		keep      string // a part of the message that must stay
	}{
		{"OpenAI's masked key", "Incorrect API key provided: sk-Zq9*****************KMdW. You can find your API key at https://platform.openai.com/account/api-keys.", "Incorrect API key provided"},
		{"stars only", "Invalid key ******** for this project", "for this project"},
		{"a whole key", "key sk-Zq9xW2vLp7TnJRbXYcKMdW is not valid", "is not valid"},
		{"another prefixed key", "organization key sk_live_abcdefgh is disabled", "is disabled"},
		{"x-api-key echo", `header x-api-key: "abc-not-the-key" is invalid`, "is invalid"},
		{"bearer echo", "Authorization: Bearer zz99yy88 rejected", "rejected"},
		{"the last characters alone", "the key ending in KMdW was revoked", "was revoked"},
		{"a long token", "session a1b2c3d4e5f6a7b8c9d0e1f2a3 expired", "expired"},
		{"a plain message", "You exceeded your current quota, please check your plan and billing details.", "You exceeded your current quota, please check your plan and billing details."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := scrubKeys(tc.msg, secret)
			checkNoFragment(t, "message", got, secret)
			for _, leak := range []string{"*", "sk_live", "abc-not", "zz99", "a1b2c3"} {
				if strings.Contains(got, leak) {
					t.Errorf("%q holds %q", got, leak)
				}
			}
			if !strings.Contains(got, tc.keep) {
				t.Errorf("%q lost %q", got, tc.keep)
			}
		})
	}
	if got := scrubKeys(strings.Repeat("word ", 100), secret); len(got) > maxProbeMessage+len("…") {
		t.Errorf("a long message is %d bytes", len(got))
	}
}
