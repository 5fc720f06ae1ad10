package proxy

import "bytes"

// endpoint is what veil understands about an OpenAI path.
type endpoint struct {
	// name is the metric and log label.
	name string
	// understood endpoints are parsed (model, stream) and planned by model.
	understood bool
	// needsModel endpoints answer 400 without a model.
	needsModel bool
	// streams endpoints may answer with SSE when the body says stream.
	streams bool
	// usageOption endpoints report stream usage only when asked with
	// stream_options.include_usage.
	usageOption bool
}

var (
	epChat        = endpoint{name: "chat_completions", understood: true, needsModel: true, streams: true, usageOption: true}
	epCompletions = endpoint{name: "completions", understood: true, needsModel: true, streams: true, usageOption: true}
	epEmbeddings  = endpoint{name: "embeddings", understood: true, needsModel: true}
	epResponses   = endpoint{name: "responses", understood: true, needsModel: true, streams: true}
	epModels      = endpoint{name: "models"}
	epOther       = endpoint{name: "other"}
)

// classify maps a method and the path after "/v1" to an endpoint.
func classify(method, suffix []byte) endpoint {
	post := string(method) == "POST"
	switch string(suffix) {
	case "/chat/completions":
		if post {
			return epChat
		}
	case "/completions":
		if post {
			return epCompletions
		}
	case "/embeddings":
		if post {
			return epEmbeddings
		}
	case "/responses":
		if post {
			return epResponses
		}
	case "/models":
		if string(method) == "GET" {
			return epModels
		}
	}
	if string(method) == "GET" && bytes.HasPrefix(suffix, []byte("/models/")) {
		return epModels
	}
	return epOther
}
