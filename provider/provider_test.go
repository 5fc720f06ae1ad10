package provider

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
)

func TestNew(t *testing.T) {
	cases := []struct {
		name, baseURL, typ string
		wantErr            string
		wantBase           string
	}{
		{"https default port", "https://api.openai.com/v1", "openai", "", "https://api.openai.com/v1"},
		{"http with port and trailing slash", "http://127.0.0.1:8081/v1/", "openai", "", "http://127.0.0.1:8081/v1"},
		{"unknown type", "https://x/v1", "bedrock", "unsupported type", ""},
		{"relative url", "/v1", "openai", "absolute", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(config.Provider{Name: "p", Type: tc.typ, BaseURL: tc.baseURL}, []keys.Secret{keys.NewSecret("sk-x")}, Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.BaseURL() != tc.wantBase {
				t.Errorf("base %q, want %q", p.BaseURL(), tc.wantBase)
			}
		})
	}
}

// TestPrepareOpenAI: the upstream URL comes from config and the request
// path, and exactly one Authorization carries the key.
func TestPrepareOpenAI(t *testing.T) {
	p, err := New(config.Provider{Name: "openai", Type: "openai", BaseURL: "https://api.openai.com/v1"}, []keys.Secret{keys.NewSecret("sk-platform")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var req fasthttp.Request
	req.Header.Set("Authorization", "Bearer client-token")
	req.Header.Add("Authorization", "Bearer second")
	c := &Call{Suffix: []byte("/files/file abc"), Query: []byte("purpose=batch&after=x%2Fy"), Key: p.Platform().Next(time.Now())}
	if err := p.Prepare(&req, c); err != nil {
		t.Fatal(err)
	}
	if got := string(req.URI().FullURI()); got != "https://api.openai.com/v1/files/file%20abc?purpose=batch&after=x%2Fy" {
		t.Errorf("uri %s", got)
	}
	if got := string(req.Header.Host()); got != "api.openai.com" {
		t.Errorf("host %s", got)
	}
	n := 0
	for k, v := range req.Header.All() {
		if string(k) == "Authorization" {
			n++
			if string(v) != "Bearer sk-platform" {
				t.Errorf("authorization %q", v)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d Authorization headers", n)
	}
	if p.Platform().Fingerprints()[0] != keys.Fingerprint("sk-platform") {
		t.Error("fingerprint mismatch")
	}
}

func TestServes(t *testing.T) {
	unlisted, _ := New(config.Provider{Name: "a", Type: "openai", BaseURL: "http://x/v1"}, nil, Options{})
	listed, _ := New(config.Provider{Name: "b", Type: "openai", BaseURL: "http://x/v1", Models: []string{"m1"}}, nil, Options{})
	if !unlisted.Serves([]byte("whatever")) || unlisted.Lists([]byte("whatever")) {
		t.Error("a provider without a list serves everything and lists nothing")
	}
	if !listed.Serves([]byte("m1")) || listed.Serves([]byte("m2")) || !listed.Lists([]byte("m1")) {
		t.Error("listed provider")
	}
	if unlisted.Platform() != nil {
		t.Error("a zero key gives no platform credential")
	}
}

// TestAnthropicUsageBounded: absurd counts from a broken or hostile
// answer neither overflow nor reach the client as they came.
func TestAnthropicUsageBounded(t *testing.T) {
	u := &anthropicUsage{InputTokens: math.MaxInt64, OutputTokens: -7, CacheCreationInputTokens: math.MaxInt64, CacheReadInputTokens: 5}
	var got struct {
		Prompt     int64 `json:"prompt_tokens"`
		Completion int64 `json:"completion_tokens"`
		Total      int64 `json:"total_tokens"`
	}
	if err := json.Unmarshal(u.appendUsage(nil), &got); err != nil {
		t.Fatal(err)
	}
	if got.Prompt != 2*billing.MaxTokens+5 || got.Completion != 0 || got.Total != got.Prompt {
		t.Errorf("usage %+v", got)
	}
}
