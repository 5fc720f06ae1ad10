package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// shells are the shells `veil completion` writes a script for.
var shells = []string{"bash", "zsh", "fish"}

// completionSynopsis is the usage of `veil completion`.
const completionSynopsis = `completion bash|zsh|fish

Prints a completion script for the shell: veil's commands and subcommands,
their flags, the values of flags that take a fixed set (such as --output
text|json), and file names for --config and for commands that read files.
The script is made from veil's command table and each command's flags, so
it completes exactly what this build of veil has.

  bash  source <(veil completion bash)
        or: veil completion bash > /etc/bash_completion.d/veil
  zsh   source <(veil completion zsh)
        or: veil completion zsh > "${fpath[1]}/_veil"   (then compinit)
  fish  veil completion fish > ~/.config/fish/completions/veil.fish
`

// completionCmd runs `veil completion SHELL` over the command tree.
func completionCmd(tree *command, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("completion", flag.ContinueOnError)
	pos, err := parseFlags(fs, completionSynopsis, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: completion takes one shell: %s", errUsage, orList(shells))
	}
	var script string
	switch specs := completionSpecs(tree); pos[0] {
	case "bash":
		script = bashCompletion(specs)
	case "zsh":
		script = zshCompletion(specs)
	case "fish":
		script = fishCompletion(specs)
	default:
		return fmt.Errorf("%w: completion has no script for the shell %q: %s", errUsage, pos[0], orList(shells))
	}
	_, err = io.WriteString(stdout, script)
	return err
}

// compSpec is what a completion script knows of one command.
type compSpec struct {
	// path is the command's words after veil; empty for veil itself.
	path string
	// subs are the subcommands this build has.
	subs  []*command
	flags []compFlag
	// files and words are the command's: its arguments are file names, or
	// its argument is one of words.
	files bool
	words []string
}

// compFlag is one flag of a command.
type compFlag struct {
	name, usage string
	// value says that the flag takes a value (it is not a switch).
	value bool
	// file says that the value is a file name.
	file bool
	// words are the values when they are fixed.
	words []string
}

// helpFlag is the flag every command answers.
var helpFlag = compFlag{name: "help", usage: "describe the command"}

// flagProbe is the stdout a command runs with to tell its flags:
// parseFlags records the flag set in it and returns flag.ErrHelp before
// the command does anything. What is written to it is dropped.
type flagProbe struct{ fs *flag.FlagSet }

var _ io.Writer = (*flagProbe)(nil)

// Write drops p.
func (*flagProbe) Write(p []byte) (int, error) { return len(p), nil }

// commandFlags returns the flags of c's run function, asked with --help
// through a flagProbe, followed by --help; a command that parses its flags
// without parseFlags (or only dispatches) has only --help.
func commandFlags(c *command) []compFlag {
	var flags []compFlag
	if c.run != nil {
		p := &flagProbe{}
		_ = c.run([]string{"--help"}, p, io.Discard)
		if p.fs != nil {
			p.fs.VisitAll(func(f *flag.Flag) {
				cf := compFlag{name: f.Name, usage: firstLine(f.Usage), value: true, file: f.Name == "config"}
				if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
					cf.value = false
				}
				if ch, ok := f.Value.(*choice); ok {
					cf.words = ch.words
				}
				flags = append(flags, cf)
			})
		}
	}
	return append(flags, helpFlag)
}

// completionSpecs lists what completion knows of tree and every command in
// it that this build has, veil itself first.
func completionSpecs(tree *command) []compSpec {
	root := compSpec{subs: inBuild(tree.subs), flags: []compFlag{helpFlag, {name: "version", usage: "print the version"}}}
	specs := []compSpec{root}
	var walk func(c *command, path string)
	walk = func(c *command, path string) {
		for _, s := range inBuild(c.subs) {
			p := strings.TrimSpace(path + " " + s.name)
			specs = append(specs, compSpec{path: p, subs: inBuild(s.subs), flags: commandFlags(s), files: s.files, words: s.words})
			walk(s, p)
		}
	}
	walk(tree, "")
	return specs
}

// inBuild returns the commands this build has.
func inBuild(cmds []*command) []*command {
	var in []*command
	for _, c := range cmds {
		if c.inBuild() {
			in = append(in, c)
		}
	}
	return in
}

// firstLine returns s up to its first line break.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// kind says how a flag's value completes: "file", "words W..." or
// "value" (anything, not completed); "" for a switch.
func (f compFlag) kind() string {
	switch {
	case !f.value:
		return ""
	case f.file:
		return "file"
	case len(f.words) > 0:
		return "words " + strings.Join(f.words, " ")
	}
	return "value"
}

