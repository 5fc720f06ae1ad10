package similarity

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/provider"
)

// EmbeddingsScorer scores a pair by the cosine similarity of the two
// answers' embeddings, clamped to [0, 1] (opposite vectors score 0, as
// unrelated ones do). Both answers go in one call.
type EmbeddingsScorer struct {
	// Provider is asked, with one of its platform keys.
	Provider *provider.Provider
	// Model is the embeddings model, such as text-embedding-3-small.
	Model string
	// Threshold is the score at or above which a pair counts as similar.
	Threshold float64
	// Prices prices the call; nil leaves its cost unknown.
	Prices Pricer
}

var _ Scorer = (*EmbeddingsScorer)(nil)

// Name is the method as reports print it: "embeddings MODEL".
func (e *EmbeddingsScorer) Name() string { return Embeddings + " " + e.Model }

// embeddingsRequest is the body of the embeddings call.
type embeddingsRequest struct {
	Model          string    `json:"model"`
	Input          [2]string `json:"input"`
	EncodingFormat string    `json:"encoding_format"`
}

// embeddingsAnswer is the part of the answer the score needs.
type embeddingsAnswer struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	} `json:"data"`
}

// Score embeds both answers and returns their cosine similarity.
func (e *EmbeddingsScorer) Score(ctx context.Context, in *Input) (compare.Score, error) {
	body, err := json.Marshal(embeddingsRequest{Model: e.Model, Input: [2]string{clip(in.Primary), clip(in.Shadow)},
		EncodingFormat: "float"})
	if err != nil {
		return compare.Score{}, fmt.Errorf("similarity: embeddings request: %w", err)
	}
	res, err := post(ctx, e.Provider, e.Prices, in, endpointEmbeddings, e.Model, body)
	if err != nil {
		return compare.Score{}, err
	}
	v, err := cosineOf(res.body)
	if err != nil {
		return compare.Score{}, err
	}
	return compare.Score{Value: v, Method: e.Name(), Threshold: e.Threshold}, nil
}

// cosineOf reads the two vectors of an embeddings answer and returns
// their cosine similarity clamped to [0, 1]. Anything but two finite,
// non-zero vectors of one length, at indexes 0 and 1, is ErrInvalid.
func cosineOf(body []byte) (float64, error) {
	var a embeddingsAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return 0, fmt.Errorf("%w: embeddings: %w", ErrInvalid, err)
	}
	if len(a.Data) != 2 {
		return 0, fmt.Errorf("%w: embeddings: %d vectors, want 2", ErrInvalid, len(a.Data))
	}
	var vs [2][]float64
	for _, d := range a.Data {
		if d.Index < 0 || d.Index > 1 || vs[d.Index] != nil {
			return 0, fmt.Errorf("%w: embeddings: unexpected index %d", ErrInvalid, d.Index)
		}
		vs[d.Index] = d.Embedding
	}
	x, y := vs[0], vs[1]
	if len(x) == 0 || len(x) != len(y) {
		return 0, fmt.Errorf("%w: embeddings: vectors of %d and %d dimensions", ErrInvalid, len(x), len(y))
	}
	var dot, nx, ny float64
	for i := range x {
		dot += x[i] * y[i]
		nx += x[i] * x[i]
		ny += y[i] * y[i]
	}
	c := dot / math.Sqrt(nx*ny)
	if math.IsNaN(c) || math.IsInf(c, 0) {
		return 0, fmt.Errorf("%w: embeddings: a zero or non-finite vector", ErrInvalid)
	}
	return min(max(c, 0), 1), nil
}
