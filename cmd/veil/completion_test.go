package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCompletionCommand: veil completion answers --help with what it does
// and how to load a script, and refuses a missing or unknown shell with a
// usage error.
func TestCompletionCommand(t *testing.T) {
	out := mustRun(t, "completion", "--help")
	wantAll(t, "completion --help", out, "Usage: veil completion bash|zsh|fish", "source <(veil completion bash)",
		"~/.config/fish/completions/veil.fish", "command table")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"completion"}, "one shell: bash, zsh or fish"},
		{[]string{"completion", "tcsh"}, `no script for the shell "tcsh": bash, zsh or fish`},
		{[]string{"completion", "bash", "zsh"}, "one shell"},
		{[]string{"completion", "--nosuch", "bash"}, "flag provided but not defined"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCmd(tc.args...)
			if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing and %q", code, out, errOut, tc.want)
			}
		})
	}
	for _, shell := range shells {
		if out := mustRun(t, "completion", shell); !strings.Contains(out, "veil completion "+shell) {
			t.Errorf("the %s script does not say where it comes from:\n%.200s", shell, out)
		}
	}
}

// TestCompletionScriptsNameEveryCommand walks the command table: every
// command and subcommand this build has is in each shell's script, in its
// parent's list of subcommands.
func TestCompletionScriptsNameEveryCommand(t *testing.T) {
	for _, shell := range shells {
		t.Run(shell, func(t *testing.T) {
			script := mustRun(t, "completion", shell)
			n := 0
			var walk func(c *command, parent string)
			walk = func(c *command, parent string) {
				for _, s := range c.subs {
					path := strings.TrimSpace(parent + " " + s.name)
					if !s.inBuild() {
						if strings.Contains(script, s.name) {
							t.Errorf("the script completes %s, which this build leaves out", path)
						}
						continue
					}
					n++
					var want string
					switch shell {
					case "bash": // _veil_subs: 'PARENT') echo '... NAME ...'
						want = "    '" + parent + "') echo '"
					case "zsh": // __veil_subs: 'NAME:SUMMARY'
						want = shQuote(s.name + ":" + s.summary)
					case "fish":
						want = fmt.Sprintf(`-n '__veil_at \'%s\'' -a '%s' -d `, parent, s.name)
					}
					if !strings.Contains(script, want) {
						t.Errorf("%s: %q is not in the script", path, want)
					} else if shell == "bash" {
						line, _, _ := strings.Cut(script[strings.Index(script, want)+len(want):], "'")
						if !slices.Contains(strings.Fields(line), s.name) {
							t.Errorf("%s: not among %s's subcommands %q", path, parent, line)
						}
					}
					walk(s, path)
				}
			}
			walk(root, "")
			if n < 25 {
				t.Errorf("only %d commands in the script", n)
			}
		})
	}
}

// TestCompletionFlagsComeFromTheCommands: the flags completed are the ones
// each command parses, asked of the command itself; every command with a
// run function parses its flags through parseFlags, so none is missed.
func TestCompletionFlagsComeFromTheCommands(t *testing.T) {
	var walk func(c *command)
	walk = func(c *command) {
		for _, s := range inBuild(c.subs) {
			if s.run != nil && !(s.name == "verify" && c.name == "audit") { // audit verify parses its only argument itself
				p := &flagProbe{}
				_ = s.run([]string{"--help"}, p, new(bytes.Buffer))
				if p.fs == nil {
					t.Errorf("%s does not parse its flags with parseFlags, so completion cannot list them", s.name)
				}
			}
			walk(s)
		}
	}
	walk(root)

	specs := completionSpecs(root)
	find := func(path string) compSpec {
		for _, s := range specs {
			if s.path == path {
				return s
			}
		}
		t.Fatalf("no command %q", path)
		return compSpec{}
	}
	for _, tc := range []struct {
		path, flag, kind string
	}{
		{"serve", "config", "file"},
		{"serve", "dev", ""},
		{"serve", "drain-timeout", "value"},
		{"status", "output", "words text json"},
		{"capacity", "output", "words text json"},
		{"compare report", "output", "words text json"},
		{"migrate plan", "to", "words client platform"},
		{"migrate compare", "other", "words client platform"},
		{"migrate compare", "billed", "words platform client"},
		{"usage", "to", "value"},
		{"config validate", "online", ""},
		{"audit verify", "help", ""},
	} {
		t.Run(tc.path+" --"+tc.flag, func(t *testing.T) {
			s := find(tc.path)
			i := slices.IndexFunc(s.flags, func(f compFlag) bool { return f.name == tc.flag })
			if i < 0 {
				t.Fatalf("no --%s among %v", tc.flag, s.flagNames())
			}
			if k := s.flags[i].kind(); k != tc.kind {
				t.Errorf("kind %q, want %q", k, tc.kind)
			}
		})
	}
}

