package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// command is one veil command: a leaf that runs, a group of subcommands,
// or both (a group that also runs on its own, such as usage). Every
// command answers --help (or `veil help PATH`) with its summary, and a
// group lists its subcommands with theirs; help exits 0.
type command struct {
	name string
	// summary says in one line what the command does.
	summary string
	// run runs the command with the arguments after its name; nil for a
	// group that only dispatches.
	run func(args []string, stdout, stderr io.Writer) error
	// subs are the subcommands.
	subs []*command
	// files says that the command's arguments are file names, and words
	// lists the values its argument may take when they are fixed; shell
	// completion completes them.
	files bool
	words []string
}

// commands is veil's command tree.
func commands() *command {
	cmds := []*command{
		{name: "serve", summary: "run the proxy and admin listeners from a config file",
			run: func(a []string, out, _ io.Writer) error { return serve(a, out) }},
	}
	cmds = append(cmds, &command{name: "demo", summary: "run the wedding scenarios against an embedded fake upstream and print a report" +
		notInSidecar(demoUsage), run: runDemo})
	cmds = append(cmds,
		&command{name: "config", summary: "check config files", subs: []*command{
			{name: "validate", summary: "check a config file and list every mistake with its line; --online also reaches the services it names",
				files: true, run: func(a []string, out, _ io.Writer) error { return configCmd(append([]string{"validate"}, a...), out) }},
		}},
		&command{name: "keys", summary: "check provider keys", subs: []*command{
			{name: "check", summary: "fetch keys through the configured sources and check them live with their providers",
				run: func(a []string, out, _ io.Writer) error { return keysCmd(append([]string{"check"}, a...), out) }},
			{name: "validate", summary: "ask a provider whether it accepts a key read from stdin, before a Vault admin stores it",
				run: func(a []string, out, _ io.Writer) error { return keysValidate(a, os.Stdin, out) }},
		}},
		&command{name: "usage", summary: "print a running veil's usage aggregates (who used what, who pays)",
			run: func(a []string, out, _ io.Writer) error { return usageCmd(a, out) },
			subs: []*command{
				{name: "reconcile", summary: "compare the file sink's usage records with a running veil's aggregates",
					files: true, run: func(a []string, out, _ io.Writer) error { return reconcileCmd(a, out) }},
			}},
		&command{name: "status", summary: "print a running veil's providers, breakers and last reload",
			run: func(a []string, out, _ io.Writer) error { return statusCmd(a, out) }},
		&command{name: "capacity", summary: "print the providers' headroom, the tiers' use and the coming peak months",
			run: func(a []string, out, _ io.Writer) error { return capacityCmd(a, out) }},
		&command{name: "health", summary: "exit 0 when a running veil is ready (for a container's HEALTHCHECK)",
			run: func(a []string, out, _ io.Writer) error { return healthCmd(a, out) }},
		&command{name: "migrate", summary: "move a supplier between WedSync's platform keys and its own key, through a running veil",
			subs: []*command{
				{name: "plan", summary: "probe the target key, estimate the cost and project the year; changes nothing", run: migratePlan},
				{name: "start", summary: "start a planned migration's ramp", run: migrateStart},
				{name: "status", summary: "print a migration (or all) with its stage, gates and history", run: migrateStatus},
				{name: "watch", summary: "follow a migration's ramp live, stage by stage with its gates, until it ends", run: migrateWatch},
				{name: "rollback", summary: "put the supplier back on the system it came from", run: migrateRollback},
				{name: "validate", summary: "compare the two paths' errors and latency over a finished or running migration", run: migrateValidate},
				{name: "compare", summary: "start, stop or report a shadow comparison of a supplier's two systems", run: migrateCompare},
			}},
		&command{name: "compare", summary: "shadow comparisons of a supplier's two systems", subs: []*command{
			{name: "report", summary: "a comparison's report: per workflow, who pays, a year's projection and the advice",
				run: func(a []string, out, _ io.Writer) error { return compareReport(a, out) }},
			{name: "calibrate", summary: "score labelled answer pairs with the configured similarity methods and suggest thresholds",
				files: true, run: func(a []string, out, _ io.Writer) error { return compareCalibrate(a, out) }},
		}},
		&command{name: "audit", summary: "check audit logs", subs: []*command{
			{name: "verify", summary: "check an audit log's hash chain and name the first line that breaks it",
				files: true, run: func(a []string, out, _ io.Writer) error { return auditCmd(append([]string{"verify"}, a...), out) }},
		}},
	)
	cmds = append(cmds, &command{name: "fake-upstream", summary: "run the fake OpenAI upstream alone, for trying veil without a provider" +
		notInSidecar(fakeUpstreamUsage), run: func(a []string, out, _ io.Writer) error { return fakeUpstream(a, out) }})
	cmds = append(cmds, &command{name: "version", summary: "print the version, commit and build date", run: versionCmd})
	completion := &command{name: "completion", summary: "print a shell completion script for bash, zsh or fish, made from this command table",
		words: shells}
	cmds = append(cmds, completion)
	tree := &command{name: "veil", summary: "WedSync's AI-provider sidecar", subs: cmds}
	completion.run = func(a []string, out, _ io.Writer) error { return completionCmd(tree, a, out) }
	return tree
}

