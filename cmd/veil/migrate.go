package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/migrate"
)

// migrateUsage is the usage of `veil migrate`, also part of the top-level
// usage.
const migrateUsage = `  veil migrate plan --config FILE --supplier ID [--to client|platform] [--provider P] [--key-ref REF]
                    [--stages 10%:10m,50%:10m,100%:10m] [--days 30] [--reason TEXT]
                    [--max-error-rate 0.05] [--max-p95-ratio 1.5] [--min-sample 20] [--output text|json]
  veil migrate start --config FILE ID
  veil migrate status --config FILE [ID]
  veil migrate rollback --config FILE ID [--reason TEXT]
  veil migrate validate --config FILE ID
  veil migrate compare --config FILE --supplier ID [--other client|platform] [--provider P]
                       [--requests 100] [--window 30m] [--sample 0.2] [--billed platform|client]
  veil migrate compare --config FILE [--report ID | --stop ID]
`

// timeLayout is how the migrate commands show instants.
const timeLayout = "2006-01-02 15:04:05 UTC"

// adminFlags holds the --config flag every migrate subcommand has.
type adminFlags struct {
	fs     *flag.FlagSet
	config *string
	// output is --output: text, or json for the admin API's document.
	output *string
	// synopsis is the command's usage line, printed by --help.
	synopsis string
	out      io.Writer
}

// newAdminFlags makes the flags of a migrate subcommand: --config and
// --output, to which it adds its own. Help goes to stdout.
func newAdminFlags(name, synopsis string, stdout io.Writer) adminFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return adminFlags{fs: fs, config: fs.String("config", "", "the running veil's config file (for the admin address and token)"),
		output: outputFlag(fs), synopsis: synopsis, out: stdout}
}

// emit prints doc as JSON with --output json, or calls text.
func (f adminFlags) emit(doc any, text func()) error {
	if *f.output == "json" {
		return writeJSONOut(f.out, doc)
	}
	text()
	return nil
}

// parse parses args, flags and arguments in any order, and checks that
// there are from want to most arguments (exactly want when most < want) and
// a --config. It returns the arguments.
func (f adminFlags) parse(args []string, want, most int, what string) ([]string, error) {
	pos, err := parseFlags(f.fs, f.synopsis, args, f.out)
	if err != nil {
		return nil, err
	}
	if most < want {
		most = want
	}
	if len(pos) < want || len(pos) > most {
		return nil, fmt.Errorf("%w: %s %s", errUsage, f.fs.Name(), what)
	}
	if *f.config == "" {
		return nil, fmt.Errorf("%w: %s needs --config FILE", errUsage, f.fs.Name())
	}
	return pos, nil
}

// target returns the admin listener's base URL and token, from --config.
func (f adminFlags) target() (base, token string, err error) { return adminTarget(*f.config) }

// open parses the command line as parse does, then finds the running
// veil's admin listener and token.
func (f adminFlags) open(args []string, want, most int, what string) (pos []string, base, token string, err error) {
	if pos, err = f.parse(args, want, most, what); err != nil {
		return nil, "", "", err
	}
	base, token, err = f.target()
	return pos, base, token, err
}

// parseInterspersed parses flags that may come before, between or after
// the arguments, and returns the arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// migrationPath is the admin path of a migration, or of one of its
// actions.
func migrationPath(id string, action ...string) string {
	return "/admin/migrations/" + strings.Join(append([]string{url.PathEscape(id)}, action...), "/")
}

