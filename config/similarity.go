package config

import (
	"math"
	"slices"
	"strings"
	"time"
)

// Similarity methods: how the two answers of a shadow comparison are
// scored (see the similarity package and docs/adr/0024-answer-similarity.md).
const (
	// SimilarityLexical is word overlap: free, no model, but it measures
	// wording, not meaning. It is also the fallback of the other two.
	SimilarityLexical = "lexical"
	// SimilarityEmbeddings is the cosine similarity of the two answers'
	// embeddings, asked of an embeddings model.
	SimilarityEmbeddings = "embeddings"
	// SimilarityJudge asks a chat model for a verdict against a rubric.
	SimilarityJudge = "judge"
)

var similarityMethods = []string{SimilarityLexical, SimilarityEmbeddings, SimilarityJudge}

// Defaults of the comparisons section.
const (
	// DefaultSimilarityTimeout bounds the scoring of one pair of answers,
	// fallback included.
	DefaultSimilarityTimeout = 10 * time.Second
	// DefaultLexicalThreshold is the lexical score at or above which two
	// answers count as similar; the fallback uses it too unless the
	// default method is lexical with a threshold of its own.
	DefaultLexicalThreshold = 0.8
	// DefaultEmbeddingsThreshold is the cosine similarity of embeddings at
	// or above which two answers count as similar.
	DefaultEmbeddingsThreshold = 0.85
	// DefaultJudgeThreshold is the judge's score at or above which two
	// answers count as similar.
	DefaultJudgeThreshold = 0.7
	// maxRubricBytes bounds a judge's rubric.
	maxRubricBytes = 4000
)

// BuiltinWorkflows are the workflows every config knows (X-Workflow
// values recorded as they are); any other name must have a route, and
// requests naming an unknown one are recorded as OtherWorkflow.
var BuiltinWorkflows = []string{"photography", "venue", "catering", "planning"}

// OtherWorkflow is the workflow requests are recorded under when their
// X-Workflow names no known workflow.
const OtherWorkflow = "other"

// Comparisons configures shadow comparisons (docs/adr/0012-shadow-compare.md).
type Comparisons struct {
	// Similarity chooses how the two answers of each shadowed request are
	// scored, per workflow.
	Similarity Similarity `yaml:"similarity"`
}

