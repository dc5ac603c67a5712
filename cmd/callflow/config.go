package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/callflow/callflow/internal/node"
	"go.yaml.in/yaml/v3"
)

// configFlag names the optional YAML file of settings.
const configFlag = "config"

func registerConfigFlag(fs *flag.FlagSet) {
	fs.String(configFlag, "", "YAML file of settings, keyed by flag name (precedence: flag > environment > file > default)")
}

// yamlConfig reads a config file for ff: a YAML mapping from flag names to
// scalar values (a list sets a flag once per item). An unknown key is an
// error that names it.
func yamlConfig(r io.Reader, set func(name, value string) error) error {
	var m map[string]any
	if err := yaml.NewDecoder(r).Decode(&m); err != nil && err != io.EOF {
		return fmt.Errorf("config file: %w", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		values, ok := m[k].([]any)
		if !ok {
			values = []any{m[k]}
		}
		for _, v := range values {
			switch v.(type) {
			case map[string]any, []any:
				return fmt.Errorf("config file: %s: want a scalar value", k)
			}
			s := ""
			if v != nil {
				s = fmt.Sprint(v)
			}
			if err := set(k, s); err != nil {
				return fmt.Errorf("config file: %s: %w", k, err)
			}
		}
	}
	return nil
}

// placeholder reports whether v is what tools print in place of a secret
// (REDACTED, <redacted>, ***): a config copied from such output must not
// make the placeholder a working credential.
func placeholder(v string) bool {
	v = strings.Trim(strings.TrimSpace(v), `<>[]()"'`)
	return strings.EqualFold(v, "redacted") || (v != "" && strings.Trim(v, "*") == "")
}

// secret reports whether a flag holds a secret that output must redact.
func secret(name string) bool {
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
			if secret(f.Name) && v != "" {
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