func migratePlan(args []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("migrate plan", "migrate plan --config FILE --supplier ID [--to client|platform] [--provider P] [--stages 10%:10m,50%:10m,100%:10m] [--output json]", stdout)
	fs := f.fs
	supplier := fs.String("supplier", "", "the supplier to move (required)")
	to := choiceFlag(fs, "to", "", "the system to move to, client or platform (default: the one the supplier is not on)",
		string(billing.ModeClient), string(billing.ModePlatform))
	prov := fs.String("provider", "", "the provider on the target (default: the one its calls go to first)")
	keyRef := fs.String("key-ref", "", "the target key's reference, such as a Vault path (default: the supplier's key for the mode)")
	stages := fs.String("stages", "", "the ramp, SHARE:DWELL,... ending at 100% (default 10%:10m,50%:10m,100%:10m)")
	days := fs.Int("days", 0, "days of usage the cost estimate covers (default 30)")
	reason := fs.String("reason", "", "why, for the audit trail")
	maxErr := fs.Float64("max-error-rate", 0, "gate: the highest share of failed requests on the target (default 0.05)")
	maxP95 := fs.Float64("max-p95-ratio", 0, "gate: the highest target p95 latency over the source's (default 1.5)")
	minSample := fs.Int("min-sample", 0, "gate: the fewest requests per path in a stage before the gates count (default 20)")
	output := f.output
	if _, err := f.parse(args, 0, 0, "takes no arguments, only flags"); err != nil {
		return err
	}
	if *supplier == "" {
		return fmt.Errorf("%w: migrate plan needs --supplier ID", errUsage)
	}
	var body admin.PlanBody
	body.Supplier = *supplier
	body.To.Mode, body.To.Provider, body.To.KeyRef = billing.Mode(*to), *prov, *keyRef
	body.Gates = migrate.Gates{MaxErrorRate: *maxErr, MaxP95Ratio: *maxP95, MinSample: *minSample}
	body.Days, body.Reason = *days, *reason
	if *stages != "" {
		st, err := parseStages(*stages)
		if err != nil {
			return fmt.Errorf("%w: --stages: %w", errUsage, err)
		}
		for _, s := range st {
			dwell := ""
			if s.Dwell > 0 {
				dwell = s.Dwell.String()
			}
			body.Stages = append(body.Stages, struct {
				Share float64 `json:"share"`
				Dwell string  `json:"dwell"`
			}{s.Share, dwell})
		}
	}
	base, token, err := f.target()
	if err != nil {
		return err
	}
	var m migrate.Migration
	if err := callAdmin("POST", base+"/admin/migrations", token, body, &m); err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(&m)
	}
	printPlan(stdout, &m)
	fmt.Fprintf(stdout, "\nNothing has changed yet. Start it with:\n  veil migrate start --config %s %s\n", *f.config, m.ID)
	return nil
}

// parseStages reads a ramp such as "10%:10m,50%:10m,100%": each stage is
// a share, as a percentage or a fraction, and optionally a dwell.
func parseStages(s string) ([]migrate.Stage, error) {
	var out []migrate.Stage
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		shareText, dwellText, _ := strings.Cut(item, ":")
		var share float64
		var err error
		if p, ok := strings.CutSuffix(shareText, "%"); ok {
			share, err = strconv.ParseFloat(p, 64)
			share /= 100
		} else {
			share, err = strconv.ParseFloat(shareText, 64)
		}
		if err != nil || shareText == "" {
			return nil, fmt.Errorf("stage %q: the share must be a percentage such as 10%% or a fraction such as 0.1", item)
		}
		st := migrate.Stage{Share: share}
		if dwellText != "" {
			d, err := time.ParseDuration(dwellText)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("stage %q: the dwell must be a duration such as 10m", item)
			}
			st.Dwell = d
		}
		out = append(out, st)
	}
	return out, nil
}

