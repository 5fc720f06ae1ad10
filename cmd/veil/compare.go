package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"

	"github.com/wedsync/veil/compare"
)

// compareUsage is the usage of `veil compare`, also part of the top-level
// usage.
const compareUsage = `  veil compare report --config FILE [--output text|json] ID
  veil compare calibrate --config FILE [--pairs] PAIRS.json
`

// compareReport runs `veil compare report ID`: the comparison's report as
// text (Report.Text) or as the admin API's JSON.
func compareReport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("compare report", flag.ContinueOnError)
	config := fs.String("config", "", "the running veil's config file (for the admin address and token)")
	output := choiceFlag(fs, "output", "text", "text, or json for the admin API's document", "text", "json")
	pos, err := parseFlags(fs, "compare report --config FILE [--output text|json] ID\n\n"+
		"Prints a comparison's report: per workflow, who pays now and after a move, a 12-month projection\n"+
		"and the recommendation with the sample it rests on.\n", args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return fmt.Errorf("%w: compare report takes one comparison ID", errUsage)
	case *config == "":
		return fmt.Errorf("%w: compare report needs --config FILE", errUsage)
	}
	base, token, err := adminTarget(*config)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := fetchAdmin(base+"/admin/comparisons/"+url.PathEscape(pos[0]), token, &raw); err != nil {
		return err
	}
	if *output == "json" {
		var out bytes.Buffer
		if err := json.Indent(&out, raw, "", "  "); err != nil {
			return fmt.Errorf("the admin API's report is not JSON: %w", err)
		}
		out.WriteByte('\n')
		_, err := stdout.Write(out.Bytes())
		return err
	}
	var doc struct {
		compare.Report
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("the admin API's report: %w", err)
	}
	text := doc.Text
	if text == "" {
		text = doc.Report.Text()
	}
	_, err = io.WriteString(stdout, text)
	return err
}
