package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/callflow/callflow/internal/node"
)

// A role is a long-running subcommand. Its flags are declared once here,
// so that running it, `config print` and the README's configuration table
// all see the same set.
type role struct {
	name     string
	synopsis string
	register func(o *options, fs *flag.FlagSet)
	// roles turns parsed options into what the process runs.
	roles func(o *options) (node.Roles, error)
}

var roles = []role{
	{
		name: "serve", synopsis: "serve [flags]",
		register: func(o *options, fs *flag.FlagSet) {
			o.registerNATS(fs, true)
			o.registerStream(fs)
			o.registerBucket(fs)
			o.registerIngest(fs)
			o.registerDeciders(fs, 2)
			o.registerArchiver(fs, true)
			o.registerAdmin(fs, "127.0.0.1:8081", true)
			o.registerProcess(fs)
		},
		roles: func(o *options) (node.Roles, error) {
			return node.Roles{Name: "serve", Embedded: o.natsURL == "", Ingest: true, Deciders: o.deciders, Archiver: o.clickhouseAddr != ""}, nil
		},
	},
	{
		name: "ingest", synopsis: "ingest [flags]",
		register: func(o *options, fs *flag.FlagSet) {
			o.registerNATS(fs, false)
			o.registerStream(fs)
			o.registerBucket(fs)
			o.registerIngest(fs)
			o.registerHistory(fs)
			o.registerAdmin(fs, "127.0.0.1:8081", true)
			o.registerProcess(fs)
		},
		roles: func(*options) (node.Roles, error) { return node.Roles{Name: "ingest", Ingest: true}, nil },
	},
	{
		name: "decider", synopsis: "decider [flags]",
		register: func(o *options, fs *flag.FlagSet) {
			o.registerNATS(fs, false)
			o.registerBucket(fs)
			o.registerDeciders(fs, 2)
			o.registerAdmin(fs, "127.0.0.1:8082", false)
			o.registerProcess(fs)
		},
		roles: func(o *options) (node.Roles, error) {
			if o.deciders < 1 {
				return node.Roles{}, fmt.Errorf("--deciders must be >= 1 for the decider role, got %d", o.deciders)
			}
			return node.Roles{Name: "decider", Deciders: o.deciders}, nil
		},
	},
	{
		name: "archiver", synopsis: "archiver [flags]\n       callflow archiver replay --since TIME | --start-seq N [flags]\n       callflow archiver schema [--clickhouse-database NAME]",
		register: func(o *options, fs *flag.FlagSet) {
			o.registerNATS(fs, false)
			o.registerStream(fs)
			o.registerStreamSources(fs)
			o.registerArchiver(fs, false)
			o.registerAdmin(fs, "127.0.0.1:8083", false)
			o.registerProcess(fs)
		},
		roles: func(o *options) (node.Roles, error) {
			if o.clickhouseAddr == "" {
				return node.Roles{}, errors.New("--clickhouse-addr is required for the archiver role")
			}
			return node.Roles{Name: "archiver", Archiver: true, ArchiveRequired: true}, nil
		},
	},
}

func findRole(name string) (role, bool) {
	for _, r := range roles {
		if r.name == name {
			return r, true
		}
	}
	return role{}, false
}

// roleFlagSet returns the role's flag set, bound to o, with --config.
func (r role) flagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet(r.name, r.synopsis, stderr)
	r.register(o, fs)
	o.registerCollector(fs)
	o.registerConfig(fs)
	return fs
}

// runRole is the run function of a role's subcommand.
func runRole(name string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, _, stderr io.Writer) error {
		r, _ := findRole(name)
		var o options
		if err := parseFlags(r.flagSet(&o, stderr), args, false); err != nil {
			return err
		}
		if err := o.readSecrets(); err != nil {
			return err
		}
		nr, err := r.roles(&o)
		if err != nil {
			return err
		}
		return runNode(ctx, &o, nr, stderr)
	}
}