// printPlan shows a migration's plan: the systems, the probe of the target
// key, the cost estimate, the stages and the gates.
func printPlan(w io.Writer, m *migrate.Migration) {
	fmt.Fprintf(w, "Migration %s for %s: %s -> %s (%s)\n", m.ID, m.Supplier, m.From, m.To, m.Status)
	if m.Reason != "" {
		fmt.Fprintf(w, "Reason: %s\n", m.Reason)
	}
	if m.Base != "" {
		fmt.Fprintf(w, "Rolling it back returns the supplier to %s, where migration %s put it\n", m.From, m.Base)
	}
	fmt.Fprintf(w, "Planned %s\n", m.CreatedAt.UTC().Format(timeLayout))

	fmt.Fprintln(w)
	p := m.Probe
	if p.OK {
		models := ""
		if p.Models > 0 {
			models = fmt.Sprintf(", %d models", p.Models)
		}
		fmt.Fprintf(w, "Target key probe: ok (HTTP %d in %s), key fingerprint %s%s, at %s\n", p.Status, fmtLatency(p.Latency),
			dashIfEmpty(p.Fingerprint), models, p.At.UTC().Format(timeLayout))
	} else {
		fmt.Fprintf(w, "Target key probe: FAILED (%s), key fingerprint %s, at %s\n", dashIfEmpty(p.Error), dashIfEmpty(p.Fingerprint),
			p.At.UTC().Format(timeLayout))
	}

	e := m.Estimate
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Cost estimate over %d days (%s to %s), at today's prices:\n", e.Days, fmtDay(e.From), fmtDay(e.To))
	fmt.Fprintf(w, "  %d requests, %d prompt tokens, %d completion tokens, %d cached\n",
		e.Requests, e.PromptTokens, e.CompletionTokens, e.CachedTokens)
	fmt.Fprintf(w, "  now:    %s on %s, paid by %s\n", fmtUSD(e.CurrentUSD), m.From, payer(e.BilledNow))
	fmt.Fprintf(w, "  after:  %s on %s, paid by %s\n", fmtUSD(e.TargetUSD), m.To, payer(e.BilledAfter))
	fmt.Fprintf(w, "  change: %s in total; WedSync %s, the supplier %s\n",
		fmtDeltaUSD(e.DeltaUSD), fmtDeltaUSD(e.PlatformDeltaUSD), fmtDeltaUSD(e.ClientDeltaUSD))
	if e.Unpriced > 0 {
		fmt.Fprintf(w, "  %d requests are of models without a price today, counted at their recorded cost", e.Unpriced)
		if len(e.UnpricedModels) > 0 {
			fmt.Fprintf(w, ": %s", strings.Join(e.UnpricedModels, ", "))
		}
		fmt.Fprintln(w)
	}
	if len(e.Models) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PROVIDER\tMODEL\tREQUESTS\tPROMPT\tCOMPLETION\tCACHED\tNOW USD\tAFTER ON\tAFTER USD")
		for _, me := range e.Models {
			after := fmt.Sprintf("%.6f", me.TargetUSD)
			if !me.Priced {
				after += " (unpriced)"
			}
			on := "-"
			if me.TargetProvider != "" {
				on = me.TargetProvider + "/" + me.TargetModel
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%.6f\t%s\t%s\n", me.Provider, me.Model, me.Requests, me.PromptTokens,
				me.CompletionTokens, me.CachedTokens, me.CurrentUSD, on, after)
		}
		_ = tw.Flush()
	}
	if p := e.Projection; p != nil {
		fmt.Fprintln(w)
		printProjection(w, p, e.BilledNow, e.BilledAfter)
	}

	fmt.Fprintln(w)
	printStages(w, m)
	g := m.Gates
	fmt.Fprintf(w, "\nGates, checked all along; a failing gate sends all traffic back to %s at once:\n", m.From)
	fmt.Fprintf(w, "  failed requests on the target  at most %s\n", fmtPercent(g.MaxErrorRate))
	fmt.Fprintf(w, "  target p95 latency             at most %sx the source's\n", strconv.FormatFloat(g.MaxP95Ratio, 'f', -1, 64))
	fmt.Fprintf(w, "  sample                         %d requests per path in a stage before the gates count\n", g.MinSample)
}

