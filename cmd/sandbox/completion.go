package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"

	"sandbox/internal/wire"

	"github.com/alecthomas/kong"
)

// Shell completion scripts are generated from kong's model of the command
// line, so a new command, flag or enum value completes without editing
// this file. What a value completes to is read from the model:
//
//   - a bool flag takes no value; an enum flag or argument completes to its
//     values;
//   - a flag of type path/existingfile completes files, existingdir
//     directories; otherwise the placeholder decides: FILE, PATH or SRC…
//     files, DIR directories, and in an alternative list such as
//     "default|unconfined|FILE" the lower-case words complete as themselves;
//   - a positional argument named "name" completes the names of the
//     caller's sandboxes: the directories of the state directory
//     ($XDG_RUNTIME_DIR/sandbox when that is an existing absolute
//     directory, else /tmp/sandbox-UID);
//   - a passthrough argument (run's command) completes a command, then that
//     command's own arguments (bash: through bash-completion when loaded,
//     else files; zsh: _normal; fish: complete -C).
//
// Anything else (sizes, ports, K=V) completes to nothing.

type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

// Help is the detail of `sandbox completion --help`.
func (completionCmd) Help() string {
	return `Print a completion script for SHELL on stdout. Load it:
  bash: source <(sandbox completion bash) in ~/.bashrc, or save it as ~/.local/share/bash-completion/completions/sandbox
  zsh:  sandbox completion zsh > "${fpath[1]}/_sandbox" (or source <(sandbox completion zsh) after compinit)
  fish: sandbox completion fish > ~/.config/fish/completions/sandbox.fish`
}

// runCompletion prints the script for shell.
func runCompletion(w io.Writer, app *kong.Application, shell string) int {
	root := completionTree(app)
	var err error
	switch shell {
	case "bash":
		err = writeBash(w, app.Name, root)
	case "zsh":
		err = writeZsh(w, app.Name, root)
	case "fish":
		err = writeFish(w, app.Name, root)
	default:
		err = fmt.Errorf("no completion for shell %q: use bash, zsh or fish", shell)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: completion: %v\n", err)
		return wire.StatusError
	}
	return 0
}

// valueKind is what a flag's value or a positional argument completes to.
type valueKind string

const (
	kindBool    valueKind = "bool"    // a flag without a value
	kindFree    valueKind = "free"    // anything: no completion
	kindWords   valueKind = "words"   // only the listed words
	kindFiles   valueKind = "files"   // files (and the listed words)
	kindDirs    valueKind = "dirs"    // directories (and the listed words)
	kindNames   valueKind = "names"   // names of the caller's sandboxes
	kindCommand valueKind = "command" // a command line: the rest of the words
)

type completion struct {
	kind  valueKind
	words []string
}

// compFlag is one flag spelling: --long or -s.
type compFlag struct {
	name string // with its dashes
	help string
	completion
	repeat bool
}

type compArg struct {
	name string
	help string
	completion
}

// compNode is a command with what completes after it.
type compNode struct {
	path     []string // command words after the program name
	help     string
	children []*compNode
	flags    []compFlag
	args     []compArg
}

// key identifies the node in the scripts: its words joined with '/'.
func (n *compNode) key() string { return strings.Join(n.path, "/") }

// ident is the key as a shell identifier suffix.
func (n *compNode) ident() string {
	return strings.NewReplacer("/", "_", "-", "_").Replace(n.key())
}

func completionTree(app *kong.Application) *compNode {
	return walkNode(app.Node, nil)
}

func walkNode(n *kong.Node, path []string) *compNode {
	c := &compNode{path: path, help: firstSentence(n.Help)}
	for _, group := range n.AllFlags(true) {
		for _, f := range group {
			c.flags = append(c.flags, flagSpellings(f)...)
		}
	}
	for _, p := range n.Positional {
		c.args = append(c.args, compArg{name: p.Name, help: firstSentence(p.Help), completion: argCompletion(p)})
	}
	for _, ch := range n.Children {
		if ch.Type == kong.CommandNode && !ch.Hidden {
			c.children = append(c.children, walkNode(ch, append(append([]string{}, path...), ch.Name)))
		}
	}
	return c
}

