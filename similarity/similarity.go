package similarity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/logging"
	"github.com/wedsync/veil/provider"
	"github.com/wedsync/veil/usage"
)

// Method kinds, the first word of a Score's Method.
const (
	// Lexical is word overlap (compare.Similarity).
	Lexical = compare.Lexical
	// Embeddings is the cosine similarity of the answers' embeddings.
	Embeddings = config.SimilarityEmbeddings
	// Judge is a chat model's verdict against a rubric.
	Judge = config.SimilarityJudge
)

// Fallback reasons: why a pair was scored lexically instead of by its
// workflow's method.
const (
	// ReasonTimeout is a call that did not answer within the timeout.
	ReasonTimeout = "timeout"
	// ReasonError is a call that failed: unreachable, refused, or an
	// answer other than 200.
	ReasonError = "error"
	// ReasonInvalid is an answer that is not a usable verdict or pair of
	// vectors.
	ReasonInvalid = "invalid"
)

var (
	// ErrInvalid means the model's answer is not a usable verdict or pair
	// of vectors.
	ErrInvalid = errors.New("similarity: invalid answer")
	// ErrNoPlatformKey means the provider configured for a method has no
	// platform key: scoring calls are the platform's to pay.
	ErrNoPlatformKey = errors.New("similarity: the provider has no platform key")
)

// Emitter takes the usage records of scoring calls; see usage.Emitter.
type Emitter interface {
	Emit(r *usage.Record)
}

// Pricer prices calls; see usage.PriceTable.
type Pricer interface {
	CostMicros(provider, model string, at time.Time, prompt, cached, completion int64) (int64, bool)
}

// Input is one pair of answers to score and what the usage records of the
// scoring calls are attributed to.
type Input struct {
	// Workflow is the request's workflow; it chooses the method.
	Workflow string
	// Primary is the answer the caller got; Shadow is the other system's.
	// Primary is the reference the judge compares Shadow with.
	Primary, Shadow string
	// Comparison is the comparison's ID, the records' migration_id.
	Comparison string
	// Supplier and Caller are those of the shadowed request, for
	// attribution only: the platform pays.
	Supplier, Caller string
	// RequestID is the request_id of the scoring call's record.
	RequestID string
	// Usage receives one record per scoring call; nil drops them.
	Usage Emitter
}

// Scorer scores a pair of answers. Embeddings and judge scorers fail
// when their call does; a Set never does, falling back to lexical.
type Scorer interface {
	Score(ctx context.Context, in *Input) (compare.Score, error)
}

// LexicalScorer scores by word overlap (compare.Similarity); it makes no
// call and never fails.
type LexicalScorer struct {
	// Threshold is the score at or above which a pair counts as similar.
	Threshold float64
}

var _ Scorer = LexicalScorer{}

// Score returns the word overlap of the two answers.
func (l LexicalScorer) Score(_ context.Context, in *Input) (compare.Score, error) {
	return compare.Score{Value: compare.Similarity(in.Primary, in.Shadow), Method: Lexical, Threshold: l.Threshold}, nil
}

// Options configure a Set.
type Options struct {
	// Config is the comparisons.similarity section, defaults applied.
	Config config.Similarity
	// Providers are the configured providers; embeddings and judge call
	// the one their config names.
	Providers []*provider.Provider
	// Prices prices the scoring calls; nil leaves their cost unknown.
	Prices Pricer
	// Counters counts scores and fallbacks; it outlives the Set, so that
	// the counts survive reloads. Nil: the Set counts on its own.
	Counters *Counters
	// Log receives fallbacks, each kind at most once a minute; nil
	// discards them.
	Log *zap.Logger
}

// Set is the compiled comparisons.similarity section: a method per
// workflow, a default, the timeout of one pair and the lexical fallback.
// It is safe for concurrent use and never changed once built.
type Set struct {
	def       entry
	workflows map[string]entry
	timeout   time.Duration
	lexical   LexicalScorer
	counters  *Counters
	quiet     *logging.Limiter
}

var _ Scorer = (*Set)(nil)

// entry is one workflow's scorer.
type entry struct {
	kind   string // Lexical, Embeddings or Judge
	scorer Scorer
}

