package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestCompareCalibrate: `veil compare calibrate` scores the labelled pairs
// of similarity/testdata through the configured providers (the fake) with
// each workflow's method, and suggests per workflow a threshold that
// separates the good pairs from the bad ones.
func TestCompareCalibrate(t *testing.T) {
	up := startFake(t, fakeopenai.Options{})
	t.Setenv("TEST_PLATFORM_KEY", testPlatformKey)
	cfg := filepath.Join(t.TempDir(), "veil.yaml")
	yaml := veilConfig("127.0.0.1:0", "127.0.0.1:0", up.URL(), `prices:
  - {provider: openai, model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}
  - {provider: openai, model: text-embedding-3-small, input_per_mtok: 0.02}
comparisons:
  similarity:
    workflows:
      planning: {method: judge, provider: openai, model: gpt-4o-mini}
      photography: {method: judge, provider: openai, model: gpt-4o-mini, threshold: 0.6}
      venue: {method: embeddings, provider: openai, model: text-embedding-3-small}
`)
	// The caller's token is not needed to score: it stays unresolved.
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	pairs := filepath.Join("..", "..", "similarity", "testdata", "pairs.json")
	code, out, errOut := runCmd("compare", "calibrate", "--config", cfg, "--pairs", pairs)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	t.Log("\n" + out)
	for _, want := range []string{
		"24 labelled pairs; 18 scoring calls (0 failed)",
		"planning: judge gpt-4o-mini, configured threshold 0.70",
		"photography: judge gpt-4o-mini, configured threshold 0.60",
		"venue: embeddings text-embedding-3-small, configured threshold 0.85",
		"catering: lexical, configured threshold 0.80",
		"paraphrase  yes   2  0.94  0.92  0.95",
		"suggested threshold",
		"good and bad pairs are apart by",
		"church-and-hall    paraphrase  0.92   judge gpt-4o-mini",
		"only 6 pairs: label at least 30",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "$0.0000 ") || strings.Contains(out, testPlatformKey) {
		t.Errorf("the spend is not priced, or the key is printed:\n%s", out)
	}
	if n := len(up.Requests()); n != 18 {
		t.Errorf("the fake got %d requests, want 18", n)
	}
}

func TestCompareCalibrateUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"help", []string{"compare", "calibrate", "--help"}, 0, "threshold that best separates"},
		{"compare help", []string{"compare", "--help"}, 0, "calibrate  score labelled answer pairs"},
		{"no subcommand", []string{"compare"}, 2, "compare needs a command: report, calibrate"},
		{"unknown subcommand", []string{"compare", "tune"}, 2, `has no command "tune"`},
		{"no config", []string{"compare", "calibrate", "pairs.json"}, 2, "needs --config FILE"},
		{"no pairs", []string{"compare", "calibrate", "--config", "veil.yaml"}, 2, "one file of labelled pairs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.out) {
				t.Errorf("exit %d, want %d with %q:\n%s%s", code, tc.code, tc.out, out, errOut)
			}
		})
	}
}