// flagSpellings lists --long, -s and a negation --no-long of a flag.
func flagSpellings(f *kong.Flag) []compFlag {
	comp := flagCompletion(f)
	help := firstSentence(f.Help)
	out := []compFlag{{name: "--" + f.Name, help: help, completion: comp, repeat: f.IsCumulative()}}
	if f.Short != 0 {
		out = append(out, compFlag{name: "-" + string(f.Short), help: help, completion: comp, repeat: f.IsCumulative()})
	}
	switch neg := f.Tag.Negatable; {
	case neg == "_": // kong's marker for the default --no-NAME
		out = append(out, compFlag{name: "--no-" + f.Name, help: help, completion: completion{kind: kindBool}})
	case neg != "":
		out = append(out, compFlag{name: "--" + neg, help: help, completion: completion{kind: kindBool}})
	}
	return out
}

var lowerWord = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`) }) // compiled on first use, not at every start

func flagCompletion(f *kong.Flag) completion {
	if f.IsBool() || f.IsCounter() {
		return completion{kind: kindBool}
	}
	if f.Enum != "" {
		return completion{kind: kindWords, words: f.EnumSlice()}
	}
	c := completion{kind: kindFree}
	for _, alt := range strings.Split(f.PlaceHolder, "|") {
		switch {
		case strings.Contains(alt, "DIR"):
			c.kind = kindDirs
		case strings.Contains(alt, "FILE") || strings.Contains(alt, "PATH") || strings.HasPrefix(alt, "SRC"):
			if c.kind != kindDirs {
				c.kind = kindFiles
			}
		case lowerWord().MatchString(alt) && strings.Contains(f.PlaceHolder, "|"):
			c.words = append(c.words, alt)
		}
	}
	switch f.Tag.Type {
	case "existingdir":
		c.kind = kindDirs
	case "path", "existingfile", "filecontent":
		if c.kind != kindDirs {
			c.kind = kindFiles
		}
	}
	if c.kind == kindFree && len(c.words) > 0 {
		c.kind = kindWords
	}
	return c
}

func argCompletion(p *kong.Positional) completion {
	switch {
	case p.Passthrough || p.Name == "command":
		return completion{kind: kindCommand}
	case p.Name == "name":
		return completion{kind: kindNames}
	case p.Enum != "":
		return completion{kind: kindWords, words: p.EnumSlice()}
	case p.Tag.Type == "existingdir":
		return completion{kind: kindDirs}
	case p.Tag.Type == "path" || p.Tag.Type == "existingfile":
		return completion{kind: kindFiles}
	}
	return completion{kind: kindFree}
}

// firstSentence shortens a help text to its first sentence, for the
// descriptions zsh and fish show beside each candidate.
func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '.' && s[i+1] == ' ' && !strings.HasSuffix(s[:i], "e.g") && !strings.HasSuffix(s[:i], "i.e") {
			s = s[:i]
			break
		}
	}
	return strings.TrimSuffix(s, ".")
}

// eachNode visits n and its descendants, parents first.
func eachNode(n *compNode, fn func(*compNode)) {
	fn(n)
	for _, c := range n.children {
		eachNode(c, fn)
	}
}

// shQuote quotes s for sh, bash and zsh.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fishQuote quotes s for fish.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

// stateDirCode sets d, in bash and zsh, to where the caller's sandboxes
// keep their state, one directory per name (as state.BaseDir decides).
const stateDirCode = `d=/tmp/sandbox-$UID
	if [[ $XDG_RUNTIME_DIR == /* && -d $XDG_RUNTIME_DIR ]]; then d=$XDG_RUNTIME_DIR/sandbox; fi`

// nameRe is the shape of a sandbox name (as `run --name` takes it).
const nameRe = `^[A-Za-z0-9][A-Za-z0-9_.-]*$`

// specLines describes a node to the bash and fish scripts, one item a line:
//
//	cmd NAME                 a subcommand
//	flag NAME KIND [WORD...] a flag spelling
//	arg KIND [WORD...]       the next positional argument
func specLines(n *compNode) []string {
	var out []string
	for _, c := range n.children {
		out = append(out, "cmd "+c.path[len(c.path)-1])
	}
	for _, f := range n.flags {
		out = append(out, strings.Join(append([]string{"flag", f.name, string(f.kind)}, f.words...), " "))
	}
	for _, a := range n.args {
		out = append(out, strings.Join(append([]string{"arg", string(a.kind)}, a.words...), " "))
	}
	return out
}

// writeSpecCases writes, for each node, a case of a shell's switch on
// the node's key (head: a format taking the quoted key) printing its
// specLines, one per continued line.
func writeSpecCases(b *strings.Builder, root *compNode, quote func(string) string, head, indent, end string) {
	eachNode(root, func(n *compNode) {
		fmt.Fprintf(b, head, quote(n.key()))
		for _, l := range specLines(n) {
			b.WriteString(" \\\n" + indent + quote(l))
		}
		b.WriteString(end)
	})
}

func writeBash(w io.Writer, prog string, root *compNode) error {
	var b strings.Builder
	fmt.Fprintf(&b, `# bash completion for %[1]s (generated by "%[1]s completion bash"; do not edit).
# Load it with: source <(%[1]s completion bash)

# _%[1]s_spec PATH: what the command PATH ('' or words joined with '/') takes,
# one item a line: "cmd NAME", "flag NAME KIND [WORD...]", "arg KIND [WORD...]".
_%[1]s_spec() {
	case $1 in
`, prog)
	writeSpecCases(&b, root, shQuote, "\t%s)\n\t\tprintf '%%s\\n'", "\t\t\t", "\n\t\t;;\n")
	fmt.Fprintf(&b, `	esac
}

# _%[1]s_find PATH TYPE NAME: the rest of PATH's item "TYPE NAME ...".
_%[1]s_find() {
	local line
	while IFS= read -r line; do
		if [[ $line == "$2 $3" || $line == "$2 $3 "* ]]; then
			printf '%%s\n' "${line#"$2 $3 "}"
			return 0
		fi
	done < <(_%[1]s_spec "$1")
	return 1
}

# _%[1]s_list PATH TYPE: the names of PATH's items of TYPE.
_%[1]s_list() {
	local line
	while IFS= read -r line; do
		if [[ $line == "$2 "* ]]; then
			line=${line#"$2 "}
			printf '%%s\n' "${line%%%% *}"
		fi
	done < <(_%[1]s_spec "$1")
}

# _%[1]s_arg PATH N: the KIND [WORD...] of PATH's N-th positional argument.
_%[1]s_arg() {
	local line n=0
	while IFS= read -r line; do
		if [[ $line == "arg "* ]]; then
			if ((n == $2)); then
				printf '%%s\n' "${line#arg }"
				return 0
			fi
			n=$((n + 1))
		fi
	done < <(_%[1]s_spec "$1")
	return 1
}

# _%[1]s_names: the caller's sandboxes (directories of the state directory).
_%[1]s_names() {
	local d n
	%[2]s
	for n in "$d"/*/; do
		n=${n%%/}
		n=${n##*/}
		if [[ $n =~ %[3]s ]]; then printf '%%s\n' "$n"; fi
	done
}

# _%[1]s_values "KIND [WORD...]" CUR: fills COMPREPLY with the values of that kind.
_%[1]s_values() {
	local kind=${1%%%% *} words=''
	if [[ $1 == *' '* ]]; then words=${1#* }; fi
	COMPREPLY=()
	case $kind in
	words | files | dirs) mapfile -t COMPREPLY < <(compgen -W "$words" -- "$2") ;;
	names) mapfile -t COMPREPLY < <(compgen -W "$(_%[1]s_names)" -- "$2") ;;
	command) mapfile -t COMPREPLY < <(compgen -c -- "$2") ;;
	esac
	case $kind in
	files)
		compopt -o filenames 2>/dev/null
		mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$2")
		;;
	dirs)
		compopt -o filenames 2>/dev/null
		mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$2")
		;;
	esac
}

