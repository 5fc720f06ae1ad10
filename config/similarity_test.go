package config

import (
	"strings"
	"testing"
	"time"
)

func TestSimilarityParse(t *testing.T) {
	doc := okProviders + okCallers + `routes:
  - workflow: seating
    model: gpt-4o-mini
comparisons:
  similarity:
    timeout: 4s
    workflows:
      planning:
        method: judge
        provider: openai
        model: gpt-4o-mini
        threshold: 0.75
        rubric: Same events at the same times.
      venue:
        method: Embeddings
        provider: openai
        model: text-embedding-3-small
      seating: {method: lexical, threshold: 0.6}
`
	c, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Comparisons.Similarity
	if s.Timeout != 4*time.Second {
		t.Errorf("timeout %v", s.Timeout)
	}
	cases := []struct {
		workflow, method, model string
		threshold               float64
	}{
		{"planning", SimilarityJudge, "gpt-4o-mini", 0.75},
		{"venue", SimilarityEmbeddings, "text-embedding-3-small", DefaultEmbeddingsThreshold},
		{"seating", SimilarityLexical, "", 0.6},
		{"catering", SimilarityLexical, "", DefaultLexicalThreshold},
		{"", SimilarityLexical, "", DefaultLexicalThreshold},
	}
	for _, tc := range cases {
		m := s.For(tc.workflow)
		if m.Method != tc.method || m.Model != tc.model || m.Threshold != tc.threshold {
			t.Errorf("%q: %+v, want %s %s at %v", tc.workflow, m, tc.method, tc.model, tc.threshold)
		}
	}
	if got := s.LexicalThreshold(); got != DefaultLexicalThreshold {
		t.Errorf("lexical threshold %v", got)
	}
}

func TestSimilarityDefaults(t *testing.T) {
	c, err := ParseWithEnv([]byte(okProviders+okCallers), "veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Comparisons.Similarity
	if s.Default.Method != SimilarityLexical || s.Default.Threshold != DefaultLexicalThreshold || s.Timeout != DefaultSimilarityTimeout {
		t.Errorf("defaults %+v", s)
	}
	c, err = ParseWithEnv([]byte(okProviders+okCallers+"comparisons: {similarity: {default: {method: lexical, threshold: 0.55}}}\n"),
		"veil.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Comparisons.Similarity.LexicalThreshold(); got != 0.55 {
		t.Errorf("lexical threshold %v, want the default method's 0.55", got)
	}
}

func TestSimilarityValidation(t *testing.T) {
	const keyless = `  - name: keyless
    type: openai
    base_url: https://llm.internal/v1
  - name: claude
    type: anthropic
    base_url: https://api.anthropic.com/v1
    api_key: env://ANTHROPIC_API_KEY
`
	cases := []struct{ name, doc, field, msg string }{
		{"unknown method", `comparisons:
  similarity:
    default: {method: bleu}
`, "comparisons.similarity.default.method", "must be one of lexical, embeddings, judge"},
		{"workflow without method", `comparisons:
  similarity:
    workflows:
      planning: {provider: openai, model: gpt-4o-mini}
`, "comparisons.similarity.workflows.planning.method", "is required"},
		{"unknown workflow", `comparisons:
  similarity:
    workflows:
      seating: {method: lexical}
`, "comparisons.similarity.workflows.seating", "is not a workflow veil records"},
		{"judge without provider", `comparisons:
  similarity:
    workflows:
      planning: {method: judge, model: gpt-4o-mini}
`, "comparisons.similarity.workflows.planning.provider", "is required for the judge method"},
		{"embeddings without model", `comparisons:
  similarity:
    workflows:
      venue: {method: embeddings, provider: openai}
`, "comparisons.similarity.workflows.venue.model", "must name the embeddings model"},
		{"unknown provider", `comparisons:
  similarity:
    default: {method: embeddings, provider: cohere, model: embed-v3}
`, "comparisons.similarity.default.provider", `"cohere" does not name a provider`},
		{"provider without platform key", `comparisons:
  similarity:
    workflows:
      planning: {method: judge, provider: keyless, model: gpt-4o-mini}
`, "comparisons.similarity.workflows.planning.provider", "has no platform key"},
		{"embeddings on anthropic", `comparisons:
  similarity:
    workflows:
      venue: {method: embeddings, provider: claude, model: voyage-3}
`, "comparisons.similarity.workflows.venue.provider", "no embeddings API"},
		{"threshold above one", `comparisons:
  similarity:
    workflows:
      venue: {method: embeddings, provider: openai, model: text-embedding-3-small, threshold: 85}
`, "comparisons.similarity.workflows.venue.threshold", "must be in (0, 1]"},
		{"negative threshold", `comparisons:
  similarity:
    default: {method: lexical, threshold: -0.1}
`, "comparisons.similarity.default.threshold", "must be in (0, 1]"},
		{"rubric for embeddings", `comparisons:
  similarity:
    workflows:
      venue: {method: embeddings, provider: openai, model: text-embedding-3-small, rubric: same facts}
`, "comparisons.similarity.workflows.venue.rubric", "only for the judge method"},
		{"provider for lexical", `comparisons:
  similarity:
    default: {method: lexical, provider: openai}
`, "comparisons.similarity.default.provider", "only for the embeddings and judge methods"},
		{"rubric too long", `comparisons:
  similarity:
    workflows:
      planning: {method: judge, provider: openai, model: gpt-4o-mini, rubric: ` + strings.Repeat("x", maxRubricBytes+1) + `}
`, "comparisons.similarity.workflows.planning.rubric", "at most 4000 bytes"},
		{"negative timeout", `comparisons:
  similarity:
    timeout: -1s
`, "comparisons.similarity.timeout", "must not be negative"},
		{"threshold as string", `comparisons:
  similarity:
    default: {method: lexical, threshold: high}
`, "comparisons.similarity.default.threshold", "must be a number"},
		{"unknown field", `comparisons:
  similarity:
    default: {method: lexical, treshold: 0.5}
`, "comparisons.similarity.default.treshold", "unknown field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := okProviders + keyless + okCallers + tc.doc
			_, err := ParseWithEnv([]byte(doc), "veil.yaml", noEnv)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, fe := range fieldErrors(t, err) {
				if fe.Field == tc.field && strings.Contains(fe.Msg, tc.msg) {
					if fe.Line == 0 {
						t.Errorf("error %q has no line", fe)
					}
					return
				}
			}
			t.Errorf("no error on %s containing %q in:\n%v", tc.field, tc.msg, err)
		})
	}
}
