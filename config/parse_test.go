package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseDefaults(t *testing.T) {
	c, err := ParseWithEnv([]byte(okProviders+okCallers), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Providers[0]
	tests := []struct {
		name      string
		got, want any
	}{
		{"listen.proxy", c.Listen.Proxy, "127.0.0.1:8080"},
		{"listen.admin", c.Listen.Admin, "127.0.0.1:9090"},
		{"admin.token", c.Admin.Token, SecretRef("")},
		{"limits.max_body_bytes", c.Limits.MaxBodyBytes, 33554432},
		{"limits.max_header_bytes", c.Limits.MaxHeaderBytes, 16384},
		{"limits.read_timeout", c.Limits.ReadTimeout, 30 * time.Second},
		{"limits.write_timeout", c.Limits.WriteTimeout, time.Duration(0)},
		{"limits.idle_timeout", c.Limits.IdleTimeout, 90 * time.Second},
		{"limits.request_timeout", c.Limits.RequestTimeout, 10 * time.Minute},
		{"limits.stream_idle_timeout", c.Limits.StreamIdleTimeout, 60 * time.Second},
		{"limits.keepalive_interval", c.Limits.KeepAliveInterval, time.Second},
		{"limits.max_event_bytes", c.Limits.MaxEventBytes, 4 << 20},
		{"limits.max_response_bytes", c.Limits.MaxResponseBytes, 64 << 20},
		{"limits.max_in_flight", c.Limits.MaxInFlight, 0},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"providers[0].max_conns", p.MaxConns, 10000},
		{"providers[0].conn_wait", p.ConnWait, time.Second},
		{"providers[0].dial_timeout", p.DialTimeout, 5 * time.Second},
		{"providers[0].models", len(p.Models), 0},
		{"routing.default_provider", c.Routing.DefaultProvider, "openai"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
			}
		})
	}

	t.Run("Default matches parsed defaults", func(t *testing.T) {
		d := Default()
		if d.Listen != c.Listen || !reflect.DeepEqual(d.Limits, c.Limits) || d.Log != c.Log || !reflect.DeepEqual(d.Admin, c.Admin) {
			t.Errorf("Default() = %+v, want the defaults of a parsed config %+v", d, c)
		}
		if len(d.Providers) != 0 || len(d.Callers) != 0 || d.Routing.DefaultProvider != "" {
			t.Errorf("Default() has providers, callers or routing: %+v", d)
		}
	})
}