// argKind says how the command's arguments complete: "file", "words W..."
// or "" (not completed).
func (s compSpec) argKind() string {
	switch {
	case s.files:
		return "file"
	case len(s.words) > 0:
		return "words " + strings.Join(s.words, " ")
	}
	return ""
}

// subNames lists the subcommands' names.
func (s compSpec) subNames() []string {
	n := make([]string, len(s.subs))
	for i, c := range s.subs {
		n[i] = c.name
	}
	return n
}

// flagNames lists the flags as --name.
func (s compSpec) flagNames() []string {
	n := make([]string, len(s.flags))
	for i, f := range s.flags {
		n[i] = "--" + f.name
	}
	return n
}

// shQuote quotes s for bash and zsh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// fishQuote quotes s for fish.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

// shCases writes a case statement on subject with one branch per spec
// for which body returns something, and a default that sets nothing.
func shCases(b *strings.Builder, subject string, specs []compSpec, body func(compSpec) []caseBranch) {
	fmt.Fprintf(b, "    case %s in\n", subject)
	for _, s := range specs {
		for _, br := range body(s) {
			fmt.Fprintf(b, "    %s) %s ;;\n", shQuote(br.pattern), br.action)
		}
	}
	b.WriteString("    esac\n")
}

// caseBranch is one branch of a generated case statement.
type caseBranch struct{ pattern, action string }

// flagBranches returns one branch per flag taking a value, on PATH|--FLAG,
// whose action is action(kind).
func flagBranches(s compSpec, action func(kind string) string) []caseBranch {
	var br []caseBranch
	for _, f := range s.flags {
		if k := f.kind(); k != "" {
			br = append(br, caseBranch{s.path + "|--" + f.name, action(k)})
		}
	}
	return br
}

// bashCompletion is the bash script.
func bashCompletion(specs []compSpec) string {
	var b strings.Builder
	b.WriteString(`# bash completion for veil, made by "veil completion bash" from veil's command table.
# Load it with: source <(veil completion bash)

# _veil_subs PATH prints the subcommands of the command PATH ("" for veil).
_veil_subs() {
`)
	shCases(&b, `"$1"`, specs, func(s compSpec) []caseBranch {
		if len(s.subs) == 0 {
			return nil
		}
		return []caseBranch{{s.path, "echo " + shQuote(strings.Join(s.subNames(), " "))}}
	})
	b.WriteString(`}

# _veil_flags PATH prints the flags of the command PATH.
_veil_flags() {
`)
	shCases(&b, `"$1"`, specs, func(s compSpec) []caseBranch {
		return []caseBranch{{s.path, "echo " + shQuote(strings.Join(s.flagNames(), " "))}}
	})
	b.WriteString(`}

# _veil_flag PATH --FLAG prints how the flag's value completes: file,
# "words W...", or value; nothing for a switch or a flag the command lacks.
_veil_flag() {
`)
	shCases(&b, `"$1|$2"`, specs, func(s compSpec) []caseBranch {
		return flagBranches(s, func(k string) string { return "echo " + shQuote(k) })
	})
	b.WriteString(`}

# _veil_args PATH prints how the command's arguments complete: file,
# "words W...", or nothing.
_veil_args() {
`)
	shCases(&b, `"$1"`, specs, func(s compSpec) []caseBranch {
		if k := s.argKind(); k != "" {
			return []caseBranch{{s.path, "echo " + shQuote(k)}}
		}
		return nil
	})
	b.WriteString(`}

# _veil_long prints a flag as --name, as given with one dash or two.
_veil_long() {
    local f=${1#-}
    echo "--${f#-}"
}

# _veil_reply adds the completions of cur of the kind $1 (file or
# "words W...") to COMPREPLY, each after prefix.
_veil_reply() {
    case "$1" in
    file)
        compopt -o filenames 2>/dev/null
        mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -P "$prefix" -f -- "$cur") ;;
    words\ *)
        mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -P "$prefix" -W "${1#words }" -- "$cur") ;;
    esac
}

# _veil completes a veil command line: it walks the words before the
# cursor to the command they name, skipping flags, their values and other
# words (the help of veil help PATH, arguments), then completes the value
# of a flag, a flag, a subcommand or an argument.
_veil() {
    local cur=${COMP_WORDS[COMP_CWORD]} cmdpath="" word pending="" dashdash="" prefix="" i
    COMPREPLY=()
    for (( i = 1; i < COMP_CWORD; i++ )); do
        word=${COMP_WORDS[i]}
        if [[ -n $pending ]]; then
            # the flag's value; bash makes the = of --flag=value a word of its own
            [[ $word == "=" ]] && continue
            pending=""
            continue
        fi
        if [[ -z $dashdash && $word == -?* ]]; then
            if [[ $word == "--" ]]; then
                dashdash=1
            elif [[ $word != *=* ]]; then
                pending=$(_veil_flag "$cmdpath" "$(_veil_long "$word")")
            fi
            continue
        fi
        if [[ " $(_veil_subs "$cmdpath") " == *" $word "* ]]; then
            cmdpath=${cmdpath:+$cmdpath }$word
        fi
    done
    if [[ -n $pending && $cur == "=" ]]; then
        cur=""
    elif [[ -z $pending && -z $dashdash && $cur == -*=* ]]; then
        # --flag=value in one word, when = does not break words
        pending=$(_veil_flag "$cmdpath" "$(_veil_long "${cur%%=*}")")
        prefix=${cur%%=*}=
        cur=${cur#*=}
    fi
    if [[ -n $pending ]]; then
        _veil_reply "$pending"
        return 0
    fi
    if [[ -z $dashdash && $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_veil_flags "$cmdpath")" -- "$cur")
        return 0
    fi
    mapfile -t COMPREPLY < <(compgen -W "$(_veil_subs "$cmdpath")" -- "$cur")
    _veil_reply "$(_veil_args "$cmdpath")"
    return 0
}

complete -F _veil veil
`)
	return b.String()
}