_%[1]s() {
	local cur=${COMP_WORDS[COMP_CWORD]} path='' i w f npos=0 cmdat=0
	COMPREPLY=()
	# The words before the cursor: subcommands, flags with their values, arguments.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		--)
			f=$(_%[1]s_arg "$path" "$npos")
			if [[ $f == command* ]]; then
				cmdat=$((i + 1))
				break
			fi
			;;
		-*=*) ;;
		-*)
			if [[ ${COMP_WORDS[i+1]} == = ]]; then # --flag=value split at '='
				i=$((i + 2))
			elif f=$(_%[1]s_find "$path" flag "$w") && [[ $f != bool* ]]; then
				i=$((i + 1)) # its value is the next word
			fi
			;;
		*)
			if _%[1]s_find "$path" cmd "$w" >/dev/null; then
				path=${path:+$path/}$w
				npos=0
				continue
			fi
			f=$(_%[1]s_arg "$path" "$npos")
			if [[ $f == command* ]]; then
				cmdat=$i
				break
			fi
			npos=$((npos + 1))
			;;
		esac
	done
	if ((cmdat)); then # run's command and its arguments
		if ((cmdat == COMP_CWORD)); then
			_%[1]s_values command "$cur"
		elif declare -F _command_offset >/dev/null; then
			_command_offset "$cmdat"
		else
			_%[1]s_values files "$cur"
		fi
		return 0
	fi
	# A flag's value: --flag=VALUE, --flag = VALUE (split at '='), --flag VALUE.
	local flag='' val=$cur pre='' prev=''
	if ((COMP_CWORD > 1)); then prev=${COMP_WORDS[COMP_CWORD-1]}; fi
	if [[ $cur == -*=* ]]; then
		flag=${cur%%%%=*} val=${cur#*=} pre=${cur%%%%=*}=
	elif [[ $cur == = && $prev == -* ]]; then
		flag=$prev val=''
	elif [[ $prev == = ]] && ((COMP_CWORD > 2)); then
		flag=${COMP_WORDS[COMP_CWORD-2]}
	elif [[ $prev == -* ]]; then
		flag=$prev
	fi
	if [[ $flag == -* ]] && f=$(_%[1]s_find "$path" flag "$flag") && [[ $f != bool* ]]; then
		_%[1]s_values "$f" "$val"
		if [[ -n $pre ]]; then COMPREPLY=("${COMPREPLY[@]/#/$pre}"); fi
		return 0
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_%[1]s_list "$path" flag)" -- "$cur")
		return 0
	fi
	local subs
	subs=$(_%[1]s_list "$path" cmd)
	if [[ -n $subs ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")
	elif f=$(_%[1]s_arg "$path" "$npos"); then
		if [[ $f == command* ]]; then
			_%[1]s_values command "$cur"
		else
			_%[1]s_values "$f" "$cur"
		fi
	fi
	return 0
}

complete -F _%[1]s %[1]s
`, prog, stateDirCode, nameRe)
	_, err := io.WriteString(w, b.String())
	return err
}

// zshDesc escapes a description for an _arguments spec's [...].
func zshDesc(s string) string {
	return strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}

// zshMessage turns a placeholder into the message of an _arguments spec.
func zshMessage(s string) string {
	s = strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(s, " "))
	if s = strings.TrimSpace(s); s == "" {
		s = "value"
	}
	return s
}

// zshAction is the _arguments action completing c; helper functions it
// needs are appended to helpers.
func zshAction(prog, ident string, c completion, helpers *strings.Builder) string {
	switch {
	case c.kind == kindWords:
		return "(" + strings.Join(c.words, " ") + ")"
	case c.kind == kindNames:
		return "_" + prog + "__names"
	case c.kind == kindCommand:
		return "_" + prog + "__command"
	case (c.kind == kindFiles || c.kind == kindDirs) && len(c.words) == 0:
		if c.kind == kindDirs {
			return "_files -/"
		}
		return "_files"
	case c.kind == kindFiles || c.kind == kindDirs:
		fn := "_" + prog + "__v_" + ident
		files := "_files"
		if c.kind == kindDirs {
			files = "_files -/"
		}
		fmt.Fprintf(helpers, "%s() {\n\t_alternative %s %s\n}\n\n", fn,
			shQuote("values:value:("+strings.Join(c.words, " ")+")"), shQuote("files:file:"+files))
		return fn
	}
	return " "
}

func writeZsh(w io.Writer, prog string, root *compNode) error {
	var b, helpers strings.Builder
	fmt.Fprintf(&b, "#compdef %[1]s\n# zsh completion for %[1]s (generated by \"%[1]s completion zsh\"; do not edit).\n\n", prog)
	eachNode(root, func(n *compNode) {
		fn := "_" + prog
		if len(n.path) > 0 {
			fn += "_" + n.ident()
		}
		var specs []string
		for _, f := range n.flags {
			ident := n.ident() + "_" + strings.ReplaceAll(strings.TrimLeft(f.name, "-"), "-", "_")
			spec := f.name
			if f.repeat {
				spec = "*" + spec
			}
			if f.kind == kindBool {
				specs = append(specs, shQuote(spec+"["+zshDesc(f.help)+"]"))
				continue
			}
			if strings.HasPrefix(f.name, "--") {
				spec += "="
			} else {
				spec += "+"
			}
			specs = append(specs, shQuote(spec+"["+zshDesc(f.help)+"]:"+zshMessage(strings.TrimLeft(f.name, "-"))+":"+
				zshAction(prog, ident, f.completion, &helpers)))
		}
		for i, a := range n.args {
			action := zshAction(prog, n.ident()+"_arg"+fmt.Sprint(i), a.completion, &helpers)
			if a.kind == kindCommand {
				specs = append(specs, shQuote("*::"+zshMessage(a.name)+":"+action))
			} else {
				specs = append(specs, shQuote(fmt.Sprintf("%d:%s:%s", i+1, zshMessage(a.name), action)))
			}
		}
		if len(n.children) > 0 {
			specs = append(specs, shQuote("1: :->command"), shQuote("*:: :->arg"))
		}
		fmt.Fprintf(&b, "%s() {\n\tlocal curcontext=$curcontext state line ret=1\n\ttypeset -A opt_args\n", fn)
		fmt.Fprintf(&b, "\t_arguments -s -S -C \\\n\t\t%s && ret=0\n", strings.Join(specs, " \\\n\t\t"))
		if len(n.children) > 0 {
			b.WriteString("\tcase $state in\n\tcommand)\n\t\tlocal -a cmds\n\t\tcmds=(\n")
			for _, c := range n.children {
				name := c.path[len(c.path)-1]
				fmt.Fprintf(&b, "\t\t\t%s\n", shQuote(name+":"+c.help))
			}
			fmt.Fprintf(&b, "\t\t)\n\t\t_describe -t commands %s cmds && ret=0\n\t\t;;\n\targ)\n", shQuote(prog+" command"))
			b.WriteString("\t\tcurcontext=${curcontext%:*:*}:" + prog + "-$words[1]:\n\t\tcase $words[1] in\n")
			for _, c := range n.children {
				fmt.Fprintf(&b, "\t\t%s) _%s_%s && ret=0 ;;\n", shQuote(c.path[len(c.path)-1]), prog, c.ident())
			}
			b.WriteString("\t\tesac\n\t\t;;\n\tesac\n")
		}
		b.WriteString("\treturn ret\n}\n\n")
	})
	b.WriteString(helpers.String())
	fmt.Fprintf(&b, `_%[1]s__names() {
	local d n
	local -a names
	%[2]s
	for n in $d/*(N/:t); do
		[[ $n =~ '%[3]s' ]] && names+=($n)
	done
	_wanted names expl 'sandbox name' compadd -a names
}

# The command line of run: "--" may still lead the words.
_%[1]s__command() {
	if [[ $words[1] == -- ]]; then
		shift words
		(( CURRENT-- ))
	fi
	_normal
}

if [[ $funcstack[1] == _%[1]s ]]; then
	_%[1]s "$@"
else
	compdef _%[1]s %[1]s
fi
`, prog, stateDirCode, nameRe)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeFish(w io.Writer, prog string, root *compNode) error {
	var b strings.Builder
	fmt.Fprintf(&b, `# fish completion for %[1]s (generated by "%[1]s completion fish"; do not edit).

# __%[1]s_spec PATH: what the command PATH ('' or words joined with '/') takes,
# one item a line: "cmd NAME", "flag NAME KIND [WORD...]", "arg KIND [WORD...]".
function __%[1]s_spec
    switch "$argv[1]"
`, prog)
	writeSpecCases(&b, root, fishQuote, "        case %s\n            printf '%%s\\n'", "                ", "\n")
	fmt.Fprintf(&b, `    end
end

# __%[1]s_state: the command PATH the words before the cursor reached, then
# "args N" (N arguments given) or "command I" (the I-th word starts run's command).
function __%[1]s_state
    set -l line (commandline -cp)
    if test "$line" = "$__%[1]s_state_line"
        printf '%%s\n' $__%[1]s_state_value
        return
    end
    set -l toks (commandline -opc)
    set -l path ''
    set -l npos 0
    set -l skip 0
    set -l state
    for i in (seq 2 (count $toks))
        set -l w $toks[$i]
        if test $skip = 1
            set skip 0
            continue
        end
        set -l specs (__%[1]s_spec $path)
        switch $w
            case --
                set -l args (string match 'arg *' -- $specs)
                set -l k (math $npos + 1)
                if string match -q 'arg command*' -- "$args[$k]"
                    set state $path "command "(math $i + 1)
                    break
                end
            case '-*=*'
            case '-*'
                set -l f (string match -- "flag $w *" $specs)
                if set -q f[1]; and not string match -q -- "flag $w bool*" $f[1]
                    set skip 1
                end
            case '*'
                if contains -- "cmd $w" $specs
                    set path (string join / -- (string split -n / -- $path) $w)
                    set npos 0
                    continue
                end
                set -l args (string match 'arg *' -- $specs)
                set -l k (math $npos + 1)
                if string match -q 'arg command*' -- "$args[$k]"
                    set state $path "command $i"
                    break
                end
                set npos (math $npos + 1)
        end
    end
    if not set -q state[1]
        set state $path "args $npos"
    end
    set -g __%[1]s_state_line $line
    set -g __%[1]s_state_value $state
    printf '%%s\n' $state
end

# __%[1]s_at PATH: the cursor is at PATH's flags and arguments.
function __%[1]s_at
    set -l s (__%[1]s_state)
    test "$s[1]" = "$argv[1]"; and string match -q 'args *' -- $s[2]
end

# __%[1]s_arg PATH N: the cursor is at PATH's argument N (from 0).
function __%[1]s_arg
    set -l s (__%[1]s_state)
    test "$s[1]" = "$argv[1]"; and test "$s[2]" = "args $argv[2]"; and not string match -q -- '-*' "$(commandline -ct)"
end

# __%[1]s_in_command: the cursor is in run's command line.
function __%[1]s_in_command
    set -l s (__%[1]s_state)
    string match -q 'command *' -- $s[2]
end

# __%[1]s_command: completes run's command line as fish would on its own.
function __%[1]s_command
    set -l s (__%[1]s_state)
    set -l at (string split ' ' -- $s[2])[2]
    set -l toks (commandline -opc)
    set -l rest
    if test $at -le (count $toks)
        set rest (string escape -- $toks[$at..-1])
    end
    complete -C (string join ' ' -- $rest "$(commandline -ct)")
end

# __%[1]s_names: the caller's sandboxes (directories of the state directory).
function __%[1]s_names
    set -l d /tmp/sandbox-(id -u)
    if string match -q -- '/*' "$XDG_RUNTIME_DIR"; and test -d "$XDG_RUNTIME_DIR"
        set d $XDG_RUNTIME_DIR/sandbox
    end
    for n in $d/*/
        set n (basename $n)
        string match -qr -- '%[2]s' $n; and echo $n
    end
end

# __%[1]s_dirs: directories completing the value being typed.
function __%[1]s_dirs
    __fish_complete_directories (string replace -r -- '^--?[^=]*=' '' "$(commandline -ct)")
end

complete -c %[1]s -f
complete -c %[1]s -n __%[1]s_in_command -x -a '(__%[1]s_command)'
`, prog, nameRe)
	eachNode(root, func(n *compNode) {
		cond := fishQuote("__" + prog + "_at " + fishQuote(n.key()))
		for _, c := range n.children {
			fmt.Fprintf(&b, "complete -c %s -n %s -a %s -d %s\n", prog, cond, fishQuote(c.path[len(c.path)-1]), fishQuote(c.help))
		}
		for _, f := range n.flags {
			opt := "-l " + fishQuote(strings.TrimPrefix(f.name, "--"))
			if !strings.HasPrefix(f.name, "--") {
				opt = "-s " + fishQuote(strings.TrimPrefix(f.name, "-"))
			}
			fmt.Fprintf(&b, "complete -c %s -n %s %s%s -d %s\n", prog, cond, opt, fishValue(prog, f.completion), fishQuote(f.help))
		}
		for i, a := range n.args {
			if a.kind == kindCommand || a.kind == kindFree {
				continue
			}
			acond := fishQuote(fmt.Sprintf("__%s_arg %s %d", prog, fishQuote(n.key()), i))
			fmt.Fprintf(&b, "complete -c %s -n %s%s\n", prog, acond, fishValue(prog, a.completion))
		}
	})
	_, err := io.WriteString(w, b.String())
	return err
}

// fishValue is the part of a `complete` line that completes a value.
func fishValue(prog string, c completion) string {
	words := ""
	if len(c.words) > 0 {
		words = " " + strings.Join(c.words, " ")
	}
	switch c.kind {
	case kindBool:
		return ""
	case kindWords:
		return " -x -a " + fishQuote(strings.TrimSpace(words))
	case kindFiles:
		if words == "" {
			return " -r -F"
		}
		return " -r -F -a " + fishQuote(strings.TrimSpace(words))
	case kindDirs:
		return " -x -a " + fishQuote("(__"+prog+"_dirs)"+words)
	case kindNames:
		return " -x -a " + fishQuote("(__"+prog+"_names)")
	}
	return " -x"
}