// printProjection shows a plan's twelve-month projection: each month now
// and after, and what WedSync and the supplier would pay more or less.
func printProjection(w io.Writer, p *migrate.CostProjection, now, after billing.Payer) {
	if len(p.Months) == 0 {
		return
	}
	first, last := p.Months[0].Month, p.Months[len(p.Months)-1].Month
	season := "March to October"
	if p.Season != "" {
		season = p.Season
	}
	fmt.Fprintf(w, "Projection for %s to %s at today's prices, with the wedding season (%s):\n", first, last, season)
	if p.HistoryDays == 0 {
		fmt.Fprintln(w, "  no usage before today to project from")
		return
	}
	factor := "the default"
	if p.Measured {
		factor = "measured"
	}
	fmt.Fprintf(w, "  from %s; a peak day at %sx an off-peak one (%s)\n", p.Basis,
		strconv.FormatFloat(math.Round(p.PeakFactor*100)/100, 'f', -1, 64), factor)
	fmt.Fprintf(w, "  now paid by %s, after by %s\n", payer(now), payer(after))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  MONTH\tSEASON\tNOW\tAFTER\tWEDSYNC\tSUPPLIER\t")
	for _, m := range p.Months {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t\n", m.Month, seasonText(m), fmtMoney(m.NowUSD), fmtMoney(m.AfterUSD),
			fmtDeltaMoney(m.PlatformAfterUSD-m.PlatformNowUSD), fmtDeltaMoney(m.ClientAfterUSD-m.ClientNowUSD))
	}
	fmt.Fprintf(tw, "  year\t\t%s\t%s\t%s\t%s\t\n", fmtMoney(p.NowUSD), fmtMoney(p.AfterUSD),
		fmtDeltaMoney(p.PlatformDeltaUSD), fmtDeltaMoney(p.ClientDeltaUSD))
	_ = tw.Flush()
	if p.Busiest != "" && p.NowUSD > 0 {
		fmt.Fprintf(w, "  busiest month: %s\n", p.Busiest)
	}
}

// deferralDetail is what a deferred switch ended as, after its outcome.
func deferralDetail(d *migrate.DeferredSwitch) string {
	switch {
	case d.Error != "":
		return ": " + d.Error
	case d.Migration != "":
		return " (" + d.Migration + ")"
	}
	return ""
}

// seasonText says how much of a projected month is in the season.
func seasonText(m migrate.MonthProjection) string {
	days := 0
	if start, err := time.Parse("2006-01", m.Month); err == nil {
		days = start.AddDate(0, 1, -1).Day()
	}
	switch m.PeakDays {
	case 0:
		return "off-peak"
	case days:
		return "peak"
	}
	return fmt.Sprintf("%d peak days", m.PeakDays)
}

// fmtMoney shows dollars with cents, or four decimals under a dollar.
func fmtMoney(v float64) string {
	if math.Abs(v) < 1 {
		return "$" + strconv.FormatFloat(v, 'f', 4, 64)
	}
	return "$" + strconv.FormatFloat(v, 'f', 2, 64)
}

// fmtDeltaMoney shows a change in dollars with its sign.
func fmtDeltaMoney(v float64) string {
	if v < 0 {
		return "-" + fmtMoney(-v)
	}
	return "+" + fmtMoney(v)
}

