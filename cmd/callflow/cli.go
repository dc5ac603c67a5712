package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// exitCodes is the end of every usage message.
const exitCodes = `Exit codes: 0 success; 1 an error from the admin API, NATS, ClickHouse or the work itself
(the message says which); 2 a usage error (an unknown command, action or flag, a bad
flag value, a missing or extra argument).`

// verb is one action of a command made of actions (sessions, numbers,
// flows): `callflow <command> <verb> [flags] [arg]`.
type verb struct {
	name string
	// synopsis is what follows `callflow <command> <verb>` in its usage.
	synopsis string
	// flags are the flags it takes besides clientFlags (and --output when
	// output is set).
	flags []string
	// arg names its one positional argument ("ID"); "" when it takes none.
	arg string
	// output: it prints objects, in the format --output chooses.
	output bool
}

// verbCommand is a command made of actions.
type verbCommand struct {
	name  string
	verbs []verb
	// about follows the synopses in the command's usage.
	about string
}

// lookup returns the verb named name.
func (vc *verbCommand) lookup(name string) (*verb, bool) {
	for i := range vc.verbs {
		if vc.verbs[i].name == name {
			return &vc.verbs[i], true
		}
	}
	return nil, false
}

// takes reports whether v accepts the flag name on its command line.
func (v *verb) takes(name string) bool {
	return slices.Contains(v.flags, name) || slices.Contains(clientFlags, name) || (v.output && name == outputFlag)
}

// usage prints the command's usage: every verb's synopsis, what follows
// them, every flag and the exit codes.
func (vc *verbCommand) usage(fs *flag.FlagSet, w io.Writer) {
	names := make([]string, len(vc.verbs))
	for i, v := range vc.verbs {
		names[i] = v.name
	}
	fmt.Fprintf(w, "Usage: callflow %s <%s> [flags] [argument]\n\n", vc.name, strings.Join(names, "|"))
	for _, v := range vc.verbs {
		fmt.Fprintf(w, "  %s %s\n", v.name, v.synopsis)
	}
	fmt.Fprintf(w, "\n%s\n\nRun 'callflow %s <action> --help' for an action's flags alone. Flags may come before\nor after the action and its argument.\n\n", vc.about, vc.name)
	printFlags(w, fs, func(string) bool { return true })
	fmt.Fprintf(w, "\n%s\n", exitCodes)
}

// verbUsage prints one verb's usage: its synopsis and its flags.
func (vc *verbCommand) verbUsage(fs *flag.FlagSet, v *verb, w io.Writer) {
	fmt.Fprintf(w, "Usage: callflow %s %s %s\n\n", vc.name, v.name, v.synopsis)
	printFlags(w, fs, v.takes)
	fmt.Fprintf(w, "\n%s\n", exitCodes)
}

// parse parses `<verb> [flags] [arg]` for every command made of actions:
// the verb must be one of vc's; --help (or -h) anywhere prints the verb's
// usage (the command's, without a verb) and returns flag.ErrHelp (exit
// 0); flags may come before or after the verb and the argument; only the
// verb's own flags may be given on the command line; a verb with an
// argument needs exactly one, others none. It returns the verb and the
// flags given on the command line. Usage errors are printed and returned
// as errUsage.
func (vc *verbCommand) parse(fs *flag.FlagSet, args []string, stderr io.Writer) (*verb, map[string]bool, error) {
	fs.Usage = func() { vc.usage(fs, stderr) }
	ordered, given := flagsFirst(fs, args)
	end := slices.Index(ordered, "--")
	flags, positional := ordered[:end+1], ordered[end+1:]
	help := given["help"] || given["h"]
	if len(positional) > 0 && isHelp(positional[0]) {
		help, positional = true, positional[1:]
	}
	if len(positional) == 0 {
		fs.Usage()
		if help {
			return nil, nil, flag.ErrHelp
		}
		return nil, nil, errUsage
	}
	v, ok := vc.lookup(positional[0])
	if !ok {
		fmt.Fprintf(stderr, "callflow %s: unknown action %q\n\n", vc.name, positional[0])
		fs.Usage()
		return nil, nil, errUsage
	}
	fs.Usage = func() { vc.verbUsage(fs, v, stderr) }
	if help {
		fs.Usage()
		return nil, nil, flag.ErrHelp
	}
	for _, name := range slices.Sorted(maps.Keys(given)) {
		if !v.takes(name) {
			fmt.Fprintf(stderr, "callflow %s %s does not take --%s (see callflow %s %s --help)\n", vc.name, v.name, name, vc.name, v.name)
			return nil, nil, errUsage
		}
	}
	if err := parseFlags(fs, append(flags, positional[1:]...), true); err != nil {
		return nil, nil, err
	}
	switch {
	case v.arg != "" && fs.NArg() != 1:
		fmt.Fprintf(stderr, "callflow %s %s needs exactly one argument (%s), got %d\n", vc.name, v.name, v.arg, fs.NArg())
		return nil, nil, errUsage
	case v.arg == "" && fs.NArg() != 0:
		fmt.Fprintf(stderr, "callflow %s %s: unexpected argument %q\n", vc.name, v.name, fs.Arg(0))
		return nil, nil, errUsage
	}
	return v, given, nil
}

// isHelp reports whether a is a request for help.
func isHelp(a string) bool {
	switch a {
	case "help", "-h", "-help", "--help", "--h":
		return true
	}
	return false
}

// shortFlags are the one-letter spellings of long flags, rewritten by
// flagsFirst before parsing (so that the environment and the usage know
// one name).
var shortFlags = map[string]string{"o": outputFlag}

// flagsFirst moves the flags of args before their positional arguments
// (the flag package stops at the first of them), spells short flags
// long, and returns the names of the flags given.
func flagsFirst(fs *flag.FlagSet, args []string) ([]string, map[string]bool) {
	var flags, positional []string
	given := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if long, ok := shortFlags[name]; ok {
			name = long
			a = "--" + name
			if hasValue {
				a += "=" + value
			}
		}
		given[name] = true
		flags = append(flags, a)
		f := fs.Lookup(name)
		if f == nil || hasValue {
			continue // the flag package reports an unknown one
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(append(flags, "--"), positional...), given
}
