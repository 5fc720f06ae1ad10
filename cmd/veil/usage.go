package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/keys"
)

// usageCmd runs `veil usage`: asks a running veil's admin listener for the
// usage aggregates and prints them as a table.
func usageCmd(args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "reconcile" {
		return reconcileCmd(args[1:], stdout)
	}
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	path := fs.String("config", "", "the running veil's config file (for the admin address and token)")
	supplier := fs.String("supplier", "", "one supplier; all when empty")
	from := fs.String("from", "", "first day, YYYY-MM-DD (default: the first of this month)")
	to := fs.String("to", "", "last day, YYYY-MM-DD (default: today)")
	groupBy := fs.String("group-by", "", "comma-separated: day, supplier, provider, model, key_source, billed, workflow")
	output := outputFlag(fs)
	if pos, err := parseFlags(fs, "usage --config FILE [--supplier ID] [--from DAY] [--to DAY] [--group-by ...] [--output json]", args, stdout); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("%w: usage takes no arguments, got %q", errUsage, pos[0])
	}
	if *path == "" {
		return fmt.Errorf("%w: usage needs --config FILE", errUsage)
	}
	base, token, err := adminTarget(*path)
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"supplier": *supplier, "from": *from, "to": *to, "group_by": *groupBy} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var rep admin.UsageReport
	if err := fetchAdmin(base+"/admin/usage?"+q.Encode(), token, &rep); err != nil {
		return err
	}
	if *output == "json" {
		return writeJSONOut(stdout, &rep)
	}
	printUsage(stdout, &rep)
	return nil
}

// envOperatorToken names the variable that holds the admin token of the
// operator running an admin command; without it the commands use the
// config's admin.token.
const envOperatorToken = "VEIL_OPERATOR_TOKEN"

// adminTarget reads a running veil's admin address from its config file,
// and the token to call it with: $VEIL_OPERATOR_TOKEN, or the config's
// admin.token.
func adminTarget(path string) (base, token string, err error) {
	cfg, err := config.Load(path)
	if err != nil {
		return "", "", err
	}
	tok := keys.NewSecret(strings.TrimSpace(os.Getenv(envOperatorToken)))
	switch {
	case !tok.IsZero():
	case len(cfg.Admin.Tokens) > 0 && cfg.Admin.Token.IsZero():
		return "", "", fmt.Errorf("the config names operators in admin.tokens: set %s to yours", envOperatorToken)
	case cfg.Admin.Token.IsZero():
		return "", "", errors.New("the config has no admin token, so the /admin endpoints are off")
	default:
		if tok, err = keys.DefaultSources().Resolve(context.Background(), string(cfg.Admin.Token)); err != nil {
			return "", "", fmt.Errorf("admin token: %w", err)
		}
	}
	host, port, err := net.SplitHostPort(cfg.Listen.Admin)
	if err != nil {
		return "", "", err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), tok.Reveal(), nil
}

// fetchAdmin GETs an admin endpoint and decodes its JSON into doc.
func fetchAdmin(u, token string, doc any) error {
	return callAdmin(http.MethodGet, u, token, nil, doc)
}

// callAdmin sends a request to an admin endpoint, with body as JSON unless
// it is nil, and decodes a 2xx answer's JSON into doc. An error answer
// becomes an error with the admin API's message.
func callAdmin(method, u, token string, body, doc any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return admin.Client{Token: token}.Call(ctx, method, u, body, doc)
}

// statusCmd runs `veil status`: a running veil's providers, their health
// and breakers, and its last reload, as a table.
func statusCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	path := fs.String("config", "", "the running veil's config file (for the admin address and token)")
	output := outputFlag(fs)
	if pos, err := parseFlags(fs, "status --config FILE [--output json]", args, stdout); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("%w: status takes no arguments, got %q", errUsage, pos[0])
	}
	if *path == "" {
		return fmt.Errorf("%w: status needs --config FILE", errUsage)
	}
	base, token, err := adminTarget(*path)
	if err != nil {
		return err
	}
	var st admin.Status
	if err := fetchAdmin(base+"/admin/status", token, &st); err != nil {
		return err
	}
	if *output == "json" {
		return writeJSONOut(stdout, &st)
	}
	return printStatus(stdout, &st)
}

// printStatus writes a status document as a line about the process and a
// table of its targets.
func printStatus(stdout io.Writer, st *admin.Status) error {
	fmt.Fprintf(stdout, "veil %s, up %s, draining %v, config generation %d", st.Version, st.Uptime, st.Draining, st.Reload.Generation)
	if st.Reload.Error != "" {
		fmt.Fprintf(stdout, " (last reload refused: %s)", st.Reload.Error)
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tBREAKER\tOK\tFAILED\t429\tKEY REFUSED\tSUCCESS 1M\tLATENCY (EWMA)\tTTFT (EWMA)\tREQS LEFT\tHEADROOM\tHELD OUT UNTIL\tLAST STATUS")
	for _, h := range st.Health {
		held := "-"
		if h.RateLimitedUntil != nil && h.RateLimitedUntil.After(time.Now()) {
			held = h.RateLimitedUntil.UTC().Format("15:04:05") + " (429)"
		}
		left, headroom := h.RemainingRequests, percentOrDash(h.Headroom)
		if p := h.Pool; p != nil {
			left = p.Requests.Remaining
			if p.Accounts > 1 && h.Headroom != nil {
				headroom += " (" + strconv.Itoa(p.Accounts) + " accounts)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%.1f ms\t%s\t%s\t%s\t%s\t%d\n", h.Target, h.Breaker, h.Successes, h.Failures,
			h.RateLimited, h.KeyRejected, percentOrDash(h.SuccessRate), h.LatencyEWMAms, msOrDash(h.TTFTEWMAms),
			intOrDash(left), headroom, held, h.LastStatus)
	}
	return tw.Flush()
}

// percentOrDash shows a share as a percentage, or a dash when unknown.
func percentOrDash(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v*100, 'f', 1, 64) + "%"
}

// msOrDash shows milliseconds, or a dash when there was no sample.
func msOrDash(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
}

// intOrDash shows a count, or a dash when the provider never said.
func intOrDash(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

func printUsage(w io.Writer, rep *admin.UsageReport) {
	fmt.Fprintf(w, "usage from %s to %s, by %s\n\n", rep.From, rep.To, strings.Join(rep.GroupBy, ", "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	cols := append(append([]string{}, rep.GroupBy...), "requests", "prompt", "completion", "cached", "cost USD")
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(cols, "\t"))+"\t")
	line := func(r admin.UsageRow, label bool) {
		var cells []string
		for _, g := range rep.GroupBy {
			v := map[string]string{"day": r.Day, "supplier": r.Supplier, "provider": r.Provider, "model": r.Model,
				"key_source": r.KeySource, "billed": r.Billed, "workflow": r.Workflow}[g]
			if label {
				v = ""
			}
			cells = append(cells, dashIfEmpty(v))
		}
		if label && len(cells) > 0 {
			cells[0] = "TOTAL"
		}
		cells = append(cells, fmt.Sprint(r.Requests), fmt.Sprint(r.PromptTokens), fmt.Sprint(r.CompletionTokens),
			fmt.Sprint(r.CachedTokens), fmt.Sprintf("%.6f", r.CostUSD))
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	for _, r := range rep.Rows {
		line(r, false)
	}
	line(rep.Total, true)
	_ = tw.Flush()
}
