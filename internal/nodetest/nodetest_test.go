package nodetest_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/wedsync/veil/internal/fakeopenai"
	"github.com/wedsync/veil/internal/nodetest"
)

// startFake starts the fake upstream, which accepts only key, and closes
// it at the end of the test.
func startFake(t *testing.T, key string) *fakeopenai.Server {
	t.Helper()
	s := fakeopenai.New(fakeopenai.Options{Keys: []string{key}})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// lines splits the script's output into JSON lines.
func lines(t *testing.T, out []byte) [][]byte {
	t.Helper()
	var ls [][]byte
	for l := range bytes.Lines(bytes.TrimSpace(out)) {
		l = bytes.TrimSpace(l)
		if !json.Valid(l) {
			t.Fatalf("not a JSON line: %q", l)
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		t.Fatal("no output")
	}
	return ls
}

func TestModels(t *testing.T) {
	const key = "sk-node-models"
	s := startFake(t, key)
	out := nodetest.Run(t, nodetest.ModeModels, s.URL(), key, "bella-flowers")

	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("parsing %q: %v", out, err)
	}
	if list.Object != "list" || len(list.Data) != len(fakeopenai.DefaultModels) {
		t.Fatalf("got object %q with %d models, want a list of %d:\n%s",
			list.Object, len(list.Data), len(fakeopenai.DefaultModels), out)
	}
	for i, m := range list.Data {
		if m.Object != "model" || !slices.Contains(fakeopenai.DefaultModels, m.ID) {
			t.Errorf("model %d = %+v, want one of the fake's models", i, m)
		}
	}

	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != "GET" || r.Path != "/v1/models" {
		t.Errorf("request = %s %s, want GET /v1/models", r.Method, r.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+key {
		t.Errorf("Authorization = %q, want the key", got)
	}
	if got := r.Header.Get("X-Supplier-ID"); got != "bella-flowers" {
		t.Errorf("X-Supplier-ID = %q, want bella-flowers", got)
	}
}

func TestModes(t *testing.T) {
	const key = "sk-node-modes"
	s := startFake(t, key)

	t.Run("chat", func(t *testing.T) {
		out := nodetest.Run(t, nodetest.ModeChat, s.URL(), key, "")
		var c struct {
			Object  string `json:"object"`
			Choices []struct {
				Message struct {
					Role    string `json:"role"`
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
			Usage struct {
				TotalTokens int `json:"total_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(lines(t, out)[0], &c); err != nil {
			t.Fatal(err)
		}
		if c.Object != "chat.completion" || len(c.Choices) != 1 ||
			c.Choices[0].Message.Content == "" || c.Usage.TotalTokens == 0 {
			t.Fatalf("unexpected completion:\n%s", out)
		}
	})

	for _, mode := range []string{nodetest.ModeStream, nodetest.ModeStreamUsage} {
		t.Run(mode, func(t *testing.T) {
			out := nodetest.Run(t, mode, s.URL(), key, "")
			var content string
			usage := 0
			for _, l := range lines(t, out) {
				var c struct {
					Object  string `json:"object"`
					Choices []struct {
						Delta struct {
							Content string `json:"content"`
						} `json:"delta"`
					} `json:"choices"`
					Usage *struct {
						TotalTokens int `json:"total_tokens"`
					} `json:"usage"`
				}
				if err := json.Unmarshal(l, &c); err != nil {
					t.Fatal(err)
				}
				if c.Object != "chat.completion.chunk" {
					t.Fatalf("object = %q in %s", c.Object, l)
				}
				for _, ch := range c.Choices {
					content += ch.Delta.Content
				}
				if c.Usage != nil && c.Usage.TotalTokens > 0 {
					usage++
				}
			}
			wantUsage := 0
			if mode == nodetest.ModeStreamUsage {
				wantUsage = 1
			}
			if content == "" || usage != wantUsage {
				t.Fatalf("content %q, %d usage chunks (want %d):\n%s", content, usage, wantUsage, out)
			}
		})
	}

	t.Run("embeddings", func(t *testing.T) {
		out := nodetest.Run(t, nodetest.ModeEmbeddings, s.URL(), key, "")
		var e struct {
			Object string `json:"object"`
			Data   []struct {
				Index  int       `json:"index"`
				Length int       `json:"embedding_length"`
				Head   []float64 `json:"embedding_head"`
			} `json:"data"`
		}
		if err := json.Unmarshal(lines(t, out)[0], &e); err != nil {
			t.Fatal(err)
		}
		if e.Object != "list" || len(e.Data) != 2 {
			t.Fatalf("unexpected embeddings:\n%s", out)
		}
		for i, d := range e.Data {
			if d.Index != i || d.Length == 0 || len(d.Head) != 3 {
				t.Errorf("embedding %d = %+v", i, d)
			}
		}
		reqs := s.Requests()
		body := reqs[len(reqs)-1].Body
		if !bytes.Contains(body, []byte(`"encoding_format":"base64"`)) {
			t.Errorf("the SDK did not ask for base64: %s", body)
		}
	})

	t.Run("error", func(t *testing.T) {
		out := nodetest.Run(t, nodetest.ModeError, s.URL(), "sk-wrong", "")
		var e struct {
			Status int    `json:"status"`
			Code   string `json:"code"`
			Type   string `json:"type"`
		}
		if err := json.Unmarshal(lines(t, out)[0], &e); err != nil {
			t.Fatal(err)
		}
		if e.Status != 401 || e.Code != "invalid_api_key" || e.Type != "invalid_request_error" {
			t.Fatalf("error = %+v, want 401 invalid_api_key invalid_request_error", e)
		}
	})
}