// printStages shows a migration's ramp, marking the current stage once
// it started.
func printStages(w io.Writer, m *migrate.Migration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  STAGE\tSHARE ON TARGET\tDWELL AT LEAST")
	for i, s := range m.Stages {
		line := fmt.Sprintf("  %d\t%s\t%s", i+1, fmtPercent(s.Share), fmtDuration(s.Dwell))
		if i == m.Stage && m.Status != migrate.StatusPlanned {
			line += "\t<- " + string(m.Status)
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
}

func migrateStart(args []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("migrate start", "migrate start --config FILE [--output json] ID", stdout)
	pos, base, token, err := f.open(args, 1, 0, "needs the migration's ID")
	if err != nil {
		return err
	}
	var m migrate.Migration
	if err := callAdmin("POST", base+migrationPath(pos[0], "start"), token, struct{}{}, &m); err != nil {
		return err
	}
	return f.emit(&m, func() {
		printState(stdout, &m)
		fmt.Fprintf(stdout, "Follow it with: veil migrate watch --config %s %s\n", *f.config, m.ID)
	})
}

func migrateRollback(args []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("migrate rollback", "migrate rollback --config FILE [--reason TEXT] [--output json] ID", stdout)
	reason := f.fs.String("reason", "", "why, for the audit trail")
	pos, base, token, err := f.open(args, 1, 0, "needs the migration's ID")
	if err != nil {
		return err
	}
	var m migrate.Migration
	body := map[string]string{"reason": *reason}
	if err := callAdmin("POST", base+migrationPath(pos[0], "rollback"), token, body, &m); err != nil {
		return err
	}
	return f.emit(&m, func() { printState(stdout, &m) })
}

// printState says in a line or two where a migration stands and which
// system serves the supplier's traffic.
func printState(w io.Writer, m *migrate.Migration) {
	fmt.Fprintf(w, "Migration %s for %s: %s\n", m.ID, m.Supplier, describeState(m))
	if n := len(m.Events); n > 0 {
		ev := m.Events[n-1]
		fmt.Fprintf(w, "  %s  %s\n", ev.At.UTC().Format(timeLayout), ev.Message)
	}
}

// describeState is a migration's status with what it means for traffic.
func describeState(m *migrate.Migration) string {
	switch m.Status {
	case migrate.StatusPlanned:
		return fmt.Sprintf("planned, nothing moved yet; all traffic on %s", m.From)
	case migrate.StatusRamping:
		s := m.Stages[m.Stage]
		return fmt.Sprintf("ramping, stage %d of %d: %s of traffic on %s, the rest on %s",
			m.Stage+1, len(m.Stages), fmtPercent(s.Share), m.To, m.From)
	case migrate.StatusCompleted:
		return fmt.Sprintf("completed; all traffic on %s", m.To)
	case migrate.StatusRolledBack:
		return fmt.Sprintf("rolled back; all traffic on %s", m.From)
	case migrate.StatusFailed:
		return fmt.Sprintf("failed a gate and went back; all traffic on %s", m.From)
	}
	return string(m.Status)
}

func migrateStatus(args []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("migrate status", "migrate status --config FILE [--output json] [ID]", stdout)
	pos, base, token, err := f.open(args, 0, 1, "takes at most one migration ID")
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		var m migrate.Migration
		if err := fetchAdmin(base+migrationPath(pos[0]), token, &m); err != nil {
			return err
		}
		return f.emit(&m, func() { printMigration(stdout, &m) })
	}
	var list []migrate.Migration
	if err := fetchAdmin(base+"/admin/migrations", token, &list); err != nil {
		return err
	}
	if *f.output == "json" {
		return writeJSONOut(stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no migrations")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUPPLIER\tFROM -> TO\tSTATUS\tSTAGE\tSHARE\tUPDATED")
	for i := range list {
		m := &list[i]
		fmt.Fprintf(tw, "%s\t%s\t%s -> %s\t%s\t%d/%d\t%s\t%s\n", m.ID, m.Supplier, m.From, m.To, m.Status,
			m.Stage+1, len(m.Stages), fmtPercent(m.Share()), m.UpdatedAt.UTC().Format(timeLayout))
	}
	return tw.Flush()
}

// printMigration shows a migration in full: its plan, where it stands and
// its history.
func printMigration(w io.Writer, m *migrate.Migration) {
	printPlan(w, m)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Now: %s\n", describeState(m))
	if m.Status == migrate.StatusRamping {
		s := m.Stages[m.Stage]
		fmt.Fprintf(w, "  stage %d began %s; it moves on from %s once its gates pass\n", m.Stage+1,
			m.StageStarted.UTC().Format(timeLayout), m.StageStarted.Add(s.Dwell).UTC().Format(timeLayout))
	}
	if !m.FinishedAt.IsZero() {
		fmt.Fprintf(w, "  finished %s\n", m.FinishedAt.UTC().Format(timeLayout))
	}
	if d := m.Deferred; d != nil {
		fmt.Fprintf(w, "  a switch to %s (%s) came at %s, while this migration owned the supplier: ", d.To, d.Reason,
			d.At.UTC().Format(timeLayout))
		if d.Pending() {
			fmt.Fprintf(w, "deferred until it ends\n")
		} else {
			fmt.Fprintf(w, "%s at %s%s\n", d.Outcome, d.EndedAt.UTC().Format(timeLayout), deferralDetail(d))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Events:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  AT\tEVENT\tSTAGE\tMESSAGE")
	for _, ev := range m.Events {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", ev.At.UTC().Format(timeLayout), ev.Kind, ev.Stage+1, ev.Message)
	}
	_ = tw.Flush()
}

func migrateValidate(args []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("migrate validate", "migrate validate --config FILE [--output json] ID", stdout)
	pos, base, token, err := f.open(args, 1, 0, "needs the migration's ID")
	if err != nil {
		return err
	}
	var v migrate.Validation
	if err := fetchAdmin(base+migrationPath(pos[0], "validate"), token, &v); err != nil {
		return err
	}
	return f.emit(&v, func() { printValidation(stdout, &v) })
}

// printValidation shows the two paths of a migration side by side, per
// stage, and the verdict.
func printValidation(w io.Writer, v *migrate.Validation) {
	fmt.Fprintf(w, "Validation of %s for %s (%s, stage %d)\n\n", v.ID, v.Supplier, v.Status, v.Stage+1)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\tSOURCE %s\tTARGET %s\n", v.Source.System, v.Target.System)
	row := func(name string, f func(migrate.PathReport) string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, f(v.Source), f(v.Target))
	}
	row("requests", func(p migrate.PathReport) string { return strconv.FormatInt(p.Requests, 10) })
	row("errors", func(p migrate.PathReport) string { return strconv.FormatInt(p.Errors, 10) })
	row("success rate", func(p migrate.PathReport) string { return pathRate(p) })
	row("latency p50", func(p migrate.PathReport) string { return pathMS(p, p.P50MS) })
	row("latency p95", func(p migrate.PathReport) string { return pathMS(p, p.P95MS) })
	row("cost per 1k requests", func(p migrate.PathReport) string {
		if p.Requests == 0 {
			return "-"
		}
		return fmtUSD(p.CostPer1kUSD)
	})
	row("total cost", func(p migrate.PathReport) string { return fmtUSD(p.CostUSD) })
	_ = tw.Flush()
	if v.P95Ratio > 0 {
		fmt.Fprintf(w, "\np95 ratio, target over source: %.2f\n", v.P95Ratio)
	}
	if len(v.Stages) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  STAGE\tSHARE\tSOURCE REQS\tSOURCE OK\tSOURCE P95\tTARGET REQS\tTARGET OK\tTARGET P95")
		for _, s := range v.Stages {
			if s.Stage > v.Stage && s.Source.Requests+s.Target.Requests == 0 {
				continue // not reached
			}
			fmt.Fprintf(tw, "  %d\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", s.Stage+1, fmtPercent(s.Share),
				s.Source.Requests, pathRate(s.Source), pathMS(s.Source, s.Source.P95MS),
				s.Target.Requests, pathRate(s.Target), pathMS(s.Target, s.Target.P95MS))
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "\nVerdict: %s\n", v.Verdict)
	for _, r := range v.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
}

// pathRate is a path's success rate, or a dash without requests.
func pathRate(p migrate.PathReport) string {
	if p.Requests == 0 {
		return "-"
	}
	return fmtPercent(p.SuccessRate)
}

// pathMS is one of a path's latencies, or a dash without requests.
func pathMS(p migrate.PathReport, ms float64) string {
	if p.Requests == 0 {
		return "-"
	}
	return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
}

func migrateCompare(args []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("migrate compare", "migrate compare --config FILE [--supplier ID ... | --stop ID | --report ID] [--output json]", stdout)
	fs := f.fs
	supplier := fs.String("supplier", "", "start a comparison for this supplier")
	other := choiceFlag(fs, "other", "", "the system shadowed, client or platform (default: the one the supplier is not on)",
		string(billing.ModeClient), string(billing.ModePlatform))
	prov := fs.String("provider", "", "the provider the shadow requests go to")
	requests := fs.Int("requests", 100, "stop after this many shadowed requests (0: no count limit)")
	window := fs.Duration("window", 30*time.Minute, "stop this long after the start (0: no time limit)")
	sample := fs.Float64("sample", 0.2, "the share of the supplier's requests shadowed, in (0, 1]")
	billed := choiceFlag(fs, "billed", "", "who pays for the shadow requests, platform or client (default platform)",
		string(billing.PaidByPlatform), string(billing.PaidByClient))
	maxP95 := fs.Float64("max-p95-ratio", 0, "advice: the most times the primary's p95 latency the other system's may be (default 1.5)")
	report := fs.String("report", "", "print the report of this comparison")
	stop := fs.String("stop", "", "stop this comparison")
	if _, err := f.parse(args, 0, 0, "takes no arguments, only flags"); err != nil {
		return err
	}
	set := 0
	for _, s := range []string{*supplier, *report, *stop} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return fmt.Errorf("%w: migrate compare takes one of --supplier, --report and --stop", errUsage)
	}
	base, token, err := f.target()
	if err != nil {
		return err
	}
	switch {
	case *report != "":
		var doc json.RawMessage
		if err := fetchAdmin(base+"/admin/comparisons/"+url.PathEscape(*report), token, &doc); err != nil {
			return err
		}
		if *f.output == "json" {
			_, err := stdout.Write(append(doc, '\n'))
			return err
		}
		var text struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(doc, &text); err != nil {
			return fmt.Errorf("reading the report: %w", err)
		}
		fmt.Fprint(stdout, text.Text)
		return nil
	case *stop != "":
		var c compare.Comparison
		if err := callAdmin("POST", base+"/admin/comparisons/"+url.PathEscape(*stop)+"/stop", token, struct{}{}, &c); err != nil {
			return err
		}
		return f.emit(&c, func() {
			fmt.Fprintf(stdout, "Comparison %s for %s: %s; %d requests shadowed, %d pairs recorded\n",
				c.ID, c.Supplier, c.Status, c.Shadowed, c.Recorded)
			fmt.Fprintf(stdout, "Read its report with: veil compare report --config %s %s\n", *f.config, c.ID)
		})
	case *supplier != "":
		body := admin.CompareStart{Supplier: *supplier, Other: billing.Mode(*other), Provider: *prov, Requests: *requests,
			Sample: *sample, Billed: billing.Payer(*billed), MaxP95Ratio: *maxP95}
		if *window > 0 {
			body.Window = window.String()
		}
		var c compare.Comparison
		if err := callAdmin("POST", base+"/admin/comparisons", token, body, &c); err != nil {
			return err
		}
		return f.emit(&c, func() {
			fmt.Fprintf(stdout, "Comparison %s started for %s: %s (primary) against %s (shadow)\n", c.ID, c.Supplier, c.Primary, c.Other)
			fmt.Fprintf(stdout, "  %s of requests shadowed, billed to %s, %s\n", fmtPercent(c.Sample), c.Billed, compareLimits(&c))
			fmt.Fprintf(stdout, "Read its report with: veil compare report --config %s %s\n", *f.config, c.ID)
		})
	}
	var list []compare.Comparison
	if err := fetchAdmin(base+"/admin/comparisons", token, &list); err != nil {
		return err
	}
	if *f.output == "json" {
		return writeJSONOut(stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no comparisons")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUPPLIER\tPRIMARY -> SHADOW\tSTATUS\tSHADOWED\tPAIRS\tSTARTED")
	for _, c := range list {
		status := c.Status
		if c.Reason != "" && c.Status != compare.Running {
			status += " (" + c.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s -> %s\t%s\t%d\t%d\t%s\n", c.ID, c.Supplier, c.Primary, c.Other, status, c.Shadowed,
			c.Recorded, c.Started.UTC().Format(timeLayout))
	}
	return tw.Flush()
}

// compareLimits says when a comparison stops.
func compareLimits(c *compare.Comparison) string {
	var l []string
	if c.Requests > 0 {
		l = append(l, fmt.Sprintf("after %d shadowed requests", c.Requests))
	}
	if c.Window > 0 {
		l = append(l, "at "+c.Ends.UTC().Format(timeLayout)+" ("+fmtDuration(c.Window)+")")
	}
	return "stops " + strings.Join(l, " or ")
}

// payer names who pays on a system.
func payer(billed billing.Payer) string {
	switch billed {
	case billing.PaidByPlatform:
		return "WedSync (platform keys)"
	case billing.PaidByClient:
		return "the supplier (its own key)"
	}
	return dashIfEmpty(string(billed))
}

func fmtUSD(v float64) string { return "$" + strconv.FormatFloat(v, 'f', 6, 64) }

// fmtDeltaUSD shows a change in dollars with its sign.
func fmtDeltaUSD(v float64) string {
	if v < 0 {
		return "-" + fmtUSD(-v)
	}
	return "+" + fmtUSD(v)
}

// fmtPercent shows a share as a percentage, without needless decimals.
func fmtPercent(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e4)/100, 'f', -1, 64) + "%"
}

// fmtDuration shows a duration without trailing zero units: 10m, 1h30m.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func fmtLatency(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}

func fmtDay(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02")
}
