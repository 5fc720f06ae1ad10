package config

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Provider types: the wire protocols veil speaks to upstreams.
const (
	// ProviderTypeAzure is Azure OpenAI: OpenAI's schema under
	// /openai/deployments/{deployment}, an api-version query parameter and
	// the api-key header.
	ProviderTypeAzure = "azure"
	// ProviderTypeAnthropic is Anthropic's Messages API; veil translates
	// chat completions to it and its answers back.
	ProviderTypeAnthropic = "anthropic"
	// ProviderTypeOpenAICompat is any server that speaks OpenAI's API
	// (vLLM, Ollama, Groq, Together), with its quirks configured in
	// Provider.Compat.
	ProviderTypeOpenAICompat = "openaicompat"
)

// Defaults of the provider-specific settings.
const (
	// DefaultAnthropicVersion is the anthropic-version header sent.
	DefaultAnthropicVersion = "2023-06-01"
	// DefaultAnthropicMaxTokens is the max_tokens sent to Anthropic, which
	// requires one, when the client asked for none.
	DefaultAnthropicMaxTokens = 4096
	// DefaultCompatAuth sends keys as Authorization: Bearer.
	DefaultCompatAuth = "bearer"
)

// Azure holds the settings of an Azure OpenAI provider.
type Azure struct {
	// APIVersion is the api-version query parameter, YYYY-MM-DD with an
	// optional -preview suffix; required.
	APIVersion string `yaml:"api_version"`
	// Deployments maps the model a client asks for to the Azure deployment
	// that serves it. A model without an entry is sent to the deployment
	// of the same name.
	Deployments map[string]string `yaml:"deployments"`
}

// Anthropic holds the settings of an Anthropic Messages API provider.
type Anthropic struct {
	// Version is the anthropic-version header. Default 2023-06-01.
	Version string `yaml:"version"`
	// MaxTokens is the max_tokens sent when the client set neither
	// max_tokens nor max_completion_tokens. Default 4096.
	MaxTokens int `yaml:"max_tokens"`
}

// Compat holds the quirks of an OpenAI-compatible server.
type Compat struct {
	// StreamUsage says whether the server accepts stream_options
	// (include_usage). When false veil never sends stream_options, and a
	// client's own stream_options is removed; streams then report usage
	// only if the server sends it unasked. Default true.
	StreamUsage *bool `yaml:"stream_usage"`
	// MaxTokensField renames max_completion_tokens to this field for
	// servers that only know the older max_tokens; empty sends it as it
	// came.
	MaxTokensField string `yaml:"max_tokens_field"`
	// DropFields lists top-level request fields the server rejects; they
	// are removed before the request goes out. Fields that change the
	// answer (n, tools, response_format, logprobs, ...) cannot be listed.
	DropFields []string `yaml:"drop_fields"`
	// Auth is how the key is sent: "bearer" (Authorization: Bearer, the
	// default), "api-key" (an api-key header) or "none" (no credential,
	// for local servers such as Ollama).
	Auth string `yaml:"auth"`
}

// StreamOptions reports whether stream_options may be sent.
func (c Compat) StreamOptions() bool { return c.StreamUsage == nil || *c.StreamUsage }

// providerTypes lists the values accepted in Provider.Type.
var providerTypes = []string{ProviderTypeOpenAI, ProviderTypeAzure, ProviderTypeAnthropic, ProviderTypeOpenAICompat}

// SupportedProviderTypes returns the values accepted in Provider.Type.
func SupportedProviderTypes() []string {
	return slices.Clone(providerTypes)
}

// NeedsKey reports whether the provider sends a credential, and so needs a
// platform key (or suppliers' own keys).
func (p *Provider) NeedsKey() bool {
	return p.Type != ProviderTypeOpenAICompat || p.Compat == nil || p.Compat.Auth != "none"
}

func (p *Provider) applyDefaults() {
	p.BaseURL = trimTrailingSlashes(p.BaseURL)
	setInt(&p.MaxConns, DefaultMaxConns)
	setDuration(&p.DialTimeout, DefaultDialTimeout)
	setDuration(&p.ConnWait, DefaultConnWait)
	switch p.Type {
	case ProviderTypeAnthropic:
		if p.Anthropic == nil {
			p.Anthropic = &Anthropic{}
		}
		setDefault(&p.Anthropic.Version, DefaultAnthropicVersion)
		setInt(&p.Anthropic.MaxTokens, DefaultAnthropicMaxTokens)
	case ProviderTypeOpenAICompat:
		if p.Compat == nil {
			p.Compat = &Compat{}
		}
		p.Compat.Auth = strings.ToLower(p.Compat.Auth)
		setDefault(&p.Compat.Auth, DefaultCompatAuth)
	}
}