// zshCompletion is the zsh script.
func zshCompletion(specs []compSpec) string {
	var b strings.Builder
	b.WriteString(`#compdef veil
# zsh completion for veil, made by "veil completion zsh" from veil's command table.
# Load it with: source <(veil completion zsh), or save it as _veil in a
# directory of $fpath.

# __veil_names PATH sets reply to the subcommands of the command PATH ("" for
# veil), and __veil_subs to them with their summaries.
__veil_names() {
    reply=()
`)
	shCases(&b, `$1`, specs, func(s compSpec) []caseBranch {
		if len(s.subs) == 0 {
			return nil
		}
		return []caseBranch{{s.path, "reply=(" + strings.Join(s.subNames(), " ") + ")"}}
	})
	b.WriteString(`}

__veil_subs() {
    reply=()
`)
	shCases(&b, `$1`, specs, func(s compSpec) []caseBranch {
		if len(s.subs) == 0 {
			return nil
		}
		var items []string
		for _, c := range s.subs {
			items = append(items, shQuote(c.name+":"+c.summary))
		}
		return []caseBranch{{s.path, "reply=(\n        " + strings.Join(items, "\n        ") + "\n    )"}}
	})
	b.WriteString(`}

# __veil_flags PATH sets reply to the command's flags with their usage.
__veil_flags() {
    reply=()
`)
	shCases(&b, `$1`, specs, func(s compSpec) []caseBranch {
		var items []string
		for _, f := range s.flags {
			items = append(items, shQuote(`--`+f.name+":"+f.usage))
		}
		return []caseBranch{{s.path, "reply=(\n        " + strings.Join(items, "\n        ") + "\n    )"}}
	})
	b.WriteString(`}

# __veil_flag PATH --FLAG sets REPLY to how the flag's value completes: file,
# "words W...", or value; empty for a switch or a flag the command lacks.
__veil_flag() {
    REPLY=
`)
	shCases(&b, `"$1|$2"`, specs, func(s compSpec) []caseBranch {
		return flagBranches(s, func(k string) string { return "REPLY=" + shQuote(k) })
	})
	b.WriteString(`}

# __veil_args PATH sets REPLY to how the command's arguments complete: file,
# "words W...", or empty.
__veil_args() {
    REPLY=
`)
	shCases(&b, `$1`, specs, func(s compSpec) []caseBranch {
		if k := s.argKind(); k != "" {
			return []caseBranch{{s.path, "REPLY=" + shQuote(k)}}
		}
		return nil
	})
	b.WriteString(`}

# __veil_complete completes the kind $1 (file or "words W...").
__veil_complete() {
    case $1 in
    file) _files ;;
    words\ *) local -a vals; vals=(${=1#words }); compadd -a vals ;;
    *) return 1 ;;
    esac
}

# _veil completes a veil command line: it walks the words before the
# cursor to the command they name, skipping flags, their values and other
# words (the help of veil help PATH, arguments), then completes the value
# of a flag, a flag, a subcommand or an argument.
_veil() {
    local cur=${words[CURRENT]} cmdpath= word pending= dashdash= long REPLY i ret=1
    local -a reply
    for (( i = 2; i < CURRENT; i++ )); do
        word=${words[i]}
        if [[ -n $pending ]]; then
            pending=
            continue
        fi
        if [[ -z $dashdash && $word == -?* ]]; then
            if [[ $word == -- ]]; then
                dashdash=1
            elif [[ $word != *=* ]]; then
                long=${word#-}
                __veil_flag "$cmdpath" "--${long#-}"
                pending=$REPLY
            fi
            continue
        fi
        __veil_names "$cmdpath"
        if (( ${reply[(Ie)$word]} )); then
            cmdpath=${cmdpath:+$cmdpath }$word
        fi
    done
    if [[ -z $pending && -z $dashdash && $cur == -*=* ]]; then
        long=${${cur%%=*}#-}
        __veil_flag "$cmdpath" "--${long#-}"
        pending=$REPLY
        [[ -n $pending ]] && compset -P '*='
    fi
    if [[ -n $pending ]]; then
        __veil_complete "$pending" || _message 'value'
        return
    fi
    if [[ -z $dashdash && $cur == -* ]]; then
        __veil_flags "$cmdpath"
        _describe -t flags 'veil flag' reply
        return
    fi
    __veil_subs "$cmdpath"
    (( $#reply )) && _describe -t commands 'veil command' reply && ret=0
    __veil_args "$cmdpath"
    __veil_complete "$REPLY" && ret=0
    return ret
}

if [[ ${funcstack[1]} == _veil ]]; then
    _veil "$@"
else
    compdef _veil veil
fi
`)
	return b.String()
}