// New compiles o.Config. It fails when a method names a provider that is
// not among o.Providers or that has no platform key.
func New(o Options) (*Set, error) {
	c := o.Config
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Counters == nil {
		o.Counters = &Counters{}
	}
	s := &Set{workflows: make(map[string]entry, len(c.Workflows)), timeout: c.Timeout, counters: o.Counters,
		lexical: LexicalScorer{Threshold: c.LexicalThreshold()}, quiet: logging.NewLimiter(o.Log, logging.LimiterOptions{})}
	if s.timeout <= 0 {
		s.timeout = config.DefaultSimilarityTimeout
	}
	var err error
	if s.def, err = compile("default", c.Default, o); err != nil {
		return nil, err
	}
	for w, m := range c.Workflows {
		if s.workflows[w], err = compile(w, m, o); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// compile builds the scorer of one workflow's method (workflow "default"
// for the default).
func compile(workflow string, m config.SimilarityMethod, o Options) (entry, error) {
	threshold := m.Threshold
	switch m.Method {
	case "", Lexical:
		if threshold <= 0 {
			threshold = config.DefaultLexicalThreshold
		}
		return entry{kind: Lexical, scorer: LexicalScorer{Threshold: threshold}}, nil
	case Embeddings, Judge:
	default:
		return entry{}, fmt.Errorf("similarity: %s: unknown method %q", workflow, m.Method)
	}
	var p *provider.Provider
	for _, q := range o.Providers {
		if q.Name() == m.Provider {
			p = q
		}
	}
	switch {
	case p == nil:
		return entry{}, fmt.Errorf("similarity: %s: no provider %q", workflow, m.Provider)
	case p.Platform() == nil || p.Platform().Len() == 0:
		return entry{}, fmt.Errorf("similarity: %s: provider %s: %w", workflow, m.Provider, ErrNoPlatformKey)
	}
	if m.Method == Embeddings {
		if threshold <= 0 {
			threshold = config.DefaultEmbeddingsThreshold
		}
		return entry{kind: Embeddings, scorer: &EmbeddingsScorer{Provider: p, Model: m.Model, Threshold: threshold,
			Prices: o.Prices}}, nil
	}
	if threshold <= 0 {
		threshold = config.DefaultJudgeThreshold
	}
	return entry{kind: Judge, scorer: &JudgeScorer{Provider: p, Model: m.Model, Threshold: threshold, Rubric: m.Rubric,
		Prices: o.Prices}}, nil
}

// Timeout is how long the scoring of one pair may take, fallback included.
func (s *Set) Timeout() time.Duration { return s.timeout }

// Counters are the Set's counters.
func (s *Set) Counters() *Counters { return s.counters }

// Method is the name of the method that scores the workflow's pairs, as
// reports print it.
func (s *Set) Method(workflow string) string {
	e := s.entryFor(workflow)
	return methodName(e)
}

// methodName names an entry's method: "lexical", "embeddings MODEL" or
// "judge MODEL".
func methodName(e entry) string {
	switch sc := e.scorer.(type) {
	case *EmbeddingsScorer:
		return sc.Name()
	case *JudgeScorer:
		return sc.Name()
	}
	return Lexical
}

// entryFor is the workflow's entry, or the default.
func (s *Set) entryFor(workflow string) entry {
	if e, ok := s.workflows[workflow]; ok {
		return e
	}
	return s.def
}

// Score scores the pair with its workflow's method, within the Set's
// timeout. When that method's call fails, the pair is scored lexically,
// with the Method "lexical (fallback from embeddings)" or "lexical
// (fallback from judge)" and the lexical threshold, and the fallback is
// counted and logged. A pair with an empty answer is scored lexically
// without a call (1 when both are empty, 0 when one is). Score never
// fails.
func (s *Set) Score(ctx context.Context, in *Input) (compare.Score, error) {
	e := s.entryFor(in.Workflow)
	if e.kind != Lexical && (strings.TrimSpace(in.Primary) == "" || strings.TrimSpace(in.Shadow) == "") {
		e = entry{kind: Lexical, scorer: s.lexical}
	}
	if e.kind == Lexical {
		sc, _ := e.scorer.Score(ctx, in)
		s.counters.scored(Lexical)
		return sc, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sc, err := e.scorer.Score(ctx, in)
	if err == nil {
		s.counters.scored(e.kind)
		return sc, nil
	}
	reason := ReasonOf(err)
	s.counters.fellBack(e.kind, reason)
	s.quiet.Warn("similarity/"+e.kind+"/"+reason, "similarity scored lexically: "+e.kind+" failed",
		zap.String("method", methodName(e)), zap.String("workflow", in.Workflow), zap.String("reason", reason),
		zap.String("comparison", in.Comparison), zap.Error(err))
	fb, _ := s.lexical.Score(ctx, in)
	fb.Method = FallbackMethod(e.kind)
	return fb, nil
}

// FallbackMethod is the Method of a pair scored lexically because kind
// (Embeddings or Judge) failed.
func FallbackMethod(kind string) string { return Lexical + " (fallback from " + kind + ")" }

// ReasonOf classifies why a method failed: ReasonTimeout, ReasonInvalid or
// ReasonError.
func ReasonOf(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, fasthttp.ErrTimeout),
		errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, fasthttp.ErrTLSHandshakeTimeout):
		return ReasonTimeout
	case errors.Is(err, ErrInvalid):
		return ReasonInvalid
	}
	return ReasonError
}

// Counters count the pairs scored per method and the fallbacks per method
// and reason, for the metrics veil_similarity_scores_total and
// veil_similarity_fallbacks_total. The zero value is ready; it is safe for
// concurrent use.
type Counters struct {
	scores    [3]atomic.Uint64    // by kindIndex
	fallbacks [3][3]atomic.Uint64 // by kindIndex, reasonIndex
}

// Count is one counter's value.
type Count struct {
	// Method is the method kind: lexical, embeddings or judge.
	Method string
	// Reason is the fallback reason; empty for a count of scores.
	Reason string
	// N is the count.
	N uint64
}

var (
	kinds   = [3]string{Lexical, Embeddings, Judge}
	reasons = [3]string{ReasonTimeout, ReasonError, ReasonInvalid}
)

func index(list [3]string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return 0
}

func (c *Counters) scored(kind string) { c.scores[index(kinds, kind)].Add(1) }

func (c *Counters) fellBack(kind, reason string) {
	c.fallbacks[index(kinds, kind)][index(reasons, reason)].Add(1)
}

// Scores returns the pairs scored by their own method, per method kind
// (fallbacks are not among them).
func (c *Counters) Scores() []Count {
	out := make([]Count, 0, len(kinds))
	for i, k := range kinds {
		out = append(out, Count{Method: k, N: c.scores[i].Load()})
	}
	return out
}

// Fallbacks returns the pairs scored lexically because their method
// failed, per method kind (embeddings, judge) and reason.
func (c *Counters) Fallbacks() []Count {
	out := make([]Count, 0, 6)
	for i, k := range kinds[1:] {
		for j, r := range reasons {
			out = append(out, Count{Method: k, Reason: r, N: c.fallbacks[i+1][j].Load()})
		}
	}
	return out
}