func TestParseExplicitValuesAndNormalization(t *testing.T) {
	doc := `listen:
  proxy: 0.0.0.0:8081
  admin: 127.0.0.1:0
limits:
  max_body_bytes: 1024
  read_timeout: 1m30s
  write_timeout: 5m
  request_timeout: 1h
  stream_idle_timeout: 500ms
  keepalive_interval: 2s
  max_in_flight: 500
log:
  level: DEBUG
  format: Console
providers:
  - name: openai
    type: openai
    base_url: https://api.openai.com/v1//
    api_key: env://OPENAI_API_KEY
    models: [gpt-4o, gpt-4o-mini]
    max_conns: 8
    dial_timeout: 250ms
  - name: local
    type: openai
    base_url: http://localhost:8000/
    api_key: file:///run/secrets/local
routing:
  default_provider: local
callers:
  - name: app
    token_sha256: E0462A38DA76CF9D76265131D0574DB09D038E611E9AF445C145672C2E26F9BA
    suppliers: ["*"]
  - name: worker.v2
    token: vault://secret/apps/worker#token
    suppliers: ["*"]
`
	c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	defaultRate := DefaultBreakerErrorRate
	want := &Config{
		Listen: Listen{Proxy: "0.0.0.0:8081", Admin: "127.0.0.1:0"},
		Limits: Limits{
			MaxBodyBytes:       1024,
			MaxHeaderBytes:     DefaultMaxHeaderBytes,
			ReadTimeout:        90 * time.Second,
			WriteTimeout:       5 * time.Minute,
			IdleTimeout:        DefaultIdleTimeout,
			RequestTimeout:     time.Hour,
			StreamIdleTimeout:  500 * time.Millisecond,
			KeepAliveInterval:  2 * time.Second,
			MaxEventBytes:      DefaultMaxEventBytes,
			MaxResponseBytes:   DefaultMaxResponseBytes,
			BreakerFailures:    5,
			SupplierInFlight:   DefaultSupplierInFlight,
			MaxInFlight:        500,
			TTFTTimeout:        30 * time.Second,
			AttemptTimeout:     2 * time.Minute,
			RetryBackoff:       100 * time.Millisecond,
			MaxRetryWait:       5 * time.Second,
			BreakerCooldown:    30 * time.Second,
			BreakerWindow:      DefaultBreakerWindow,
			BreakerMinRequests: DefaultBreakerMinRequests,
			BreakerErrorRate:   &defaultRate,
			ProbeInterval:      30 * time.Second,
			ProbeFailures:      2,
		},
		Log: Log{Level: "debug", Format: "console"},
		Providers: []Provider{
			{Name: "openai", Type: "openai", BaseURL: "https://api.openai.com/v1", APIKey: "env://OPENAI_API_KEY", Models: []string{"gpt-4o", "gpt-4o-mini"}, MaxConns: 8, ConnWait: DefaultConnWait, DialTimeout: 250 * time.Millisecond},
			{Name: "local", Type: "openai", BaseURL: "http://localhost:8000", APIKey: "file:///run/secrets/local", MaxConns: DefaultMaxConns, ConnWait: DefaultConnWait, DialTimeout: DefaultDialTimeout},
		},
		Routing: Routing{DefaultProvider: "local"},
		Callers: []Caller{
			{Name: "app", TokenSHA256: "e0462a38da76cf9d76265131d0574db09d038e611e9af445c145672c2e26f9ba", Suppliers: []string{"*"}},
			{Name: "worker.v2", Token: "vault://secret/apps/worker#token", Suppliers: []string{"*"}},
		},
	}
	want.applyKeyDefaults()
	want.applyUsageDefaults()
	want.applyTierDefaults()
	want.applyAlertDefaults()
	want.applyCacheDefaults()
	want.applySimilarityDefaults()
	want.applyTracingDefaults()
	// Compare the exported fields only.
	got := *c
	got.source, got.lines, got.envs = "", nil, nil
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("Parse() =\n%+v\nwant\n%+v", &got, want)
	}

	p, ok := c.Provider("local")
	if !ok || p != &c.Providers[1] {
		t.Errorf("Provider(%q) = %p, %v; want &Providers[1]", "local", p, ok)
	}
	if p, ok := c.Provider("missing"); ok || p != nil {
		t.Errorf("Provider(%q) = %v, %v; want nil, false", "missing", p, ok)
	}
}

