package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/callflow/callflow/internal/node"
	"go.yaml.in/yaml/v3"
)

// configFlag names the optional YAML file of settings.
const configFlag = "config"

// configFile is the --config flag: the file's path, and what reading it
// found for the log.
type configFile struct {
	path string
	// ignored are the file's keys that belong to other roles.
	ignored []string
}

// String implements flag.Value.
func (c *configFile) String() string { return c.path }

// Set implements flag.Value.
func (c *configFile) Set(path string) error {
	c.path = path
	return nil
}

// registerConfig registers --config.
func (o *options) registerConfig(fs *flag.FlagSet) {
	fs.Var(&o.config, configFlag, "YAML file of settings, keyed by flag name (precedence: flag > environment > file > default)")
}

// logIgnoredKeys says, once, which keys of the config file this role
// ignored because they belong to other roles.
func (o *options) logIgnoredKeys(log *slog.Logger) {
	if len(o.config.ignored) > 0 {
		log.Debug("config file keys of other roles ignored", "file", o.config.path, "keys", o.config.ignored)
	}
}

// configParser reads a config file for ff into fs: a YAML mapping from
// flag names to scalar values (a list of scalars, for a comma-separated
// setting, is joined with commas). One file
// serves every role: a key of another role is skipped (and noted in
// fs's configFile), a key no role knows is an error that names it and
// the nearest known key, and a value of the wrong type is an error naming
// the key and the type it wants.
func configParser(fs *flag.FlagSet) func(r io.Reader, set func(name, value string) error) error {
	return func(r io.Reader, set func(name, value string) error) error {
		cf, _ := fs.Lookup(configFlag).Value.(*configFile)
		if cf == nil {
			cf = &configFile{}
		}
		if err := readConfig(fs, cf, r, set); err != nil {
			return fmt.Errorf("config file %s: %w", cf.path, err)
		}
		return nil
	}
}

func readConfig(fs *flag.FlagSet, cf *configFile, r io.Reader, set func(name, value string) error) error {
	var m map[string]any
	if err := yaml.NewDecoder(r).Decode(&m); err != nil && err != io.EOF {
		return err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	known := knownKeys()
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil {
			if !known[k] {
				return unknownKey(k, known)
			}
			cf.ignored = append(cf.ignored, k)
			continue
		}
		v, err := configValue(m[k], f)
		if err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		if err := set(k, v); err != nil {
			return fmt.Errorf("key %q: want %s, got %q", k, wantOf(f), v)
		}
	}
	return nil
}

// configValue is the flag value of a YAML value: a scalar as written, a
// list of scalars comma-separated (for the settings that are lists).
func configValue(v any, f *flag.Flag) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case map[string]any:
		return "", fmt.Errorf("want %s, got a mapping", wantOf(f))
	case []any:
		if want := wantOf(f); want != "a string" {
			return "", fmt.Errorf("want %s, got a list", want)
		}
		items := make([]string, len(v))
		for i, item := range v {
			switch item.(type) {
			case map[string]any:
				return "", errors.New("want a list of values, got a list holding a mapping")
			case []any:
				return "", errors.New("want a list of values, got a list of lists")
			}
			items[i] = fmt.Sprint(item)
		}
		return strings.Join(items, ","), nil
	default:
		return fmt.Sprint(v), nil
	}
}

// knownKeys are the flag names of every role.
func knownKeys() map[string]bool {
	known := map[string]bool{}
	for _, r := range roles {
		var o options
		r.flagSet(&o, io.Discard).VisitAll(func(f *flag.Flag) { known[f.Name] = true })
	}
	return known
}

