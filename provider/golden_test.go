package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/sse"
	"github.com/wedsync/veil/keys"
)

// update rewrites the golden files from what the translators produce:
// go test ./provider -run Golden -update
var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// goldenProviders are the providers the golden cases name.
var goldenProviders = map[string]config.Provider{
	"anthropic": {Name: "anthropic", Type: config.ProviderTypeAnthropic, BaseURL: "https://api.anthropic.com/v1",
		Anthropic: &config.Anthropic{Version: "2023-06-01", MaxTokens: 4096}},
	"azure": {Name: "azure-eu", Type: config.ProviderTypeAzure, BaseURL: "https://wedsync-eu.openai.azure.com",
		Azure: &config.Azure{APIVersion: "2024-10-21", Deployments: map[string]string{"gpt-4o-mini": "wedsync-4o-mini"}}},
	"openai": {Name: "openai", Type: config.ProviderTypeOpenAI, BaseURL: "https://api.openai.com/v1"},
	"groq": {Name: "groq", Type: config.ProviderTypeOpenAICompat, BaseURL: "https://api.groq.com/openai/v1",
		Compat: &config.Compat{StreamUsage: new(false), MaxTokensField: "max_tokens", DropFields: []string{"store", "metadata"}, Auth: "bearer"}},
	"ollama": {Name: "ollama", Type: config.ProviderTypeOpenAICompat, BaseURL: "http://localhost:11434/v1",
		Compat: &config.Compat{Auth: "none"}},
	"vllm": {Name: "vllm", Type: config.ProviderTypeOpenAICompat, BaseURL: "http://vllm:8000/v1",
		Compat: &config.Compat{Auth: "api-key"}},
}

// goldenKey is the key every golden provider is given.
const goldenKey = "sk-golden-test-key"

func goldenProvider(t *testing.T, name string) *Provider {
	t.Helper()
	cfg, ok := goldenProviders[name]
	if !ok {
		t.Fatalf("no golden provider %q", name)
	}
	p, err := New(cfg, []keys.Secret{keys.NewSecret(goldenKey)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// requestCase is a testdata/<type>/request/*.json file: a client call.
type requestCase struct {
	Provider string          `json:"provider"`
	Method   string          `json:"method"`
	Suffix   string          `json:"suffix"`
	Query    string          `json:"query"`
	Model    string          `json:"model"`
	Body     json.RawMessage `json:"body"`
}

// responseCase is a testdata/<type>/response/*.json file: an upstream
// answer to a call on Suffix.
type responseCase struct {
	Provider string            `json:"provider"`
	Suffix   string            `json:"suffix"`
	Status   int               `json:"status"`
	Header   map[string]string `json:"header"`
	Body     json.RawMessage   `json:"body"`
	// Streamed hands the body over as a stream, as for a call that asked
	// for one and got an error instead.
	Streamed bool `json:"streamed"`
}

func fixClock(t *testing.T) {
	t.Helper()
	old := now
	now = func() time.Time { return time.Date(2026, 6, 20, 14, 0, 0, 0, time.UTC) }
	t.Cleanup(func() { now = old })
}

// TestGoldenRequests renders the upstream request each translator makes
// of a client call and compares it with the .golden file beside it.
func TestGoldenRequests(t *testing.T) {
	fixClock(t)
	for _, f := range caseFiles(t, "testdata/*/request/*.json") {
		t.Run(strings.TrimPrefix(f, "testdata/"), func(t *testing.T) {
			var rc requestCase
			readJSON(t, f, &rc)
			p := goldenProvider(t, rc.Provider)
			var req fasthttp.Request
			req.Header.SetMethod(rc.Method)
			req.Header.Set("Authorization", "Bearer veil-caller-token")
			req.Header.SetContentType("application/json")
			if len(rc.Body) > 0 {
				req.SetBody(rc.Body)
			}
			c := &Call{Suffix: []byte(rc.Suffix), Query: []byte(rc.Query), Model: []byte(rc.Model), Key: p.Platform().Next(now())}
			var out bytes.Buffer
			if err := p.Prepare(&req, c); err != nil {
				var re *RequestError
				if !errors.As(err, &re) {
					t.Fatalf("prepare: %v", err)
				}
				out.WriteString("refused " + strconv.Itoa(re.Status) + " code=" + re.Code + " param=" + re.Param + "\n" + re.Message + "\n")
			} else {
				renderRequest(&out, &req)
			}
			golden(t, strings.TrimSuffix(f, ".json")+".golden", out.Bytes())
		})
	}
}

// TestGoldenResponses renders the client answer each translator makes of
// an upstream answer.
func TestGoldenResponses(t *testing.T) {
	fixClock(t)
	for _, f := range caseFiles(t, "testdata/*/response/*.json") {
		t.Run(strings.TrimPrefix(f, "testdata/"), func(t *testing.T) {
			var rc responseCase
			readJSON(t, f, &rc)
			p := goldenProvider(t, rc.Provider)
			var resp fasthttp.Response
			resp.SetStatusCode(rc.Status)
			resp.Header.SetContentType("application/json")
			for k, v := range rc.Header {
				resp.Header.Set(k, v)
			}
			if rc.Streamed {
				resp.SetBodyStream(bytes.NewReader(rc.Body), len(rc.Body))
			} else {
				resp.SetBody(rc.Body)
			}
			if err := p.Translate(&resp, &Call{Suffix: []byte(rc.Suffix)}); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			renderResponse(t, &out, &resp)
			golden(t, strings.TrimSuffix(f, ".json")+".golden", out.Bytes())
		})
	}
}

// TestGoldenStreams turns each upstream stream (testdata/<type>/stream/
// <provider>.<case>.sse) into the client's and compares the two SSE texts.
func TestGoldenStreams(t *testing.T) {
	fixClock(t)
	for _, f := range caseFiles(t, "testdata/*/stream/*.sse") {
		t.Run(strings.TrimPrefix(f, "testdata/"), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			name, _, _ := strings.Cut(filepath.Base(f), ".")
			p := goldenProvider(t, name)
			src := p.Events(sse.NewReader(bytes.NewReader(in), 0), &Call{Suffix: []byte("/chat/completions")})
			var out bytes.Buffer
			for {
				ev, err := src.Next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						out.WriteString("# error: " + err.Error() + "\n")
					}
					break
				}
				if !ev.Comment && len(ev.Data) > 0 && !sse.IsDone(ev.Data) && !json.Valid(ev.Data) {
					t.Errorf("invalid JSON event: %s", ev.Data)
				}
				out.Write(ev.Raw)
			}
			golden(t, strings.TrimSuffix(f, ".sse")+".golden.sse", out.Bytes())
		})
	}
}

