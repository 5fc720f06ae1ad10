package similarity

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/wedsync/veil/compare"
)

// Labels of calibration pairs. A good pair's shadow answer is as good as
// its primary's; a bad pair's is not.
const (
	// LabelParaphrase is an equally good answer written differently: good.
	LabelParaphrase = "paraphrase"
	// LabelGood is an equally good answer: good.
	LabelGood = "good"
	// LabelPartial is an answer that leaves out part of the primary's: bad.
	LabelPartial = "partial"
	// LabelWrong is a contradictory or off-topic answer: bad.
	LabelWrong = "wrong"
	// LabelBad is an answer that is worse: bad.
	LabelBad = "bad"
)

// MinCalibrationPairs is the number of labelled pairs per workflow below
// which a suggested threshold is not to be trusted: the same as the pairs
// a comparison needs before it recommends anything.
const MinCalibrationPairs = compare.MinPairs

// ErrPairs means a calibration file could not be read.
var ErrPairs = errors.New("similarity: invalid pairs")

// LabelledPair is a pair of answers a person has labelled, for
// calibration: from real traffic, or testdata/pairs.json.
type LabelledPair struct {
	// Workflow chooses the method the pair is scored with.
	Workflow string `json:"workflow"`
	// Group names pairs that share a primary answer; optional.
	Group string `json:"group,omitempty"`
	// Label is paraphrase or good (the shadow answer is as good), or
	// partial, wrong or bad (it is not).
	Label string `json:"label"`
	// Primary and Shadow are the two answers.
	Primary string `json:"primary"`
	Shadow  string `json:"shadow"`
}

// Good reports whether a label marks a good pair, and whether it is a
// known label.
func Good(label string) (good, known bool) {
	switch label {
	case LabelParaphrase, LabelGood:
		return true, true
	case LabelPartial, LabelWrong, LabelBad:
		return false, true
	}
	return false, false
}

// ReadPairs reads labelled pairs: a JSON array of them, or one JSON object
// a line (JSON Lines). Every pair needs a known label and two answers.
func ReadPairs(r io.Reader) ([]LabelledPair, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPairs, err)
	}
	var pairs []LabelledPair
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pairs); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPairs, err)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 4<<20)
		for line := 1; sc.Scan(); line++ {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields()
			var p LabelledPair
			if err := dec.Decode(&p); err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrPairs, line, err)
			}
			pairs = append(pairs, p)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPairs, err)
		}
	}
	for i, p := range pairs {
		if _, known := Good(p.Label); !known {
			return nil, fmt.Errorf("%w: pair %d: label %q is none of paraphrase, good, partial, wrong, bad", ErrPairs, i+1, p.Label)
		}
		if strings.TrimSpace(p.Primary) == "" || strings.TrimSpace(p.Shadow) == "" {
			return nil, fmt.Errorf("%w: pair %d: an empty answer", ErrPairs, i+1)
		}
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%w: no pairs", ErrPairs)
	}
	return pairs, nil
}

// ScoredPair is a labelled pair and its score.
type ScoredPair struct {
	LabelledPair
	Score compare.Score
}

// ScoreParallel is how many pairs ScorePairs scores at once.
const ScoreParallel = 4

// ScorePairs scores each pair with s, ScoreParallel at a time; the usage
// records of the calls go to emit (nil drops them), attributed to
// comparison. A pair that s fails to score gets a NaN value and a method
// saying why.
func ScorePairs(ctx context.Context, s Scorer, pairs []LabelledPair, comparison string, emit Emitter) []ScoredPair {
	out := make([]ScoredPair, len(pairs))
	sem := make(chan struct{}, ScoreParallel)
	var wg sync.WaitGroup
	for i, p := range pairs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			sc, err := s.Score(ctx, &Input{Workflow: p.Workflow, Primary: p.Primary, Shadow: p.Shadow, Comparison: comparison,
				RequestID: fmt.Sprintf("%s-%d", comparison, i+1), Usage: emit})
			if err != nil {
				sc = compare.Score{Value: math.NaN(), Method: "failed: " + err.Error()}
			}
			out[i] = ScoredPair{LabelledPair: p, Score: sc}
		}()
	}
	wg.Wait()
	return out
}

// Calibration is what labelled pairs say about one workflow's threshold.
type Calibration struct {
	// Workflow is the workflow calibrated.
	Workflow string
	// Method is the method of the workflow's scores (the most common, when
	// they differ); Threshold the threshold the config gives it.
	Method    string
	Threshold float64
	// Labels are the scores by label: good labels first.
	Labels []LabelStats
	// Fallbacks is the number of pairs scored lexically because the
	// method failed; they are left out of everything else.
	Fallbacks int
	// Best is the threshold that best separates the good pairs from the
	// bad ones (score >= Best is good), halfway between the scores it
	// falls between; BestAccuracy is its balanced accuracy (the mean of
	// the shares of good and of bad pairs it classifies right).
	Best, BestAccuracy float64
	// Accuracy is the balanced accuracy of Threshold.
	Accuracy float64
	// Separable says that every good pair scores above every bad one.
	Separable bool
	// Margin is, when Separable, the gap between the lowest good score and
	// the highest bad one.
	Margin float64
}

