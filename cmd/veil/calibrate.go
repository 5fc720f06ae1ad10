package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/app"
	"github.com/wedsync/veil/similarity"
	usagerec "github.com/wedsync/veil/usage"
)

// calibrateSynopsis is the synopsis and description `veil compare
// calibrate --help` prints.
const calibrateSynopsis = `compare calibrate --config FILE [--pairs] PAIRS.json

Scores labelled pairs of answers with the similarity method the config gives
each pair's workflow (comparisons.similarity), through the configured
providers on their platform keys, and prints per workflow the scores by label
and the threshold that best separates good pairs (paraphrase, good) from bad
ones (partial, wrong, bad). PAIRS.json is a JSON array, or one object a line,
of {"workflow", "label", "primary", "shadow"}; see docs/operations.md.
The scoring calls are paid by the platform: their tokens and cost are
printed, not written to the usage sinks.
`

// compareCalibrate runs `veil compare calibrate`.
func compareCalibrate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("compare calibrate", flag.ContinueOnError)
	path := fs.String("config", "", "config file (YAML) whose comparisons.similarity and providers are used")
	each := fs.Bool("pairs", false, "also print every pair's score")
	pos, err := parseFlags(fs, calibrateSynopsis, args, stdout)
	switch {
	case err != nil:
		return err
	case *path == "":
		return fmt.Errorf("%w: compare calibrate needs --config FILE", errUsage)
	case len(pos) != 1:
		return fmt.Errorf("%w: compare calibrate takes one file of labelled pairs", errUsage)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0]) //nolint:gosec // G703: the operator names the pairs file to read
	if err != nil {
		return err
	}
	pairs, err := similarity.ReadPairs(f)
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	set, done, err := app.Scorer(cfg, app.Options{})
	if err != nil {
		return err
	}
	defer done()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var spend spendTally
	id := "calibration-" + time.Now().UTC().Format("20060102T150405")
	scored := similarity.ScorePairs(ctx, set, pairs, id, &spend)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	printCalibration(stdout, pairs, scored, *each, &spend)
	return nil
}

// spendTally adds up the scoring calls' usage.
type spendTally struct {
	mu             sync.Mutex
	calls, failed  int
	tokens, micros int64
	unpriced       bool
}

// Emit counts one scoring call.
func (s *spendTally) Emit(r *usagerec.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if r.Error != "" {
		s.failed++
	}
	s.tokens += r.TotalTokens
	if r.CostMicros != nil {
		s.micros += *r.CostMicros
	} else if r.TotalTokens > 0 {
		s.unpriced = true
	}
}

// printCalibration prints the calibration of each workflow.
func printCalibration(w io.Writer, pairs []similarity.LabelledPair, scored []similarity.ScoredPair, each bool, spend *spendTally) {
	cost := "$" + strconv.FormatFloat(usagerec.MicrosToUSD(spend.micros), 'f', 4, 64)
	if spend.unpriced {
		cost += " (some models have no price)"
	}
	fmt.Fprintf(w, "%d labelled pairs; %d scoring calls (%d failed), %d tokens, %s on platform keys\n",
		len(pairs), spend.calls, spend.failed, spend.tokens, cost)
	if each {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKFLOW\tGROUP\tLABEL\tSCORE\tMETHOD")
		for _, p := range scored {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dashIfEmpty(p.Workflow), dashIfEmpty(p.Group), p.Label, score(p.Score.Value), p.Score.Method)
		}
		_ = tw.Flush()
	}
	for _, c := range similarity.Calibrate(scored) {
		fmt.Fprintln(w)
		name := c.Workflow
		if name == "" {
			name = "(no workflow)"
		}
		if c.Method == "" {
			fmt.Fprintf(w, "%s: no pair was scored by its method; %d fell back or failed\n", name, c.Fallbacks)
			continue
		}
		fmt.Fprintf(w, "%s: %s, configured threshold %.2f\n", name, c.Method, c.Threshold)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  LABEL\tGOOD\tN\tMEAN\tMIN\tMAX")
		for _, l := range c.Labels {
			good := "no"
			if l.Good {
				good = "yes"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\n", l.Label, good, l.N, score(l.Mean), score(l.Min), score(l.Max))
		}
		_ = tw.Flush()
		fmt.Fprintf(w, "  configured threshold %.2f: balanced accuracy %s\n", c.Threshold, fmtPercent(c.Accuracy))
		fmt.Fprintf(w, "  suggested threshold %.2f: balanced accuracy %s", c.Best, fmtPercent(c.BestAccuracy))
		if c.Separable {
			fmt.Fprintf(w, "; good and bad pairs are apart by %.2f", c.Margin)
		} else {
			fmt.Fprint(w, "; no threshold separates good from bad pairs")
		}
		fmt.Fprintln(w)
		if c.Fallbacks > 0 {
			fmt.Fprintf(w, "  %d pairs fell back to lexical or failed and are left out\n", c.Fallbacks)
		}
		n := 0
		for _, l := range c.Labels {
			n += l.N
		}
		if n < similarity.MinCalibrationPairs {
			fmt.Fprintf(w, "  only %d pairs: label at least %d from real traffic before trusting the threshold\n",
				n, similarity.MinCalibrationPairs)
		}
	}
}

// score formats a score, or a dash for none.
func score(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