func TestParseEnvOverrides(t *testing.T) {
	doc := okProviders + okCallers + `listen:
  proxy: 127.0.0.1:8080
  admin: 127.0.0.1:9090
log:
  level: info
  format: json
`
	tests := []struct {
		name string
		env  map[string]string
		want func(c *Config) (got, want any)
	}{
		{"proxy listen", map[string]string{EnvProxyListen: "127.0.0.1:18080"}, func(c *Config) (any, any) { return c.Listen.Proxy, "127.0.0.1:18080" }},
		{"admin listen", map[string]string{EnvAdminListen: "[::1]:19090"}, func(c *Config) (any, any) { return c.Listen.Admin, "[::1]:19090" }},
		{"log level is lowercased", map[string]string{EnvLogLevel: "WARN"}, func(c *Config) (any, any) { return c.Log.Level, "warn" }},
		{"log format", map[string]string{EnvLogFormat: "console"}, func(c *Config) (any, any) { return c.Log.Format, "console" }},
		{"empty value is ignored", map[string]string{EnvProxyListen: ""}, func(c *Config) (any, any) { return c.Listen.Proxy, "127.0.0.1:8080" }},
		{"unrelated variable", map[string]string{"VEIL_OTHER": "x"}, func(c *Config) (any, any) { return c.Listen.Proxy, "127.0.0.1:8080" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseWithEnv([]byte(doc), "veil.yaml", envMap(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tt.want(c); got != want {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}

	t.Run("nil lookup", func(t *testing.T) {
		if _, err := ParseWithEnv([]byte(doc), "veil.yaml", nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("override applies without the section in the file", func(t *testing.T) {
		c, err := ParseWithEnv([]byte(okProviders+okCallers), "veil.yaml", envMap(map[string]string{EnvProxyListen: ":8080"}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Listen.Proxy != ":8080" {
			t.Errorf("Listen.Proxy = %q, want :8080", c.Listen.Proxy)
		}
	})
}

func TestParseDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []wantErr
	}{
		{
			name: "unknown top-level field",
			doc:  okProviders + okCallers + "listner:\n  proxy: :8080\n",
			want: []wantErr{{field: "listner", at: "listner:", msg: "unknown field; valid fields of the top level are: admin, alerts, aliases, audit, cache, callers, comparisons, jwt, keys, limits, listen, log, prices, providers, regions, routes, routing, seasons, store, suppliers, tiers, tracing, usage, vault"}},
		},
		{
			name: "unknown provider field",
			doc: okCallers + `providers:
  - name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
    apikey: env://K
`,
			want: []wantErr{{field: "providers[0].apikey", at: "apikey:", msg: "unknown field; valid fields of providers[0] are: anthropic, api_key, api_keys, azure, base_url"}},
		},
		{
			name: "unknown fields everywhere are all reported",
			doc: okProviders + okCallers + `limits:
  max_body: 1
log:
  colour: true
`,
			want: []wantErr{
				{field: "limits.max_body", at: "max_body:", msg: "unknown field"},
				{field: "log.colour", at: "colour:", msg: "unknown field"},
			},
		},
		{
			name: "duplicate field",
			doc:  okProviders + okCallers + "log:\n  level: info\n  level: debug\n",
			want: []wantErr{{field: "log.level", at: "level: debug", msg: "duplicate field, first set on line 11"}},
		},
		{
			name: "duration without unit",
			doc:  okProviders + okCallers + "limits:\n  read_timeout: 30\n",
			want: []wantErr{{field: "limits.read_timeout", at: "read_timeout", msg: `duration 30 has no unit: use a Go duration such as "30s"`}},
		},
		{
			name: "duration float",
			doc:  okProviders + okCallers + "limits:\n  idle_timeout: 1.5\n",
			want: []wantErr{{field: "limits.idle_timeout", at: "idle_timeout", msg: "duration 1.5 has no unit"}},
		},
		{
			name: "duration malformed",
			doc:  okProviders + okCallers + "limits:\n  request_timeout: 10 minutes\n",
			want: []wantErr{{field: "limits.request_timeout", at: "request_timeout", msg: `invalid duration "10 minutes"`}},
		},
		{
			name: "duration quoted number",
			doc:  okProviders + okCallers + "limits:\n  request_timeout: \"10\"\n",
			want: []wantErr{{field: "limits.request_timeout", at: "request_timeout", msg: `invalid duration "10"`}},
		},
		{
			name: "duration list",
			doc:  okProviders + okCallers + "limits:\n  stream_idle_timeout: [1s]\n",
			want: []wantErr{{field: "limits.stream_idle_timeout", at: "stream_idle_timeout", msg: "must be a duration, not a list"}},
		},
		{
			name: "provider duration",
			doc: okCallers + `providers:
  - name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
    dial_timeout: 5
`,
			want: []wantErr{{field: "providers[0].dial_timeout", at: "dial_timeout", msg: "has no unit"}},
		},
		{
			name: "provider proxy not http",
			doc: okCallers + `providers:
  - name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
    proxy_url: socks5://egress:1080
`,
			want: []wantErr{{field: "providers[0].proxy_url", at: "proxy_url", msg: "must be an http:// proxy URL"}},
		},
		{
			name: "size as string",
			doc:  okProviders + okCallers + "limits:\n  max_body_bytes: 32MiB\n",
			want: []wantErr{{field: "limits.max_body_bytes", at: "max_body_bytes", msg: "must be an integer, not a string"}},
		},
		{
			name: "size as float",
			doc:  okProviders + okCallers + "limits:\n  max_body_bytes: 1.5\n",
			want: []wantErr{{field: "limits.max_body_bytes", at: "max_body_bytes", msg: "must be an integer, not a number"}},
		},
		{
			name: "size out of range",
			doc:  okProviders + okCallers + "limits:\n  max_body_bytes: 99999999999999999999999\n",
			want: []wantErr{{field: "limits.max_body_bytes", at: "max_body_bytes", msg: "integer 99999999999999999999999 is out of range"}},
		},
		{
			name: "string given a mapping",
			doc:  okProviders + okCallers + "listen:\n  proxy:\n    host: x\n",
			want: []wantErr{{field: "listen.proxy", at: "host: x", msg: "must be a string, not a mapping"}},
		},
		{
			name: "section given a scalar",
			doc:  okProviders + okCallers + "limits: 5\n",
			want: []wantErr{{field: "limits", at: "limits:", msg: "must be a mapping, not an integer"}},
		},
		{
			name: "list given a mapping",
			doc:  okCallers + "providers:\n  name: a\n",
			want: []wantErr{{field: "providers", at: "name: a\n", msg: "must be a list, not a mapping"}},
		},
		{
			name: "models given a string",
			doc: okCallers + `providers:
  - name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
    models: gpt-4o
`,
			want: []wantErr{{field: "providers[0].models", at: "models:", msg: "must be a list, not a string"}},
		},
		{
			name: "top level list",
			doc:  "- a\n- b\n",
			want: []wantErr{{at: "- a", msg: "must be a mapping, not a list"}},
		},
		{
			name: "multiple documents",
			doc:  okProviders + okCallers + "---\nlog: {}\n",
			want: []wantErr{{at: "---", msg: "multiple YAML documents are not supported"}},
		},
		{
			name: "merge key with unknown field",
			doc: okCallers + `providers:
  - &base
    name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
  - <<: *base
    name: b
    color: blue
`,
			want: []wantErr{{field: "providers[1].color", at: "color", msg: "unknown field"}},
		},
		{
			name: "self-referencing alias",
			doc:  okCallers + "providers: &p\n  - *p\n",
			want: []wantErr{{field: "providers[0]", at: "- *p", msg: "must be a mapping, not a list"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(tt.doc), "veil.yaml", noEnv)
			checkErrors(t, tt.doc, err, tt.want)
		})
	}
}

// TestParseSyntaxErrors checks YAML syntax errors. yaml.v3 reports the
// line of some parser errors one too low, so the line is checked loosely.
func TestParseSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		at   string
		msg  string
	}{
		{"unclosed flow list", okProviders + okCallers + "log:\n  level: [info\n", "level: [info", "did not find expected ',' or ']'"},
		{"tab indentation", okProviders + "callers:\n\t- name: a\n", "\t", "found character that cannot start any token"},
		{"bad indentation", okProviders + okCallers + "log:\n  level: info\n format: json\n", " format", "did not find expected key"},
		{"mapping in scalar", okProviders + okCallers + "log:\n  level: a: b\n", "level: a: b", "mapping values are not allowed in this context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(tt.doc), "veil.yaml", noEnv)
			errs := fieldErrors(t, err)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), err)
			}
			fe := errs[0]
			line := lineOf(t, tt.doc, tt.at)
			if fe.Source != "veil.yaml" || fe.Line < line-1 || fe.Line > line || !strings.HasPrefix(fe.Msg, "invalid YAML: "+tt.msg) {
				t.Errorf("error = %+v, want line %d (or one less) and message %q", fe, line, "invalid YAML: "+tt.msg)
			}
		})
	}
}

func TestParseAnchorsAndMerges(t *testing.T) {
	doc := okCallers + `providers:
  - &base
    name: a
    type: openai
    base_url: https://api.openai.com/v1
    api_key: env://K
    dial_timeout: 3s
  - <<: *base
    name: b
    api_key: env://K2
`
	c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	b := c.Providers[1]
	if b.Name != "b" || b.Type != "openai" || b.APIKey != "env://K2" || b.DialTimeout != 3*time.Second {
		t.Errorf("merged provider = %+v", b)
	}
}

func TestParseEmptyDocuments(t *testing.T) {
	for _, doc := range []string{"", "\n", "# only a comment\n", "---\n", "null\n", "~\n"} {
		t.Run(doc, func(t *testing.T) {
			_, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
			checkErrors(t, doc, err, []wantErr{
				{field: "providers", msg: "at least one provider is required"},
				{field: "callers", msg: "at least one caller is required"},
			})
		})
	}
}

func TestParseNullSectionsTakeDefaults(t *testing.T) {
	doc := okProviders + okCallers + "listen:\nlimits: ~\nlog: null\n"
	c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if d := Default(); c.Listen != d.Listen || !reflect.DeepEqual(c.Limits, d.Limits) || c.Log != d.Log {
		t.Errorf("null sections did not take defaults: %+v", c)
	}
}

func TestParseExcessiveAliasing(t *testing.T) {
	// Every provider refers to the same mapping whose models list is made
	// of aliases too; walking it naively visits providers×models nodes.
	var b strings.Builder
	b.WriteString(okCallers)
	b.WriteString("providers:\n  - &p\n    name: a\n    type: openai\n    base_url: https://x.example\n    api_key: env://K\n    models: [&m m")
	for range 3000 {
		b.WriteString(", *m")
	}
	b.WriteString("]\n")
	for range 3000 {
		b.WriteString("  - *p\n")
	}
	_, err := ParseWithEnv([]byte(b.String()), "veil.yaml", noEnv)
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
		t.Fatalf("err = %v, want excessive aliasing", err)
	}
	fieldErrors(t, err)
}

func TestLoad(t *testing.T) {
	t.Setenv(EnvProxyListen, "127.0.0.1:18080")
	t.Setenv(EnvAdminListen, "")
	t.Setenv(EnvLogLevel, "")
	t.Setenv(EnvLogFormat, "")

	dir := t.TempDir()
	good := filepath.Join(dir, "veil.yaml")
	if err := os.WriteFile(good, []byte(okProviders+okCallers), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(okProviders+okCallers+"log:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("ok with process environment", func(t *testing.T) {
		c, err := Load(good)
		if err != nil {
			t.Fatal(err)
		}
		if c.Listen.Proxy != "127.0.0.1:18080" {
			t.Errorf("Listen.Proxy = %q, want the %s override", c.Listen.Proxy, EnvProxyListen)
		}
	})
	t.Run("invalid names the file and line", func(t *testing.T) {
		_, err := Load(bad)
		want := bad + ":11: log.level: must be one of"
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("err = %v, want prefix %q", err, want)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "missing.yaml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestMarshalRoundTrip(t *testing.T) {
	c, err := ParseWithEnv([]byte(okProviders+okCallers), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseWithEnv(data, "marshaled.yaml", noEnv)
	if err != nil {
		t.Fatalf("re-parsing marshaled config: %v\n%s", err, data)
	}
	data2, err := yaml.Marshal(c2)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(data2) {
		t.Errorf("round trip changed the config:\n%s\n%s", data, data2)
	}
	if !strings.Contains(string(data), "read_timeout: 30s") {
		t.Errorf("durations are not marshaled as duration strings:\n%s", data)
	}
}

// TestSyntaxErrorAtItsLine: an indentation slip inside a list is reported
// at the line that slipped, not where the list began, with a hint.
func TestSyntaxErrorAtItsLine(t *testing.T) {
	doc := `providers:
  - name: openai
    type: openai
   base_url: https://api.openai.com/v1
    api_key: env://OPENAI_API_KEY
` + okCallers
	_, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	errs := fieldErrors(t, err)
	if len(errs) != 1 || errs[0].Line != 4 || !strings.Contains(errs[0].Msg, "indentation") {
		t.Fatalf("got %v, want one error at line 4 about indentation", err)
	}
}

// TestAllMistakesAtOnce: schema mistakes (an unknown field, a value of the
// wrong type) and validation mistakes (an unknown provider type, a caller
// without scope) are reported together, in line order, so one pass
// fixes them all; a field whose value was refused is not reported again.
func TestAllMistakesAtOnce(t *testing.T) {
	doc := `providers:
  - name: openai
    type: openia
    base_url: https://api.openai.com/v1
    api_key: env://OPENAI_API_KEY
    timeout: fast
callers:
  - name: app
    token: env://T
limits:
  max_in_flight: many
`
	_, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	checkErrors(t, doc, err, []wantErr{
		{field: "providers[0].type", at: "type: openia", msg: "unsupported provider type"},
		{field: "providers[0].timeout", at: "timeout: fast", msg: "unknown field"},
		{field: "callers[0].suppliers", at: "- name: app", msg: "is required"},
		{field: "limits.max_in_flight", at: "max_in_flight: many", msg: "must be an integer"},
	})
}
