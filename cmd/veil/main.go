// Command veil is WedSync's AI-provider sidecar. Subcommands:
//
//	veil serve --config FILE [--dev]      run the proxy and admin listeners
//	veil demo                             run the wedding scenarios against an embedded fake upstream
//	veil config validate [--online] FILE  check a config file; --online also
//	                                      resolves its secrets and reaches Vault and the store
//	veil keys check --config FILE [--supplier ID] [--provider P]
//	                                      fetch keys through the configured sources and validate them live
//	veil keys validate --provider P --config FILE < KEY
//	                                      ask a provider whether it accepts a key read from stdin
//	veil audit verify FILE                check an audit log's hash chain
//	veil usage --config FILE [--supplier ID] [--from DAY] [--to DAY] [--group-by ...]
//	                                      print a running veil's usage aggregates
//	veil status --config FILE             print a running veil's targets, breakers and last reload
//	veil capacity --config FILE [--output json]
//	                                      print a running veil's headroom now, its tiers' use and the coming months' forecast
//	veil health [--admin HOST:PORT]       exit 0 when a running veil is ready (for HEALTHCHECK)
//	veil migrate plan|start|status|rollback|validate|compare --config FILE ...
//	                                      move a supplier between platform keys and its own key,
//	                                      or compare the two systems, through a running veil
//	veil compare report --config FILE [--output text|json] ID
//	                                      a comparison's report: per workflow, who pays, a year's projection
//	veil compare calibrate --config FILE PAIRS.json
//	                                      score labelled answer pairs with the configured similarity
//	                                      methods and suggest each workflow's threshold
//	veil fake-upstream --listen ADDR      run the fake OpenAI upstream alone
//	veil version                          print the version
//	veil completion bash|zsh|fish         print a shell completion script
//
// demo and fake-upstream are for developers: a build with the sidecar tag
// (go build -tags sidecar), which is how the image and make build are
// built, leaves them and the fake upstream they carry out of the binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/app"
	"github.com/wedsync/veil/internal/logging"
)

// version, commit and date are set at build time with -ldflags "-X
// main.version=... -X main.commit=... -X main.date=..."; commit and date
// otherwise come from the build's version control stamp when it has one.
var version, commit, date = "dev", "", ""

// versionLine is what `veil version` prints: version, commit and build
// date (commit time when stamped by the go command).
func versionLine() string {
	c, d := buildStamp()
	line := "veil " + version
	if c != "" {
		line += " commit " + c
	}
	if d != "" {
		line += " built " + d
	}
	return line
}

// buildStamp returns the commit and build date: set at build time, else
// from the go command's version control stamp.
func buildStamp() (c, d string) {
	c, d = commit, date
	if info, ok := debug.ReadBuildInfo(); ok && (c == "" || d == "") {
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.time" && d == "":
				d = s.Value
			}
		}
	}
	return c, d
}