// fishCompletion is the fish script.
func fishCompletion(specs []compSpec) string {
	var b strings.Builder
	b.WriteString(`# fish completion for veil, made by "veil completion fish" from veil's command table.
# Load it with: veil completion fish | source, or save it as
# ~/.config/fish/completions/veil.fish.

# __veil_subs PATH prints the subcommands of the command PATH ("" for veil).
function __veil_subs --argument-names cmdpath
    switch "$cmdpath"
`)
	for _, s := range specs {
		if len(s.subs) > 0 {
			fmt.Fprintf(&b, "        case %s\n            printf '%%s\\n' %s\n", fishQuote(s.path), strings.Join(s.subNames(), " "))
		}
	}
	b.WriteString(`    end
end

# __veil_flag PATH --FLAG prints how the flag's value completes: file,
# "words W...", or value; nothing for a switch or a flag the command lacks.
function __veil_flag --argument-names cmdpath flag
    switch "$cmdpath|$flag"
`)
	for _, s := range specs {
		for _, br := range flagBranches(s, func(k string) string { return k }) {
			fmt.Fprintf(&b, "        case %s\n            echo %s\n", fishQuote(br.pattern), fishQuote(br.action))
		}
	}
	b.WriteString(`    end
end

# __veil_path prints the command the words before the cursor name, skipping
# flags, their values and other words (the help of veil help PATH,
# arguments).
function __veil_path
    set -l words (commandline -opc)
    set -e words[1]
    set -l cmdpath ''
    set -l pending 0
    set -l dashdash 0
    for word in $words
        if test $pending = 1
            set pending 0
            continue
        end
        if test $dashdash = 0; and string match -q -- '-?*' $word
            if test $word = --
                set dashdash 1
            else if not string match -q -- '*=*' $word
                set -l kind (__veil_flag "$cmdpath" (string replace -r -- '^--?' '--' $word))
                if test -n "$kind"
                    set pending 1
                end
            end
            continue
        end
        if contains -- $word (__veil_subs "$cmdpath")
            if test -z "$cmdpath"
                set cmdpath $word
            else
                set cmdpath "$cmdpath $word"
            end
        end
    end
    echo $cmdpath
end

# __veil_at PATH: the words before the cursor name the command PATH.
function __veil_at --argument-names want
    set -l at (__veil_path)
    test "$at" = "$want"
end

complete -c veil -f
`)
	for _, s := range specs {
		cond := fishQuote("__veil_at " + fishQuote(s.path))
		for _, c := range s.subs {
			fmt.Fprintf(&b, "complete -c veil -n %s -a %s -d %s\n", cond, fishQuote(c.name), fishQuote(c.summary))
		}
		for _, f := range s.flags {
			var how string
			switch k := f.kind(); {
			case k == "":
			case k == "file":
				how = " -r -F"
			case len(f.words) > 0:
				how = " -x -a " + fishQuote(strings.Join(f.words, " "))
			default:
				how = " -x"
			}
			fmt.Fprintf(&b, "complete -c veil -n %s -l %s%s -d %s\n", cond, f.name, how, fishQuote(f.usage))
		}
		switch {
		case s.files:
			fmt.Fprintf(&b, "complete -c veil -n %s -F\n", cond)
		case len(s.words) > 0:
			fmt.Fprintf(&b, "complete -c veil -n %s -a %s\n", cond, fishQuote(strings.Join(s.words, " ")))
		}
	}
	return b.String()
}