// Similarity chooses a similarity method per workflow. The calls that
// embeddings and judge make are the platform's shadow spend: recorded as
// usage with shadow true and billed to the platform, never to a
// supplier. When such a call fails (timeout, error, a verdict that does
// not parse), the pair is scored lexically and the method says so.
type Similarity struct {
	// Default is the method of every workflow not listed in Workflows.
	// Default lexical.
	Default SimilarityMethod `yaml:"default"`
	// Workflows are the methods of single workflows, by workflow name (a
	// built-in workflow, other, or a routes[].workflow).
	Workflows map[string]SimilarityMethod `yaml:"workflows"`
	// Timeout bounds the scoring of one pair, fallback included; the
	// scoring runs in the shadow's background goroutine, never on the
	// client's path. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// SimilarityMethod is one workflow's method and its settings.
type SimilarityMethod struct {
	// Method is lexical, embeddings or judge.
	Method string `yaml:"method"`
	// Provider names the provider embeddings and judge call, with one of
	// its platform keys; it must have some.
	Provider string `yaml:"provider"`
	// Model is the embeddings model (embeddings) or the chat model that
	// judges (judge), such as text-embedding-3-small or gpt-4o-mini.
	Model string `yaml:"model"`
	// Threshold is the score at or above which a pair counts as similar,
	// in (0, 1]. Absent or 0 means the method's default: 0.8 lexical,
	// 0.85 embeddings, 0.7 judge. Calibrate it on real traffic with
	// veil compare calibrate (docs/operations.md).
	Threshold float64 `yaml:"threshold"`
	// Rubric is what the judge checks, for judge only; empty means the
	// built-in rubric of the workflow (see the similarity package).
	Rubric string `yaml:"rubric"`
}

// For returns the method of a workflow: its own, or the default.
func (s Similarity) For(workflow string) SimilarityMethod {
	if m, ok := s.Workflows[workflow]; ok {
		return m
	}
	return s.Default
}

// LexicalThreshold is the threshold of lexical scores, the fallback's
// included: the default method's when that is lexical, else
// DefaultLexicalThreshold.
func (s Similarity) LexicalThreshold() float64 {
	if s.Default.Method == SimilarityLexical && s.Default.Threshold > 0 {
		return s.Default.Threshold
	}
	return DefaultLexicalThreshold
}

func (c *Config) applySimilarityDefaults() {
	s := &c.Comparisons.Similarity
	setDefault(&s.Default.Method, SimilarityLexical)
	s.Default.applyDefaults()
	for w, m := range s.Workflows {
		m.applyDefaults()
		s.Workflows[w] = m
	}
	setDuration(&s.Timeout, DefaultSimilarityTimeout)
}

// applyDefaults fills in the method's default threshold.
func (m *SimilarityMethod) applyDefaults() {
	m.Method = strings.ToLower(m.Method)
	if m.Threshold != 0 {
		return
	}
	switch m.Method {
	case SimilarityLexical:
		m.Threshold = DefaultLexicalThreshold
	case SimilarityEmbeddings:
		m.Threshold = DefaultEmbeddingsThreshold
	case SimilarityJudge:
		m.Threshold = DefaultJudgeThreshold
	}
}

func (v *validator) similarity() {
	const path = "comparisons.similarity"
	s := v.c.Comparisons.Similarity
	v.timeout(path+".timeout", s.Timeout, false)
	v.similarityMethod(path+".default", s.Default)
	known := v.knownWorkflows()
	names := make([]string, 0, len(s.Workflows))
	for w := range s.Workflows {
		names = append(names, w)
	}
	slices.Sort(names)
	for _, w := range names {
		p := path + ".workflows." + w
		if !known[w] {
			v.fail(p, "%q is not a workflow veil records: one of %s, %s or a routes[].workflow",
				w, strings.Join(BuiltinWorkflows, ", "), OtherWorkflow)
			continue
		}
		m := s.Workflows[w]
		if m.Method == "" {
			v.fail(p+".method", "is required: one of %s", strings.Join(similarityMethods, ", "))
			continue
		}
		v.similarityMethod(p, m)
	}
}

// knownWorkflows are the workflow names requests are recorded under.
func (v *validator) knownWorkflows() map[string]bool {
	known := map[string]bool{OtherWorkflow: true}
	for _, w := range BuiltinWorkflows {
		known[w] = true
	}
	for _, r := range v.c.Routes {
		known[r.Workflow] = true
	}
	for _, s := range v.c.Seasons {
		for _, r := range s.Routes {
			known[r.Workflow] = true
		}
	}
	return known
}

// similarityMethod checks one method's settings.
func (v *validator) similarityMethod(path string, m SimilarityMethod) {
	if !slices.Contains(similarityMethods, m.Method) {
		v.fail(path+".method", "must be one of %s, got %q", strings.Join(similarityMethods, ", "), m.Method)
		return
	}
	if math.IsNaN(m.Threshold) || m.Threshold < 0 || m.Threshold > 1 {
		v.fail(path+".threshold", "must be in (0, 1], got %v", m.Threshold)
	}
	if m.Method == SimilarityLexical {
		for _, f := range []struct{ name, value string }{{"provider", m.Provider}, {"model", m.Model}, {"rubric", m.Rubric}} {
			if f.value != "" {
				v.fail(path+"."+f.name, "is only for the embeddings and judge methods")
			}
		}
		return
	}
	if m.Rubric != "" && m.Method != SimilarityJudge {
		v.fail(path+".rubric", "is only for the judge method")
	}
	if len(m.Rubric) > maxRubricBytes {
		v.fail(path+".rubric", "must be at most %d bytes, got %d", maxRubricBytes, len(m.Rubric))
	}
	if m.Model == "" || strings.ContainsFunc(m.Model, isSpaceOrControl) {
		v.fail(path+".model", "must name the %s model", m.Method)
	}
	if m.Provider == "" {
		v.fail(path+".provider", "is required for the %s method", m.Method)
		return
	}
	p, ok := v.c.Provider(m.Provider)
	switch {
	case !ok:
		v.fail(path+".provider", "%q does not name a provider", m.Provider)
	case len(p.PlatformKeys()) == 0:
		v.fail(path+".provider", "provider %q has no platform key; scoring calls are paid by the platform", m.Provider)
	case m.Method == SimilarityEmbeddings && p.Type == ProviderTypeAnthropic:
		v.fail(path+".provider", "provider %q is of type %s, which has no embeddings API", m.Provider, p.Type)
	}
}