const usage = `veil: WedSync's AI-provider sidecar

Usage:
  veil serve --config FILE [--dev] [--drain-timeout 30s]
` + demoUsage + `  veil config validate [--online] FILE
  veil keys check --config FILE [--supplier ID] [--provider P]
  veil keys validate --provider P --config FILE < KEY
  veil usage --config FILE [--supplier ID] [--from DAY] [--to DAY] [--group-by day,supplier,provider,model,key_source]
  veil usage reconcile --config FILE [--from DAY] [--to DAY] RECORDS.jsonl...
  veil status --config FILE
  veil capacity --config FILE [--output json]
  veil health [--admin HOST:PORT | --config FILE] [--wait 30s]
` + migrateUsage + compareUsage + auditUsage + fakeUpstreamUsage + `  veil version
  veil completion bash|zsh|fish
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks a command line that could not be understood.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "--version":
		fmt.Fprintln(stdout, versionLine())
	default:
		err = root.dispatch("veil", args, stdout, stderr)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp): // help was printed
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "veil:", oneLine(err.Error())+"; veil help shows the usage")
		return 2
	case args[0] == "config":
		// A config's problems are listed one a line.
		fmt.Fprintln(stderr, "veil:", err)
		return 1
	default:
		fmt.Fprintln(stderr, "veil:", oneLine(err.Error()))
		return 1
	}
}

// oneLine joins the lines of a message (several joined errors) with "; ",
// so that a failure is reported on one line.
func oneLine(msg string) string {
	return strings.Join(strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' }), "; ")
}

// parseFlags parses args into fs. Help (-h, --help) prints the synopsis and
// the flags to stdout and returns flag.ErrHelp; any other problem is a usage
// error of one line. Flags and arguments may come in any order; the
// arguments are returned. Given a flagProbe for stdout, it records fs there
// and returns flag.ErrHelp at once.
func parseFlags(fs *flag.FlagSet, synopsis string, args []string, stdout io.Writer) ([]string, error) {
	if p, ok := stdout.(*flagProbe); ok { // shell completion asks for the flags
		p.fs = fs
		return nil, flag.ErrHelp
	}
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: veil %s\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errUsage, fs.Name(), err)
	}
	return pos, nil
}

func serve(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", "", "config file (YAML)")
	dev := fs.Bool("dev", false, "console logs at debug level")
	drain := fs.Duration("drain-timeout", 30*time.Second, "how long in-flight requests may take to finish on SIGTERM")
	if pos, err := parseFlags(fs, "serve --config FILE [--dev] [--drain-timeout 30s]", args, stdout); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("%w: serve takes no arguments, got %q", errUsage, pos[0])
	}
	if *path == "" {
		return fmt.Errorf("%w: serve needs --config FILE", errUsage)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	level, format := cfg.Log.Level, cfg.Log.Format
	if *dev {
		level, format = "debug", "console"
	}
	log, err := logging.New(level, format, nil)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	c, _ := buildStamp()
	a, err := app.New(cfg, app.Options{Log: log, Version: version, Commit: c})
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go reloadOnChange(ctx, a, *path)
	<-ctx.Done()
	stop()
	dctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	return a.Shutdown(dctx)
}

// configCmd runs `veil config validate`: the offline checks of the file
// and, with --online, the checks against the services it names.
func configCmd(args []string, stdout io.Writer) error {
	const synopsis = "config validate [--online] FILE"
	if len(args) == 0 || args[0] != "validate" {
		return fmt.Errorf("%w: %s", errUsage, synopsis)
	}
	fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
	online := fs.Bool("online", false, "also resolve every secret reference (printing fingerprints only), log in to Vault and reach the store")
	pos, err := parseFlags(fs, synopsis, args[1:], stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: %s", errUsage, synopsis)
	}
	path := pos[0]
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d providers, %d callers, proxy on %s, admin on %s)\n",
		path, len(cfg.Providers), len(cfg.Callers), cfg.Listen.Proxy, cfg.Listen.Admin)
	if !*online {
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, onlineTimeout)
	defer cancel()
	return printOnline(stdout, checkOnline(ctx, cfg))
}

// reloadOnChange reloads the config file on SIGHUP, and when the file
// changes (checked every two seconds, which also catches a Kubernetes
// ConfigMap update), until ctx ends. A refused config is logged and shown on
// /admin/status; the running one stays.
func reloadOnChange(ctx context.Context, a *app.App, path string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	last := fileStamp(path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		case <-tick.C:
			stamp := fileStamp(path)
			if stamp == last {
				continue
			}
			last = stamp
		}
		_ = a.ReloadFile(path) // logged and shown on /admin/status by the app
	}
}

// fileStamp identifies a version of a file by size and modification time.
func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
}

// keysCmd runs `veil keys check`: fetch keys through the configured sources
// and validate them live, asking each key's provider for its model list as
// veil's own health checks and migrations do.
func keysCmd(args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "validate" {
		return keysValidate(args[1:], os.Stdin, stdout)
	}
	if len(args) == 0 || args[0] != "check" {
		return fmt.Errorf("%w: keys check --config FILE [--supplier ID] [--provider P]", errUsage)
	}
	fs := flag.NewFlagSet("keys check", flag.ContinueOnError)
	path := fs.String("config", "", "config file (YAML)")
	supplier := fs.String("supplier", "", "check this supplier's own keys; without it, the platform keys")
	var providers stringList
	fs.Var(&providers, "provider", "only this provider (repeatable)")
	if pos, err := parseFlags(fs, "keys check --config FILE [--supplier ID] [--provider P]", args[1:], stdout); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("%w: keys check takes no arguments, got %q", errUsage, pos[0])
	}
	if *path == "" {
		return fmt.Errorf("%w: keys check needs --config FILE", errUsage)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	checks, err := app.CheckKeys(ctx, cfg, app.Options{}, *supplier, providers)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SUPPLIER\tPROVIDER\tSOURCE\tVERSION\tFINGERPRINT\tRESULT")
	failed := 0
	for _, c := range checks {
		result := fmt.Sprintf("ok (%d models)", c.Models)
		if c.Err != nil {
			failed++
			result = "FAILED: " + c.Err.Error()
		}
		sup := c.Supplier
		if sup == "" {
			sup = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sup, c.Provider, c.Source, dashIfEmpty(c.Version), dashIfEmpty(c.Fingerprint), result)
	}
	_ = tw.Flush()
	if failed > 0 {
		return fmt.Errorf("%d of %d keys failed the check", failed, len(checks))
	}
	return nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