// completionCase is a command line typed up to the cursor and what the
// shell should offer there: words, or the directory's files.
type completionCase struct {
	line  string
	want  []string
	files bool
}

// completionFiles are the files of the directory the shells complete in.
var completionFiles = []string{"pairs.json", "veil.yaml"}

// completionCases are the command lines every shell's script is tried
// with: commands, subcommands, flags, fixed values, files, and the flags'
// values skipped on the way to the command.
var completionCases = []completionCase{
	{line: "veil mig", want: []string{"migrate"}},
	{line: "veil migrate ", want: []string{"plan", "start", "status", "watch", "rollback", "validate", "compare"}},
	{line: "veil migrate st", want: []string{"start", "status"}},
	{line: "veil help migrate ", want: []string{"plan", "start", "status", "watch", "rollback", "validate", "compare"}},
	{line: "veil serve --", want: []string{"--config", "--dev", "--drain-timeout", "--help"}},
	{line: "veil -", want: []string{"--help", "--version"}},
	{line: "veil capacity --output ", want: []string{"text", "json"}},
	{line: "veil status --output=j", want: []string{"json"}},
	{line: "veil migrate plan --to ", want: []string{"client", "platform"}},
	{line: "veil migrate compare --billed p", want: []string{"platform"}},
	{line: "veil completion ", want: []string{"bash", "zsh", "fish"}},
	{line: "veil serve --config ", files: true},
	{line: "veil config validate ", files: true},
	{line: "veil compare calibrate --config veil.yaml ", files: true},
	{line: "veil audit verify ", files: true},
	{line: "veil usage ", want: []string{"reconcile"}},
	{line: "veil usage --supplier reconcile --g", want: []string{"--group-by"}},
	{line: "veil usage reconcile --", want: []string{"--config", "--from", "--to", "--help"}},
	{line: "veil serve -config veil.yaml --d", want: []string{"--dev", "--drain-timeout"}},
	{line: "veil serve --drain-timeout "},
	{line: "veil migrate status "},
}

// tableCompletionCases are a case per command of the table for each of:
// its subcommands and arguments, its flags, and each flag's value.
func tableCompletionCases() []completionCase {
	var cases []completionCase
	for _, s := range completionSpecs(root) {
		line := strings.TrimSpace("veil "+s.path) + " "
		cases = append(cases, completionCase{line: line, want: append(s.subNames(), s.words...), files: s.files},
			completionCase{line: line + "--", want: s.flagNames()})
		for _, f := range s.flags {
			if f.value {
				cases = append(cases, completionCase{line: line + "--" + f.name + " ", want: f.words, files: f.file})
			}
		}
	}
	return cases
}

// wantCompletion is what c should complete to, sorted.
func (c completionCase) wanted() []string {
	w := slices.Clone(c.want)
	if c.files {
		w = append(w, completionFiles...)
	}
	slices.Sort(w)
	return w
}

// completionDir makes a directory with completionFiles and writes the
// shell's script into another.
func completionDir(t *testing.T, shell string) (dir, script string) {
	t.Helper()
	dir = t.TempDir()
	for _, f := range completionFiles {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script = filepath.Join(t.TempDir(), "veil."+shell)
	if err := os.WriteFile(script, []byte(mustRun(t, "completion", shell)), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, script
}

// checkCompletions runs the shell program prog in dir, which prints the
// completions of each case on a line of their own separated by tabs, and
// compares them with the cases'.
func checkCompletions(t *testing.T, dir string, cases []completionCase, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("%d lines of completions for %d cases:\n%s\n%s", len(lines), len(cases), out, stderr.String())
	}
	for i, c := range cases {
		var got []string
		for _, w := range strings.Split(lines[i], "\t") {
			if w != "" {
				got = append(got, w)
			}
		}
		slices.Sort(got)
		if want := c.wanted(); !slices.Equal(got, want) {
			t.Errorf("%q completes to %q, want %q", c.line, got, want)
		}
	}
	if stderr.Len() > 0 {
		t.Errorf("%s wrote to stderr:\n%s", name, stderr.String())
	}
}

// lineWords splits a line typed up to the cursor as the shell does: the last
// word is the one being completed, empty after a space.
func lineWords(line string) []string {
	w := strings.Fields(line)
	if strings.HasSuffix(line, " ") {
		w = append(w, "")
	}
	return w
}

// TestBashCompletion loads the bash script in bash and calls its
// completion function as bash does on TAB, with COMP_WORDS and COMP_CWORD
// set, for the cases and every command of the table.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatalf("bash is needed for this test: %v", err)
	}
	dir, script := completionDir(t, "bash")
	cases := append(slices.Clone(completionCases), tableCompletionCases()...)
	var prog strings.Builder
	fmt.Fprintf(&prog, "set -u\nsource %s\n", shQuote(script))
	// complete -p names the function; it is checked as a case of its own.
	prog.WriteString(`c=$(complete -p veil); [[ $c == "complete -F _veil veil" ]] || echo "complete -p veil: $c" >&2
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _veil; local IFS=$'\t'; echo "${COMPREPLY[*]}"; }
`)
	for _, c := range cases {
		prog.WriteString("t")
		for _, w := range lineWords(c.line) {
			// bash breaks --flag=value into three words, the = on its own.
			if flag, value, ok := strings.Cut(w, "="); ok && strings.HasPrefix(w, "-") {
				fmt.Fprintf(&prog, " %s =", shQuote(flag))
				if value == "" {
					continue
				}
				w = value
			}
			prog.WriteString(" " + shQuote(w))
		}
		prog.WriteString("\n")
	}
	checkCompletions(t, dir, cases, "bash", "--norc", "--noprofile", "-c", prog.String())
}

