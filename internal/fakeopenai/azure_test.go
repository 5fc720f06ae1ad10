package fakeopenai

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

const azureVersion = "2024-10-21"

// azureAuth are the headers an Azure OpenAI client sends, replacing the
// bearer key of do.
var azureAuth = []string{"Authorization", "", "Api-Key", testKey}

// azureURL returns the URL of the Azure operation op of deployment dep.
func azureURL(s *Server, dep, op string) string {
	return "http://" + s.Addr() + "/openai/deployments/" + dep + "/" + op + "?api-version=" + azureVersion
}

// postAzure posts body to url with an api-key; header adds to or overrides
// the headers as for do.
func postAzure(t testing.TB, hc *http.Client, url, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return do(t, hc, http.MethodPost, url, body, append(azureAuth[:len(azureAuth):len(azureAuth)], header...)...)
}

// gatewayEnvelope is Azure's gateway error envelope.
type gatewayEnvelope struct {
	Error map[string]any `json:"error"`
}

// checkGateway checks that body is Azure's {"error":{"code","message"}}
// envelope with code and a message containing message.
func checkGateway(t testing.TB, body []byte, code, message string) {
	t.Helper()
	var e gatewayEnvelope
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if len(e.Error) != 2 || e.Error["code"] != code || !strings.Contains(e.Error["message"].(string), message) {
		t.Errorf("error %s, want code %s and message containing %q", body, code, message)
	}
}

