package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/store"
	usagerec "github.com/wedsync/veil/usage"
)

// errDifferences says that reconcile found differences (exit status 1).
var errDifferences = errors.New("the records and the store's aggregates differ")

// aggKey is one daily aggregate: what the store sums records by.
type aggKey struct {
	Day, Supplier, Provider, Model, KeySource, Billed, Workflow string
}

// aggSums are an aggregate's sums.
type aggSums struct {
	Requests, Prompt, Completion, Cached, CostMicros int64
}

// reconcileCmd runs `veil usage reconcile`: it sums the usage records of
// record files (the file sink's JSON lines) by day, supplier, provider,
// model, key source, payer (billed) and workflow, as the store's
// aggregates are kept, asks a
// running veil for the aggregates of the same days, and prints every
// difference. It fails (exit status 1) when there is one.
func reconcileCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("usage reconcile", flag.ContinueOnError)
	path := fs.String("config", "", "the running veil's config file (for the admin address and token)")
	from := fs.String("from", "", "first day, YYYY-MM-DD (default: the first of this month)")
	to := fs.String("to", "", "last day, YYYY-MM-DD (default: today)")
	synopsis := "usage reconcile --config FILE [--from DAY] [--to DAY] RECORDS.jsonl..."
	files, err := parseFlags(fs, synopsis, args, stdout)
	if err != nil {
		return err
	}
	if *path == "" || len(files) == 0 {
		return fmt.Errorf("%w: %s", errUsage, synopsis)
	}
	first, last, err := dayRange(*from, *to, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	records, err := sumRecordFiles(files, first, last)
	if err != nil {
		return err
	}
	base, token, err := adminTarget(*path)
	if err != nil {
		return err
	}
	q := url.Values{"from": {first.Format(time.DateOnly)}, "to": {last.Format(time.DateOnly)},
		"group_by": {"day,supplier,provider,model,key_source,billed,workflow"}}
	var rep admin.UsageReport
	if err := fetchAdmin(base+"/admin/usage?"+q.Encode(), token, &rep); err != nil {
		return err
	}
	stored := map[aggKey]aggSums{}
	for _, r := range rep.Rows {
		stored[aggKey{r.Day, r.Supplier, r.Provider, r.Model, r.KeySource, r.Billed, r.Workflow}] = aggSums{r.Requests, r.PromptTokens,
			r.CompletionTokens, r.CachedTokens, r.CostMicros}
	}
	diffs := compareAggregates(records, stored)
	qd, err := compareQuota(base, token, files, time.Now().UTC())
	if err != nil {
		return err
	}
	diffs = append(diffs, qd...)
	fmt.Fprintf(stdout, "records %s to %s: %d aggregates from the records, %d in the store\n",
		first.Format(time.DateOnly), last.Format(time.DateOnly), len(records), len(stored))
	for _, d := range diffs {
		fmt.Fprintln(stdout, d)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: %d differences", errDifferences, len(diffs))
	}
	fmt.Fprintln(stdout, "no differences")
	return nil
}

// dayRange parses the --from and --to days (defaults: this month so far).
func dayRange(from, to string, now time.Time) (first, last time.Time, err error) {
	first = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	last = now.Truncate(24 * time.Hour)
	if from != "" {
		if first, err = time.Parse(time.DateOnly, from); err != nil {
			return first, last, fmt.Errorf("--from %q is not a day such as 2026-06-01", from)
		}
	}
	if to != "" {
		if last, err = time.Parse(time.DateOnly, to); err != nil {
			return first, last, fmt.Errorf("--to %q is not a day such as 2026-06-30", to)
		}
	}
	if last.Before(first) {
		return first, last, errors.New("--to is before --from")
	}
	return first, last, nil
}

// sumRecordFiles sums the records of the days first to last in files as
// the store sink does: records without a supplier are not aggregated. A
// record without a payer, written before records had one, is summed with
// the payer the store reads its aggregates of then with
// (store.LegacyBilled).
func sumRecordFiles(files []string, first, last time.Time) (map[aggKey]aggSums, error) {
	sums := map[aggKey]aggSums{}
	end := last.Add(24 * time.Hour)
	for _, name := range files {
		if err := sumRecordFile(name, first, end, sums); err != nil {
			return nil, err
		}
	}
	return sums, nil
}

func sumRecordFile(name string, first, end time.Time, sums map[aggKey]aggSums) error {
	return eachRecord(name, func(r *usagerec.Record) {
		if r.Supplier == "" || r.TS.Before(first) || !r.TS.Before(end) {
			return
		}
		billed := string(r.Billed)
		if billed == "" {
			billed = store.LegacyBilled(string(r.KeySource))
		}
		k := aggKey{r.TS.UTC().Format(time.DateOnly), r.Supplier, r.Provider, r.Model, string(r.KeySource), billed, r.Workflow}
		s := sums[k]
		s.Requests++
		s.Prompt += r.PromptTokens
		s.Completion += r.CompletionTokens
		s.Cached += r.CachedTokens
		if r.CostMicros != nil {
			s.CostMicros += *r.CostMicros
		}
		sums[k] = s
	})
}