var (
	azureAPIVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)
	// azureDeployment is what Azure accepts as a deployment name.
	azureDeployment = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	jsonFieldName   = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,63}$`)
)

// answerFields are request fields that change what the model answers;
// dropping them would silently change the answer.
var answerFields = []string{"model", "messages", "prompt", "input", "n", "tools", "tool_choice", "functions",
	"function_call", "response_format", "logprobs", "top_logprobs", "stop", "max_tokens", "max_completion_tokens",
	"stream", "seed", "temperature", "top_p"}

// providerSpecific checks the settings of the provider's type, and that
// settings of other types are absent.
func (v *validator) providerSpecific(path string, p *Provider) {
	if p.Azure != nil && p.Type != ProviderTypeAzure {
		v.fail(path+".azure", "is only for type %s, not %q", ProviderTypeAzure, p.Type)
	}
	if p.Anthropic != nil && p.Type != ProviderTypeAnthropic {
		v.fail(path+".anthropic", "is only for type %s, not %q", ProviderTypeAnthropic, p.Type)
	}
	if p.Compat != nil && p.Type != ProviderTypeOpenAICompat {
		v.fail(path+".compat", "is only for type %s, not %q", ProviderTypeOpenAICompat, p.Type)
	}
	from := make([]string, 0, len(p.ModelMap))
	for m := range p.ModelMap {
		from = append(from, m)
	}
	sort.Strings(from)
	for _, m := range from {
		to := p.ModelMap[m]
		switch {
		case m == "" || strings.ContainsFunc(m, isSpaceOrControl):
			v.fail(path+".model_map", "model %q must be non-empty, without whitespace or control characters", m)
		case to == "" || strings.ContainsFunc(to, isSpaceOrControl):
			v.fail(path+".model_map."+m, "model %q must be non-empty, without whitespace or control characters", to)
		}
	}
	switch p.Type {
	case ProviderTypeAzure:
		if p.Azure == nil || p.Azure.APIVersion == "" {
			v.fail(path+".azure.api_version", "is required for type azure, for example 2024-10-21")
			return
		}
		if !azureAPIVersion.MatchString(p.Azure.APIVersion) {
			v.fail(path+".azure.api_version", "%q must look like 2024-10-21 or 2025-04-01-preview", p.Azure.APIVersion)
		}
		models := make([]string, 0, len(p.Azure.Deployments))
		for m := range p.Azure.Deployments {
			models = append(models, m)
		}
		sort.Strings(models)
		for _, m := range models {
			if d := p.Azure.Deployments[m]; !azureDeployment.MatchString(d) {
				v.fail(path+".azure.deployments."+m, "deployment %q must be 1 to 64 characters of letters, digits, '.', '_' and '-'", d)
			}
		}
	case ProviderTypeAnthropic:
		if a := p.Anthropic; a != nil {
			if a.MaxTokens <= 0 {
				v.fail(path+".anthropic.max_tokens", "must be positive, got %d", a.MaxTokens)
			}
			if strings.ContainsFunc(a.Version, isSpaceOrControl) {
				v.fail(path+".anthropic.version", "%q must not contain whitespace or control characters", a.Version)
			}
		}
	case ProviderTypeOpenAICompat:
		c := p.Compat
		if c == nil {
			return
		}
		switch c.Auth {
		case "bearer", "api-key", "none":
		default:
			v.fail(path+".compat.auth", "%q is not one of bearer, api-key, none", c.Auth)
		}
		if c.MaxTokensField != "" && c.MaxTokensField != "max_tokens" {
			v.fail(path+".compat.max_tokens_field", "%q: only max_tokens is supported", c.MaxTokensField)
		}
		for i, f := range c.DropFields {
			fp := fmt.Sprintf("%s.compat.drop_fields[%d]", path, i)
			switch {
			case !jsonFieldName.MatchString(f):
				v.fail(fp, "%q is not a request field name", f)
			case slices.Contains(answerFields, f):
				v.fail(fp, "%q changes the answer and cannot be dropped", f)
			}
		}
	}
}