// unknownKey is the error for a key no role knows, with the nearest known
// key when one is close enough to be a typo of it.
func unknownKey(k string, known map[string]bool) error {
	best, dist := "", len(k)/3+2
	for name := range known {
		if d := editDistance(k, name); d < dist || (d == dist && best != "" && name < best) {
			best, dist = name, d
		}
	}
	if best == "" {
		return fmt.Errorf("unknown key %q (the keys are the flag names, without --: callflow config docs lists them)", k)
	}
	return fmt.Errorf("unknown key %q (did you mean %q?)", k, best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// wantOf says what kind of value flag f takes.
func wantOf(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "a string"
	}
	switch g.Get().(type) {
	case int, int64:
		return "an integer"
	case uint, uint64:
		return "a non-negative integer"
	case float64:
		return "a number"
	case bool:
		return "true or false"
	case time.Duration:
		return "a duration such as 500ms, 30s or 2h"
	default:
		return "a string"
	}
}

// placeholder reports whether v is what tools print in place of a secret
// (REDACTED, <redacted>, ***): a config copied from such output must not
// make the placeholder a working credential.
func placeholder(v string) bool {
	v = strings.Trim(strings.TrimSpace(v), `<>[]()"'`)
	return strings.EqualFold(v, "redacted") || (v != "" && strings.Trim(v, "*") == "")
}

// isSecret reports whether a flag holds a secret that output must redact.
func isSecret(name string) bool {
	if strings.HasSuffix(name, "-file") {
		return false // a path, not the secret
	}
	return strings.Contains(name, "token") || strings.Contains(name, "password") || name == "webhook-auth"
}

const configSynopsis = `config print <role> [--config FILE] [flags]   the effective configuration, as YAML; secrets set are shown as comments
       callflow config docs                                 the table of every setting of every role (Markdown)`

// runConfig prints a role's effective configuration or the settings table.
func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: callflow "+configSynopsis)
		return errUsage
	}
	switch args[0] {
	case "docs":
		_, err := io.WriteString(stdout, configDocs())
		return err
	case "print":
		if len(args) < 2 {
			fmt.Fprintln(stderr, "Usage: callflow "+configSynopsis)
			return errUsage
		}
		r, ok := findRole(args[1])
		if !ok {
			fmt.Fprintf(stderr, "callflow config print: unknown role %q (serve, ingest, decider, archiver)\n", args[1])
			return errUsage
		}
		var o options
		fs := r.flagSet(&o, stderr)
		if err := parseFlags(fs, args[2:], false); err != nil {
			return err
		}
		if err := o.validate(node.Roles{Ingest: r.name == "serve" || r.name == "ingest"}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "# effective configuration of callflow %s\n", r.name)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == configFlag {
				return
			}
			v := f.Value.String()
			if isSecret(f.Name) && v != "" {
				// A comment, so that a config file made from this
				// output never sets a placeholder as the secret.
				fmt.Fprintf(stdout, "# %s: (set, not shown; give it with --%s-file or %s)\n", f.Name, f.Name, envName(f.Name))
				return
			}
			b, _ := yaml.Marshal(map[string]string{f.Name: v})
			fmt.Fprint(stdout, string(b))
		})
		return nil
	default:
		fmt.Fprintln(stderr, "Usage: callflow "+configSynopsis)
		return errUsage
	}
}

// configDocs is the Markdown table of every setting of every role, as in
// the README (a test keeps the two equal).
func configDocs() string {
	type entry struct {
		usage, def string
		// first is the first role's default; another role's that differs
		// is noted beside it.
		first string
		roles []string
	}
	entries := map[string]*entry{}
	var names []string
	for _, r := range roles {
		var o options
		fs := r.flagSet(&o, io.Discard)
		fs.VisitAll(func(f *flag.Flag) {
			e, ok := entries[f.Name]
			if !ok {
				e = &entry{usage: f.Usage, def: f.DefValue, first: f.DefValue}
				entries[f.Name] = e
				names = append(names, f.Name)
			} else if e.first != f.DefValue {
				def := f.DefValue
				if def == "" {
					def = "(empty)"
				}
				e.def += " (" + r.name + ": " + def + ")"
			}
			e.roles = append(e.roles, r.name)
		})
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("| flag | environment variable | default | roles | what it sets |\n| --- | --- | --- | --- | --- |\n")
	for _, n := range names {
		e := entries[n]
		def := e.def
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | `%s` | %s | %s |\n", n, envName(n), def, strings.Join(e.roles, ", "), strings.ReplaceAll(e.usage, "|", "\\|"))
	}
	return b.String()
}
