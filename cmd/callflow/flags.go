package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/peterbourgon/ff/v3"
)

// envPrefix prefixes the environment variable of every flag.
const envPrefix = "CALLFLOW"

// envName is the environment variable that sets a flag.
func envName(flagName string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet returns a flag set whose --help lists every flag with its
// environment variable and default.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("callflow "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: callflow %s\n\n", synopsis)
		printFlags(stderr, fs, func(string) bool { return true })
		fmt.Fprintf(stderr, "\n%s\n", exitCodes)
	}
	return fs
}

// printFlags lists the flags of fs that show selects, each with its
// environment variable, default and short spelling.
func printFlags(w io.Writer, fs *flag.FlagSet, show func(name string) bool) {
	fmt.Fprintln(w, "Flags (each also read from its environment variable; a flag given on the command line wins):")
	short := map[string]string{}
	for s, long := range shortFlags {
		short[long] = "-" + s + ", "
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !show(f.Name) {
			return
		}
		def := ""
		if f.DefValue != "" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "  %s--%s  [%s]%s\n      %s\n", short[f.Name], f.Name, envName(f.Name), def, f.Usage)
	})
}

// parseFlags parses args, then the CALLFLOW_* environment for flags not
// given, then the --config file (when the flag set has one) for flags still
// not set. Positional arguments are refused unless allowArgs.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs bool) error {
	opts := []ff.Option{ff.WithEnvVarPrefix(envPrefix)}
	if fs.Lookup(configFlag) != nil {
		opts = append(opts, ff.WithConfigFileFlag(configFlag), ff.WithConfigFileParser(configParser(fs)))
	}
	if err := ff.Parse(fs, args, opts...); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		// The flag package spells flags with one dash; the usage, two.
		msg := strings.TrimPrefix(err.Error(), "error parsing commandline arguments: ")
		msg = strings.NewReplacer(" flag -", " flag --", "not defined: -", "not defined: --").Replace(msg)
		fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), msg)
		return errUsage
	}
	if !allowArgs && fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}
