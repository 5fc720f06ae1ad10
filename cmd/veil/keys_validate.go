package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/wedsync/veil/admin"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/internal/app"
	"github.com/wedsync/veil/keys"
)

// keysValidateSynopsis is the command line of `veil keys validate`.
const keysValidateSynopsis = "keys validate --provider P --config FILE < KEY"

// maxKeyLine bounds the line a key is read from.
const maxKeyLine = 64 << 10

// keysValidateTimeout bounds the whole check.
const keysValidateTimeout = 30 * time.Second

// errKeyNotValid marks a key the provider did not accept; the verdict has
// been printed.
var errKeyNotValid = errors.New("the key is not valid")

// keysValidate runs `veil keys validate`: it reads one key from stdin (a
// line, trimmed), asks the configured provider whether it accepts it, and
// prints the verdict with the key's fingerprint. The key is never printed,
// logged or kept. Any verdict but valid fails the command.
func keysValidate(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys validate", flag.ContinueOnError)
	path := fs.String("config", "", "config file (YAML) that configures the provider")
	prov := fs.String("provider", "", "the provider to ask, by its name in the config")
	output := outputFlag(fs)
	if pos, err := parseFlags(fs, keysValidateSynopsis, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, "\nReads one key from standard input (one line, trimmed), asks the provider for its\n"+
				"model list with it (which spends no tokens) and prints the verdict: valid,\n"+
				"rejected (401/403), no_quota (429 insufficient_quota), rate_limited, unreachable\n"+
				"or provider_error, with the key's fingerprint. Exits 0 only for a valid key.\n")
		}
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("%w: keys validate takes no arguments (the key comes on standard input), got %d", errUsage, len(pos))
	}
	if *path == "" || *prov == "" {
		return fmt.Errorf("%w: %s", errUsage, keysValidateSynopsis)
	}
	key, err := readKey(stdin)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, keysValidateTimeout)
	defer cancel()
	v, err := app.ValidateKey(ctx, cfg, *prov, key)
	if err != nil {
		return err
	}
	if *output == "json" {
		if err := writeJSONOut(stdout, v); err != nil {
			return err
		}
	} else {
		printVerdict(stdout, v)
	}
	if v.Verdict != admin.VerdictValid {
		return fmt.Errorf("%w: %s (key %s)", errKeyNotValid, v.Verdict, v.Fingerprint)
	}
	return nil
}

// readKey reads a key from the first line of r, trimmed; an empty key is
// refused.
func readKey(r io.Reader) (keys.Secret, error) {
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxKeyLine), 4096).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return keys.Secret{}, fmt.Errorf("read the key from standard input: %w", err)
	}
	key := keys.NewSecret(strings.TrimSpace(line))
	if key.IsZero() {
		return keys.Secret{}, fmt.Errorf("%w: no key on standard input; pipe it in, e.g. veil %s", errUsage, keysValidateSynopsis)
	}
	return key, nil
}

// printVerdict prints a key check's verdict as a table of one row.
func printVerdict(w io.Writer, v admin.KeyVerdict) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tFINGERPRINT\tVERDICT\tSTATUS\tDETAIL")
	status := "-"
	if v.Status != 0 {
		status = fmt.Sprint(v.Status)
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Provider, v.Fingerprint, v.Verdict, status, v.Detail)
	_ = tw.Flush()
}
