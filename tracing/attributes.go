package tracing

import "go.opentelemetry.io/otel/attribute"

// Attributes of the OpenTelemetry GenAI semantic conventions (v1.37) that
// veil's spans carry. gen_ai.system is the older name of
// gen_ai.provider.name; both are set for backends of either age.
const (
	GenAIOperationName         = attribute.Key("gen_ai.operation.name")
	GenAIProviderName          = attribute.Key("gen_ai.provider.name")
	GenAISystem                = attribute.Key("gen_ai.system")
	GenAIRequestModel          = attribute.Key("gen_ai.request.model")
	GenAIResponseModel         = attribute.Key("gen_ai.response.model")
	GenAIUsageInputTokens      = attribute.Key("gen_ai.usage.input_tokens")
	GenAIUsageOutputTokens     = attribute.Key("gen_ai.usage.output_tokens")
	GenAIResponseFinishReasons = attribute.Key("gen_ai.response.finish_reasons")
)

// Attributes of the HTTP and general semantic conventions.
const (
	HTTPRequestMethod      = attribute.Key("http.request.method")
	HTTPResponseStatusCode = attribute.Key("http.response.status_code")
	HTTPRoute              = attribute.Key("http.route")
	ErrorType              = attribute.Key("error.type")
)

// veil's own attributes. None carries a key, a token, a prompt or a
// completion.
const (
	// RequestID is veil's X-Request-Id of the request.
	RequestID = attribute.Key("veil.request_id")
	// SupplierID is the supplier the request was made for.
	SupplierID = attribute.Key("veil.supplier_id")
	// Caller is the configured name of the authenticated caller.
	Caller = attribute.Key("veil.caller")
	// KeySource is whose key served: platform or client.
	KeySource = attribute.Key("veil.key_source")
	// Cache is the response cache's verdict: hit, miss or bypass.
	Cache = attribute.Key("veil.cache")
	// Workflow is the request's X-Workflow as recorded.
	Workflow = attribute.Key("veil.workflow")
	// Provider is the configured name of the provider tried or served.
	Provider = attribute.Key("veil.provider")
	// Attempts is how many upstream attempts the request took.
	Attempts = attribute.Key("veil.attempts")
	// Failover is set when another target than the plan's first served.
	Failover = attribute.Key("veil.failover")
	// RouteReason says why the route left its plan's first target
	// (platform_fallback, stream_resumed).
	RouteReason = attribute.Key("veil.route_reason")
	// ErrorCode is veil's error code of a request it answered itself.
	ErrorCode = attribute.Key("veil.error_code")
	// Stream is set when the answer was streamed.
	Stream = attribute.Key("veil.stream")
	// StreamInterrupted says why a stream ended early.
	StreamInterrupted = attribute.Key("veil.stream_interrupted")
	// UpstreamRequestID is the provider's ID of its answer.
	UpstreamRequestID = attribute.Key("veil.upstream_request_id")
	// Attempt is an attempt's number in its request, from 1.
	Attempt = attribute.Key("veil.attempt")
	// AttemptOutcome says what followed an attempt: served, retried,
	// key_swapped, failed_over, resumed or failed.
	AttemptOutcome = attribute.Key("veil.attempt.outcome")
	// AttemptReason says why an attempt did not serve: veil's error code
	// (upstream_timeout, upstream_stream_error, ...) or what its status
	// means (key_refused, rate_limited, upstream_error).
	AttemptReason = attribute.Key("veil.attempt.reason")
	// Shadow is set on the span of a comparison's shadow call: the same
	// request sent to the other system, whose answer the app never sees.
	Shadow = attribute.Key("veil.shadow")
	// Comparison is the ID of the comparison or migration a shadow call
	// was made for.
	Comparison = attribute.Key("veil.comparison")
)

// ProviderName is the gen_ai.provider.name of a veil provider type: an
// OpenAI-compatible server speaks OpenAI's API, and is told apart by
// veil.provider and the models.
func ProviderName(providerType string) string {
	switch providerType {
	case "azure":
		return "azure.ai.openai"
	case "anthropic":
		return "anthropic"
	}
	return "openai"
}