// caseFiles lists the cases matching pattern, golden files left out.
func caseFiles(t *testing.T, pattern string) []string {
	t.Helper()
	all, _ := filepath.Glob(pattern)
	var files []string
	for _, f := range all {
		if !strings.Contains(f, ".golden") {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Fatalf("no cases match %s", pattern)
	}
	return files
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func renderRequest(w *bytes.Buffer, req *fasthttp.Request) {
	w.WriteString(string(req.Header.Method()) + " " + string(req.URI().FullURI()) + "\n")
	var lines []string
	for k, v := range req.Header.All() {
		lines = append(lines, string(k)+": "+string(v))
	}
	sort.Strings(lines)
	for _, l := range lines {
		w.WriteString(l + "\n")
	}
	writeBody(w, req.Body())
}

func renderResponse(t *testing.T, w *bytes.Buffer, resp *fasthttp.Response) {
	w.WriteString(strconv.Itoa(resp.StatusCode()) + "\n")
	var lines []string
	for k, v := range resp.Header.All() {
		if string(k) == "Content-Length" {
			continue
		}
		lines = append(lines, string(k)+": "+string(v))
	}
	sort.Strings(lines)
	for _, l := range lines {
		w.WriteString(l + "\n")
	}
	body := resp.Body()
	if st := resp.BodyStream(); st != nil {
		var err error
		if body, err = io.ReadAll(st); err != nil {
			t.Fatal(err)
		}
	}
	if !json.Valid(body) {
		t.Errorf("answer is not JSON: %s", body)
	}
	writeBody(w, body)
}

func writeBody(w *bytes.Buffer, body []byte) {
	if len(body) == 0 {
		return
	}
	w.WriteString("\n")
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") == nil {
		w.Write(pretty.Bytes())
	} else {
		w.Write(body)
	}
	w.WriteString("\n")
}

// golden compares got with the file, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (run go test ./provider -run Golden -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the translator made:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}
