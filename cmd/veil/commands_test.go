package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestEveryCommandAnswersHelp walks the command tree: every command and
// subcommand answers --help (and veil help PATH) on stdout with its
// summary and usage, and exits 0; a group lists its subcommands.
func TestEveryCommandAnswersHelp(t *testing.T) {
	var walk func(c *command, path []string)
	n := 0
	walk = func(c *command, path []string) {
		for _, s := range c.subs {
			p := append(append([]string(nil), path...), s.name)
			n++
			t.Run(strings.Join(p, " "), func(t *testing.T) {
				if strings.Contains(s.summary, "not in this build") {
					t.Skip("this build leaves the command out")
				}
				for _, args := range [][]string{append(append([]string(nil), p...), "--help"), append([]string{"help"}, p...)} {
					var out, errOut bytes.Buffer
					if code := run(args, &out, &errOut); code != 0 {
						t.Fatalf("veil %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut.String())
					}
					got := out.String()
					if !strings.Contains(got, s.summary) || !strings.Contains(got, "Usage") {
						t.Errorf("veil %s printed no summary or usage:\n%s", strings.Join(args, " "), got)
					}
					for _, sub := range s.subs {
						if !strings.Contains(got, sub.name) || !strings.Contains(got, sub.summary) {
							t.Errorf("veil %s does not list %s with its summary", strings.Join(args, " "), sub.name)
						}
					}
				}
			})
			walk(s, p)
		}
	}
	walk(root, nil)
	if n < 20 {
		t.Errorf("only %d commands in the tree", n)
	}
}

// TestUnknownCommandsAreUsageErrors: a command line veil does not know
// exits 2 and names what it has.
func TestUnknownCommandsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"nosuch"}, {"migrate", "nosuch"}, {"config"}, {"keys"}, {"config", "validate"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "veil help") {
			t.Errorf("veil %s: exit %d, stderr %q; want 2 and a pointer to veil help", strings.Join(args, " "), code, errOut.String())
		}
	}
}

// TestChoiceFlagsRefuseOtherWords: a flag with a fixed set of values
// refuses any other word as a usage error that names the set, before the
// command does anything.
func TestChoiceFlagsRefuseOtherWords(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--output", "yaml"}, "want text or json"},
		{[]string{"health", "--output=yaml"}, "want text or json"},
		{[]string{"version", "-output", "xml"}, "want text or json"},
		{[]string{"migrate", "plan", "--to", "elsewhere"}, "want client or platform"},
		{[]string{"migrate", "compare", "--other", "hybrid"}, "want client or platform"},
		{[]string{"migrate", "compare", "--billed", "nobody"}, "want platform or client"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(tc.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut.String(), tc.want)
			}
		})
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"version", "--output", "json"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), `"version"`) {
		t.Errorf("version --output json: exit %d, %q %q", code, out.String(), errOut.String())
	}
}
