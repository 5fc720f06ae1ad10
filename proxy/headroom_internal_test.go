package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/health"
	"github.com/wedsync/veil/keys"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/quota"
	"github.com/wedsync/veil/store"
)

func TestAppendReset(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, 20 * time.Millisecond, 999 * time.Millisecond, time.Second,
		1500 * time.Millisecond, 1020 * time.Millisecond, 59*time.Second + 999*time.Millisecond, time.Minute,
		6 * time.Minute, 6*time.Minute + 30*time.Second + 250*time.Millisecond, time.Hour, 263*time.Hour + 5*time.Minute} {
		if got := string(appendReset(nil, d)); got != d.String() {
			t.Errorf("appendReset(%v) = %q", d, got)
		}
	}
	for d, want := range map[time.Duration]string{0: "0s", -time.Second: "0s", time.Nanosecond: "1ms",
		1500*time.Microsecond + 1: "2ms", time.Second + time.Nanosecond: "1.001s"} {
		if got := string(appendReset(nil, d)); got != want {
			t.Errorf("appendReset(%d ns) = %q, want %q (rounded up to the millisecond)", d, got, want)
		}
	}
}

func TestHeaderReset(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", -1},
		{"6ms", 6 * time.Millisecond},
		{"6m0s", 6 * time.Minute},
		{"1.5s", 1500 * time.Millisecond},
		{"2", 2 * time.Second},
		{"0.25", 250 * time.Millisecond},
		{"-1s", -1},
		{"soon", -1},
		{"1000h", 24 * time.Hour},
		{"1h2m3.5s", time.Hour + 2*time.Minute + 3500*time.Millisecond},
		{"250us", 250 * time.Microsecond},
		{"5m5", -1},
		{"s", -1},
		{"1.2.3s", -1},
		{"NaN", -1},
		{"Inf", -1},
		{"1e3", 1000 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			var h fasthttp.ResponseHeader
			if tt.value != "" {
				h.Set(headerResetRequests, tt.value)
			}
			if got := headerReset(&h, headerResetRequests); got != tt.want {
				t.Errorf("headerReset(%q) = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

// accountAnswer sets the headers OpenAI sends with an answer on
// WedSync's account.
func accountAnswer(h *fasthttp.ResponseHeader) {
	h.Reset()
	h.SetContentType("application/json")
	for _, kv := range [...][2]string{
		{"Openai-Organization", "org-wedsync"}, {"Openai-Project", "proj_wedsync"}, {"Openai-Version", "2020-10-01"},
		{"X-Ratelimit-Limit-Requests", "10000"}, {"X-Ratelimit-Remaining-Requests", "9999"}, {"X-Ratelimit-Reset-Requests", "6ms"},
		{"X-Ratelimit-Limit-Tokens", "30000000"}, {"X-Ratelimit-Remaining-Tokens", "29999000"}, {"x-ratelimit-reset-tokens", "2ms"},
		{"X-Ratelimit-Limit-Project-Tokens", "1000000"},
	} {
		h.Set(kv[0], kv[1])
	}
}

// admitted returns a ticket of supplier bella on a tier of 60 requests and
// 10,000 tokens a minute, after one call of about 1,400 tokens.
func admitted(t testing.TB, tier bool) quota.Ticket {
	t.Helper()
	st, err := store.NewEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	o := quota.Options{Store: st, Tiers: []config.Tier{{Name: "starter", RequestsPerMinute: 60, TokensPerMinute: 10000,
		DefaultMaxTokens: 1024, OnExhausted: "reject"}}}
	if tier {
		o.DefaultTier = "starter"
	}
	e, err := quota.New(o)
	if err != nil {
		t.Fatal(err)
	}
	tk, ref, err := e.Admit(context.Background(), quota.Request{Supplier: []byte("bella"), Provider: "openai", Model: "gpt-4o-mini",
		Prompt: 400, Completion: true, Now: time.Now()})
	if err != nil || ref != nil {
		t.Fatalf("admit: %+v %v", ref, err)
	}
	return tk
}

func TestOwnHeaders(t *testing.T) {
	platform := keys.NewKey(keys.NewSecret("sk-platform-test"), billing.PlatformKey, "")
	client := keys.NewKey(keys.NewSecret("sk-bella-own"), billing.ClientKey, "1")
	tests := []struct {
		name string
		key  *keys.Key
		tier bool
		want map[string]string // "" means absent
	}{
		{"a platform call shows the tier's headroom", platform, true, map[string]string{
			"Openai-Organization": "", "Openai-Project": "", "Openai-Version": "2020-10-01",
			headerLimitRequests: "60", headerRemainingRequests: "59", headerLimitTokens: "10000", headerRemainingTokens: "8576",
			"X-Ratelimit-Limit-Project-Tokens": ""}},
		{"a platform call without a tier shows no rate limits", platform, false, map[string]string{
			"Openai-Organization": "", "Openai-Project": "", headerLimitRequests: "", headerRemainingRequests: "",
			headerResetRequests: "", headerLimitTokens: "", headerRemainingTokens: "", headerResetTokens: "",
			"X-Ratelimit-Limit-Project-Tokens": ""}},
		{"a platform call shows no organisation under Anthropic's name either", platform, true, map[string]string{
			"Anthropic-Organization-Id": "", "Openai-Organization": ""}},
		{"a call on the supplier's own key keeps its account's headers", client, true, map[string]string{
			"Openai-Organization": "org-wedsync", "Openai-Project": "proj_wedsync", headerLimitRequests: "10000",
			headerRemainingRequests: "9999", headerResetRequests: "6ms", headerResetTokens: "2ms",
			"X-Ratelimit-Limit-Project-Tokens": "1000000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := &exchange{ticket: admitted(t, tt.tier)}
			var h fasthttp.ResponseHeader
			accountAnswer(&h)
			h.Set("Anthropic-Organization-Id", "0f2c6d8e-4b1a-4c3e-9d7f-fa4e0b6c1d2a") // as a provider might pass it on
			x.ownHeaders(&h, tt.key)
			for k, want := range tt.want {
				if got := string(h.Peek(k)); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if tt.tier && tt.key == platform {
				for _, k := range []string{headerResetRequests, headerResetTokens} {
					d, err := time.ParseDuration(string(h.Peek(k)))
					if err != nil || d <= 0 || d > time.Minute {
						t.Errorf("%s = %q, want the time left in the minute", k, h.Peek(k))
					}
				}
			}
		})
	}
}

// TestOwnHeadersAllocs: rewriting a platform answer's headers and keeping
// the provider's report in health allocate nothing, so that the request
// path's budget (TestPassThroughAllocs) holds with a tier.
func TestOwnHeadersAllocs(t *testing.T) {
	platform := keys.NewKey(keys.NewSecret("sk-platform-test"), billing.PlatformKey, "")
	x := &exchange{ticket: admitted(t, true)}
	target := health.NewRegistry("openai").Target("openai")
	var h fasthttp.ResponseHeader
	accountAnswer(&h) // grow the header's buffers once
	x.ownHeaders(&h, platform)
	a := testing.AllocsPerRun(200, func() {
		accountAnswer(&h)
		target.ReportRateLimits(health.RateLimits{
			RemainingRequests: headerInt(&h, headerRemainingRequests), RemainingTokens: headerInt(&h, headerRemainingTokens),
			LimitRequests: headerInt(&h, headerLimitRequests), LimitTokens: headerInt(&h, headerLimitTokens),
			ResetRequests: headerReset(&h, headerResetRequests), ResetTokens: headerReset(&h, headerResetTokens),
		}, time.Now())
		x.ownHeaders(&h, platform)
	})
	if a != 0 {
		t.Errorf("%.1f allocations per answer", a)
	}
}

// TestRateLimitAccount: an answer's rate limits are its organisation's
// when it names one, the provider's as a whole at Azure, else its key's.
func TestRateLimitAccount(t *testing.T) {
	k1 := keys.NewKey(keys.NewSecret("sk-pool-key-one"), billing.PlatformKey, "")
	k2 := keys.NewKey(keys.NewSecret("sk-pool-key-two"), billing.PlatformKey, "")
	newProvider := func(typ string) *provider.Provider {
		p, err := provider.New(config.Provider{Name: typ, Type: typ, BaseURL: "http://127.0.0.1:1/v1",
			Azure: &config.Azure{APIVersion: "2024-10-21"}}, nil, provider.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	openAI, azure := newProvider("openai"), newProvider("azure")
	tests := []struct {
		name string
		p    *provider.Provider
		key  *keys.Key
		org  string
		want uint64
	}{
		{"the organisation named", openAI, k1, "org-wedsync-a", health.OrgAccount([]byte("org-wedsync-a"))},
		{"another key of it", openAI, k2, "org-wedsync-a", health.OrgAccount([]byte("org-wedsync-a"))},
		{"no organisation: the key", openAI, k2, "", health.KeyAccount(k2.Fingerprint())},
		{"azure: the provider", azure, k1, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.ResponseHeader
			if tt.org != "" {
				h.Set("OpenAI-Organization", tt.org)
			}
			if got := rateLimitAccount(tt.p, tt.key, &h); got != tt.want {
				t.Errorf("account %x, want %x", got, tt.want)
			}
		})
	}
	if health.KeyAccount(k1.Fingerprint()) == health.KeyAccount(k2.Fingerprint()) {
		t.Error("two keys are one account")
	}
}

// TestRateLimitAccountAnthropic: an Anthropic answer on a platform key
// reports the rate limits of the organisation its anthropic-organization-id
// names, read after translation as OpenAI's would be, so two keys of one
// organisation are one account; the app then sees the organisation under
// neither name. On a supplier's own key the app sees no organisation
// either, as before.
func TestRateLimitAccountAnthropic(t *testing.T) {
	p, err := provider.New(config.Provider{Name: "anthropic", Type: config.ProviderTypeAnthropic, BaseURL: "http://127.0.0.1:1/v1",
		Anthropic: &config.Anthropic{Version: "2023-06-01", MaxTokens: 4096}}, nil, provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k1 := keys.NewKey(keys.NewSecret("sk-ant-pool-key-one"), billing.PlatformKey, "")
	k2 := keys.NewKey(keys.NewSecret("sk-ant-pool-key-two"), billing.PlatformKey, "")
	k3 := keys.NewKey(keys.NewSecret("sk-ant-pool-key-three"), billing.PlatformKey, "")
	own := keys.NewKey(keys.NewSecret("sk-ant-bella-own"), billing.ClientKey, "1")
	const orgA, orgB = "0f2c6d8e-4b1a-4c3e-9d7f-fa4e0b6c1d2a", "7b1e4c2a-9d3f-4e6b-8a5c-1f0d2e3b4a59"
	tests := []struct {
		name  string
		key   *keys.Key
		org   string
		want  uint64
		check bool // the account is read (platform keys only)
	}{
		{"the organisation named", k1, orgA, health.OrgAccount([]byte(orgA)), true},
		{"another key of it", k2, orgA, health.OrgAccount([]byte(orgA)), true},
		{"a key of another organisation", k3, orgB, health.OrgAccount([]byte(orgB)), true},
		{"no organisation: the key", k3, "", health.KeyAccount(k3.Fingerprint()), true},
		{"the supplier's own key", own, orgA, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp fasthttp.Response
			resp.Header.SetContentType("application/json")
			resp.SetBodyString(`{"id":"msg_01","type":"message","role":"assistant","model":"claude-haiku-4-5",` +
				`"content":[{"type":"text","text":"Yes."}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}`)
			if tt.org != "" {
				resp.Header.Set("anthropic-organization-id", tt.org)
			}
			resp.Header.Set("anthropic-ratelimit-requests-limit", "4000")
			resp.Header.Set("anthropic-ratelimit-requests-remaining", "3999")
			if err := p.Translate(&resp, &provider.Call{Suffix: []byte("/chat/completions"), Key: tt.key}); err != nil {
				t.Fatal(err)
			}
			if got := rateLimitAccount(p, tt.key, &resp.Header); tt.check && got != tt.want {
				t.Errorf("account %x, want %x", got, tt.want)
			}
			x := &exchange{ticket: admitted(t, true)}
			x.ownHeaders(&resp.Header, tt.key)
			for _, k := range []string{headerOrganization, headerAnthropicOrganization} {
				if v := resp.Header.Peek(k); len(v) > 0 {
					t.Errorf("the app sees %s %q", k, v)
				}
			}
		})
	}
	if health.OrgAccount([]byte(orgA)) == health.KeyAccount(k1.Fingerprint()) {
		t.Error("an organisation is its key's account")
	}
}

func TestExhaustedFor(t *testing.T) {
	n := health.NoRateLimits
	with := func(f func(*health.RateLimits)) health.RateLimits { l := n; f(&l); return l }
	cases := []struct {
		name string
		l    health.RateLimits
		want time.Duration
	}{
		{"nothing said", n, 0},
		{"requests left", with(func(l *health.RateLimits) {
			l.RemainingRequests, l.LimitRequests, l.ResetRequests = 3, 10, time.Minute
		}), 0},
		{"last request of ten a minute: one back in six seconds", with(func(l *health.RateLimits) {
			l.RemainingRequests, l.LimitRequests, l.ResetRequests = 0, 10, time.Minute
		}), 6 * time.Second},
		{"used up, no limit said: the whole reset", with(func(l *health.RateLimits) {
			l.RemainingRequests, l.ResetRequests = 0, 20*time.Second
		}), 20 * time.Second},
		{"used up, no reset said", with(func(l *health.RateLimits) { l.RemainingRequests, l.LimitRequests = 0, 10 }), 0},
		{"tokens used up: a hundredth of their reset", with(func(l *health.RateLimits) {
			l.RemainingTokens, l.LimitTokens, l.ResetTokens = 0, 30000, 100*time.Second
		}), time.Second},
		{"both: the longer", with(func(l *health.RateLimits) {
			l.RemainingRequests, l.LimitRequests, l.ResetRequests = 0, 100, time.Minute
			l.RemainingTokens, l.ResetTokens = 0, 3*time.Minute
		}), 1800 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := exhaustedFor(c.l); got != c.want {
				t.Errorf("exhaustedFor(%+v) = %v, want %v", c.l, got, c.want)
			}
		})
	}
}
