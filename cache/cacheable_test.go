package cache

import "testing"

func TestCacheable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  Request
		want bool
	}{
		{"embeddings", Request{Endpoint: EndpointEmbeddings}, true},
		{"embeddings ignore sampling", Request{Endpoint: EndpointEmbeddings, Temperature: []byte("1"), N: 3}, true},
		{"chat temperature 0", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("0")}, true},
		{"chat temperature 0.0", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("0.0")}, true},
		{"chat temperature 0e5", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("0e5")}, true},
		{"chat temperature -0", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("-0")}, true},
		{"chat temperature -0.000E-3", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("-0.000E-3")}, true},
		{"chat temperature with spaces", Request{Endpoint: EndpointChatCompletions, Temperature: []byte(" 0 ")}, true},
		{"chat temperature 0.1", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("0.1")}, false},
		{"chat temperature 1e-9", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("1e-9")}, false},
		{"chat temperature string", Request{Endpoint: EndpointChatCompletions, Temperature: []byte(`"0"`)}, false},
		{"chat temperature null", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("null")}, false},
		{"chat temperature invalid 00", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("00")}, false},
		{"chat temperature invalid 0.", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("0.")}, false},
		{"chat temperature invalid .0", Request{Endpoint: EndpointChatCompletions, Temperature: []byte(".0")}, false},
		{"chat temperature invalid trailing", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("0x")}, false},
		{"chat temperature absent", Request{Endpoint: EndpointChatCompletions}, false},
		{"chat seed", Request{Endpoint: EndpointChatCompletions, Seed: []byte("42")}, true},
		{"chat seed with temperature", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("0.7"), Seed: []byte("42")}, true},
		{"chat seed null", Request{Endpoint: EndpointChatCompletions, Seed: []byte("null")}, false},
		{"chat seed blank", Request{Endpoint: EndpointChatCompletions, Seed: []byte("  ")}, false},
		{"chat n 1", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("0"), N: 1}, true},
		{"chat n 2", Request{Endpoint: EndpointChatCompletions, Temperature: []byte("0"), N: 2}, false},
		{"chat n negative", Request{Endpoint: EndpointChatCompletions, Seed: []byte("1"), N: -1}, false},
		{"completions temperature 0", Request{Endpoint: EndpointCompletions, Temperature: []byte("0")}, true},
		{"completions n 3", Request{Endpoint: EndpointCompletions, Seed: []byte("7"), N: 3}, false},
		{"completions default", Request{Endpoint: EndpointCompletions}, false},
		{"responses", Request{Endpoint: EndpointResponses, Temperature: []byte("0")}, false},
		{"unknown endpoint", Request{Endpoint: "models"}, false},
		{"empty endpoint", Request{Temperature: []byte("0")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Cacheable(tt.req); got != tt.want {
				t.Errorf("Cacheable(%+v) = %v, want %v", tt.req, got, tt.want)
			}
		})
	}
}