// eachRecord calls fn with each record of a record file (the file sink's
// JSON lines).
func eachRecord(name string, fn func(*usagerec.Record)) error {
	f, err := os.Open(name) //nolint:gosec // G703: the operator names the record files to read
	if err != nil {
		return fmt.Errorf("records: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var r usagerec.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("records: %s:%d: %w", name, line, err)
		}
		fn(&r)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("records: %s: %w", name, err)
	}
	return nil
}

// compareAggregates lists every aggregate whose sums differ between the
// records and the store, one line each, sorted.
func compareAggregates(records, stored map[aggKey]aggSums) []string {
	keys := make([]aggKey, 0, len(records)+len(stored))
	for k := range records {
		keys = append(keys, k)
	}
	for k := range stored {
		if _, ok := records[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b aggKey) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.Supplier, b.Supplier), cmp.Compare(a.Provider, b.Provider),
			cmp.Compare(a.Model, b.Model), cmp.Compare(a.KeySource, b.KeySource), cmp.Compare(a.Billed, b.Billed),
			cmp.Compare(a.Workflow, b.Workflow))
	})
	var out []string
	for _, k := range keys {
		r, s := records[k], stored[k]
		if r == s {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s %s %s billed %s workflow %s: records %s, store %s", k.Day, k.Supplier,
			k.Provider, k.Model, dashIfEmpty(k.KeySource), dashIfEmpty(k.Billed), dashIfEmpty(k.Workflow), r, s))
	}
	return out
}

// String shows the sums compactly.
func (s aggSums) String() string {
	return fmt.Sprintf("%d requests, %d+%d tokens (%d cached), %d µ$", s.Requests, s.Prompt, s.Completion, s.Cached, s.CostMicros)
}

// monthSums are a supplier's platform usage this month as its records
// say, apart for the calls that fell back from its own key.
type monthSums struct {
	tokens, cost, fallbackTokens, fallbackCost int64
}

// compareQuota compares, for each supplier with records this month and a
// tier that counts monthly tokens or cost, what its successful calls on
// platform keys used (records) with its tier's monthly counters (a running
// veil's explain): the counters of the tier and of its fallback tier,
// which holds a client-mode supplier's calls that fell back. It lists each
// difference; run it while the supplier is quiet, as calls in flight are
// counted by their estimates.
func compareQuota(base, token string, files []string, now time.Time) ([]string, error) {
	monthStart := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	sums, err := monthPlatformUsage(files, monthStart)
	if err != nil {
		return nil, err
	}
	suppliers := make([]string, 0, len(sums))
	for s := range sums {
		suppliers = append(suppliers, s)
	}
	slices.Sort(suppliers)
	var out []string
	for _, sup := range suppliers {
		var ex admin.Explanation
		if err := fetchAdmin(base+"/admin/explain?"+url.Values{"supplier": {sup}}.Encode(), token, &ex); err != nil {
			return nil, err
		}
		if ex.Tier == nil {
			continue // no tier: nothing is counted
		}
		m := sums[sup]
		for _, l := range []struct {
			name               string
			records, fallbacks int64
		}{{"month_tokens", m.tokens, m.fallbackTokens}, {"month_cost_micros", m.cost, m.fallbackCost}} {
			if ex.Tier.Limits[l.name] <= 0 {
				continue
			}
			want, got := l.records, ex.Tier.Used[l.name]
			switch fb := ex.Tier.Fallback; {
			case ex.ConfiguredMode != "client":
				want += l.fallbacks // a hybrid supplier's fallbacks are its tier's
			case fb != nil && fb.Limits[l.name] > 0:
				want += l.fallbacks
				got += fb.Used[l.name]
			}
			if want != got {
				out = append(out, fmt.Sprintf("quota %s %s this month: records %d, counters %d", sup, l.name, want, got))
			}
		}
	}
	return out, nil
}

// monthPlatformUsage sums, per supplier, the tokens and cost of the
// successful calls billed to the platform since monthStart (shadow calls,
// which no tier holds, left out), as the quota settles them.
func monthPlatformUsage(files []string, monthStart time.Time) (map[string]monthSums, error) {
	out := map[string]monthSums{}
	for _, name := range files {
		err := eachRecord(name, func(r *usagerec.Record) {
			if r.Supplier == "" || r.TS.Before(monthStart) || r.Billed != "platform" || r.Shadow ||
				r.Status/100 != 2 || r.Error != "" {
				return
			}
			m := out[r.Supplier]
			cost := int64(0)
			if r.CostMicros != nil {
				cost = *r.CostMicros
			}
			if r.Reason == "platform_fallback" {
				m.fallbackTokens += r.PromptTokens + r.CompletionTokens
				m.fallbackCost += cost
			} else {
				m.tokens += r.PromptTokens + r.CompletionTokens
				m.cost += cost
			}
			out[r.Supplier] = m
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