// LabelStats are the scores of one label.
type LabelStats struct {
	Label          string
	Good           bool
	N              int
	Mean, Min, Max float64
}

// Calibrate groups scored pairs by workflow, in the order workflows first
// appear, and finds each one's best threshold. Pairs whose score is a
// fallback, or that failed, are counted and left out.
func Calibrate(pairs []ScoredPair) []Calibration {
	var order []string
	by := map[string][]ScoredPair{}
	for _, p := range pairs {
		if _, ok := by[p.Workflow]; !ok {
			order = append(order, p.Workflow)
		}
		by[p.Workflow] = append(by[p.Workflow], p)
	}
	out := make([]Calibration, 0, len(order))
	for _, w := range order {
		out = append(out, calibrate(w, by[w]))
	}
	return out
}

// calibrate calibrates one workflow's pairs.
func calibrate(workflow string, pairs []ScoredPair) Calibration {
	c := Calibration{Workflow: workflow}
	methods := map[string]int{}
	var good, bad []float64
	labels := map[string]*LabelStats{}
	for _, p := range pairs {
		if math.IsNaN(p.Score.Value) || strings.Contains(p.Score.Method, "fallback") {
			c.Fallbacks++
			continue
		}
		methods[p.Score.Method]++
		if methods[p.Score.Method] > methods[c.Method] || methods[p.Score.Method] == methods[c.Method] && p.Score.Method < c.Method {
			c.Method, c.Threshold = p.Score.Method, p.Score.Threshold
		}
		isGood, _ := Good(p.Label)
		v := p.Score.Value
		if isGood {
			good = append(good, v)
		} else {
			bad = append(bad, v)
		}
		ls := labels[p.Label]
		if ls == nil {
			ls = &LabelStats{Label: p.Label, Good: isGood, Min: v, Max: v}
			labels[p.Label] = ls
		}
		ls.N++
		ls.Mean += v
		ls.Min, ls.Max = min(ls.Min, v), max(ls.Max, v)
	}
	for _, ls := range labels {
		ls.Mean /= float64(ls.N)
		c.Labels = append(c.Labels, *ls)
	}
	rank := map[string]int{LabelParaphrase: 0, LabelGood: 1, LabelPartial: 2, LabelBad: 3, LabelWrong: 4}
	slices.SortFunc(c.Labels, func(a, b LabelStats) int { return rank[a.Label] - rank[b.Label] })
	c.Accuracy = balancedAccuracy(good, bad, c.Threshold)
	c.Best, c.BestAccuracy = bestThreshold(good, bad)
	if len(good) > 0 && len(bad) > 0 && slices.Min(good) > slices.Max(bad) {
		c.Separable, c.Margin = true, slices.Min(good)-slices.Max(bad)
	}
	return c
}

// balancedAccuracy is the mean of the shares of good scores at or above
// t and of bad scores below it; with one class only, that class's share.
func balancedAccuracy(good, bad []float64, t float64) float64 {
	share := func(vs []float64, ok func(float64) bool) float64 {
		n := 0
		for _, v := range vs {
			if ok(v) {
				n++
			}
		}
		return float64(n) / float64(len(vs))
	}
	switch {
	case len(good) == 0 && len(bad) == 0:
		return 0
	case len(good) == 0:
		return share(bad, func(v float64) bool { return v < t })
	case len(bad) == 0:
		return share(good, func(v float64) bool { return v >= t })
	}
	return (share(good, func(v float64) bool { return v >= t }) + share(bad, func(v float64) bool { return v < t })) / 2
}

// bestThreshold returns the threshold with the best balanced accuracy
// among the midpoints between consecutive distinct scores; among equals,
// the one in the widest gap. Without scores it is 0.
func bestThreshold(good, bad []float64) (best, accuracy float64) {
	all := slices.Concat(good, bad)
	slices.Sort(all)
	all = slices.Compact(all)
	if len(all) == 0 {
		return 0, 0
	}
	candidates := []struct{ t, gap float64 }{{all[0], 0}}
	for i := 1; i < len(all); i++ {
		candidates = append(candidates, struct{ t, gap float64 }{(all[i-1] + all[i]) / 2, all[i] - all[i-1]})
	}
	bestGap := -1.0
	for _, c := range candidates {
		a := balancedAccuracy(good, bad, c.t)
		if a > accuracy || a == accuracy && c.gap > bestGap {
			best, accuracy, bestGap = c.t, a, c.gap
		}
	}
	return best, accuracy
}