// requireShellsEnv, set to 1, makes a missing zsh or fish fail the
// completion tests instead of skipping them; CI sets it, and
// scripts/setup.sh installs both shells.
const requireShellsEnv = "VEIL_REQUIRE_SHELLS"

// needShell skips t when shell is not installed, unless requireShellsEnv
// says it must be, when it fails t.
func needShell(t *testing.T, shell string) {
	t.Helper()
	if _, err := exec.LookPath(shell); err == nil {
		return
	}
	if os.Getenv(requireShellsEnv) == "1" {
		t.Fatalf("%s is not installed and %s=1: run scripts/setup.sh", shell, requireShellsEnv)
	}
	t.Skipf("%s is not installed: its script is not tried (scripts/setup.sh installs it)", shell)
}

// TestZshCompletion runs the zsh script's completion function in zsh with
// words and CURRENT set. zsh's completion builtins only work in a
// completion widget, so _describe, compadd, compset, _files and _message
// are stood in for by functions that do what they would here: offer the
// candidates that start with the word being completed.
func TestZshCompletion(t *testing.T) {
	needShell(t, "zsh")
	dir, script := completionDir(t, "zsh")
	cases := append(slices.Clone(completionCases), tableCompletionCases()...)
	var prog strings.Builder
	prog.WriteString(`compdef() { :; }
offer() { local n; for n in "$@"; do [[ ${n:0:${#pfx}} == "$pfx" ]] && got+=("$n"); done; }
_describe() { offer "${(@)${(P)4}%%:*}"; }
compadd() { offer "${(@P)2}"; }
compset() { pfx=${pfx#*=}; }
_files() { offer *(N); }
_message() { :; }
`)
	fmt.Fprintf(&prog, "source %s\n", shQuote(script))
	prog.WriteString(`t() { local -a got; local pfx=${@[-1]}; words=("$@"); CURRENT=$#; _veil; print -r -- ${(pj:\t:)got}; }
`)
	for _, c := range cases {
		prog.WriteString("t")
		for _, w := range lineWords(c.line) {
			prog.WriteString(" " + shQuote(w))
		}
		prog.WriteString("\n")
	}
	checkCompletions(t, dir, cases, "zsh", "-f", "-c", prog.String())
}

// TestFishCompletion loads the fish script in fish and asks fish's own
// completion (complete -C) for the cases and every command of the table.
func TestFishCompletion(t *testing.T) {
	needShell(t, "fish")
	dir, script := completionDir(t, "fish")
	cases := append(slices.Clone(completionCases), tableCompletionCases()...)
	var prog strings.Builder
	fmt.Fprintf(&prog, "source %s\n", fishQuote(script))
	// One line a case: the candidates without their descriptions, and
	// without the --flag= fish repeats before a value.
	prog.WriteString(`function t
    set -l got
    for c in (complete -C $argv[1])
        set -a got (string replace -r -- '^-[^=]*=' '' (string split -f1 \t -- $c))
    end
    echo (string join \t -- $got)
end
`)
	for _, c := range cases {
		fmt.Fprintf(&prog, "t %s\n", fishQuote(c.line))
	}
	checkCompletions(t, dir, cases, "fish", "--no-config", "-c", prog.String())
}
