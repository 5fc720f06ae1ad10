package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/quota"
)

// capacityCmd runs `veil capacity`: a running veil's capacity report
// (GET /admin/capacity) as tables, or as its JSON document.
func capacityCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("capacity", flag.ContinueOnError)
	path := fs.String("config", "", "the running veil's config file (for the admin address and token)")
	output := choiceFlag(fs, "output", "text", "text (tables) or json (the admin document)", "text", "json")
	if pos, err := parseFlags(fs, "capacity --config FILE [--output json]", args, stdout); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("%w: capacity takes no arguments, got %q", errUsage, pos[0])
	}
	if *path == "" {
		return fmt.Errorf("%w: capacity needs --config FILE", errUsage)
	}
	base, token, err := adminTarget(*path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := admin.Client{Base: base, Token: token}.Capacity(ctx, admin.CapacityQuery{})
	if err != nil {
		return err
	}
	if *output == "json" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the capacity report: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	return printCapacity(stdout, &rep)
}

// limitNames are the tier limits as the tables name them.
var limitNames = map[string]string{quota.LimitRequests: "requests/minute", quota.LimitTokens: "tokens/minute",
	quota.LimitMonthTokens: "tokens/month", quota.LimitMonthCost: "cost/month"}

// printCapacity writes the report as four tables: providers, tiers, the
// tiers' top suppliers and the forecast.
func printCapacity(w io.Writer, rep *admin.CapacityReport) error {
	fmt.Fprintf(w, "capacity at %s", rep.At.Format("2006-01-02 15:04 MST"))
	if rep.Season != "" {
		fmt.Fprintf(w, ", season %s in force", rep.Season)
	}
	fmt.Fprint(w, "\n\nproviders on the platform keys, over the accounts of each pool as each last reported\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tBREAKER\tACCOUNTS\tHEADROOM\tREQUESTS LEFT\tOF\tSHARE LEFT\tRESET\tTOKENS LEFT\tOF\tSHARE LEFT\tRESET\tREPORTED")
	for _, p := range rep.Providers {
		accounts := "-"
		if p.Accounts > 0 {
			accounts = strconv.Itoa(p.Accounts)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Provider, p.Breaker, accounts, percentOrDash(p.Headroom),
			intOrDash(p.Requests.Remaining), intOrDash(p.Requests.Limit), percentOrDash(p.Requests.ShareLeft), whenOrDash(p.Requests.Reset, rep.At),
			intOrDash(p.Tokens.Remaining), intOrDash(p.Tokens.Limit), percentOrDash(p.Tokens.ShareLeft), whenOrDash(p.Tokens.Reset, rep.At),
			whenOrDash(p.ReportedAt, rep.At))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprint(w, "\ntiers, this minute and this month, over their suppliers\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIER\tSUPPLIERS\tLIMIT\tPER SUPPLIER\tUSED\tSHARE USED\tNEAR LIMIT\tAT LIMIT")
	for _, t := range rep.Tiers {
		first := true
		for _, l := range t.Limits {
			if l.PerSupplier <= 0 && l.Used == 0 {
				continue
			}
			tier, n := "", ""
			if first {
				tier, n, first = t.Tier, strconv.Itoa(t.Suppliers), false
			}
			per := "none"
			if l.PerSupplier > 0 {
				per = limitValue(l.Limit, l.PerSupplier)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", tier, n, limitNames[l.Limit], per,
				limitValue(l.Limit, l.Used), percentOrDash(l.ShareUsed), l.NearLimit, l.AtLimit)
		}
		if first {
			fmt.Fprintf(tw, "%s\t%d\tno limits\t\t\t\t\t\n", t.Tier, t.Suppliers)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprint(w, "\nsuppliers nearest to a limit\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIER\tSUPPLIER\tHIGHEST SHARE\tOF\tREQUESTS/MIN\tTOKENS/MIN\tTOKENS/MONTH\tCOST/MONTH")
	for _, t := range rep.Tiers {
		for _, s := range t.Top {
			share := s.HighestShare
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Tier, s.Supplier, percentOrDash(&share), dashIfEmpty(limitNames[s.HighestLimit]),
				usedOrDash(s.Used, quota.LimitRequests), usedOrDash(s.Used, quota.LimitTokens), usedOrDash(s.Used, quota.LimitMonthTokens),
				usedOrDash(s.Used, quota.LimitMonthCost))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	printForecast(w, &rep.Forecast)
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "problem:", p)
	}
	return nil
}

// printForecast writes the projection of the coming months.
func printForecast(w io.Writer, f *admin.CapacityForecast) {
	fmt.Fprintf(w, "\nforecast from usage %s to %s, peak season %s; capacity %s requests and %s tokens a minute (the providers' limits); flagged above %s\n",
		f.HistoryFrom, f.HistoryTo, f.PeakSeason, intOrDash(f.RequestsPerMinute), intOrDash(f.TokensPerMinute),
		strconv.FormatFloat(f.Threshold*100, 'f', -1, 64)+"%")
	for _, b := range f.Basis {
		how := "default"
		if b.Measured {
			how = "measured"
		}
		fmt.Fprintf(w, "  %s: %s (peak factor %s, %s)\n", b.Series, b.Basis, strconv.FormatFloat(b.PeakFactor, 'f', -1, 64), how)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MONTH\tPEAK DAYS\tREQUESTS\tOF CAPACITY\tTOKENS\tOF CAPACITY\tCOST USD\t")
	for _, m := range f.Months {
		mark := ""
		if m.AboveThreshold {
			mark = "above threshold"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t%.2f\t%s\n", m.Month, m.PeakDays, m.Requests, percentOrDash(m.RequestsShare),
			m.Tokens, percentOrDash(m.TokensShare), m.CostUSD, mark)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "peak months: %s; flagged: %s\n", listOrNone(f.PeakMonths), listOrNone(f.Flagged))
}

// limitValue shows a limit's amount: dollars for a cost in micros, a
// dash for no limit.
func limitValue(limit string, v int64) string {
	if limit == quota.LimitMonthCost {
		return "$" + strconv.FormatFloat(float64(v)/1e6, 'f', 2, 64)
	}
	return strconv.FormatInt(v, 10)
}

// usedOrDash shows a supplier's use of a limit, or a dash when its tier
// sets no such limit.
func usedOrDash(used map[string]int64, limit string) string {
	v, ok := used[limit]
	if !ok {
		return "-"
	}
	return limitValue(limit, v)
}

// whenOrDash shows a time relative to now ("in 6s", "3s ago"), or a
// dash when unknown.
func whenOrDash(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	switch {
	case d > 0:
		return "in " + d.String()
	case d < 0:
		return (-d).String() + " ago"
	}
	return "now"
}

// listOrNone joins a list, or says none.
func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