// notInBuild ends the summary of a command this build leaves out.
const notInBuild = " (not in this build: run it from a checkout)"

// notInSidecar marks the summary of a developer command the sidecar build
// (whose usage line for it is empty) leaves out.
func notInSidecar(usageLine string) string {
	if usageLine == "" {
		return notInBuild
	}
	return ""
}

// inBuild reports whether this build has the command.
func (c *command) inBuild() bool { return !strings.HasSuffix(c.summary, notInBuild) }

// sub returns the subcommand named name, or nil.
func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// isHelp reports whether an argument asks for help.
func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "help" }

// dispatch runs the command args name under c, whose path (from veil) is
// path.
func (c *command) dispatch(path string, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if s := c.sub(args[0]); s != nil {
			return s.dispatch(path+" "+s.name, args[1:], stdout, stderr)
		}
		if c == root && args[0] == "help" { // veil help migrate plan
			return c.dispatch(path, append(args[1:], "--help"), stdout, stderr)
		}
	}
	wantsHelp := false
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			wantsHelp = true
		}
	}
	if len(args) > 0 && isHelp(args[0]) {
		wantsHelp = true
	}
	if wantsHelp {
		fmt.Fprintf(stdout, "%s: %s\n\n", path, c.summary)
	}
	if c.run != nil {
		err := c.run(args, stdout, stderr)
		if errors.Is(err, flag.ErrHelp) && len(c.subs) > 0 {
			c.listSubs(path, stdout)
		}
		return err
	}
	if wantsHelp {
		if c == root {
			fmt.Fprint(stdout, usage)
		} else {
			fmt.Fprintf(stdout, "Usage: %s COMMAND [flags] [arguments]\n", path)
		}
		c.listSubs(path, stdout)
		return flag.ErrHelp
	}
	if len(args) == 0 {
		return fmt.Errorf("%w: %s needs a command: %s", errUsage, path, c.names())
	}
	return fmt.Errorf("%w: %s has no command %q (%s)", errUsage, path, args[0], c.names())
}

// listSubs prints the subcommands with their summaries.
func (c *command) listSubs(path string, stdout io.Writer) {
	fmt.Fprintf(stdout, "\nCommands:\n")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, s := range c.subs {
		fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "\n%s COMMAND --help describes a command.\n", path)
}

// names lists the subcommands' names.
func (c *command) names() string {
	n := make([]string, len(c.subs))
	for i, s := range c.subs {
		n[i] = s.name
	}
	return strings.Join(n, ", ")
}

// root is the command tree, built once.
var root = commands()

// versionCmd prints the version line, or its parts as JSON.
func versionCmd(args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	output := outputFlag(fs)
	if pos, err := parseFlags(fs, "version [--output json]", args, stdout); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("%w: version takes no arguments, got %q", errUsage, pos[0])
	}
	if *output == "json" {
		c, d := buildStamp()
		return writeJSONOut(stdout, map[string]string{"version": version, "commit": c, "date": d})
	}
	fmt.Fprintln(stdout, versionLine())
	return nil
}

// outputFlag adds --output: text (the default, for people) or json (for
// scripts; the admin API's document where the data comes from one).
func outputFlag(fs *flag.FlagSet) *string {
	return choiceFlag(fs, "output", "text", "text, or json for scripts", "text", "json")
}

// choice is the value of a flag that takes one of a fixed set of words,
// such as --output: parsing refuses any other word, and shell completion
// offers the set.
type choice struct {
	value *string
	// def is the default, which is accepted too (an empty default stands
	// for one the command chooses).
	def   string
	words []string
}

var _ flag.Value = (*choice)(nil)

// String returns the value.
func (c *choice) String() string {
	if c == nil || c.value == nil {
		return ""
	}
	return *c.value
}

// Set takes v when it is one of the words or the default.
func (c *choice) Set(v string) error {
	if v != c.def && !slices.Contains(c.words, v) {
		return fmt.Errorf("want %s", orList(c.words))
	}
	*c.value = v
	return nil
}

// choiceFlag adds a flag whose value is one of words, with the default def.
func choiceFlag(fs *flag.FlagSet, name, def, usage string, words ...string) *string {
	v := def
	fs.Var(&choice{value: &v, def: def, words: words}, name, usage)
	return &v
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// writeJSONOut writes v as indented JSON.
func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