func TestAzureChat(t *testing.T) {
	s := startServer(t, Options{Keys: []string{testKey}, AzureDeployments: map[string]string{"prod-chat": "gpt-4o", "embed": "text-embedding-3-small"}})
	hc := httpClient(t)
	resp, body := postAzure(t, hc, azureURL(s, "prod-chat", "chat/completions"), `{"model":"ignored","messages":[{"role":"user","content":"hello"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got struct {
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			ContentFilterResults map[string]struct {
				Filtered bool   `json:"filtered"`
				Severity string `json:"severity"`
			} `json:"content_filter_results"`
		} `json:"choices"`
		PromptFilterResults []struct {
			PromptIndex          int            `json:"prompt_index"`
			ContentFilterResults map[string]any `json:"content_filter_results"`
		} `json:"prompt_filter_results"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Object != "chat.completion" || got.Model != "gpt-4o" || len(got.Choices) != 1 || got.Choices[0].Message.Content == "" {
		t.Errorf("answer %s", body)
	}
	if got.Choices[0].ContentFilterResults["hate"].Severity != "safe" || len(got.PromptFilterResults) != 1 ||
		got.PromptFilterResults[0].ContentFilterResults["jailbreak"] == nil {
		t.Errorf("filter results %s", body)
	}
	for _, h := range []string{"Apim-Request-Id", "X-Request-Id", "X-Ms-Region", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Remaining-Tokens"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header: %v", h, resp.Header)
		}
	}
	if resp.Header.Get("Openai-Organization") != "" {
		t.Errorf("OpenAI headers on an Azure answer: %v", resp.Header)
	}

	t.Run("embeddings", func(t *testing.T) {
		resp, body := postAzure(t, hc, azureURL(s, "embed", "embeddings"), `{"input":"hello"}`)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"model":"text-embedding-3-small"`) {
			t.Errorf("status %d: %.200s", resp.StatusCode, body)
		}
	})
}

func TestAzureStream(t *testing.T) {
	s := startServer(t, Options{})
	resp, body := postAzure(t, httpClient(t), azureURL(s, "gpt-4o-mini", "chat/completions"),
		`{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}`)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || resp.Header.Get("Apim-Request-Id") == "" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	data := sseData(body)
	if len(data) < 4 || data[len(data)-1] != "[DONE]" {
		t.Fatalf("stream %s", body)
	}
	var first struct {
		Choices             []any  `json:"choices"`
		Model               string `json:"model"`
		PromptFilterResults []any  `json:"prompt_filter_results"`
	}
	if err := json.Unmarshal([]byte(data[0]), &first); err != nil || first.Choices == nil || len(first.Choices) != 0 ||
		first.Model != "" || len(first.PromptFilterResults) != 1 {
		t.Errorf("first chunk %s: %v", data[0], err)
	}
	text := ""
	for _, d := range data[1 : len(data)-1] {
		var chunk struct {
			Model   string `json:"model"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				ContentFilterResults map[string]any `json:"content_filter_results"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(d), &chunk); err != nil || chunk.Model != "gpt-4o-mini" {
			t.Fatalf("chunk %s: %v", d, err)
		}
		for _, c := range chunk.Choices {
			if c.ContentFilterResults == nil {
				t.Errorf("chunk %s has no content_filter_results", d)
			}
			text += c.Delta.Content
		}
	}
	if text == "" {
		t.Errorf("no text streamed: %s", body)
	}
}

func TestAzureErrors(t *testing.T) {
	s := startServer(t, Options{Keys: []string{testKey}})
	hc := httpClient(t)
	chat := `{"messages":[{"role":"user","content":"hello"}]}`
	base := "http://" + s.Addr() + "/openai/deployments/gpt-4o/chat/completions"
	tests := []struct {
		name    string
		url     string
		header  []string
		status  int
		code    string
		message string
	}{
		{name: "bearer token", url: base + "?api-version=" + azureVersion, header: []string{"Api-Key", "", "Authorization", "Bearer " + testKey}, status: 200},
		{name: "preview version", url: base + "?api-version=2025-04-01-preview", status: 200},
		{name: "no key", url: base + "?api-version=" + azureVersion, header: []string{"Api-Key", ""}, status: 401, code: "401", message: "Access denied"},
		{name: "wrong key", url: base + "?api-version=" + azureVersion, header: []string{"Api-Key", "wrong"}, status: 401, code: "401", message: "invalid subscription key"},
		{name: "missing api-version", url: base, status: 404, code: "404", message: "Resource not found"},
		{name: "malformed api-version", url: base + "?api-version=v1", status: 404, code: "404", message: "Resource not found"},
		{name: "unknown operation", url: "http://" + s.Addr() + "/openai/deployments/gpt-4o/images/generations?api-version=" + azureVersion,
			status: 404, code: "404", message: "Resource not found"},
		{name: "unknown deployment", url: "http://" + s.Addr() + "/openai/deployments/nope/chat/completions?api-version=" + azureVersion,
			status: 404, code: "DeploymentNotFound", message: "The API deployment for this resource does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := postAzure(t, hc, tt.url, chat, tt.header...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.code != "" {
				checkGateway(t, body, tt.code, tt.message)
			}
		})
	}
	t.Run("validation stays OpenAI's", func(t *testing.T) {
		resp, body := postAzure(t, hc, base+"?api-version="+azureVersion, `{"messages":[]}`)
		if e := decodeEnvelope(t, body); resp.StatusCode != 400 || e.Error.Type != "invalid_request_error" {
			t.Errorf("status %d: %s", resp.StatusCode, body)
		}
	})
}

func TestAzureFaults(t *testing.T) {
	chat := `{"messages":[{"role":"user","content":"hello"}]}`
	tests := []struct {
		name   string
		fault  Fault
		status int
		code   string
		check  func(t *testing.T, resp *http.Response)
	}{
		{name: "rate limit", fault: RateLimit(1500 * time.Millisecond).OnPath("/openai/*"), status: 429, code: "429",
			check: func(t *testing.T, resp *http.Response) {
				if resp.Header.Get("Retry-After") != "2" || resp.Header.Get("Retry-After-Ms") != "1500" ||
					resp.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
					t.Errorf("headers %v", resp.Header)
				}
			}},
		{name: "status 429", fault: Status(429, 1), status: 429, code: "429",
			check: func(t *testing.T, resp *http.Response) {
				if resp.Header.Get("Retry-After") != "1" {
					t.Errorf("headers %v", resp.Header)
				}
			}},
		{name: "server error", fault: Status(500, 1).OnPath("/openai/deployments/gpt-4o/chat/completions"), status: 500, code: "InternalServerError"},
		{name: "unavailable", fault: Status(503, 1), status: 503, code: "ServiceUnavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{})
			s.Script(tt.fault)
			resp, body := postAzure(t, httpClient(t), azureURL(s, "gpt-4o", "chat/completions"), chat)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			message := ""
			if tt.status == 429 {
				message = "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version " + azureVersion +
					" have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after " + resp.Header.Get("Retry-After") + " seconds."
			}
			checkGateway(t, body, tt.code, message)
			if tt.check != nil {
				tt.check(t, resp)
			}
			if st := s.Stats(); st.Faults != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestAzureModels(t *testing.T) {
	s := startServer(t, Options{Models: []string{"gpt-4o", "text-embedding-3-small"}})
	resp, body := do(t, httpClient(t), http.MethodGet, "http://"+s.Addr()+"/openai/models?api-version="+azureVersion, "", azureAuth...)
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID           string          `json:"id"`
			Status       string          `json:"status"`
			Capabilities map[string]bool `json:"capabilities"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != 200 || list.Object != "list" || len(list.Data) != 2 {
		t.Fatalf("status %d: %s (%v)", resp.StatusCode, body, err)
	}
	if !list.Data[0].Capabilities["chat_completion"] || !list.Data[1].Capabilities["embeddings"] || list.Data[0].Status != "succeeded" {
		t.Errorf("models %s", body)
	}
}
